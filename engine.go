package redispool

// The engine is a go-commons-pool ObjectPool; this file holds the glue
// that keeps its Java habits here rather than in the rest of the pool.
//
// What the engine does: it owns each connection's life. It dials
// through the factory (MakeObject, factory.go), checks a connection
// before lending it (ValidateObject, validate.go), undoes session state
// on return (PassivateObject) and closes (DestroyObject); it caps the
// connections, lent and idle, at MaxTotal; and its evictor runs the
// eviction policy (validate.go) over the idle ones every
// EvictionInterval and refills MinIdle, as PreparePool does after New.
//
// What the front does (borrow.go, hotstack.go): the busy path. The
// engine's borrow and return cost more than redigo's whole cycle
// (several locks, a map lookup by reflection, clock reads, an allocation
// per return), and it wakes its waiters only when a connection comes
// back idle, not when one is closed. So the front holds the slots (never
// more than MaxTotal), the FIFO queue of waiters with one timer for
// every BorrowTimeout, and a hot stack of idle, already reset
// connections that the engine still counts as lent. A return hands the
// connection to the oldest waiter or pushes it on the hot stack; a
// borrow pops the stack, else takes a free slot and borrows from the
// engine, else waits. The flusher gives connections idle on the stack
// for hotIdleLimit back to the engine, so that eviction and MinIdle see
// every connection that is really idle, and the front trims to MaxIdle
// itself, since only it sees the stack (the engine's MaxIdle is
// MaxTotal). A borrower reaches the engine holding a slot, so the engine
// never has to block.
//
// Why the engine is kept: the pool is Commons Pool for Go, with the
// semantics JedisPool users know (MaxTotal, MinIdle, the evictor, the
// factory's hooks), and the engine's lifecycle and evictor are tested
// code that would otherwise have to be rewritten with their races. Once
// the front took the busy path off it, it runs only for new, long-idle
// and closing connections, where its cost is lost in a dial or a close.
// What it costs in code is in this file:
//   - errors as types with Java messages: an *IllegalStateErr after
//     Close, and a *NoSuchElementErr both for "exhausted" and for a new
//     connection that failed its first check (engineBorrow tells them
//     apart, and borrowFromEngine maps both to this package's errors);
//   - windows in which it reports exhaustion to a borrower holding a
//     slot: while the evictor examines the only idle connection, or
//     closes one it evicted; borrowFromEngine retries through them;
//   - a global registry of eviction policies, looked up by name: ours
//     is registered once and is stateless;
//   - no way to tell DestroyObject why a connection is closed but the
//     context: closeIdle passes its reason in one (withDestroyReason);
//   - its Clear and Close, which could race the flusher handing it a
//     connection: Pool.maintMu serializes the three (hotstack.go), and
//     Pool.moving counts connections in transit from the hot stack so
//     that the engine keeps room for every slot the front has granted.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pool "github.com/jolestar/go-commons-pool/v2"
)

// newEngine creates the engine over f. bgCtx, ended by Pool.Close, is
// the context of the evictor and its MinIdle dials.
func newEngine(bgCtx context.Context, f *factory, cfg Config) *pool.ObjectPool {
	return pool.NewObjectPool(bgCtx, f, engineConfig(cfg, bgCtx))
}

// engineConfig translates cfg into go-commons-pool's configuration.
func engineConfig(cfg Config, bgCtx context.Context) *pool.ObjectPoolConfig {
	oc := pool.NewDefaultPoolConfig()
	oc.MaxTotal = cfg.MaxTotal
	// Pool trims idle connections itself, counting the hot stack's (see
	// keepLocked and flush).
	oc.MaxIdle = cfg.MaxTotal
	oc.MinIdle = cfg.MinIdle
	oc.LIFO = !cfg.FIFO
	// Pool waits for a slot before borrowing, so the engine never has
	// to block; when it reports exhaustion anyway, the evictor is
	// examining a connection (see borrowFromEngine).
	oc.BlockWhenExhausted = false
	oc.TestOnBorrow = true
	oc.TestOnCreate = false
	oc.TestOnReturn = false
	oc.TestWhileIdle = false
	oc.TimeBetweenEvictionRuns = cfg.EvictionInterval
	if cfg.MinIdle > 0 {
		// The evictor tops MinIdle up after each run. Running beside
		// New's first fill, it would see the same shortfall while those
		// dials are in flight (the engine counts a connection idle once
		// dialed) and dial it again: more idle connections than MaxIdle,
		// for good while the hot stack is empty. prepareEngine starts it
		// once the fill is done.
		oc.TimeBetweenEvictionRuns = 0
	}
	oc.NumTestsPerEvictionRun = -1 // examine every idle connection
	oc.EvictionPolicyName = registerEvictionPolicy()
	oc.EvictionContext = bgCtx
	return oc
}

// prepareEngine dials MinIdle connections, then starts the evictor that
// engineConfig held back. New runs it on a goroutine of its own; Close
// waits for that goroutine before it closes the engine, which stops the
// evictor.
func prepareEngine(bgCtx context.Context, op *pool.ObjectPool, cfg Config) {
	op.PreparePool(bgCtx)
	if bgCtx.Err() == nil {
		op.Config.TimeBetweenEvictionRuns = cfg.EvictionInterval
		op.StartEvictor()
	}
}

// evictionPolicyName is the name the eviction policy (validate.go) is
// registered under in go-commons-pool's global registry.
const evictionPolicyName = "github.com/redispool/redispool"

var registerOnce sync.Once

