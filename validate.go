package redispool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	pool "github.com/jolestar/go-commons-pool/v2"
)

// Connection validation, in go-commons-pool's terms: the factory's
// validate hook (ValidateObject), which checks a connection about to be
// borrowed — from the engine, and with the same code from the hot
// stack — and the eviction policy, which checks connections idle in the
// engine. Both ask, cheapest test first, whether a connection has
// expired (MaxConnLifetime, MaxConnIdleTime, a master the pool has
// left) and whether the server has closed it, which a peek at the
// socket shows without a round trip (conncheck_*.go); a borrow also
// PINGs a connection idle for PingAfterIdle.

var _ pool.EvictionPolicy = evictionPolicy{}

// ValidateObject checks a connection about to be borrowed: cheap checks
// first, a round trip only for a connection idle for PingAfterIdle. ctx
// is the borrower's, which the engine passes through from BorrowObject.
func (f *factory) ValidateObject(ctx context.Context, o *pool.PooledObject) bool {
	c := o.Object.(*conn)
	// The engine stamped LastBorrowTime with time.Now just before calling
	// us; a clock read costs ~50ns here, a tenth of the borrow.
	err := f.validate(ctx, c, o.LastBorrowTime, idleSince(o))
	if err != nil {
		noteCheckFailed(ctx, c, err) // for borrowFromEngine (engine.go)
		return false
	}
	return true
}

// validate is the borrow check of c, idle since idleSince, at now, for
// connections from the engine and from the hot stack alike. It returns
// why c failed, with c's reason set, ready to be closed; nil for a
// connection fit to lend.
func (f *factory) validate(ctx context.Context, c *conn, now, idleSince time.Time) error {
	reason, err := f.check(ctx, c, now, idleSince)
	if reason == reasonNone {
		return nil
	}
	c.reason = reason
	switch {
	case err == nil && reason == reasonFailover:
		err = errFormerMaster
	case err == nil:
		err = fmt.Errorf("connection past its %s limit", reason)
	}
	if reason == reasonUnhealthy || reason == reasonBroken {
		if f.log != nil {
			f.log.LogAttrs(context.Background(), slog.LevelInfo, "redispool: connection failed health check",
				slog.String("addr", f.addr()), slog.String("error", err.Error()))
		}
	}
	return err
}

// errFormerMaster is the check failure of a connection made before the
// pool switched to a new master.
var errFormerMaster = errors.New("connection to a master the pool has left")

// firstCheckError is the error for a borrow whose new connection failed
// its first health check with err: the server accepted it and closed it
// at once, as it does when maxclients is reached.
func (f *factory) firstCheckError(err error) error {
	return fmt.Errorf("redispool: connect to %s %s: new connection failed its health check: %w", f.cfg.Network, f.addr(), err)
}

// peekAfterIdle is how long a connection must have sat idle before a
// borrow peeks at its socket. Under load connections come back and go
// out again within microseconds, and the peek's system call then cost
// 5-7% of end-to-end throughput (the bench harness's liveness table
// before this threshold: 0.8-1.1µs of client CPU per GET). A close that
// lands in so short a window is no likelier to be caught than one that
// lands just after the peek: either way the command fails cleanly and
// the connection is closed.
const peekAfterIdle = 100 * time.Microsecond

// check decides whether an idle connection may be borrowed, cheapest
// test first: its age, then a peek at the socket after peekAfterIdle,
// and a PING round trip only after PingAfterIdle. (Its redigo Err() was
// nil when it was returned, and nothing uses an idle connection.) It
// returns reasonNone for a healthy connection, and for an unhealthy one
// the error that shows it (nil when a limit, not a fault, disqualifies
// it).
func (f *factory) check(ctx context.Context, c *conn, now, idleSince time.Time) (destroyReason, error) {
	if reason := f.expired(c, now, idleSince); reason != reasonNone {
		return reason, nil
	}
	idle := now.Sub(idleSince)
	if idle >= peekAfterIdle {
		if err := c.peek.check(); err != nil {
			return reasonUnhealthy, err
		}
	}
	if f.cfg.PingAfterIdle > 0 && idle >= f.cfg.PingAfterIdle {
		// The PING is a round trip on the borrower's behalf: it ends by
		// the borrower's deadline, and when its context is cancelled.
		if ctx == nil {
			ctx = context.Background()
		}
		timeout := f.cfg.CheckTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(dl))
		}
		if err := ctx.Err(); err != nil {
			return reasonBroken, fmt.Errorf("PING after %v idle: %w", idle.Round(time.Millisecond), err)
		}
		if timeout <= 0 {
			return reasonBroken, fmt.Errorf("PING after %v idle: %w", idle.Round(time.Millisecond), context.DeadlineExceeded)
		}
		stop := context.AfterFunc(ctx, c.interrupt)
		_, err := c.rc.DoWithTimeout(timeout, "PING")
		if !stop() {
			// Interrupted: a late PONG may still come; never reuse it.
			return reasonBroken, fmt.Errorf("PING after %v idle: %w", idle.Round(time.Millisecond), ctx.Err())
		}
		if err != nil {
			return reasonUnhealthy, fmt.Errorf("PING after %v idle: %w", idle.Round(time.Millisecond), err)
		}
	}
	return reasonNone, nil
}

// expired reports whether c has outlived MaxConnLifetime or sat idle
// past MaxConnIdleTime, or was made for where the target was before it
// moved (an old master).
func (f *factory) expired(c *conn, now, idleSince time.Time) destroyReason {
	switch {
	case c.gen != f.target.gen():
		// Dialed to a master the pool has since left: never handed out.
		return reasonFailover
	case f.cfg.MaxConnLifetime > 0 && now.Sub(c.created) >= f.cfg.MaxConnLifetime:
		return reasonLifetime
	case f.cfg.MaxConnIdleTime > 0 && now.Sub(idleSince) >= f.cfg.MaxConnIdleTime:
		return reasonIdle
	}
	return reasonNone
}

// idleSince is when the engine's connection o went idle. The engine
// stamps LastReturnTime when the flusher hands it a connection, which may
// be flushInterval+hotIdleLimit after the connection was returned to the
// hot stack at c.idleSince; idle limits count from the earlier.
func idleSince(o *pool.PooledObject) time.Time {
	c := o.Object.(*conn)
	if !c.idleSince.IsZero() && c.idleSince.Before(o.LastReturnTime) {
		return c.idleSince
	}
	return o.LastReturnTime
}

// evictionPolicy closes idle connections past MaxConnIdleTime or
// MaxConnLifetime, and those the server has closed, which the peek finds
// without a round trip; the engine refills MinIdle after each run, so
// Stats and MinIdle are true within one EvictionInterval of a server
// dropping idle connections. The engine looks policies up by name in a
// global registry, so the policy is stateless and reads its limits from
// the connection's factory.
type evictionPolicy struct{}

func (evictionPolicy) Evict(_ *pool.EvictionConfig, o *pool.PooledObject, _ int) bool {
	c := o.Object.(*conn)
	if reason := c.f.expired(c, time.Now(), idleSince(o)); reason != reasonNone {
		c.reason = reason
		return true
	}
	// The engine holds c for the evictor: no borrower can be using it.
	if err := c.peek.check(); err != nil {
		c.reason = reasonUnhealthy
		if c.f.log != nil {
			c.f.log.LogAttrs(context.Background(), slog.LevelInfo, "redispool: idle connection failed health check",
				slog.String("addr", c.addr), slog.String("error", err.Error()))
		}
		return true
	}
	return false
}
