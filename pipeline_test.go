package redispool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/internal/redistest"
	"go.uber.org/goleak"
)

// pipelineOn starts a pool on s and a pipeline over it, closed (the
// pipeline first, as Pool.Close will) at the end of the test.
func pipelineOn(t testing.TB, s *redistest.Server, cfg Config, pc pipeConfig) (*Pool, *pipeline) {
	t.Helper()
	cfg.Addr = s.Addr()
	p := newTestPool(t, cfg)
	if pc.readTimeout == 0 {
		pc.readTimeout = p.cfg.ReadTimeout
	}
	if pc.writeTimeout == 0 {
		pc.writeTimeout = p.cfg.WriteTimeout
	}
	pl := newPipeline(poolHost{p}, pc)
	t.Cleanup(pl.close)
	return p, pl
}

// gatedHost holds every lend until the gate opens, so that commands
// stay queued, unwritten, for as long as a test needs.
type gatedHost struct {
	pipeHost
	gate  chan struct{}
	lends atomic.Int32 // lends waiting at the gate or past it
}

func (h *gatedHost) lendShared(ctx context.Context) (sharedConn, error) {
	h.lends.Add(1)
	select {
	case <-h.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.pipeHost.lendShared(ctx)
}

func TestMayPipeline(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want bool
	}{
		{"GET", true}, {"get", true}, {"Set", true}, {"INCR", true}, {"HGETALL", true}, {"PING", true},
		// Blocking.
		{"BLPOP", false}, {"BRPOPLPUSH", false}, {"BZPOPMIN", false}, {"XREAD", false}, {"WAIT", false}, {"WAITAOF", false},
		// Session state.
		{"SELECT", false}, {"MULTI", false}, {"EXEC", false}, {"WATCH", false}, {"SUBSCRIBE", false},
		{"CLIENT", false}, {"AUTH", false}, {"HELLO", false}, {"RESET", false}, {"MONITOR", false},
		// Scripts may run long; unknown and module commands are not known safe.
		{"EVAL", false}, {"FCALL", false}, {"JSON.GET", false}, {"NOSUCHCOMMAND", false}, {"", false},
		{strings.Repeat("G", 100), false},
	} {
		if got := mayPipeline(tc.cmd); got != tc.want {
			t.Errorf("mayPipeline(%q) = %v; want %v", tc.cmd, got, tc.want)
		}
	}
}

func TestAppendCommandWritesWhatRedigoWrites(t *testing.T) {
	type arg struct{ s string }
	args := []any{"s", []byte("b"), 7, int64(-8), 1.5, true, false, nil, uint8(3), float32(2.5), redis.Args{}.Add("x")[0], arg{"y"}}
	got := string(appendCommand(nil, "CMD", args))
	var b strings.Builder
	b.WriteString("*13\r\n$3\r\nCMD\r\n")
	for _, s := range []string{"s", "b", "7", "-8", "1.5", "1", "0", "", "3", "2.5", "x", "{y}"} {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(s), s)
	}
	if want := b.String(); got != want {
		t.Errorf("appendCommand = %q; want %q", got, want)
	}
}

// TestPipelineRepliesReachTheirCallers runs 256 goroutines, each writing
// and reading back keys of its own, through one shared connection.
func TestPipelineRepliesReachTheirCallers(t *testing.T) {
	s := redistest.StartServer(t)
	p, pl := pipelineOn(t, s, Config{MaxTotal: 4}, pipeConfig{})
	const workers, rounds = 256, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if w%2 == 1 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx) // takes the loop, never the inline path
				defer cancel()
			}
			key := "pipe:own:" + strconv.Itoa(w)
			for i := range rounds {
				val := fmt.Sprintf("%d/%d", w, i)
				if _, err := pl.do(ctx, "SET", []any{key, val}); err != nil {
					errs <- fmt.Errorf("SET %s: %w", key, err)
					return
				}
				got, err := redis.String(pl.do(ctx, "GET", []any{key}))
				if err != nil || got != val {
					errs <- fmt.Errorf("GET %s = %q, %v; want %q", key, got, err, val)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := pl.commands.Load(), int64(2*workers*rounds); got != want {
		t.Errorf("commands = %d; want %d", got, want)
	}
	if s := p.Stats(); s.Created != 1 {
		t.Errorf("Stats.Created = %d; want 1: one shared connection", s.Created)
	}
	t.Logf("%d commands in %d writes", pl.commands.Load(), pl.batches.Load())
}

func BenchmarkPipelineDo(b *testing.B) {
	s := redistest.StartServer(b)
	_, pl := pipelineOn(b, s, Config{MaxTotal: 16}, pipeConfig{})
	val := strings.Repeat("v", 100)
	if _, err := pl.do(context.Background(), "SET", []any{"k", val}); err != nil {
		b.Fatal(err)
	}
	for _, conc := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("Conc=%d", conc), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(conc/runtime.GOMAXPROCS(0), 1))
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if _, err := pl.do(ctx, "GET", []any{"k"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

var _ = errors.New
var _ = rand.IntN
var _ = goleak.Find
var _ = time.Now
