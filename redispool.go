// Package redispool is a Redis connection pool for redigo, built on
// go-commons-pool (the Go port of Apache Commons Pool, the engine under
// Jedis's JedisPool).
//
// A Pool hands out redigo connections with the shape of redigo's own
// *redis.Pool — Get, GetContext — so code and libraries written for
// redigo switch by changing one constructor. What it adds is safety:
//
//   - No borrower sees state left by the previous one. Session state a
//     borrower creates (SELECT, MULTI, WATCH, SUBSCRIBE, CLIENT SETNAME,
//     unread pipelined replies) is undone when the connection is
//     returned; state that cannot be undone cheaply and provably (AUTH,
//     HELLO, MONITOR, CLIENT REPLY, CLIENT TRACKING, ...) closes the
//     connection instead.
//   - A connection that failed mid-command (I/O error, timeout,
//     cancelled context, protocol error) is closed, never reused, so a
//     late reply cannot reach the next borrower.
//   - A connection the server closed while it sat idle is noticed at
//     borrow time without a round trip, by peeking at the socket, and
//     replaced. Connections idle longer than PingAfterIdle are PINGed.
//     (A connection idle for under 100µs is not peeked at: under load
//     connections cycle faster than that, and the system call is the
//     costliest part of a borrow.)
//   - Borrows wait at most BorrowTimeout (or the context deadline) and
//     fail with ErrPoolExhausted, which also wraps the context's error
//     when the context ended the wait.
//
// # Creating a pool
//
//	cfg, err := redispool.ParseURL("redis://localhost:6379/0?max_total=32")
//	if err != nil {
//		return err
//	}
//	p, err := redispool.New(ctx, cfg)
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//
//	conn, err := p.GetContext(ctx)
//	if err != nil {
//		return err
//	}
//	defer conn.Close() // returns it to the pool
//	_, err = conn.Do("SET", "k", "v")
//
// New does not fail because Redis is down; call Ping to fail fast at
// startup.
//
// # How it maps onto go-commons-pool
//
// The pool's engine is a go-commons-pool ObjectPool whose
// PooledObjectFactory (factory.go) dials connections (MakeObject),
// checks their health on borrow (ValidateObject), undoes session state
// on return (PassivateObject) and closes them (DestroyObject).
// go-commons-pool keeps the idle connections, caps their number at
// MaxTotal, and runs the evictor that closes expired ones and refills
// MinIdle. In front of it, Pool keeps one token per connection slot:
// a borrower waits for a token, not inside go-commons-pool, because
// go-commons-pool only wakes waiters when a connection comes back idle,
// not when one is closed, so after an outage they would sleep until
// their deadline. None of go-commons-pool's types or errors appear in
// this package's API.
package redispool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
	pool "github.com/jolestar/go-commons-pool/v2"
)

var (
	// ErrPoolClosed is returned by borrows from a closed pool, and to
	// borrowers that were waiting when it was closed.
	ErrPoolClosed = errors.New("redispool: pool closed")

	// ErrPoolExhausted is returned when no connection became available
	// within BorrowTimeout or before the context ended (the error then
	// also wraps the context's error), or at once with FailFast.
	ErrPoolExhausted = errors.New("redispool: connection pool exhausted")

	// ErrConnClosed is returned by every method of a borrowed
	// connection after its Close.
	ErrConnClosed = errors.New("redispool: connection closed")

	// ErrInvalidConfig is wrapped by every error New returns for a bad
	// Config.
	ErrInvalidConfig = errors.New("redispool: invalid config")
)

// A Pool is a pool of Redis connections.
//
// A Pool is safe for concurrent use by multiple goroutines. Create one
// per Redis server with New and reuse it for the life of the program.
type Pool struct {
	cfg Config // with defaults applied
	f   *factory
	op  *pool.ObjectPool

	// sem holds one token per borrowed connection; sending takes a
	// slot, receiving gives it back.
	sem    chan struct{}
	closed chan struct{} // closed by Close: wakes every waiter

	closeOnce sync.Once
	bgCancel  context.CancelFunc // stops background dials
	bg        sync.WaitGroup     // background goroutines

	stats  counters
	trimMu sync.Mutex // protects returning, when MaxIdle < MaxTotal
	// returning counts returns that reserveIdle let keep their
	// connection and that have not yet handed it back.
	returning int64
}

