package redispool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	pool "github.com/jolestar/go-commons-pool/v2"
)

// factory is the go-commons-pool PooledObjectFactory for redigo
// connections. The engine calls it to dial (MakeObject), check health on
// borrow (ValidateObject), undo session state on return
// (PassivateObject) and close (DestroyObject). Each pooled object is a
// *conn: one unique pointer per connection, which is how the engine
// tells objects apart.
type factory struct {
	cfg     Config // with defaults applied
	stats   *counters
	log     *slog.Logger
	dialNet func(ctx context.Context, network, addr string) (net.Conn, error)
	opts    []redis.DialOption // the options every dial shares
	tls     *tls.Config        // nil for plaintext; ServerName filled in

	// target is where connections go (target.go): Config.Addr, until
	// New sets the pool's. Connections carry its generation.
	target target

	// closing is the pool's own background context, not a caller's:
	// Pool.Close cancels it, which ends the dials in flight. Nil until
	// New sets it.
	closing context.Context
}

var _ pool.PooledObjectFactory = (*factory)(nil)

func newFactory(cfg Config, stats *counters) *factory {
	f := &factory{
		cfg:     cfg,
		stats:   stats,
		log:     cfg.Logger,
		dialNet: cfg.Dial,
	}
	if f.dialNet == nil {
		d := &net.Dialer{KeepAlive: 5 * time.Minute}
		f.dialNet = d.DialContext
	}
	f.opts = []redis.DialOption{
		redis.DialReadTimeout(cfg.ReadTimeout),
		redis.DialWriteTimeout(cfg.WriteTimeout),
		redis.DialDatabase(cfg.DB),
		redis.DialClientName(cfg.ClientName),
		redis.DialUsername(cfg.Username),
		redis.DialPassword(cfg.Password),
	}
	if cfg.TLSConfig != nil {
		f.tls = cfg.TLSConfig.Clone()
		if f.tls.ServerName == "" && cfg.Network != "unix" {
			f.tls.ServerName, _, _ = net.SplitHostPort(cfg.Addr)
		}
	}
	f.target = newFixedTarget(cfg, f.dialTo)
	return f
}

// MakeObject dials a connection, authenticates it and selects the
// configured database and client name.
func (f *factory) MakeObject(ctx context.Context) (*pool.PooledObject, error) {
	if ctx != f.closing { // a borrower's dial, not the MinIdle refill's
		f.stats.dialing.Add(1)
		defer f.stats.dialing.Add(-1)
	}
	c, gen, err := f.target.dial(ctx)
	if err != nil {
		if f.closing != nil && f.closing.Err() != nil {
			return nil, err // ended by Pool.Close, not a failure to count or log
		}
		f.stats.dialErrors.Add(1)
		if f.log != nil {
			f.log.LogAttrs(ctx, slog.LevelWarn, "redispool: dial failed",
				slog.String("addr", f.addr()), slog.String("error", err.Error()))
		}
		return nil, err
	}
	c.gen = gen
	noteMade(ctx, c) // for borrowFromEngine (engine.go)
	f.stats.created.Add(1)
	f.stats.open.Add(1)
	if f.log != nil {
		f.log.LogAttrs(ctx, slog.LevelDebug, "redispool: connection created",
			slog.String("addr", f.addr()), slog.String("local", c.nc.LocalAddr().String()))
	}
	return pool.NewPooledObject(c), nil
}

// dial dials the target's address once, as a Cluster's control
// connections are dialed.
func (f *factory) dial(ctx context.Context) (*conn, error) {
	return f.dialTo(ctx, f.addr(), true)
}

// dialTo dials addr, the target's address or, for a target that checks
// where it should go, one of the places it might be; ping is as for
// firstCmd. It is the target's dialFunc.
func (f *factory) dialTo(ctx context.Context, addr string, ping bool) (*conn, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.DialTimeout)
	defer cancel()
	if f.closing != nil {
		defer context.AfterFunc(f.closing, cancel)()
	}

	// Dial through our own function to keep the raw socket: the health
	// check peeks at it, and a cancelled context interrupts through it
	// (under TLS too, since the TLS connection sits on top of it). TLS is
	// done here rather than by redigo so that the handshake honours ctx,
	// and so that redigo reads through the reply guard above TLS.
	var raw atomic.Pointer[net.Conn] // read by the AfterFunc goroutine
	var stream net.Conn              // what redigo reads and writes, for the pipeline (pipeline.go)
	dialRaw := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := f.dialNet(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// Bound AUTH/SETNAME/SELECT by ctx: redigo bounds them by
		// timeouts only.
		if dl, ok := ctx.Deadline(); ok {
			c.SetDeadline(dl)
		}
		raw.Store(&c)
		if err := ctx.Err(); err != nil {
			// ctx ended before raw was stored: the AfterFunc found nothing
			// to interrupt, and the dial would wait for its deadline.
			c.Close()
			return nil, err
		}
		top := c
		if f.tls != nil {
			tc := tls.Client(c, f.tlsFor(addr))
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			top = tc
		}
		stream = &guardConn{Conn: top, addr: addr}
		return stream, nil
	}
	stop := context.AfterFunc(ctx, func() {
		// Close, not a past deadline: redigo sets a read deadline of
		// its own before each reply, which would undo one.
		if nc := raw.Load(); nc != nil {
			(*nc).Close()
		}
	})
	opts := append(f.opts[:len(f.opts):len(f.opts)], redis.DialContextFunc(dialRaw))
	rc, err := redis.DialContext(ctx, f.cfg.Network, addr, opts...)
	if first := f.firstCmd(ping); err == nil && first != "" {
		dl, _ := ctx.Deadline()
		if _, err = rc.(redis.ConnWithTimeout).DoWithTimeout(time.Until(dl), first); err != nil {
			rc.Close()
		}
	}
	if !stop() && err == nil {
		// ctx ended as the dial finished; the deadline may be poisoned.
		rc.Close()
		err = ctx.Err()
	}
	if err != nil {
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			// The socket deadline we set from ctx fired; ctx's own timer
			// fires at the same instant. Wait for it so the error says
			// the deadline passed.
			<-ctx.Done()
		}
		return nil, f.dialError(ctx, addr, err)
	}
	nc := *raw.Load()
	nc.SetDeadline(time.Time{})
	c := newConn(f, rc, nc)
	c.addr = addr
	c.stream = stream
	return c, nil
}

