package redispool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

// pooled returns the pooled connection under a borrowed one.
func pooled(c redis.Conn) *conn { return c.(*activeConn).c }

// hotLen is the number of connections on p's hot stack.
func hotLen(p *Pool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hot.n
}

func TestHandOffToWaiterWhoseContextJustEnded(t *testing.T) {
	// The only waiter's context ends as the holder returns the
	// connection to it. Whichever the waiter sees first, the connection
	// must not be lost: either the waiter has it, or it is back in the
	// pool for the next borrower.
	p, s := miniPool(t, Config{MaxTotal: 1, BorrowTimeout: 10 * time.Second})
	waiter := func(ctx context.Context) <-chan error {
		result := make(chan error, 1)
		go func() {
			c, err := p.GetContext(ctx)
			if err == nil {
				c.Close()
			}
			result <- err
		}()
		waitFor(t, func() bool { return p.Stats().Waiting == 1 })
		return result
	}
	check := func(what string, err error) {
		t.Helper()
		if err != nil && !(errors.Is(err, ErrPoolExhausted) && errors.Is(err, context.Canceled)) {
			t.Fatalf("%s: waiter got %v; want a connection or ErrPoolExhausted wrapping context.Canceled", what, err)
		}
		if st := p.Stats(); st.Active != 0 || st.Idle != 1 || st.Waiting != 0 {
			t.Fatalf("%s: Stats = %+v; want the one connection idle", what, st)
		}
	}

	t.Run("handed over after the context ended", func(t *testing.T) {
		c := mustGet(t, p)
		ctx, cancel := context.WithCancel(context.Background())
		result := waiter(ctx)
		// Hold the lock so that the waiter, woken by its context, cannot
		// leave the queue before it is chosen for the connection; then
		// return the connection as put does.
		p.mu.Lock()
		cancel()
		ac := c.(*activeConn)
		pc := ac.c
		ac.c = nil
		pc.idleSince = now()
		w, reason := p.keepLocked(pc)
		p.mu.Unlock()
		if w == nil || reason != reasonNone {
			t.Fatalf("keepLocked = %v, %v; want the connection handed to the waiter", w, reason)
		}
		p.settle(pc, w, reason)
		err := <-result
		if err == nil {
			t.Fatal("the waiter took the connection after its context ended")
		}
		check("handed over", err)
		c = mustGet(t, p)
		defer c.Close()
		if pooled(c) != pc {
			t.Fatal("the connection given back is not the one borrowed next")
		}
	})

	t.Run("both orders", func(t *testing.T) {
		var got, gaveUp int
		for round := 0; round < 300 && (got < 5 || gaveUp < 5); round++ {
			c := mustGet(t, p)
			ctx, cancel := context.WithCancel(context.Background())
			result := waiter(ctx)
			if round%2 == 0 {
				c.Close()
				cancel()
			} else {
				cancel()
				c.Close()
			}
			err := <-result
			if err == nil {
				got++
			} else {
				gaveUp++
			}
			check(fmt.Sprintf("round %d", round), err)
		}
		if got == 0 || gaveUp == 0 {
			t.Fatalf("waiter got the connection %d times and gave up %d times; want both to happen", got, gaveUp)
		}
	})

	// The connection went on serving: one connection all along.
	if _, err := p.Do(context.Background(), "PING"); err != nil {
		t.Fatalf("PING after the rounds: %v", err)
	}
	if st := p.Stats(); st.Created != 1 || st.Destroyed != 0 || s.CurrentConnectionCount() != 1 {
		t.Fatalf("Stats = %+v, server connections %d; want one connection, never closed", st, s.CurrentConnectionCount())
	}
}

func TestClosedConnectionWakesWaiter(t *testing.T) {
	// A connection that cannot be reused is closed on return; its slot
	// must go to the waiter, which dials a new one, long before
	// BorrowTimeout.
	const lifetime = 300 * time.Millisecond
	for _, tt := range []struct {
		name     string
		lifetime time.Duration
		spoil    func(redis.Conn)
		reason   func(Stats) int64
	}{
		{"dirty", 0, func(c redis.Conn) { c.Do("MONITOR") }, func(s Stats) int64 { return s.DestroyedDirty }},
		{"broken", 0, func(c redis.Conn) { pooled(c).broken = true }, func(s Stats) int64 { return s.DestroyedBroken }},
		{"expired", lifetime, func(c redis.Conn) { time.Sleep(lifetime) }, func(s Stats) int64 { return s.DestroyedLifetime }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := miniPool(t, Config{MaxTotal: 1, BorrowTimeout: 20 * time.Second, MaxConnLifetime: tt.lifetime})
			c := mustGet(t, p)
			done := make(chan error, 1)
			go func() {
				_, err := p.Do(context.Background(), "PING")
				done <- err
			}()
			waitFor(t, func() bool { return p.Stats().Waiting == 1 })
			tt.spoil(c)
			c.Close()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("waiter: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("closing the connection did not wake the waiter")
			}
			if st := p.Stats(); tt.reason(st) != 1 || st.Created != 2 || st.Timeouts != 0 {
				t.Fatalf("Stats = %+v; want the spoiled connection closed and one dialed for the waiter", st)
			}
		})
	}
}