// registerEvictionPolicy registers the eviction policy once per process
// and returns its name, for ObjectPoolConfig.EvictionPolicyName. Every
// pool shares the one stateless policy, which reads its limits from the
// connection's factory.
func registerEvictionPolicy() string {
	registerOnce.Do(func() { pool.RegistryEvictionPolicy(evictionPolicyName, evictionPolicy{}) })
	return evictionPolicyName
}

// destroyReasonKey is the context key under which closeIdle tells
// DestroyObject why the engine closes idle connections.
type destroyReasonKey struct{}

// withDestroyReason returns ctx carrying reason, for an engine call that
// closes idle connections (Clear) to pass to DestroyObject.
func withDestroyReason(ctx context.Context, reason destroyReason) context.Context {
	return context.WithValue(ctx, destroyReasonKey{}, reason)
}

// destroyReasonOf returns the reason withDestroyReason put in ctx.
func destroyReasonOf(ctx context.Context) (destroyReason, bool) {
	r, ok := ctx.Value(destroyReasonKey{}).(destroyReason)
	return r, ok
}

// clearEngine closes every connection idle in the engine for reason.
// The caller holds p.maintMu.
func (p *Pool) clearEngine(reason destroyReason) {
	p.op.Clear(withDestroyReason(context.Background(), reason))
}

// returnToEngine gives c, which the engine counts as lent, back to it
// idle, or closes c if the engine has closed meanwhile.
func (p *Pool) returnToEngine(c *conn) {
	if err := p.op.ReturnObject(context.Background(), c); err != nil {
		c.reason = reasonPoolClosed // the engine closed meanwhile
		p.f.destroy(c)
	}
}

// invalidate closes c, which the engine counts as borrowed, for the
// reason in c.reason.
func (p *Pool) invalidate(c *conn) {
	if err := p.op.InvalidateObject(context.Background(), c); err != nil {
		p.f.destroy(c) // the engine no longer knows c: it was closed meanwhile
	}
}

// borrowFromEngine takes a connection from the engine, for the front's
// fromEngine. The caller holds a slot, so the engine has an idle
// connection or room to dial one. It can still report exhaustion for a
// moment, while the evictor examines the only idle connection or while a
// connection it evicts is being closed; those windows are short, so
// borrowFromEngine retries after a brief pause until the borrow
// deadline.
func (p *Pool) borrowFromEngine(ctx context.Context) (*conn, error) {
	var deadline time.Time // set at the first retry
	pause := 50 * time.Microsecond
	redials := 0
	b := &engineBorrow{Context: ctx}
	for {
		b.made, b.failed = nil, nil
		obj, err := p.op.BorrowObject(b)
		if err == nil {
			return obj.(*conn), nil
		}
		var nse *pool.NoSuchElementErr
		switch {
		case p.isClosed() || isEngineClosed(err):
			return nil, ErrPoolClosed
		case !errors.As(err, &nse):
			return nil, err // a dial error, already described by the factory
		case b.failed != nil && errors.Is(b.failed, errFormerMaster) && redials < 3:
			// The target moved between this borrow's dial and its check.
			// Nothing was sent on the connection: dial again, to where
			// the target is now.
			redials++
			continue
		case b.failed != nil:
			return nil, p.f.firstCheckError(b.failed)
		}
		// Exhausted: no idle connection, and no room to dial one.
		if deadline.IsZero() && p.cfg.BorrowTimeout > 0 {
			deadline = time.Now().Add(p.cfg.BorrowTimeout)
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			p.stats.timeouts.Add(1)
			return nil, fmt.Errorf("%w: no connection became available within BorrowTimeout %v", ErrPoolExhausted, p.cfg.BorrowTimeout)
		}
		t := time.NewTimer(pause) // rare: not worth recycling
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			p.stats.timeouts.Add(1)
			return nil, fmt.Errorf("%w: %w", ErrPoolExhausted, ctx.Err())
		case <-p.done:
			t.Stop()
			return nil, ErrPoolClosed
		}
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// engineBorrow is the context of one BorrowObject call. The engine
// returns the same error type, *NoSuchElementErr, when it is exhausted
// and when a connection it dialed for the borrow failed its first
// check, with only the message ("Pool exhausted", "Unable to validate
// object") to tell them apart. Rather than match the text, the factory
// records in the borrow's context, which the engine hands to MakeObject
// and ValidateObject, what it dialed and why that failed: after a
// successful MakeObject, the engine either lends that connection or
// returns at once with *NoSuchElementErr.
type engineBorrow struct {
	context.Context
	made   *conn // the connection MakeObject dialed for the borrow
	failed error // why made failed its check
}

type engineBorrowKey struct{}

func (b *engineBorrow) Value(key any) any {
	if key == (engineBorrowKey{}) {
		return b
	}
	return b.Context.Value(key)
}

// noteMade records that MakeObject, under ctx, dialed c.
func noteMade(ctx context.Context, c *conn) {
	if b, ok := ctx.Value(engineBorrowKey{}).(*engineBorrow); ok {
		b.made = c
	}
}

// noteCheckFailed records that ValidateObject, under ctx, found c unfit
// for err.
func noteCheckFailed(ctx context.Context, c *conn, err error) {
	if b, ok := ctx.Value(engineBorrowKey{}).(*engineBorrow); ok && b.made == c {
		b.failed = err
	}
}

// isEngineClosed reports whether err is the engine's refusal to lend
// after its Close.
func isEngineClosed(err error) bool {
	var ise *pool.IllegalStateErr
	return errors.As(err, &ise)
}