// New validates cfg and creates a pool. It does not connect: it fails
// only for an invalid Config, never because Redis is unreachable. If
// cfg.MinIdle is positive, that many connections are dialed in the
// background. With cfg.Sentinel, background goroutines subscribe to the
// Sentinels' +switch-master announcements; the master is first looked
// up by the first dial. ctx is not retained; it is accepted for symmetry with
// the rest of the API and checked once.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redispool: new pool: %w", err)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()

	p := &Pool{
		cfg:    cfg,
		sem:    make(chan struct{}, cfg.MaxTotal),
		closed: make(chan struct{}),
	}
	p.f = newFactory(cfg, &p.stats)
	if cfg.Sentinel != nil {
		p.f.sentinel = newSentinel(*cfg.Sentinel, &p.stats, cfg.Logger, func() { p.closeIdle(reasonFailover) })
	}

	bgCtx, cancel := context.WithCancel(context.Background())
	p.bgCancel = cancel
	p.f.closing = bgCtx // Close ends dials in flight
	p.op = pool.NewObjectPool(bgCtx, p.f, engineConfig(cfg, bgCtx))

	if cfg.MinIdle > 0 {
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			p.op.PreparePool(bgCtx)
		}()
	}
	return p, nil
}

// engineConfig translates cfg into go-commons-pool's configuration.
func engineConfig(cfg Config, bgCtx context.Context) *pool.ObjectPoolConfig {
	oc := pool.NewDefaultPoolConfig()
	oc.MaxTotal = cfg.MaxTotal
	// MaxIdle below MaxTotal makes go-commons-pool close surplus
	// connections on return without waking waiters; Pool trims idle
	// connections itself instead (see put).
	oc.MaxIdle = cfg.MaxTotal
	oc.MinIdle = cfg.MinIdle
	oc.LIFO = !cfg.FIFO
	// Pool waits for a slot before borrowing, so the engine never has
	// to block; when it reports exhaustion anyway, a connection is in
	// transit (see borrow).
	oc.BlockWhenExhausted = false
	oc.TestOnBorrow = true
	oc.TestOnCreate = false
	oc.TestOnReturn = false
	oc.TestWhileIdle = false
	oc.TimeBetweenEvictionRuns = cfg.EvictionInterval
	oc.NumTestsPerEvictionRun = -1 // examine every idle connection
	oc.EvictionPolicyName = registerEvictionPolicy()
	oc.EvictionContext = bgCtx
	return oc
}

// String describes the pool by its server and size. It exists so that
// printing a *Pool (%v, %+v, %#v) cannot show the Config's password.
func (p *Pool) String() string {
	if p.cfg.Sentinel != nil {
		return fmt.Sprintf("redispool.Pool{Sentinel master %q at %s, MaxTotal %d}", p.cfg.Sentinel.MasterName, p.Addr(), p.cfg.MaxTotal)
	}
	return fmt.Sprintf("redispool.Pool{%s %s, MaxTotal %d}", p.cfg.Network, p.cfg.Addr, p.cfg.MaxTotal)
}

// Addr returns the address new connections are made to: Config.Addr,
// or with Sentinel the current master's, which is "" until the
// Sentinels have first been asked.
func (p *Pool) Addr() string { return p.f.addr() }

// GoString makes %#v as safe as %v.
func (p *Pool) GoString() string { return p.String() }

// Get returns a connection from the pool. It never returns nil: when no
// connection can be had, the returned connection's methods all return
// the error. Close the connection to return it to the pool.
//
// Get is GetContext with context.Background, for code written against
// redigo's *redis.Pool; prefer GetContext.
func (p *Pool) Get() redis.Conn {
	c, err := p.GetContext(context.Background())
	if err != nil {
		return errorConn{err}
	}
	return c
}

// GetContext returns a connection from the pool, waiting while MaxTotal
// connections are borrowed until one is returned, BorrowTimeout passes
// or ctx ends. A new connection is dialed under ctx. The caller must
// Close the connection to return it to the pool.
//
// The returned connection also implements redis.ConnWithTimeout and
// redis.ConnWithContext.
func (p *Pool) GetContext(ctx context.Context) (redis.Conn, error) {
	c, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	return &activeConn{p: p, c: c}, nil
}

