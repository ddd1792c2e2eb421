package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redispool/redispool/bench/internal/contender"
	"github.com/redispool/redispool/bench/internal/micro"
	"github.com/redispool/redispool/bench/internal/parallel"
	"github.com/redispool/redispool/bench/internal/redisserver"
)

// requireServerEnv, set to "1", turns the skip for a missing
// redis-server into a failure, as in redistest.
const requireServerEnv = "REDISPOOL_REQUIRE_SERVER"

// endToEndConcurrencies are the goroutine counts of BenchmarkEndToEnd.
var endToEndConcurrencies = []int{1, 16, 64, 256}

var server struct {
	once sync.Once
	srv  *redisserver.Server
	err  error
}

// serverAddr starts the shared redis-server on first use and returns
// its address, or skips tb when redis-server is not installed.
func serverAddr(tb testing.TB) string {
	tb.Helper()
	server.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		server.srv, server.err = redisserver.Start(ctx)
		if server.err == nil {
			server.err = contender.Prepare(ctx, server.srv.Addr)
		}
	})
	if errors.Is(server.err, redisserver.ErrNotFound) && os.Getenv(requireServerEnv) != "1" {
		tb.Skip(server.err)
	}
	if server.err != nil {
		tb.Fatal(server.err)
	}
	return server.srv.Addr
}

func TestMain(m *testing.M) {
	code := m.Run()
	if server.srv != nil {
		server.srv.Close()
	}
	if clusterServer.c != nil {
		clusterServer.c.Close()
	}
	os.Exit(code)
}

// BenchmarkBorrowReturn measures one borrow and one return, nothing
// else, with no network.
func BenchmarkBorrowReturn(b *testing.B) {
	for _, conc := range micro.Concurrencies {
		for _, s := range micro.Subjects {
			b.Run(fmt.Sprintf("Conc=%d/Pool=%s", conc, s.Name), micro.Benchmark(s, conc))
		}
	}
}

// BenchmarkEndToEnd measures whole operations (borrow, commands,
// return) against a real redis-server. One op is one borrow, whatever
// the number of commands the workload sends.
func BenchmarkEndToEnd(b *testing.B) {
	addr := serverAddr(b)
	for _, w := range contender.Workloads {
		for _, conc := range endToEndConcurrencies {
			for _, c := range contender.All {
				b.Run(fmt.Sprintf("Workload=%s/Conc=%d/Pool=%s", w, conc, c.Name), func(b *testing.B) {
					benchEndToEnd(b, addr, c, w, conc)
				})
			}
		}
	}
}

func benchEndToEnd(b *testing.B, addr string, c contender.Contender, w contender.Workload, conc int) {
	ctx := context.Background()
	workers := parallel.Goroutines(conc)
	cl, err := c.New(ctx, addr, workers)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	// Fill the pool, so that dials are not measured.
	var wg sync.WaitGroup
	for i := range min(workers, contender.PoolSize) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := cl.Op(w, i)
			for range 10 {
				if err := op(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	parallel.Run(b, conc, func(worker int) func() error {
		op := cl.Op(w, worker)
		return func() error { return op(ctx) }
	})
}

// TestContenders runs every workload once through every contender, so
// that a broken contender fails here rather than skewing a benchmark.
func TestContenders(t *testing.T) {
	addr := serverAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append(append([]contender.Contender(nil), contender.All...), contender.Liveness[1:]...)
	for _, c := range all {
		t.Run(c.Name, func(t *testing.T) {
			cl, err := c.New(ctx, addr, 2)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer cl.Close()
			for _, w := range append(contender.Workloads, contender.Ping) {
				for worker := range 2 {
					if err := cl.Op(w, worker)(ctx); err != nil {
						t.Errorf("%s, worker %d: got error %v; want none", w, worker, err)
					}
				}
			}
		})
	}
}

// TestMicroSubjects borrows and returns once through every subject of
// the micro-benchmark.
func TestMicroSubjects(t *testing.T) {
	for _, s := range micro.Subjects {
		t.Run(s.Name, func(t *testing.T) {
			op, closePool, err := s.Open()
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer closePool()
			for range 3 {
				if err := op(context.Background()); err != nil {
					t.Fatalf("borrow and return: got error %v; want none", err)
				}
			}
		})
	}
}
