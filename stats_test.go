package redispool

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redispool/redispool/redistest"
)

// TestStatsDialingCountsBorrowersWaitingOnADial: borrowers whose
// connection is being dialed show in Dialing. They are in neither Active,
// Idle nor Waiting, which is all Stats showed during a Sentinel outage
// (Active 0, Idle 0, Waiting 16): a master that does not answer was
// invisible. A MinIdle refill's dial is no borrower's and is not counted.
func TestStatsDialingCountsBorrowersWaitingOnADial(t *testing.T) {
	t.Parallel()
	silent := redistest.NewFakeServer(t, redistest.Silent()) // accepts, never answers
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"Addr", Config{Addr: silent.Addr()}},
		{"SentinelMaster", Config{Sentinel: &SentinelConfig{
			MasterName: "m",
			Addrs:      []string{redistest.NewFakeSentinel(t, "m", silent.Addr(), 0).Addr()},
		}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const maxTotal, borrowers = 4, 6
			cfg := tt.cfg
			cfg.MaxTotal = maxTotal
			cfg.DialTimeout = time.Minute // the borrowers' context ends the dials
			cfg.BorrowTimeout = time.Minute
			p := newTestPool(t, cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			for range borrowers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if c, err := p.GetContext(ctx); err == nil {
						c.Close()
						t.Errorf("a borrow succeeded against a server that never answers")
					}
				}()
			}
			waitFor(t, func() bool { s := p.Stats(); return s.Dialing == maxTotal && s.Waiting == borrowers-maxTotal })
			if s := p.Stats(); s.Active != 0 || s.Idle != 0 {
				t.Errorf("Stats while dialing: Active %d, Idle %d; want 0 and 0", s.Active, s.Idle)
			}
			cancel()
			wg.Wait()
			if s := p.Stats(); s.Dialing != 0 || s.Waiting != 0 {
				t.Errorf("Stats after the borrowers gave up: Dialing %d, Waiting %d; want 0 and 0", s.Dialing, s.Waiting)
			}
		})
	}

	t.Run("MinIdleRefillIsNotCounted", func(t *testing.T) {
		hung := redistest.NewFakeServer(t, redistest.Silent())
		p := newTestPool(t, Config{Addr: hung.Addr(), MinIdle: 1, DialTimeout: time.Minute})
		waitFor(t, func() bool { return hung.Accepted() == 1 }) // the refill's dial, hanging
		if s := p.Stats(); s.Dialing != 0 {
			t.Errorf("Dialing = %d during a MinIdle refill; want 0 (no borrower waits on it)", s.Dialing)
		}
	})
}

// TestCancelledBorrowEndsDialBetweenConnectAndSetup: a borrower's context
// that ends after the TCP connect and before the dial registers the
// socket for interruption ends the dial at once. It used to wait for
// DialTimeout (found by the Dialing test: one borrower in four waited
// the full minute).
func TestCancelledBorrowEndsDialBetweenConnectAndSetup(t *testing.T) {
	t.Parallel()
	silent := redistest.NewFakeServer(t, redistest.Silent())
	const dialTimeout = 30 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newTestPool(t, Config{Addr: silent.Addr(), DialTimeout: dialTimeout,
		Dial: func(dctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(dctx, network, addr)
			cancel()      // the borrower gives up just after the connect
			<-dctx.Done() // and the dial returns only once that is seen
			return c, err
		}})
	start := time.Now()
	_, err := p.GetContext(ctx)
	if el := time.Since(start); !errors.Is(err, context.Canceled) || el > dialTimeout/3 {
		t.Fatalf("GetContext = %v after %v; want context.Canceled at once, not after DialTimeout %v", err, el, dialTimeout)
	}
	if s := p.Stats(); s.Dialing != 0 {
		t.Errorf("Dialing %d after the borrow; want 0", s.Dialing)
	}
}

// TestCancelledBorrowEndsDialDuringFirstCommand: a borrower's context that
// ends while the dial's first command (PING here; AUTH, SELECT, CLIENT
// SETNAME likewise) is on the wire, after it was written and before
// redigo arms its read deadline, ends the dial at once. Interrupting by
// a past deadline lost that race: redigo set its own read deadline over
// it, and the borrow waited for DialTimeout.
func TestCancelledBorrowEndsDialDuringFirstCommand(t *testing.T) {
	t.Parallel()
	silent := redistest.NewFakeServer(t, redistest.Silent())
	const dialTimeout = 30 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newTestPool(t, Config{Addr: silent.Addr(), DialTimeout: dialTimeout,
		Dial: func(dctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &cancelAfterWrite{Conn: c, cancel: cancel, interrupted: make(chan struct{})}, nil
		}})
	start := time.Now()
	_, err := p.GetContext(ctx)
	if el := time.Since(start); !errors.Is(err, context.Canceled) || el > dialTimeout/3 {
		t.Fatalf("GetContext = %v after %v; want context.Canceled at once, not after DialTimeout %v", err, el, dialTimeout)
	}
}

// cancelAfterWrite cancels the borrow once its first write is on the
// wire, and returns from that write only once the dial has reacted to
// the cancellation (set a deadline on the socket or closed it), so the
// reply is awaited after the interruption.
type cancelAfterWrite struct {
	net.Conn
	cancel      func()
	once        sync.Once
	interrupted chan struct{}
	mark        sync.Once
}

func (c *cancelAfterWrite) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.once.Do(func() {
		c.cancel()
		<-c.interrupted
	})
	return n, err
}

func (c *cancelAfterWrite) SetDeadline(t time.Time) error {
	if t.Equal(aLongTimeAgo) {
		defer c.mark.Do(func() { close(c.interrupted) })
	}
	return c.Conn.SetDeadline(t)
}

func (c *cancelAfterWrite) Close() error {
	defer c.mark.Do(func() { close(c.interrupted) })
	return c.Conn.Close()
}