func TestWaitersTimeOutInArrivalOrder(t *testing.T) {
	const (
		waiters = 4
		timeout = 400 * time.Millisecond
		spacing = 60 * time.Millisecond
	)
	p, _ := miniPool(t, Config{MaxTotal: 1, BorrowTimeout: timeout})
	c := mustGet(t, p)
	defer c.Close()
	var seq atomic.Int32
	type result struct {
		order   int32
		waited  time.Duration
		err     error
		arrival int
	}
	results := make(chan result, waiters)
	for i := 0; i < waiters; i++ {
		go func() {
			start := time.Now()
			_, err := p.GetContext(context.Background())
			results <- result{order: seq.Add(1), waited: time.Since(start), err: err, arrival: i}
		}()
		waitFor(t, func() bool { return p.Stats().Waiting == i+1 })
		time.Sleep(spacing)
	}
	got := make([]result, waiters)
	for i := 0; i < waiters; i++ {
		r := <-results
		got[r.arrival] = r
	}
	for i, r := range got {
		if !errors.Is(r.err, ErrPoolExhausted) {
			t.Errorf("waiter %d: %v; want ErrPoolExhausted", i, r.err)
		}
		if r.waited < timeout {
			t.Errorf("waiter %d gave up after %v; want at least BorrowTimeout %v", i, r.waited, timeout)
		}
		if r.order != int32(i+1) {
			t.Errorf("waiter %d (by arrival) timed out in position %d; want %d", i, r.order, i+1)
		}
	}
	if st := p.Stats(); st.Timeouts != waiters || st.Waiting != 0 {
		t.Fatalf("Stats = %+v; want %d timeouts, nobody waiting", st, waiters)
	}
}

// TestBorrowTimeoutNeverEarlyUnderAsyncTimerChan runs the timeout test
// below in a child process with GODEBUG=asynctimerchan=1, the pre-Go 1.23
// timer channels under which a stopped timer keeps a tick it sent as its
// wait ended otherwise, and the next wait to reuse it ends at once. With
// a recycled timer per wait this failed in most runs, on a few timeouts
// in a thousand.
func TestBorrowTimeoutNeverEarlyUnderAsyncTimerChan(t *testing.T) {
	if os.Getenv("REDISPOOL_TIMEOUT_CHILD") != "" {
		t.Skip("in the child")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBorrowTimeoutNeverEarly$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=asynctimerchan=1", "REDISPOOL_TIMEOUT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestBorrowTimeoutNeverEarly ") {
		t.Fatalf("child with GODEBUG=asynctimerchan=1: %v\n%s", err, out)
	}
}

func TestBorrowTimeoutNeverEarly(t *testing.T) {
	// Waits that end every way — a connection, a timeout, a cancelled
	// context — in a tight mix, so that any recycled timer would carry
	// a stale tick into a later wait.
	const timeout = 2 * time.Millisecond
	p, _ := miniPool(t, Config{MaxTotal: 1, BorrowTimeout: timeout})
	var early, timeouts atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if i%2 == 0 {
					// Ends about when BorrowTimeout does: a recycled timer
					// that fired as its wait ended otherwise kept its tick.
					ctx, cancel = context.WithTimeout(ctx, timeout+time.Duration(rand.IntN(300))*time.Microsecond)
				}
				start := time.Now()
				c, err := p.GetContext(ctx)
				waited := time.Since(start)
				cancel()
				if err == nil {
					time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
					c.Close()
					continue
				}
				if errors.Is(err, ErrPoolExhausted) && !errors.Is(err, context.DeadlineExceeded) {
					timeouts.Add(1)
					if waited < timeout {
						early.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("GODEBUG=%q: %d BorrowTimeout timeouts", os.Getenv("GODEBUG"), timeouts.Load())
	if n := early.Load(); n != 0 {
		t.Fatalf("%d of %d borrows timed out before BorrowTimeout %v", n, timeouts.Load(), timeout)
	}
	if timeouts.Load() == 0 {
		t.Fatal("no borrow timed out; the test proves nothing")
	}
}

func TestCloseRacesHandOffs(t *testing.T) {
	for round := 0; round < 10; round++ {
		p, s := miniPool(t, Config{MaxTotal: 4, BorrowTimeout: -1})
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for g := 0; g < 32; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := p.GetContext(context.Background())
					if err != nil {
						if !errors.Is(err, ErrPoolClosed) {
							errs <- err
						}
						return
					}
					c.Do("PING")
					c.Close()
				}
			}()
		}
		time.Sleep(time.Duration(5+rand.IntN(30)) * time.Millisecond)
		p.Close()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: borrower got %v; want only ErrPoolClosed", round, err)
		}
		st := p.Stats()
		if st.Active != 0 || st.Idle != 0 || st.Waiting != 0 || st.Created != st.Destroyed {
			t.Fatalf("round %d: Stats after Close = %+v; want every connection closed", round, st)
		}
		waitFor(t, func() bool { return s.CurrentConnectionCount() == 0 })
	}
}

