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
// # Sentinel and Cluster
//
// With Config.Sentinel the Pool finds its master through Redis Sentinel
// (sentinel.go) and follows it across failovers: it listens for
// +switch-master on every Sentinel, checks ROLE on each new connection,
// and never hands out a connection to a master it has left. The URL form
// is redis+sentinel://host1,host2/master_name.
//
// NewCluster (cluster.go) keeps one Pool per Redis Cluster node and
// routes each command by its key's hash slot (slot.go, keys.go),
// following MOVED and ASK (redirect.go) and retrying only what the
// cluster did not run. Its Get and GetContext return connections that
// bind to a node at their first keyed command (clusterconn.go), so code
// written for a Pool runs on a Cluster unchanged. The URL form is
// redis+cluster://host1:port1,host2:port2.
//
// # How it maps onto go-commons-pool
//
// The pool's engine is a go-commons-pool ObjectPool whose
// PooledObjectFactory (factory.go) dials connections (MakeObject),
// checks their health on borrow (ValidateObject), undoes session state
// (PassivateObject) and closes them (DestroyObject). The engine caps
// connections at MaxTotal and runs the evictor that closes expired idle
// connections and refills MinIdle. Its own borrow and return are too
// costly for every request, so Pool keeps it off the path of a busy
// pool: a returned connection goes straight to the oldest waiting
// borrower, or onto a hot stack of idle connections that the engine
// still counts as borrowed, and a borrow pops that stack (with the same
// health check) before it asks the engine. Connections idle on the hot
// stack for 100ms go back to the engine, so that it sees every
// connection that is really idle. Waiting happens in Pool, not in the
// engine, since go-commons-pool wakes waiters only when a connection
// comes back idle, not when one is closed, so after an outage they
// would sleep until their deadline. None of go-commons-pool's types or
// errors appear in this package's API.
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
	// It also matches redigo's redis.ErrPoolExhausted (bridge.go).
	ErrPoolExhausted error = poolExhausted{}

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

	// The borrow path (borrow.go). Invariants: held+hot.n+moving <=
	// MaxTotal, so the engine always has room for a borrower holding a
	// slot; and while anyone waits, the hot stack is empty.
	mu      sync.Mutex // protects following fields
	closed  bool
	held    int         // slots held: connections lent out, and borrows on their way to one
	active  int         // connections lent out, or handed to a waiter (Stats.Active)
	moving  int         // idle connections off the hot stack, on their way to the engine or to be closed
	hot     hotStack    // idle connections, already reset, that the engine counts as borrowed
	waiters waitQueue   // borrowers waiting for a connection or a slot, oldest first
	timer   *time.Timer // fires at the first waiter's deadline, when timerOn
	timerOn bool
	spares  *waiter // finished waiters kept for reuse, linked by next
	nspares int
	lent    []*conn // with AbandonedTimeout: connections lent out (abandoned.go)

	// maintMu serializes the flusher's runs, closeIdle and the engine's
	// Close, so that a connection the flusher hands to the engine cannot
	// slip past closeIdle, and the engine closes idle connections for
	// one reason at a time.
	maintMu  sync.Mutex
	flushBuf []*conn // the flusher's, under maintMu

	errTimeout error         // the error of a wait that outlived BorrowTimeout
	done       chan struct{} // closed by Close: stops the flusher and borrows retrying in the engine
	closeOnce  sync.Once
	bgCancel   context.CancelFunc // stops background dials
	bg         sync.WaitGroup     // background goroutines

	stats counters

	pipes  *pipeline        // nil with PipelineConns negative
	redigo atomicRedigoPool // RedigoPool's (bridge.go)
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
		cfg:  cfg,
		hot:  hotStack{max: cfg.MaxTotal},
		done: make(chan struct{}),
		errTimeout: fmt.Errorf("%w: none of %d borrowed connections returned within BorrowTimeout %v",
			ErrPoolExhausted, cfg.MaxTotal, cfg.BorrowTimeout),
	}
	p.timer = time.AfterFunc(time.Hour, p.expireWaiters)
	p.timer.Stop()
	p.f = newFactory(cfg, &p.stats)

	bgCtx, cancel := context.WithCancel(context.Background())
	p.bgCancel = cancel
	p.f.closing = bgCtx // Close ends dials in flight
	// A target that moves calls onMove from its own goroutines, which
	// start with it, and onMove's closeIdle takes maintMu: held here, it
	// makes a move that comes at once wait for the engine.
	p.maintMu.Lock()
	p.f.target = newTarget(cfg, &p.stats, p.f.dialTo, func() { p.closeIdle(reasonFailover) })
	p.op = newEngine(bgCtx, p.f, cfg)
	p.maintMu.Unlock()

	if cfg.PipelineConns >= 0 {
		p.pipes = newPipeline(poolHost{p}, pipeConfig{
			conns:        min(max(cfg.PipelineConns, 1), cfg.MaxTotal),
			readTimeout:  cfg.ReadTimeout,
			writeTimeout: cfg.WriteTimeout,
		})
		if cfg.CommandHook != nil {
			p.pipes.hook = p.f.startCommand
		}
	}

	p.bg.Add(1)
	go p.flusher()
	if cfg.MinIdle > 0 {
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			prepareEngine(bgCtx, p.op, cfg)
		}()
	}
	return p, nil
}

