package redispool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestPoolSatisfiesRedigoPoolInterface(t *testing.T) {
	// What redsync's redigo adapter and throttled's redigostore accept.
	var _ interface {
		Get() redis.Conn
		GetContext(context.Context) (redis.Conn, error)
	} = (*Pool)(nil)
}

func TestDoAndPing(t *testing.T) {
	p, _ := miniPool(t, Config{})
	ctx := context.Background()
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if _, err := p.Do(ctx, "SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := redis.String(p.Do(ctx, "GET", "k"))
	if err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want \"v\", nil", got, err)
	}
	// The three commands went down one shared connection, borrowed once.
	if s := p.Stats(); s.Active != 0 || s.Idle+s.Shared != 1 || s.Created != 1 || s.Borrows != 1 || s.PipelinedCommands != 3 {
		t.Fatalf("Stats = %+v; want Active 0, Idle+Shared 1, Created 1, Borrows 1, PipelinedCommands 3", s)
	}
}

func TestConnectionIsReused(t *testing.T) {
	p, _ := miniPool(t, Config{})
	for i := 0; i < 10; i++ {
		c := mustGet(t, p)
		if _, err := c.Do("INCR", "n"); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if s := p.Stats(); s.Created != 1 || s.Destroyed != 0 {
		t.Fatalf("Created %d, Destroyed %d; want 1, 0", s.Created, s.Destroyed)
	}
}

func TestBorrowedConnAfterClose(t *testing.T) {
	p, _ := miniPool(t, Config{})
	c := mustGet(t, p)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v; want nil", err)
	}
	cw := c.(redis.ConnWithContext)
	ct := c.(redis.ConnWithTimeout)
	ctx := context.Background()
	for name, err := range map[string]error{
		"Do":                 second(c.Do("PING")),
		"Send":               c.Send("PING"),
		"Flush":              c.Flush(),
		"Receive":            second(c.Receive()),
		"Err":                c.Err(),
		"DoContext":          second(cw.DoContext(ctx, "PING")),
		"ReceiveContext":     second(cw.ReceiveContext(ctx)),
		"DoWithTimeout":      second(ct.DoWithTimeout(time.Second, "PING")),
		"ReceiveWithTimeout": second(ct.ReceiveWithTimeout(time.Second)),
	} {
		if !errors.Is(err, ErrConnClosed) {
			t.Errorf("%s after Close: %v; want ErrConnClosed", name, err)
		}
	}
	if s := p.Stats(); s.Active != 0 || s.Idle != 1 {
		t.Fatalf("Stats after double Close = %+v; want Active 0, Idle 1", s)
	}
}

func TestGetOnClosedPoolReturnsErrorConn(t *testing.T) {
	p, _ := miniPool(t, Config{})
	p.Close()
	c := p.Get()
	if c == nil {
		t.Fatal("Get returned nil")
	}
	if _, err := c.Do("PING"); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Do on Get of a closed pool: %v; want ErrPoolClosed", err)
	}
	if err := c.Err(); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Err: %v; want ErrPoolClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v; want nil, as redigo's error connection", err)
	}
	if _, err := p.GetContext(context.Background()); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("GetContext on closed pool: %v; want ErrPoolClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestGetUnreachableNamesAddress(t *testing.T) {
	p := newTestPool(t, Config{Addr: "127.0.0.1:1", DialTimeout: time.Second})
	_, err := p.GetContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.HasPrefix(err.Error(), "redispool: ") {
		t.Fatalf("GetContext of unreachable address: %v; want an error naming 127.0.0.1:1", err)
	}
	if s := p.Stats(); s.DialErrors != 1 || s.Active != 0 {
		t.Fatalf("Stats = %+v; want DialErrors 1, Active 0", s)
	}
	// The failed borrow must give back its slot.
	for i := 0; i < 3*p.cfg.MaxTotal; i++ {
		if _, err := p.GetContext(context.Background()); errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("borrow %d: %v: failed dials leak slots", i, err)
		}
	}
}

