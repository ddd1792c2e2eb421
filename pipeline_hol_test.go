package redispool

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redispool/redispool/redistest"
)

// BenchmarkPipelineHeadOfLine measures head-of-line blocking on the
// shared connection (issue 16 item 5): 60 goroutines GET a 100-byte
// value through Do while 4 others SET and GET a 1 MiB value. A SET of
// 1 MiB is over pipeMaxCommand and always takes a connection of its own;
// a GET of it is a small command with a large reply. Large=pipelined
// sends those GETs through Do, down the shared connection, where the
// small replies queued behind a large one wait for it; Large=exclusive
// sends them on a borrowed connection. The metrics are the small GETs'
// latency percentiles and the large operations' rate.
//
//	go test -run '^$' -bench PipelineHeadOfLine -benchtime 20000x -count 3 .
func BenchmarkPipelineHeadOfLine(b *testing.B) {
	s := redistest.StartServer(b)
	for _, mode := range []string{"pipelined", "exclusive"} {
		b.Run("Large="+mode, func(b *testing.B) {
			benchHeadOfLine(b, s.Addr(), mode == "exclusive")
		})
	}
}

func benchHeadOfLine(b *testing.B, addr string, largeExclusive bool) {
	const small, large = 60, 4
	p := newTestPool(b, Config{Addr: addr, MaxTotal: 16})
	ctx := context.Background()
	big := strings.Repeat("x", 1<<20)
	if _, err := p.Do(ctx, "SET", "hol:small", strings.Repeat("s", 100)); err != nil {
		b.Fatal(err)
	}
	if _, err := p.Do(ctx, "SET", "hol:large", big); err != nil {
		b.Fatal(err)
	}
	getLarge := func() error {
		if !largeExclusive {
			_, err := p.Do(ctx, "GET", "hol:large")
			return err
		}
		c, err := p.GetContext(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Do("GET", "hol:large")
		return err
	}

	var (
		left      atomic.Int64 // small GETs still to run
		largeOps  atomic.Int64
		wg, lwg   sync.WaitGroup
		stopLarge = make(chan struct{})
		lats      = make([][]time.Duration, small)
	)
	left.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	for w := range large {
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopLarge:
					return
				default:
				}
				var err error
				if (i+w)%2 == 0 {
					_, err = p.Do(ctx, "SET", "hol:large", big)
				} else {
					err = getLarge()
				}
				if err != nil {
					b.Error(err)
					return
				}
				largeOps.Add(1)
			}
		}()
	}
	for w := range small {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				t0 := time.Now()
				if _, err := p.Do(ctx, "GET", "hol:small"); err != nil {
					b.Error(err)
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopLarge)
	lwg.Wait()
	b.StopTimer()

	all := slices.Concat(lats...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	q := func(f float64) float64 { return float64(all[int(f*float64(len(all)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "small-p50-µs")
	b.ReportMetric(q(0.99), "small-p99-µs")
	b.ReportMetric(q(0.999), "small-p99.9-µs")
	b.ReportMetric(float64(largeOps.Load())/elapsed.Seconds(), "large-ops/s")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "small-ops/s")
}