// String describes the pool by its server and size. It exists so that
// printing a *Pool (%v, %+v, %#v) cannot show the Config's password.
func (p *Pool) String() string {
	return fmt.Sprintf("redispool.Pool{%s, MaxTotal %d}", p.f.target, p.cfg.MaxTotal)
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
	if p.cfg.PipelineGet && p.pipes != nil {
		return p.getPiped(ctx)
	}
	c, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	return &activeConn{p: p, c: c}, nil
}

// Do runs one command under ctx. A data command that neither blocks nor
// touches session state goes down a shared connection, pipelined with
// other goroutines' commands (Config.PipelineConns); any other borrows
// a connection, runs the command and returns the connection.
//
// The reply is read as DoContext reads it, within ReadTimeout and ctx,
// except for a command that blocks on the server for as long as its
// arguments say — BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
// BZPOPMAX, BZMPOP, and XREAD or XREADGROUP with BLOCK — whose reply is
// awaited for that long plus ReadTimeout, within ctx. A timeout of 0
// (block until there is something) waits until ctx's deadline, or
// ReadTimeout when ctx has none. So p.Do(ctx, "BLPOP", "jobs", 5)
// returns nil after 5s when nothing comes, not an i/o timeout. A
// borrowed connection keeps ReadTimeout for every command: use
// DoWithTimeout there.
func (p *Pool) Do(ctx context.Context, cmd string, args ...any) (any, error) {
	if p.pipes != nil && mayPipeline(cmd) {
		if reply, err := p.pipes.do(ctx, cmd, args); err != errNotPipelined {
			return reply, err
		}
	}
	// A copy, so that args does not escape: a caller's argument slice
	// then stays on its stack, and a pipelined Do allocates none.
	return p.doExclusive(ctx, cmd, append([]any(nil), args...))
}

// doExclusive runs one command on a borrowed connection.
func (p *Pool) doExclusive(ctx context.Context, cmd string, args []any) (any, error) {
	c, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	ac := &activeConn{p: p, c: c}
	defer ac.Close()
	timeout := blockingReadTimeout(ctx, c.f.cfg.ReadTimeout, cmd, args)
	reply, err := c.withContext(ctx, timeout, func(timeout time.Duration) (any, error) {
		return c.do(ctx, timeout, cmd, args)
	})
	return reply, deadlineErr(ctx, err)
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
		if p.pipes != nil {
			// Fails the queued commands, waits for those in flight and
			// gives the shared connections back.
			p.pipes.close()
		}
		var waiting chain
		p.mu.Lock()
		p.closed = true
		for w := p.waiters.pop(&p.stats); w != nil; w = p.waiters.pop(&p.stats) {
			waiting.add(w)
		}
		p.timer.Stop()
		idle := make([]*conn, 0, p.hot.n)
		for c := p.hot.popBottom(); c != nil; c = p.hot.popBottom() {
			idle = append(idle, c)
		}
		p.mu.Unlock()
		waiting.send(grant{err: ErrPoolClosed})

		close(p.done)
		p.f.target.close() // stops a moving target's goroutines
		p.bgCancel()
		p.bg.Wait() // the flusher and MinIdle's dials
		for _, c := range idle {
			c.reason = reasonPoolClosed
			p.invalidate(c)
		}
		p.maintMu.Lock()
		// Stops the evictor, waits for it, and closes idle connections.
		p.op.Close(context.Background())
		p.maintMu.Unlock()
	})
	return nil
}

func (p *Pool) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
