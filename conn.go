package redispool

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// conn is one pooled connection: the object go-commons-pool holds.
type conn struct {
	f       *factory
	rc      redis.ConnWithTimeout // redigo's connection
	nc      net.Conn              // the socket under rc (under TLS, the TCP socket)
	stream  net.Conn              // what rc reads and writes: TLS over nc, in the reply guard
	created time.Time
	peek    *socketPeeker // nil where the platform cannot peek

	// interrupt, bound once, is handed to context.AfterFunc so that
	// DoContext does not allocate a method value per call.
	interrupt func()

	// Touched only by the goroutine that holds the connection, except
	// that t allows one goroutine in Receive while another Sends.
	t      tracker
	broken bool          // a context interrupted I/O: close on return
	reason destroyReason // why the connection is being closed
	gen    uint64        // with Sentinel, the master generation it was dialed under

	// Written by the pool when the connection is returned or lent out.
	idleSince time.Time // when it was last returned; zero before that
	loan      loan      // with AbandonedTimeout: who holds it, since when
	spare     *waiter   // the finished waiter of the borrow holding it, recycled on return

	destroyed atomic.Bool
	// aborted is set when the borrower's Close closed the socket under a
	// goroutine in Receive (see activeConn.Close): the read error that
	// follows is ours, not the server's.
	aborted atomic.Bool
}

func newConn(f *factory, rc redis.Conn, nc net.Conn) *conn {
	c := &conn{
		f:       f,
		rc:      rc.(redis.ConnWithTimeout),
		nc:      nc,
		created: time.Now(),
		peek:    newSocketPeeker(nc, f.tls != nil),
	}
	c.interrupt = func() { c.nc.SetDeadline(aLongTimeAgo) }
	return c
}

// reusable reports why c cannot go back to the pool as it is, or
// reasonNone.
func (c *conn) reusable(poolClosed bool) destroyReason {
	switch {
	case c.aborted.Load():
		return reasonDirty // closed under a receiver: its replies were never read
	case c.broken || c.rc.Err() != nil:
		return reasonBroken
	case poolClosed:
		return reasonPoolClosed
	case c.f.sentinel != nil && c.gen != c.f.sentinel.gen():
		return reasonFailover
	case c.t.flags()&stateUnresettable != 0:
		return reasonDirty
	case c.f.cfg.MaxConnLifetime > 0 && time.Since(c.created) >= c.f.cfg.MaxConnLifetime:
		return reasonLifetime
	}
	return reasonNone
}

// do runs cmd; ctx is only for Config.CommandHook (hook.go): the
// caller bounds the I/O by timeout and withContext.
func (c *conn) do(ctx context.Context, timeout time.Duration, cmd string, args []any) (any, error) {
	var done func(error)
	if c.f.cfg.CommandHook != nil {
		done = c.startCommand(ctx, cmd)
	}
	kind := c.t.beforeDo(cmd, args)
	reply, err := c.rc.DoWithTimeout(timeout, cmd, args...)
	c.t.afterDo(cmd, kind, reply)
	if err != nil && c.f.sentinel != nil {
		c.f.sentinel.noteError(c, err)
	}
	if done != nil {
		done(err)
	}
	return reply, err
}

func (c *conn) receive(timeout time.Duration) (any, error) {
	reply, err := c.rc.ReceiveWithTimeout(timeout)
	c.t.onReceive(reply, err)
	if err != nil && c.f.sentinel != nil && !c.aborted.Load() {
		c.f.sentinel.noteError(c, err)
	}
	return reply, err
}

// withContext runs op, which does I/O on c, so that it returns by ctx's
// deadline and when ctx is cancelled. timeout is the read timeout op
// would use without ctx; the earlier of it and ctx's deadline is passed
// to op. Cancellation interrupts the I/O through the socket's deadline,
// which leaves the connection unusable: it is closed on return.
func (c *conn) withContext(ctx context.Context, timeout time.Duration, op func(time.Duration) (any, error)) (any, error) {
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return nil, fmt.Errorf("redispool: %w", context.DeadlineExceeded)
		}
		if timeout == 0 || left < timeout {
			timeout = left
		}
	}
	if ctx.Done() == nil {
		return op(timeout)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redispool: %w", err)
	}
	stop := context.AfterFunc(ctx, c.interrupt)
	reply, err := op(timeout)
	if !stop() {
		// The interrupt fired, perhaps after op finished: the socket's
		// deadline is in the past, so the connection cannot be reused.
		c.broken = true
	}
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("redispool: %w", ctx.Err())
	}
	return reply, err
}

// abort closes the socket under a goroutine blocked reading it, which
// then fails at once. Closing, unlike a deadline in the past, cannot be
// undone by the read deadline redigo sets as a Receive begins. The
// connection must not be reused.
func (c *conn) abort() {
	c.aborted.Store(true)
	c.nc.Close()
}