// firstCmd is the command a new connection sends after the dial's own
// AUTH, CLIENT SETNAME and SELECT, or "". The cluster's READONLY is one.
// Otherwise, when the dial sent nothing, nothing shows the server took
// the connection: at maxclients Redis accepts, writes an error and
// closes, and that error would be the reply to the borrower's first
// command. A PING proves the connection once, and costs a round trip
// only where the dial made none, and only with ping: a target that
// sends a command of its own on each new connection dials without (see
// dialFunc).
func (f *factory) firstCmd(ping bool) string {
	switch {
	case f.cfg.dialCmd != "":
		return f.cfg.dialCmd
	case ping && f.cfg.Password == "" && f.cfg.DB == 0 && f.cfg.ClientName == "":
		return "PING"
	}
	return ""
}

// addr is the address new connections are dialed to: the target's.
func (f *factory) addr() string { return f.target.addr() }

// tlsFor returns the TLS configuration for a connection to addr. An
// empty ServerName is filled in from addr, per dial: newFactory fills it
// in once from Config.Addr, but a target may move.
func (f *factory) tlsFor(addr string) *tls.Config {
	if f.tls.ServerName != "" {
		return f.tls
	}
	tc := f.tls.Clone()
	tc.ServerName, _, _ = net.SplitHostPort(addr)
	return tc
}

// aLongTimeAgo is a deadline in the past, set to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// dialError describes a failed dial. It names the address and, for a
// rejected AUTH, the user, but never the password.
func (f *factory) dialError(ctx context.Context, addr string, err error) error {
	addr = f.cfg.Network + " " + addr
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("redispool: dial %s: timed out: %w", addr, ctxErr)
		}
		return fmt.Errorf("redispool: dial %s: %w", addr, ctxErr)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := string(rerr)
		if isAuthError(msg) {
			user := f.cfg.Username
			if user == "" {
				user = "default"
			}
			return fmt.Errorf("redispool: auth failed for user %q at %s: %w", user, addr, err)
		}
		return fmt.Errorf("redispool: connect to %s: %w", addr, err)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return fmt.Errorf("redispool: %w", err) // names network and address already
	}
	return fmt.Errorf("redispool: dial %s: %w", addr, err)
}

func isAuthError(msg string) bool {
	for _, prefix := range []string{"WRONGPASS", "NOAUTH", "ERR invalid password", "ERR invalid username", "ERR AUTH", "ERR Client sent AUTH"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// DestroyObject closes the connection and records why.
func (f *factory) DestroyObject(ctx context.Context, o *pool.PooledObject) error {
	c := o.Object.(*conn)
	if r, ok := destroyReasonOf(ctx); ok && c.reason == reasonNone {
		c.reason = r // an idle connection closed by Pool.closeIdle
	}
	f.destroy(c)
	return nil
}

// destroy closes c once, however many paths reach it.
func (f *factory) destroy(c *conn) {
	if !c.destroyed.CompareAndSwap(false, true) {
		return
	}
	c.rc.Close()
	reason := c.reason
	if reason == reasonNone {
		// Every other path names its reason; the engine closes idle
		// connections unprompted only when the pool closes (closeIdle
		// names its reason through DestroyObject's context).
		reason = reasonPoolClosed
	}
	f.stats.open.Add(-1)
	f.stats.destroyed[reason].Add(1)
	if f.log != nil {
		level := slog.LevelDebug
		if reason == reasonBroken || reason == reasonUnhealthy {
			level = slog.LevelInfo
		}
		f.log.LogAttrs(context.Background(), level, "redispool: connection closed",
			slog.String("addr", c.addr), slog.String("reason", reason.String()))
	}
}

// ActivateObject does nothing: connections are made clean when they are
// returned, so an idle connection is ready to borrow.
func (f *factory) ActivateObject(context.Context, *pool.PooledObject) error { return nil }

// PassivateObject undoes the session state the borrower left behind,
// under CheckTimeout and never under the caller's context (the engine
// passes the returning caller's, which may have expired). An error makes
// the engine close the connection.
func (f *factory) PassivateObject(_ context.Context, o *pool.PooledObject) error {
	return f.passivate(o.Object.(*conn))
}

// passivate undoes c's session state; Pool.put calls it before a
// connection goes back on the hot stack.
func (f *factory) passivate(c *conn) error {
	if err := c.reset(); err != nil {
		c.reason = reasonDirty
		if f.log != nil {
			f.log.LogAttrs(context.Background(), slog.LevelInfo, "redispool: connection reset failed",
				slog.String("addr", f.addr()), slog.String("error", err.Error()))
		}
		return err
	}
	return nil
}