func TestFlusherReturnsIdleConnectionsToEngine(t *testing.T) {
	p, _ := miniPool(t, Config{MaxTotal: 4})
	var conns []redis.Conn
	for i := 0; i < 3; i++ {
		conns = append(conns, mustGet(t, p))
	}
	for _, c := range conns {
		c.Close()
	}
	if n := hotLen(p); n != 3 {
		t.Fatalf("hot stack holds %d after the returns; want 3", n)
	}
	if st := p.Stats(); st.Idle != 3 {
		t.Fatalf("Stats.Idle = %d with 3 connections on the hot stack; want 3", st.Idle)
	}
	waitFor(t, func() bool { return hotLen(p) == 0 && p.op.GetNumIdle() == 3 })
	if st := p.Stats(); st.Idle != 3 || st.Destroyed != 0 {
		t.Fatalf("Stats = %+v after the flush; want the same 3 idle", st)
	}
}

func TestFlusherRacesBorrowsAndEvictor(t *testing.T) {
	// Borrowers pause for about as long as the flusher waits, so
	// connections keep moving between the hot stack, the engine and the
	// evictor, which closes some (MaxConnIdleTime) and refills MinIdle.
	s := redistest.StartServer(t)
	const maxTotal = 4
	p := newTestPool(t, Config{
		Addr: s.Addr(), ClientName: "flush-race", MaxTotal: maxTotal, MinIdle: 1,
		MaxConnIdleTime: 150 * time.Millisecond, EvictionInterval: 5 * time.Millisecond,
		BorrowTimeout: 10 * time.Second,
	})
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if _, err := p.Do(context.Background(), "PING"); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
			}
		}()
	}
	over := 0
	for time.Now().Before(stop) {
		if st := p.Stats(); st.Active+st.Idle > maxTotal {
			t.Errorf("Stats: Active %d + Idle %d > MaxTotal %d", st.Active, st.Idle, maxTotal)
		}
		if n := s.CountClients(t, func(ci redistest.ClientInfo) bool { return ci.Name == "flush-race" }); n > maxTotal {
			over++ // a closed connection may linger on the server for a moment
		} else {
			over = 0
		}
		if over == 3 {
			t.Errorf("server saw more than MaxTotal %d connections in 3 samples in a row", maxTotal)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	if st := p.Stats(); st.Timeouts != 0 || st.Active != 0 || st.DestroyedIdle == 0 {
		t.Fatalf("Stats = %+v; want no timeouts, nothing active, and the evictor to have closed some", st)
	}
}

func TestHotStackOrder(t *testing.T) {
	for _, tt := range []struct {
		name   string
		fifo   bool
		flush  bool // through the engine first
		wantAt []int
	}{
		{"LIFO", false, false, []int{2, 1, 0}},
		{"FIFO", true, false, []int{0, 1, 2}},
		{"LIFO via engine", false, true, []int{2, 1, 0}},
		{"FIFO via engine", true, true, []int{0, 1, 2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := miniPool(t, Config{MaxTotal: 3, FIFO: tt.fifo, EvictionInterval: -1})
			var conns []redis.Conn
			var returned []*conn
			for i := 0; i < 3; i++ {
				conns = append(conns, mustGet(t, p))
			}
			for _, c := range conns {
				returned = append(returned, pooled(c))
				c.Close()
			}
			if tt.flush {
				flushAll(p)
			}
			for i, want := range tt.wantAt {
				c := mustGet(t, p)
				defer c.Close()
				if got := slices.Index(returned, pooled(c)); got != want {
					t.Fatalf("borrow %d got the connection returned %d-th; want %d-th", i, got, want)
				}
			}
		})
	}
}

func TestMaxIdleHoldsWithHotStackAndMinIdle(t *testing.T) {
	// The engine refills MinIdle without seeing the hot stack; the
	// flusher trims what goes beyond MaxIdle.
	p, s := miniPool(t, Config{MaxTotal: 8, MaxIdle: 3, MinIdle: 3, EvictionInterval: 10 * time.Millisecond})
	waitFor(t, func() bool { return p.Stats().Idle == 3 })
	var conns []redis.Conn
	for i := 0; i < 8; i++ {
		conns = append(conns, mustGet(t, p))
	}
	for _, c := range conns {
		c.Close()
	}
	// The returns keep MaxIdle and close the rest. Idle itself may
	// already be above MaxIdle here: once the surplus is closed the
	// engine, seeing none idle, refills MinIdle within an eviction run
	// (10ms) while the kept 3 sit on the hot stack, and only the flusher
	// trims that (checked below).
	if st := p.Stats(); st.DestroyedSurplus < 8-3 {
		t.Fatalf("Stats = %+v after returning 8; want at least 5 closed as surplus of MaxIdle 3", st)
	}
	// Let the evictor refill MinIdle in the engine while the hot stack is
	// full, then the flusher trim.
	time.Sleep(300 * time.Millisecond)
	waitFor(t, func() bool { return p.Stats().Idle <= 3 && s.CurrentConnectionCount() <= 3 })
	for i := 0; i < 20; i++ {
		if st := p.Stats(); st.Idle > 3 {
			t.Fatalf("Stats = %+v; want Idle at most MaxIdle 3 once settled", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMaxTotalHoldsOnServerClientList(t *testing.T) {
	// The server's own count of the pool's connections, under borrowers
	// that dirty, spoil and pause, so that connections are handed off,
	// closed, stacked, flushed and evicted at once.
	s := redistest.StartServer(t)
	const maxTotal = 4
	p := newTestPool(t, Config{
		Addr: s.Addr(), ClientName: "cap", MaxTotal: maxTotal, MaxIdle: 2,
		MaxConnIdleTime: 100 * time.Millisecond, EvictionInterval: 5 * time.Millisecond,
		BorrowTimeout: 20 * time.Second,
	})
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for g := 0; g < 24; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				c, err := p.GetContext(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				switch i % 11 {
				case 3:
					c.Do("SELECT", 2) // reset on return
					c.Do("PING")
				case 7:
					c.Do("MONITOR") // closed on return
				default:
					c.Do("PING")
				}
				c.Close()
				if i%13 == 0 {
					time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
				}
			}
		}()
	}
	over, worst := 0, 0
	for time.Now().Before(stop) {
		n := s.CountClients(t, func(ci redistest.ClientInfo) bool { return ci.Name == "cap" })
		worst = max(worst, n)
		if n > maxTotal {
			over++ // a closed connection may linger on the server for a moment
		} else {
			over = 0
		}
		if over == 3 {
			t.Errorf("server saw %d connections, more than MaxTotal %d, in 3 samples in a row", n, maxTotal)
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	if st := p.Stats(); st.Active != 0 || st.Timeouts != 0 || st.DestroyedDirty == 0 {
		t.Fatalf("Stats = %+v; want no timeouts, nothing active, some connections closed as dirty", st)
	}
	t.Logf("server saw at most %d connections", worst)
}

func TestCloseIdleClosesHotAndEngineConnections(t *testing.T) {
	p, s := miniPool(t, Config{MaxTotal: 4, EvictionInterval: -1})
	var conns []redis.Conn
	for i := 0; i < 4; i++ {
		conns = append(conns, mustGet(t, p))
	}
	conns[0].Close()
	conns[1].Close()
	flushAll(p) // two in the engine
	conns[2].Close()
	// conns[3] stays borrowed.
	if hotLen(p) != 1 || p.op.GetNumIdle() != 2 {
		t.Fatalf("hot %d, engine idle %d; want 1 and 2", hotLen(p), p.op.GetNumIdle())
	}
	p.closeIdle(reasonUnhealthy)
	if st := p.Stats(); st.DestroyedUnhealthy != 3 || st.Idle != 0 || st.Active != 1 || st.DestroyedClosed != 0 {
		t.Fatalf("Stats = %+v; want the 3 idle closed as unhealthy, the borrowed one untouched", st)
	}
	waitFor(t, func() bool { return s.CurrentConnectionCount() == 1 })
	if _, err := conns[3].Do("PING"); err != nil {
		t.Fatalf("borrowed connection after closeIdle: %v", err)
	}
	conns[3].Close()
	if _, err := p.Do(context.Background(), "PING"); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if st := p.Stats(); st.DestroyedUnhealthy != 3 || st.DestroyedClosed != 1 {
		t.Fatalf("Stats = %+v after Close; want the last one closed as closed", st)
	}
}

func TestAbandonedConnectionIsReclaimed(t *testing.T) {
	s := redistest.StartServer(t)
	var logs redistest.LockedBuffer
	p := newTestPool(t, Config{
		Addr: s.Addr(), ClientName: "abandon", MaxTotal: 1, AbandonedTimeout: 200 * time.Millisecond,
		BorrowTimeout: 20 * time.Second,
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
	})
	leaked := mustGet(t, p) // never closed by its borrower in time
	id := mustDo(t, leaked, "CLIENT", "ID")

	start := time.Now()
	waiter, err := p.GetContext(context.Background()) // MaxTotal 1: waits for the reclaim
	if err != nil {
		t.Fatalf("borrow after the only connection was abandoned: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the slot came back after %v; want about AbandonedTimeout", d)
	}
	if got := mustDo(t, waiter, "CLIENT", "ID"); got == id {
		t.Fatal("the waiter got the abandoned connection")
	}
	for _, ci := range s.ClientList(t) {
		if ci.ID == id.(int64) {
			t.Fatalf("the server still lists the abandoned connection: %+v", ci)
		}
	}
	if _, err := leaked.Do("PING"); err == nil {
		t.Fatal("the abandoned connection still works for its holder")
	}
	if err := leaked.Close(); err != nil {
		t.Fatalf("late Close of the abandoned connection: %v", err)
	}
	if st := p.Stats(); st.Abandoned != 1 || st.Active != 1 || st.Destroyed != 1 {
		t.Fatalf("Stats = %+v after the holder's late Close; want Abandoned 1, the waiter active", st)
	}
	waiter.Close()
	if st := p.Stats(); st.Active != 0 || st.Idle != 1 {
		t.Fatalf("Stats = %+v; want the waiter's connection back idle", st)
	}
	log := logs.String()
	for _, want := range []string{"level=WARN", "abandoned connection reclaimed", "TestAbandonedConnectionIsReclaimed", "borrow_test.go"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	t.Run("returned in time", func(t *testing.T) {
		p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 2, AbandonedTimeout: 150 * time.Millisecond})
		for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
			c := mustGet(t, p)
			c.Do("PING")
			time.Sleep(20 * time.Millisecond)
			c.Close()
		}
		if st := p.Stats(); st.Abandoned != 0 || st.Destroyed != 0 {
			t.Fatalf("Stats = %+v; want nothing reclaimed", st)
		}
	})
	t.Run("off by default", func(t *testing.T) {
		p := newTestPool(t, Config{Addr: s.Addr()})
		c := mustGet(t, p)
		defer c.Close()
		if l := &pooled(c).loan; l.stack != nil || l.out.Load() {
			t.Fatal("a borrow was tracked with AbandonedTimeout off")
		}
	})
}

func TestAbandonedReclaimRacesReturns(t *testing.T) {
	// Borrowers whose hold times straddle AbandonedTimeout: each
	// connection is either returned or reclaimed, never both, and every
	// slot comes back.
	p, s := miniPool(t, Config{MaxTotal: 4, AbandonedTimeout: 30 * time.Millisecond, BorrowTimeout: 20 * time.Second})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				c, err := p.GetContext(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
				c.Do("PING")
				c.Close()
			}
		}()
	}
	wg.Wait()
	st := p.Stats()
	if st.Abandoned == 0 || st.Active != 0 || st.Timeouts != 0 {
		t.Fatalf("Stats = %+v; want some reclaimed, none active, no timeouts", st)
	}
	if open := st.Created - st.Destroyed; open != int64(st.Idle) {
		t.Fatalf("Stats = %+v; want every open connection idle", st)
	}
	waitFor(t, func() bool { return s.CurrentConnectionCount() == st.Idle })
}

func ExampleConfig_abandonedTimeout() {
	cfg, err := ParseURL("redis://localhost:6379?abandoned_timeout=30s")
	if err != nil {
		panic(err)
	}
	fmt.Println(cfg.AbandonedTimeout)
	// Output: 30s
}