// activeConn is a borrowed connection, handed to the caller. A new one
// per borrow, so a caller that keeps it after Close can never reach the
// next borrower's connection.
type activeConn struct {
	p *Pool
	c *conn
	// closed is set by the first Close. Atomic so that Close may race
	// with itself, and with a pub/sub receiver checking it (redigo
	// allows a Receive and a Send or Flush at once; see tracker).
	closed atomic.Bool
	// recv is held shared by each Receive, and taken by Close so that it
	// never resets the connection under a receiver (see Close).
	recv sync.RWMutex
}

var (
	_ redis.Conn            = (*activeConn)(nil)
	_ redis.ConnWithTimeout = (*activeConn)(nil)
	_ redis.ConnWithContext = (*activeConn)(nil)
)

// Close returns the connection to the pool. It undoes session state the
// caller left, or closes the connection when that cannot be done. A
// second Close does nothing.
//
// Close may run while another goroutine is in Receive: that is how
// redigo documents stopping a pub/sub receiver. Undoing the
// subscription would mean reading the replies the receiver is reading,
// so Close closes the socket instead; the receiver's read fails and it
// returns, and the connection is closed, not kept.
func (ac *activeConn) Close() error {
	if ac.closed.Swap(true) {
		return nil
	}
	// Receive takes recv and then checks closed; Close sets closed and
	// then tries recv. So either Close finds the receiver here, or the
	// receiver finds closed set and reads nothing.
	if !ac.recv.TryLock() {
		ac.c.abort()
		ac.recv.Lock()
	}
	ac.p.put(ac.c)
	ac.recv.Unlock()
	return nil
}

// enterReceive admits a Receive, which must call ac.recv.RUnlock when
// it is done, or reports that the connection is closed.
func (ac *activeConn) enterReceive() bool {
	ac.recv.RLock()
	if ac.closed.Load() {
		ac.recv.RUnlock()
		return false
	}
	return true
}

func (ac *activeConn) Err() error {
	if ac.closed.Load() {
		return ErrConnClosed
	}
	return ac.c.rc.Err()
}

func (ac *activeConn) Do(cmd string, args ...any) (any, error) {
	if ac.closed.Load() {
		return nil, ErrConnClosed
	}
	return ac.c.do(context.Background(), ac.c.f.cfg.ReadTimeout, cmd, args)
}

func (ac *activeConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	if ac.closed.Load() {
		return nil, ErrConnClosed
	}
	return ac.c.do(context.Background(), timeout, cmd, args)
}

func (ac *activeConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	if ac.closed.Load() {
		return nil, ErrConnClosed
	}
	c := ac.c
	return c.withContext(ctx, c.f.cfg.ReadTimeout, func(timeout time.Duration) (any, error) {
		return c.do(ctx, timeout, cmd, args)
	})
}

func (ac *activeConn) Send(cmd string, args ...any) error {
	if ac.closed.Load() {
		return ErrConnClosed
	}
	ac.c.t.onSend(cmd, args)
	return ac.c.rc.Send(cmd, args...)
}

func (ac *activeConn) Flush() error {
	if ac.closed.Load() {
		return ErrConnClosed
	}
	return ac.c.rc.Flush()
}

func (ac *activeConn) Receive() (any, error) {
	if !ac.enterReceive() {
		return nil, ErrConnClosed
	}
	defer ac.recv.RUnlock()
	return ac.c.receive(ac.c.f.cfg.ReadTimeout)
}

func (ac *activeConn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	if !ac.enterReceive() {
		return nil, ErrConnClosed
	}
	defer ac.recv.RUnlock()
	return ac.c.receive(timeout)
}

func (ac *activeConn) ReceiveContext(ctx context.Context) (any, error) {
	if !ac.enterReceive() {
		return nil, ErrConnClosed
	}
	defer ac.recv.RUnlock()
	c := ac.c
	return c.withContext(ctx, c.f.cfg.ReadTimeout, c.receive)
}

// errorConn is what Get returns when it cannot borrow: every method
// but Close returns the error, as with redigo's Pool, whose error
// connection closes with nil (there is nothing to return).
type errorConn struct{ err error }

var (
	_ redis.Conn            = errorConn{}
	_ redis.ConnWithTimeout = errorConn{}
	_ redis.ConnWithContext = errorConn{}
)

func (ec errorConn) Do(string, ...any) (any, error) { return nil, ec.err }
func (ec errorConn) DoWithTimeout(time.Duration, string, ...any) (any, error) {
	return nil, ec.err
}
func (ec errorConn) DoContext(context.Context, string, ...any) (any, error) { return nil, ec.err }
func (ec errorConn) Send(string, ...any) error                              { return ec.err }
func (ec errorConn) Err() error                                             { return ec.err }
func (ec errorConn) Close() error                                           { return nil }
func (ec errorConn) Flush() error                                           { return ec.err }
func (ec errorConn) Receive() (any, error)                                  { return nil, ec.err }
func (ec errorConn) ReceiveWithTimeout(time.Duration) (any, error)          { return nil, ec.err }
func (ec errorConn) ReceiveContext(context.Context) (any, error)            { return nil, ec.err }