// Do borrows a connection, runs one command under ctx and returns the
// connection.
func (p *Pool) Do(ctx context.Context, cmd string, args ...any) (any, error) {
	c, err := p.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(redis.ConnWithContext).DoContext(ctx, cmd, args...)
}

// Ping borrows a connection and sends PING, so a service can fail fast
// at startup when Redis is unreachable or rejects the credentials.
func (p *Pool) Ping(ctx context.Context) error {
	reply, err := redis.String(p.Do(ctx, "PING"))
	switch {
	case err != nil && strings.HasPrefix(err.Error(), "redispool: "):
		return err // already names the address
	case err != nil:
		return fmt.Errorf("redispool: PING %s %s: %w", p.cfg.Network, p.Addr(), err)
	case reply != "PONG":
		return fmt.Errorf("redispool: PING %s %s: unexpected reply %q", p.cfg.Network, p.Addr(), reply)
	}
	return nil
}

// Close closes the pool: idle connections are closed at once, waiting
// borrowers get ErrPoolClosed, later borrows fail with ErrPoolClosed,
// and connections still borrowed are closed when they are returned.
// Close is idempotent and returns when the pool's background
// goroutines have stopped.
func (p *Pool) Close() error {
	p.closeOnce.Do(func() {
		close(p.closed)
		if p.f.sentinel != nil {
			p.f.sentinel.close() // stops the subscriptions and the poller
		}
		p.bgCancel()
		p.bg.Wait()
		// Stops the evictor, waits for it, and closes idle connections.
		p.op.Close(context.Background())
	})
	return nil
}

func (p *Pool) isClosed() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

// closeIdle closes every idle connection now, counted under reason; a
// master change uses it to drop connections to the old master at once.
// (The engine's Clear destroys idle objects through DestroyObject, which
// finds the reason in the context.)
func (p *Pool) closeIdle(reason destroyReason) {
	p.op.Clear(context.WithValue(context.Background(), destroyReasonKey{}, reason))
}

// get borrows a connection: a slot first, then a connection from the
// engine.
func (p *Pool) get(ctx context.Context) (*conn, error) {
	if p.isClosed() {
		return nil, ErrPoolClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redispool: get connection: %w", err)
	}
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	c, err := p.borrow(ctx)
	if err != nil {
		<-p.sem
		return nil, err
	}
	p.stats.active.Add(1)
	p.stats.borrows.Add(1)
	return c, nil
}

// acquire takes a connection slot, waiting if all are taken.
func (p *Pool) acquire(ctx context.Context) error {
	select {
	case p.sem <- struct{}{}:
		return nil
	default:
	}
	if p.cfg.FailFast {
		p.stats.timeouts.Add(1)
		return fmt.Errorf("%w: all %d connections are borrowed (FailFast)", ErrPoolExhausted, p.cfg.MaxTotal)
	}

	p.stats.waitCount.Add(1)
	p.stats.waiting.Add(1)
	defer p.stats.waiting.Add(-1)
	start := time.Now()
	var timeout <-chan time.Time
	if p.cfg.BorrowTimeout > 0 && !deadlineWithin(ctx, start, p.cfg.BorrowTimeout) {
		// A timer costs ~130ns a wait under contention; a context that
		// ends first makes it needless.
		t := getTimer(p.cfg.BorrowTimeout)
		defer putTimer(t)
		timeout = t.C
	}
	var err error
	select {
	case p.sem <- struct{}{}:
	case <-p.closed:
		err = ErrPoolClosed
	case <-ctx.Done():
		p.stats.timeouts.Add(1)
		err = fmt.Errorf("%w: %w while waiting for one of %d borrowed connections", ErrPoolExhausted, ctx.Err(), p.cfg.MaxTotal)
	case <-timeout:
		p.stats.timeouts.Add(1)
		err = fmt.Errorf("%w: none of %d borrowed connections returned within BorrowTimeout %v", ErrPoolExhausted, p.cfg.MaxTotal, p.cfg.BorrowTimeout)
	}
	p.stats.waitNanos.Add(int64(time.Since(start)))
	return err
}