func TestPingFailsFastWhenRedisIsDown(t *testing.T) {
	s := miniredis.RunT(t)
	addr := s.Addr()
	s.Close()
	p := newTestPool(t, Config{Addr: addr})
	start := time.Now()
	if err := p.Ping(context.Background()); err == nil {
		t.Fatal("Ping with Redis down succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Ping took %v to fail with Redis down", d)
	}
}

func TestWaitForReturnedConnection(t *testing.T) {
	p, _ := miniPool(t, Config{MaxTotal: 1})
	c := mustGet(t, p)
	got := make(chan error, 1)
	go func() {
		c2, err := p.GetContext(context.Background())
		if err == nil {
			_, err = c2.Do("PING")
			c2.Close()
		}
		got <- err
	}()
	// Wait until the second borrower is waiting, then return the first.
	waitFor(t, func() bool { return p.Stats().WaitCount == 1 })
	c.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiting borrower: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("returned connection did not reach the waiter")
	}
	if s := p.Stats(); s.WaitDuration <= 0 || s.Timeouts != 0 || s.Created != 1 {
		t.Fatalf("Stats = %+v; want a recorded wait, no timeouts, one connection", s)
	}
}

func TestExhaustedBorrowTimeout(t *testing.T) {
	p, _ := miniPool(t, Config{MaxTotal: 1, BorrowTimeout: 50 * time.Millisecond})
	c := mustGet(t, p)
	defer c.Close()
	start := time.Now()
	_, err := p.GetContext(context.Background())
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("GetContext with pool exhausted: %v; want ErrPoolExhausted", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("BorrowTimeout error %v wraps context.DeadlineExceeded; no context ended", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Fatalf("waited %v; want about BorrowTimeout (50ms)", d)
	}
	if s := p.Stats(); s.Timeouts != 1 || s.WaitCount != 1 {
		t.Fatalf("Stats = %+v; want Timeouts 1, WaitCount 1", s)
	}
}

func TestExhaustedContextDeadline(t *testing.T) {
	p, _ := miniPool(t, Config{MaxTotal: 1, BorrowTimeout: time.Minute})
	c := mustGet(t, p)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := p.GetContext(ctx)
	if !errors.Is(err, ErrPoolExhausted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetContext past ctx deadline: %v; want ErrPoolExhausted and context.DeadlineExceeded", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	_, err = p.GetContext(ctx)
	if !errors.Is(err, ErrPoolExhausted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("GetContext cancelled while waiting: %v; want ErrPoolExhausted and context.Canceled", err)
	}
}

func TestContextDoneBeforeBorrow(t *testing.T) {
	p, _ := miniPool(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.GetContext(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("GetContext with cancelled ctx: %v; want context.Canceled", err)
	}
	if s := p.Stats(); s.Created != 0 || s.Active != 0 {
		t.Fatalf("Stats = %+v; want nothing dialed", s)
	}
}

func TestFailFast(t *testing.T) {
	p, _ := miniPool(t, Config{MaxTotal: 2, FailFast: true, BorrowTimeout: time.Minute})
	a, b := mustGet(t, p), mustGet(t, p)
	defer a.Close()
	defer b.Close()
	start := time.Now()
	_, err := p.GetContext(context.Background())
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("GetContext with FailFast: %v; want ErrPoolExhausted", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("FailFast took %v", d)
	}
}

func TestCloseWakesWaiters(t *testing.T) {
	p, _ := miniPool(t, Config{MaxTotal: 1, BorrowTimeout: -1})
	c := mustGet(t, p)
	const waiters = 5
	errs := make(chan error, waiters)
	for i := 0; i < waiters; i++ {
		go func() {
			_, err := p.GetContext(context.Background())
			errs <- err
		}()
	}
	waitFor(t, func() bool { return p.Stats().WaitCount == waiters })
	if s := p.Stats(); s.Waiting != waiters {
		t.Fatalf("Stats.Waiting = %d; want %d", s.Waiting, waiters)
	}
	p.Close()
	for i := 0; i < waiters; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrPoolClosed) {
				t.Errorf("waiter %d: %v; want ErrPoolClosed", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake a waiter")
		}
	}
	// The borrowed connection still works until returned, then is closed.
	if _, err := c.Do("PING"); err != nil {
		t.Fatalf("borrowed conn after pool Close: %v", err)
	}
	c.Close()
	if s := p.Stats(); s.Active != 0 || s.Idle != 0 || s.DestroyedClosed != 1 || s.Waiting != 0 {
		t.Fatalf("Stats after Close and return = %+v; want no connections, DestroyedClosed 1", s)
	}
}

func TestCloseClosesIdleConnections(t *testing.T) {
	p, s := miniPool(t, Config{})
	var conns []redis.Conn
	for i := 0; i < 3; i++ {
		conns = append(conns, mustGet(t, p))
	}
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, func() bool { return s.CurrentConnectionCount() == 3 })
	p.Close()
	waitFor(t, func() bool { return s.CurrentConnectionCount() == 0 })
	if st := p.Stats(); st.DestroyedClosed != 3 || st.Idle != 0 {
		t.Fatalf("Stats = %+v; want DestroyedClosed 3, Idle 0", st)
	}
}

func TestMaxIdleClosesSurplus(t *testing.T) {
	p, s := miniPool(t, Config{MaxTotal: 4, MaxIdle: 1})
	var conns []redis.Conn
	for i := 0; i < 4; i++ {
		conns = append(conns, mustGet(t, p))
	}
	for _, c := range conns {
		c.Close()
	}
	st := p.Stats()
	if st.Idle != 1 || st.DestroyedSurplus != 3 {
		t.Fatalf("Stats = %+v; want Idle 1, DestroyedSurplus 3", st)
	}
	waitFor(t, func() bool { return s.CurrentConnectionCount() == 1 })
}

func TestMaxIdleDoesNotStarveWaiters(t *testing.T) {
	// go-commons-pool closes surplus connections without waking waiters
	// when its own MaxIdle is below MaxTotal; ours must not.
	p, _ := miniPool(t, Config{MaxTotal: 4, MaxIdle: 1, BorrowTimeout: 10 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				c, err := p.GetContext(context.Background())
				if err != nil {
					errs <- err
					return
				}
				c.Do("PING")
				c.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("borrow under MaxIdle < MaxTotal: %v", err)
	}
	if s := p.Stats(); s.Timeouts != 0 || s.Active != 0 || s.Idle > 1 {
		t.Fatalf("Stats = %+v; want no timeouts, Idle <= 1", s)
	}
}

func TestMaxConnLifetime(t *testing.T) {
	// go-commons-pool stamps borrows with time.Now, so this test waits in
	// real time.
	const lifetime = 40 * time.Millisecond
	p, _ := miniPool(t, Config{MaxConnLifetime: lifetime, EvictionInterval: -1})
	c := mustGet(t, p)
	c.Close()
	time.Sleep(lifetime)
	c = mustGet(t, p)
	c.Close()
	if s := p.Stats(); s.Created != 2 || s.DestroyedLifetime != 1 {
		t.Fatalf("Stats = %+v; want the expired connection replaced (Created 2, DestroyedLifetime 1)", s)
	}
	// Expiry on return, too.
	c = mustGet(t, p)
	time.Sleep(lifetime)
	c.Close()
	if s := p.Stats(); s.DestroyedLifetime != 2 || s.Idle != 0 {
		t.Fatalf("Stats = %+v; want DestroyedLifetime 2, Idle 0", s)
	}
}

func TestMaxConnIdleTime(t *testing.T) {
	// go-commons-pool stamps returns with time.Now: wait in real time.
	p, _ := miniPool(t, Config{MaxConnIdleTime: 20 * time.Millisecond, PingAfterIdle: -1, EvictionInterval: -1})
	c := mustGet(t, p)
	c.Close()
	time.Sleep(30 * time.Millisecond)
	c = mustGet(t, p)
	c.Close()
	if s := p.Stats(); s.Created != 2 || s.DestroyedIdle != 1 {
		t.Fatalf("Stats = %+v; want Created 2, DestroyedIdle 1", s)
	}
}

func TestEvictorClosesIdleConnections(t *testing.T) {
	p, s := miniPool(t, Config{MaxConnIdleTime: 20 * time.Millisecond, EvictionInterval: 10 * time.Millisecond})
	c := mustGet(t, p)
	c.Close()
	waitFor(t, func() bool { return p.Stats().DestroyedIdle == 1 })
	waitFor(t, func() bool { return s.CurrentConnectionCount() == 0 })
}

func TestMinIdleFilledInBackground(t *testing.T) {
	p, s := miniPool(t, Config{MinIdle: 3, EvictionInterval: 10 * time.Millisecond})
	waitFor(t, func() bool { return p.Stats().Idle == 3 && s.CurrentConnectionCount() == 3 })
	if st := p.Stats(); st.Created != 3 {
		t.Fatalf("Created %d; want 3", st.Created)
	}
}

// The first MinIdle fill and the evictor's top-up after each run used to
// run side by side: while the fill's dial was in flight the evictor saw
// the same shortfall and dialed it again, and the surplus stayed idle
// beyond MaxIdle (TestMaxIdleHoldsWithHotStackAndMinIdle failed on it
// when dials were slower than EvictionInterval on a loaded machine).
func TestMinIdleFirstFillIsNotDialedTwice(t *testing.T) {
	s := miniredis.RunT(t)
	second := make(chan struct{})
	var started, finished atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		defer finished.Add(1)
		if started.Add(1) == 2 {
			close(second)
		}
		// The first dial is slower than many eviction runs: it waits for
		// a second dial, or 500ms when there is none.
		select {
		case <-second:
		case <-time.After(500 * time.Millisecond):
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	p := newTestPool(t, Config{Addr: s.Addr(), Dial: dial, MaxTotal: 4, MaxIdle: 1, MinIdle: 1, EvictionInterval: 5 * time.Millisecond})
	waitFor(t, func() bool { return p.Stats().Idle >= 1 && started.Load() == finished.Load() })
	if st := p.Stats(); st.Created != 1 || st.Idle != 1 || s.CurrentConnectionCount() != 1 {
		t.Fatalf("Stats = %+v, server connections %d; want MinIdle 1 dialed once: Created 1, Idle 1 (MaxIdle 1)", st, s.CurrentConnectionCount())
	}
}

func TestBrokenConnectionIsDestroyed(t *testing.T) {
	p, s := miniPool(t, Config{ReadTimeout: 50 * time.Millisecond})
	c := mustGet(t, p)
	s.SetError("boom") // error replies are fine...
	if _, err := c.Do("PING"); err == nil {
		t.Fatal("want an error reply")
	}
	s.SetError("")
	c.Close()
	if st := p.Stats(); st.Destroyed != 0 {
		t.Fatalf("an error reply destroyed the connection: %+v", st)
	}
	c = mustGet(t, p)
	s.Close() // ...an I/O error is not
	if _, err := c.Do("PING"); err == nil {
		t.Fatal("PING on a closed server succeeded")
	}
	c.Close()
	if st := p.Stats(); st.DestroyedBroken != 1 || st.Idle != 0 {
		t.Fatalf("Stats = %+v; want DestroyedBroken 1, Idle 0", st)
	}
}

func TestServerClosedIdleConnectionIsReplacedWithoutError(t *testing.T) {
	p, s := miniPool(t, Config{})
	c := mustGet(t, p)
	c.Close()
	s.Close() // closes every client connection
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	idleForPeek()
	for i := 0; i < 3; i++ {
		if _, err := p.Do(context.Background(), "PING"); err != nil {
			t.Fatalf("PING %d after restart: %v", i, err)
		}
	}
	if st := p.Stats(); st.DestroyedUnhealthy != 1 || st.Created != 2 {
		t.Fatalf("Stats = %+v; want the stale connection caught on borrow (DestroyedUnhealthy 1, Created 2)", st)
	}
}

func TestPingAfterIdle(t *testing.T) {
	p, s := miniPool(t, Config{PingAfterIdle: time.Nanosecond})
	c := mustGet(t, p)
	c.Close()
	before := s.CommandCount()
	c = mustGet(t, p)
	c.Close()
	if n := s.CommandCount() - before; n != 1 {
		t.Fatalf("borrow of an idle connection sent %d commands; want 1 PING", n)
	}
	p2, s2 := miniPool(t, Config{PingAfterIdle: -1})
	c = mustGet(t, p2)
	c.Close()
	before = s2.CommandCount()
	c = mustGet(t, p2)
	c.Close()
	if n := s2.CommandCount() - before; n != 0 {
		t.Fatalf("borrow with PingAfterIdle -1 sent %d commands; want 0", n)
	}
}

func TestStatsInvariantsUnderLoad(t *testing.T) {
	const maxTotal = 4
	p, _ := miniPool(t, Config{MaxTotal: maxTotal, MaxIdle: 2, BorrowTimeout: 10 * time.Second})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 12; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c, err := p.GetContext(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if i%7 == g%7 {
					c.Do("SELECT", 1) // dirty some
				}
				c.Do("PING")
				c.Close()
			}
		}(g)
	}
	var last Stats
	for i := 0; i < 200; i++ {
		s := p.Stats()
		if s.Active+s.Idle > maxTotal {
			t.Fatalf("Active %d + Idle %d > MaxTotal %d", s.Active, s.Idle, maxTotal)
		}
		if s.Borrows < last.Borrows || s.Created < last.Created || s.Destroyed < last.Destroyed || s.WaitCount < last.WaitCount {
			t.Fatalf("counters went down: %+v then %+v", last, s)
		}
		last = s
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if s := p.Stats(); s.Active != 0 {
		t.Fatalf("Active = %d after all returned", s.Active)
	}
}

func TestNewDoesNotConnect(t *testing.T) {
	p := newTestPool(t, Config{Addr: "127.0.0.1:1"})
	if s := p.Stats(); s.Created != 0 || s.DialErrors != 0 {
		t.Fatalf("New dialed: %+v", s)
	}
}

func TestNewRejectsDoneContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(ctx, Config{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("New with cancelled ctx: %v", err)
	}
}

func TestStressBorrowReturn(t *testing.T) {
	// Bounded by REDISPOOL_STRESS_N (default 2000 borrows per goroutine).
	n := 2000
	if v := os.Getenv("REDISPOOL_STRESS_N"); v != "" {
		fmt.Sscan(v, &n)
	}
	if testing.Short() {
		n = 200
	}
	p, _ := miniPool(t, Config{MaxTotal: 8, BorrowTimeout: 30 * time.Second})
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			key := fmt.Sprintf("k%d", g)
			for i := 0; i < n; i++ {
				c, err := p.GetContext(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				v, err := redis.Int(c.Do("INCR", key))
				c.Close()
				if err != nil || v != i+1 {
					t.Errorf("INCR %s = %d, %v; want %d", key, v, err, i+1)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if s := p.Stats(); s.Active != 0 || s.Created > 8 || s.Destroyed != 0 {
		t.Fatalf("Stats = %+v; want Active 0, Created <= 8, Destroyed 0", s)
	}
}

func TestBorrowRacesWithEvictor(t *testing.T) {
	// The evictor takes idle connections out of circulation while it
	// examines them; borrowers holding a slot must wait that out, not
	// fail.
	p, _ := miniPool(t, Config{MaxTotal: 2, EvictionInterval: time.Millisecond, BorrowTimeout: 10 * time.Second})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				if _, err := p.Do(context.Background(), "PING"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if s := p.Stats(); s.Timeouts != 0 || s.Destroyed != 0 {
		t.Fatalf("Stats = %+v; want no timeouts and nothing destroyed", s)
	}
}

func TestDoContextDeadlineAlreadyPassedKeepsConnection(t *testing.T) {
	p, s := miniPool(t, Config{})
	c := mustGet(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	before := s.CommandCount()
	_, err := c.(redis.ConnWithContext).DoContext(ctx, "PING")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DoContext with an expired ctx = %v; want context.DeadlineExceeded", err)
	}
	if n := s.CommandCount() - before; n != 0 {
		t.Fatalf("sent %d commands with an expired ctx", n)
	}
	c.Close()
	if st := p.Stats(); st.Destroyed != 0 {
		t.Fatalf("an unsent command closed the connection: %+v", st)
	}
}

func TestDoContextCompletesNormally(t *testing.T) {
	p, _ := miniPool(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 20; i++ {
		if got, err := redis.String(p.Do(ctx, "ECHO", "x")); err != nil || got != "x" {
			t.Fatalf("Do = %q, %v", got, err)
		}
	}
	if st := p.Stats(); st.Created != 1 || st.Destroyed != 0 {
		t.Fatalf("Stats = %+v; want one connection reused", st)
	}
}

func TestBorrowRetriesWhileEngineIsBusy(t *testing.T) {
	ctx := context.Background()
	p, _ := miniPool(t, Config{MaxTotal: 1, BorrowTimeout: 5 * time.Second})
	c := mustGet(t, p)
	c.Close()
	flushAll(p) // from the hot stack into the engine
	// Take the only connection out of the engine behind Pool's back, as
	// the evictor does while it examines one: a borrower holding a slot
	// finds the engine exhausted and must retry, not fail.
	obj, err := p.op.BorrowObject(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(30*time.Millisecond, func() { p.op.ReturnObject(ctx, obj) })
	c, err = p.GetContext(ctx)
	if err != nil {
		t.Fatalf("GetContext while the engine was briefly busy: %v", err)
	}
	c.Close()

	short := newTestPool(t, Config{Addr: p.cfg.Addr, MaxTotal: 1, BorrowTimeout: 50 * time.Millisecond})
	c = mustGet(t, short)
	c.Close()
	flushAll(short)
	obj, err = short.op.BorrowObject(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer short.op.ReturnObject(ctx, obj)
	if _, err := short.GetContext(ctx); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("GetContext with the engine busy past BorrowTimeout = %v; want ErrPoolExhausted", err)
	}
	if st := short.Stats(); st.Timeouts != 1 {
		t.Fatalf("Stats = %+v; want Timeouts 1", st)
	}
}

func TestConcurrentReturnsKeepAtMostMaxIdle(t *testing.T) {
	const maxTotal, maxIdle = 8, 2
	p, _ := miniPool(t, Config{MaxTotal: maxTotal, MaxIdle: maxIdle})
	for round := 0; round < 30; round++ {
		var conns []redis.Conn
		for i := 0; i < maxTotal; i++ {
			conns = append(conns, mustGet(t, p))
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c.Close()
			}()
		}
		close(start) // all return at once
		wg.Wait()
		if s := p.Stats(); s.Idle > maxIdle {
			t.Fatalf("round %d: Idle %d after concurrent returns (engine idle %d, %+v); want at most MaxIdle %d", round, s.Idle, p.op.GetNumIdle(), s, maxIdle)
		}
	}
}

func TestBorrowTimeoutShorterThanContextDeadline(t *testing.T) {
	p, _ := miniPool(t, Config{MaxTotal: 1, BorrowTimeout: 50 * time.Millisecond})
	c := mustGet(t, p)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := p.GetContext(ctx)
	if !errors.Is(err, ErrPoolExhausted) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetContext = %v; want ErrPoolExhausted from BorrowTimeout, not the context", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("waited %v; want about BorrowTimeout (50ms)", d)
	}
}
