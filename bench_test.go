package redispool

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

// sinkServer accepts TCP connections on loopback and holds them open,
// answering only the PING of redispool's dial, so borrow/return
// benchmarks measure the pools, not Redis. Borrow and return do no I/O
// on a clean connection.
func sinkServer(tb testing.TB) string {
	tb.Helper()
	return redistest.NewFakeServer(tb, redistest.PongFirst(redistest.Silent())).Addr()
}

// BenchmarkGetClose compares one borrow and return through redispool
// (with its borrow check: a socket peek) and through redigo's Pool, in
// the same run.
func BenchmarkGetClose(b *testing.B) {
	const size = 16
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("Conc=%d/Pool=redispool", conc), func(b *testing.B) {
			p := newTestPool(b, Config{Addr: sinkServer(b), MaxTotal: size, BorrowTimeout: time.Minute})
			runGetClose(b, conc, func() {
				c, err := p.GetContext(context.Background())
				if err != nil {
					b.Error(err)
					return
				}
				c.Close()
			})
		})
		b.Run(fmt.Sprintf("Conc=%d/Pool=redigo", conc), func(b *testing.B) {
			addr := sinkServer(b)
			p := &redis.Pool{
				MaxActive: size, MaxIdle: size, Wait: true,
				Dial: func() (redis.Conn, error) { return redis.Dial("tcp", addr) },
			}
			b.Cleanup(func() { p.Close() })
			runGetClose(b, conc, func() {
				c, err := p.GetContext(context.Background())
				if err != nil {
					b.Error(err)
					return
				}
				c.Close()
			})
		})
	}
}

// BenchmarkRedigoPoolGetClose is what the bridge (RedigoPool) adds to a
// borrow and return: the same pool, borrowed from directly and through
// the *redis.Pool a library would be given.
func BenchmarkRedigoPoolGetClose(b *testing.B) {
	p := newTestPool(b, Config{Addr: sinkServer(b), MaxTotal: 16, BorrowTimeout: time.Minute})
	rp := p.RedigoPool()
	for _, bc := range []struct {
		name string
		get  func(context.Context) (redis.Conn, error)
	}{{"Direct", p.GetContext}, {"Bridge", rp.GetContext}} {
		b.Run(bc.name, func(b *testing.B) {
			runGetClose(b, 1, func() {
				c, err := bc.get(context.Background())
				if err != nil {
					b.Error(err)
					return
				}
				c.Close()
			})
		})
	}
}

func runGetClose(b *testing.B, conc int, op func()) {
	b.ReportAllocs()
	op() // dial outside the timer
	b.ResetTimer()
	if conc == 1 {
		for i := 0; i < b.N; i++ {
			op()
		}
		return
	}
	b.SetParallelism(max(1, conc/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			op()
		}
	})
}

// BenchmarkClassify is the per-command cost of state tracking.
func BenchmarkClassify(b *testing.B) {
	for _, cmd := range []string{"GET", "set", "HGETALL", "MULTI", "SUBSCRIBE"} {
		b.Run("Cmd="+cmd, func(b *testing.B) {
			b.ReportAllocs()
			args := []any{"key"}
			for i := 0; i < b.N; i++ {
				classify(cmd, args)
			}
		})
	}
}

func TestClassifyDoesNotAllocate(t *testing.T) {
	args := []any{"key", "value"}
	var tr tracker
	allocs := testing.AllocsPerRun(100, func() {
		tr.onSend("GET", args)
		tr.onSend("EXEC", args)
		tr.onReceive("x", nil)
		tr.onReceive([]any{}, nil)
		kind := tr.beforeDo("SET", args)
		tr.afterDo("SET", kind, "OK")
	})
	if allocs != 0 {
		t.Fatalf("tracking allocates %v times per command batch; want 0", allocs)
	}
}

// BenchmarkTracker is the cost of state tracking per pipelined command,
// sent and received by one goroutine (Mode=Pipeline), and per Do.
func BenchmarkTracker(b *testing.B) {
	args := []any{"key", "value"}
	b.Run("Mode=Pipeline", func(b *testing.B) {
		b.ReportAllocs()
		var tr tracker
		for i := 0; i < b.N; i++ {
			tr.onSend("SET", args)
			tr.onReceive("OK", nil)
		}
	})
	b.Run("Mode=Do", func(b *testing.B) {
		b.ReportAllocs()
		var tr tracker
		for i := 0; i < b.N; i++ {
			kind := tr.beforeDo("SET", args)
			tr.afterDo("SET", kind, "OK")
		}
	})
}