// borrow takes a connection from the engine. The caller holds a slot,
// so fewer than MaxTotal connections are borrowed and the engine has an
// idle one or room to dial. It can still report exhaustion for a
// moment: while the evictor examines the only idle connection, or while
// a failed one is being closed and still counts against MaxTotal. Those
// windows are short, so borrow retries after a brief pause until the
// borrow deadline.
func (p *Pool) borrow(ctx context.Context) (*conn, error) {
	var deadline time.Time // set at the first retry
	pause := 50 * time.Microsecond
	for {
		obj, err := p.op.BorrowObject(ctx)
		if err == nil {
			return obj.(*conn), nil
		}
		var exhausted *pool.NoSuchElementErr
		switch {
		case p.isClosed() || isEngineClosed(err):
			return nil, ErrPoolClosed
		case !errors.As(err, &exhausted):
			return nil, err // a dial error, already described by the factory
		case exhausted.Error() != engineExhausted:
			// A connection dialed for this borrow failed its first check.
			return nil, p.f.firstCheckError()
		}
		if deadline.IsZero() && p.cfg.BorrowTimeout > 0 {
			deadline = time.Now().Add(p.cfg.BorrowTimeout)
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			p.stats.timeouts.Add(1)
			return nil, fmt.Errorf("%w: no connection became available within BorrowTimeout %v", ErrPoolExhausted, p.cfg.BorrowTimeout)
		}
		t := getTimer(pause)
		select {
		case <-t.C:
			putTimer(t)
		case <-ctx.Done():
			putTimer(t)
			p.stats.timeouts.Add(1)
			return nil, fmt.Errorf("%w: %w", ErrPoolExhausted, ctx.Err())
		case <-p.closed:
			putTimer(t)
			return nil, ErrPoolClosed
		}
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// deadlineWithin reports whether ctx ends no later than d after start.
func deadlineWithin(ctx context.Context, start time.Time, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && dl.Sub(start) <= d
}

// engineExhausted is the message of go-commons-pool's NoSuchElementErr
// when it has neither an idle object nor room to create one.
const engineExhausted = "Pool exhausted"

func isEngineClosed(err error) bool {
	var ise *pool.IllegalStateErr
	return errors.As(err, &ise)
}

// put returns a borrowed connection to the engine, or closes it when it
// cannot be reused, then frees its slot.
func (p *Pool) put(c *conn) {
	ctx := context.Background()
	reason := c.reusable(p.isClosed())
	if reason == reasonNone && !p.reserveIdle() {
		reason = reasonSurplus
	}
	if reason == reasonNone {
		// PassivateObject undoes session state; if it cannot, the
		// engine closes the connection.
		if err := p.op.ReturnObject(ctx, c); err != nil {
			// The engine no longer knows c (it was closed meanwhile).
			c.reason = reasonPoolClosed
			p.f.destroy(c)
		}
		p.stats.active.Add(-1)
		p.reserved()
	} else {
		// No longer active before it is no longer open, so that
		// reserveIdle, reading open - active, never counts one idle
		// connection too few.
		p.stats.active.Add(-1)
		c.reason = reason
		if err := p.op.InvalidateObject(ctx, c); err != nil {
			p.f.destroy(c)
		}
	}
	<-p.sem
}

// reserveIdle reports whether a returned connection may stay idle
// without making more than MaxIdle idle. Returners decide one at a time,
// under trimMu, and each counts as idle already the connections others
// have decided to keep but not yet handed back, so two returns at once
// cannot both take the last idle place.
func (p *Pool) reserveIdle() bool {
	if p.cfg.MaxIdle >= p.cfg.MaxTotal {
		return true
	}
	p.trimMu.Lock()
	defer p.trimMu.Unlock()
	idle := p.stats.open.Load() - p.stats.active.Load() + p.returning
	if idle >= int64(p.cfg.MaxIdle) {
		return false
	}
	p.returning++
	return true
}

// reserved ends a reservation once the connection is back and no longer
// counted active.
func (p *Pool) reserved() {
	if p.cfg.MaxIdle >= p.cfg.MaxTotal {
		return
	}
	p.trimMu.Lock()
	p.returning--
	p.trimMu.Unlock()
}

// timers recycles the timers of waiting borrowers: a wait is the one
// place a borrow would otherwise allocate one. Since Go 1.23 a stopped
// or reset timer never delivers a stale value, so reuse is safe.
var timers sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
}
