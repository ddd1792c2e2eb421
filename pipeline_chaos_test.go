package redispool

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
	"go.uber.org/goleak"
)

// TestPipelineServerKilledAndRestartedUnderLoad kills redis-server with
// SIGKILL, twice, under pipelined load from 64 goroutines, each writing
// and reading back a key of its own, and starts it again on the same
// port. No reply reaches the wrong caller; nothing hangs (every command
// has a deadline, and the load must stop within it); commands fail only
// while the server is down: none started after a PING has succeeded on
// the restarted server fails; and afterwards no goroutine is left, and
// the server sees exactly the connections the pool holds.
func TestPipelineServerKilledAndRestartedUnderLoad(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{
		Addr: s.Addr(), ClientName: pipeName, MaxTotal: 8,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, BorrowTimeout: time.Second,
	})

	const workers = 64
	var (
		ops, errs, wrong atomic.Int64
		// upSince is when the server was last seen back up (UnixNano),
		// or 0 while it is down: a command started after it must not
		// fail.
		upSince   atomic.Int64
		lateErr   atomic.Pointer[string]
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		opTimeout = 3 * time.Second
	)
	upSince.Store(time.Now().UnixNano())
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "chaos:kill:" + strconv.Itoa(w)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				started := time.Now().UnixNano()
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				val := fmt.Sprintf("%d/%d", w, i)
				_, err := p.Do(ctx, "SET", key, val)
				if err == nil {
					var got string
					got, err = redis.String(p.Do(ctx, "GET", key))
					if err == nil && got != val {
						wrong.Add(1)
						t.Errorf("worker %d: GET %s = %q; want %q", w, key, got, val)
					}
				}
				cancel()
				ops.Add(1)
				if err != nil {
					errs.Add(1)
					if up := upSince.Load(); up != 0 && started > up {
						msg := fmt.Sprintf("worker %d: started %v after the server was back: %v", w, time.Duration(started-up), err)
						lateErr.CompareAndSwap(nil, &msg)
					}
					time.Sleep(time.Millisecond) // no spinning on a dead server
				}
			}
		}()
	}
	halted := false
	halt := func() {
		if halted {
			return
		}
		halted = true
		close(stop)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2*opTimeout + 5*time.Second):
			t.Fatal("the load did not stop: a command hangs")
		}
	}
	defer halt()

	waitOps := func(n int64) {
		t.Helper()
		target := ops.Load() + n
		waitFor(t, func() bool { return ops.Load() >= target })
	}
	waitOps(2000)
	for range 2 {
		upSince.Store(0)
		s.Kill()
		errsBefore := errs.Load()
		waitFor(t, func() bool { return errs.Load() > errsBefore }) // the load sees the outage
		time.Sleep(50 * time.Millisecond)                           // down for a while
		s.Restart()
		// Back: once a PING has gone through, every command started
		// later must succeed.
		waitFor(t, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := p.Do(ctx, "PING")
			return err == nil
		})
		upSince.Store(time.Now().UnixNano())
		waitOps(2000)
	}
	halt()

	if msg := lateErr.Load(); msg != nil {
		t.Errorf("a command failed after the server was back: %s", *msg)
	}
	if wrong.Load() != 0 {
		t.Errorf("%d replies reached the wrong caller", wrong.Load())
	}
	if errs.Load() == 0 {
		t.Errorf("no command failed: the kills were not seen")
	}
	// Nothing in flight now: the server sees exactly the connections the
	// pool holds, idle or shared, and none is lent out.
	waitFor(t, func() bool {
		st := p.Stats()
		return st.Active == 0 && s.CountClients(t, isPipeConn) == st.Idle+st.Shared
	})
	st := p.Stats()
	if st.Idle+st.Shared > st.MaxTotal {
		t.Errorf("Stats = %+v: more connections than MaxTotal", st)
	}
	t.Logf("%d ops, %d failed, all while the server was down; %+v", ops.Load(), errs.Load(), st)
}

// TestPipelineBatchesOverOneMiBKeepTheStreamIntact: 64 goroutines write
// and read back 60 KB values of their own, so that the batches grow past
// the 1 MiB a pipe keeps of a written buffer, and a 1 MiB SET (over
// pipeMaxCommand, so exclusive) leaves the queue's buffer that large too.
// The first version kept the pipe's spare buffer aliased to the one it
// handed to the callers once a written buffer was too large to keep: the
// next write then went out while callers appended to it, and the server
// read commands made of pieces of others (ERR unknown command
// '$1048576').
func TestPipelineBatchesOverOneMiBKeepTheStreamIntact(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 8, ClientName: pipeName})
	ctx := context.Background()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "big:" + strconv.Itoa(w)
			for i := range 20 {
				val := fmt.Sprintf("%d/%d/", w, i) + strings.Repeat("v", 60<<10)
				if w == 0 && i%5 == 0 {
					// Exclusive: over pipeMaxCommand.
					if _, err := p.Do(ctx, "SET", "huge", strings.Repeat("h", 1<<20)); err != nil {
						failed.Add(1)
						t.Errorf("SET huge: %v", err)
						return
					}
				}
				if _, err := p.Do(ctx, "SET", key, val); err != nil {
					failed.Add(1)
					t.Errorf("worker %d: SET: %v", w, err)
					return
				}
				got, err := redis.String(p.Do(ctx, "GET", key))
				if err != nil || got != val {
					failed.Add(1)
					t.Errorf("worker %d: GET %s: %d bytes, %v; want its own %d bytes", w, key, len(got), err, len(val))
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := p.Stats(); st.DestroyedBroken != 0 {
		t.Errorf("Stats = %+v; want no connection broken", st)
	}
}
