package redispool

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

// TestPipelineGetFailuresUnderLoad: goroutines borrowing with Get from a
// PipelineGet pool, each writing and reading back a key of its own and
// now and then running a transaction, while the server is killed and
// restarted, while its connections are killed with CLIENT KILL, and
// with contexts cancelled at random points. Every call returns its own
// reply or an error, none hangs, and afterwards the pool's Stats and
// the server's CLIENT LIST agree: nothing borrowed, every pool
// connection on the server idle or shared.
func TestPipelineGetFailuresUnderLoad(t *testing.T) {
	const workers = 32
	for _, tc := range []struct {
		name  string
		ctx   func(i int) (context.Context, context.CancelFunc)
		fault func(t *testing.T, s *redistest.Server, name string, progress func(int64))
	}{
		{"ServerKilledAndRestarted", noCancel, func(t *testing.T, s *redistest.Server, _ string, progress func(int64)) {
			progress(100)
			s.Kill()
			s.Restart()
			progress(100)
		}},
		{"ClientKill", noCancel, func(t *testing.T, s *redistest.Server, name string, progress func(int64)) {
			for range 5 {
				progress(50)
				s.KillClients(t, func(c redistest.ClientInfo) bool { return c.Name == name })
			}
			progress(50)
		}},
		{"ContextCancelledAtRandom", func(i int) (context.Context, context.CancelFunc) {
			if i%3 == 0 {
				return context.Background(), func() {}
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Duration(rand.IntN(2000))*time.Microsecond, cancel)
			return ctx, cancel
		}, func(t *testing.T, _ *redistest.Server, _ string, progress func(int64)) {
			progress(300)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := redistest.StartServer(t)
			name := "pipeget-" + tc.name
			p := pipeGetPool(t, s, Config{ClientName: name, MaxTotal: 6, BorrowTimeout: time.Second})
			var ok, failed atomic.Int64
			wrong := make(chan string, workers)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := "pg:fail:" + strconv.Itoa(w)
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						ctx, cancel := tc.ctx(i)
						if err := pipeGetRound(ctx, p, key, fmt.Sprintf("%d/%d", w, i), i%5 == 0); err == nil {
							ok.Add(1)
						} else if _, bad := err.(wrongReply); bad {
							select {
							case wrong <- err.Error():
							default:
							}
						} else {
							failed.Add(1)
						}
						cancel()
					}
				}()
			}
			progress := func(n int64) {
				t.Helper()
				from := ok.Load()
				waitForWithin(t, 20*time.Second, func() bool { return ok.Load() >= from+n })
			}
			func() {
				defer close(stop)
				tc.fault(t, s, name, progress)
			}()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("workers still running 20s after being stopped: a call hangs")
			}
			close(wrong)
			for w := range wrong {
				t.Error(w)
			}
			t.Logf("%d rounds ok, %d failed; %+v", ok.Load(), failed.Load(), p.Stats())
			poolAgreesWithServer(t, s, p, name)
		})
	}
}

func noCancel(int) (context.Context, context.CancelFunc) { return context.Background(), func() {} }

// wrongReply is a reply that is not the caller's own.
type wrongReply string

func (w wrongReply) Error() string { return string(w) }

// pipeGetRound borrows with Get, sets key to val and reads it back, and
// with multi runs a transaction too, on a connection of its own.
func pipeGetRound(ctx context.Context, p *Pool, key, val string, multi bool) error {
	c := p.Get().(redis.ConnWithContext)
	defer c.Close()
	if _, err := c.DoContext(ctx, "SET", key, val); err != nil {
		return err
	}
	got, err := redis.String(c.DoContext(ctx, "GET", key))
	if err != nil {
		return err
	}
	if got != val {
		return wrongReply(fmt.Sprintf("GET %s = %q; want %q", key, got, val))
	}
	if !multi {
		return nil
	}
	c.DoContext(ctx, "MULTI")
	c.DoContext(ctx, "INCR", key+":n")
	r, err := redis.Ints(c.DoContext(ctx, "EXEC"))
	if err == nil && len(r) != 1 {
		return wrongReply(fmt.Sprintf("EXEC of one INCR = %v", r))
	}
	return err
}

// poolAgreesWithServer waits until p has nothing borrowed and the
// server counts as many of p's connections (named name) as p holds idle
// or shared. Connections the server closed are found by borrowing them:
// each round borrows every idle one.
func poolAgreesWithServer(t *testing.T, s *redistest.Server, p *Pool, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var held []redis.Conn
		for range p.Stats().Idle {
			c := p.Get()
			c.Do("CLIENT", "ID") // borrows: a dead connection fails here and is closed
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		st := p.Stats()
		n := s.CountClients(t, func(c redistest.ClientInfo) bool { return c.Name == name })
		if st.Active == 0 && n == st.Idle+st.Shared {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server has %d of the pool's connections; Stats: Active %d, Idle %d, Shared %d", n, st.Active, st.Idle, st.Shared)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
