package redispool

import (
	"context"
	"errors"
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
	addr    string                // the address dialed: the target's when it was dialed
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
	gen    uint64        // the target's generation it was dialed under (target.gen)

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
	case c.gen != c.f.target.gen():
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
	if err != nil {
		c.noteError(err)
	}
	if done != nil {
		done(err)
	}
	return reply, err
}

func (c *conn) receive(timeout time.Duration) (any, error) {
	reply, err := c.rc.ReceiveWithTimeout(timeout)
	c.t.onReceive(reply, err)
	if err != nil && !c.aborted.Load() {
		c.noteError(err)
	}
	return reply, err
}

// noteError shows the target an error a command on c returned; a
// connection the target retires is of no generation and will be closed
// when it is returned.
func (c *conn) noteError(err error) {
	if c.f.target.noteError(err) {
		c.gen = 0
	}
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
	return reply, deadlineErr(ctx, err)
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

// pipeConn is a connection from Get or GetContext with
// Config.PipelineGet. It holds no connection of its own at first: its
// Do and DoContext calls go down the pool's shared connections,
// pipelined with other callers' commands (pipeline.go), as Pool.Do's do,
// while the command is one the command table lets through (commands.go)
// or SELECT of the pool's own database, which leaves no state. The first
// call that needs a connection of its own — any other command (one that
// blocks, or that reads or changes session state), DoWithTimeout, Send,
// Receive — borrows one, and from then on every call runs on it, until
// Close returns it.
//
// Every command gives the result it would give on an exclusive
// connection. The cases that need care:
//
//   - A pipelined command has completed when Do returns, so what the
//     borrower runs next, on a shared connection or its own, sees it.
//   - WAIT and WAITAOF count the replicas (or disks) that have the
//     writes of the connection they run on. After pipelined writes the
//     borrower's own connection has made none, and WAIT would return
//     at once, counting replicas that lack them. So the first WAIT or
//     WAITAOF after a pipelined command that may write is preceded, on
//     the borrower's own connection, by a PUBLISH to the channel
//     waitChannel: Redis replicates it, which makes that connection's
//     last write later than the pipelined ones. (A server in cluster
//     mode does not replicate PUBLISH: clusterConn.markWrites writes a
//     key instead.) Do, DoWithTimeout and Send all do so, but not in a
//     transaction (see markWrites).
//   - An I/O error of a shared connection, or a context that ends while
//     a command is in flight, breaks this connection as it would break
//     an exclusive one: every later call returns the error.
//   - Do("") reads the replies of commands sent with Send; before any
//     Send there are none, and it returns an empty reply, as redigo
//     does, without borrowing (redigo's own pool calls it on Close).
//   - CLIENT ID, CLIENT INFO and the like are not pipelined: they
//     describe the borrower's own connection, which they borrow.
//
// Get does not borrow, so it does not wait for a connection and does not
// fail for want of one: a borrow that fails does so at the first call
// that needs it, and breaks the connection, as a failed Get leaves an
// error connection (unless the call's context had ended before it). A
// pipeConn that never borrowed does not count as Active, and
// AbandonedTimeout does not see it.
type pipeConn struct {
	p      *Pool
	closed atomic.Bool

	// mu serializes borrowing ex: a receiver and a sender may both be
	// first to need it (see tracker). Close takes it too.
	mu sync.Mutex
	ex atomic.Pointer[activeConn] // the borrower's own connection, once borrowed
	// stop ends the borrow under way in exclusive, if any: Close calls
	// it, so that a receiver waiting for a connection stops at once, as
	// one reading stops when Close closes the socket under it.
	stop atomic.Pointer[context.CancelFunc]

	// err is what broke the connection: an error of a shared
	// connection, or a borrow that failed. Atomic: a receiver's borrow
	// may fail while a sender looks.
	err atomic.Pointer[error]

	// wrote is set when a command that may write went down a shared
	// connection since the last WAIT marker; touched by Do, DoContext,
	// DoWithTimeout and Send, which redigo runs one at a time.
	wrote bool
}

// getPiped is GetContext with Config.PipelineGet: it borrows nothing,
// but fails as a borrow would for a closed pool or an ended ctx.
func (p *Pool) getPiped(ctx context.Context) (redis.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redispool: get connection: %w", err)
	}
	if p.isClosed() {
		return nil, ErrPoolClosed
	}
	return &pipeConn{p: p}, nil
}

var (
	_ redis.Conn            = (*pipeConn)(nil)
	_ redis.ConnWithTimeout = (*pipeConn)(nil)
	_ redis.ConnWithContext = (*pipeConn)(nil)
)

// waitChannel is the channel of the PUBLISH that precedes WAIT and
// WAITAOF after pipelined writes.
const waitChannel = "__redispool:wait"

// exclusive returns the borrower's own connection, borrowing it under
// ctx the first time.
func (pc *pipeConn) exclusive(ctx context.Context) (*activeConn, error) {
	if ac := pc.ex.Load(); ac != nil {
		return ac, nil
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if ac := pc.ex.Load(); ac != nil {
		return ac, nil
	}
	if err := ctx.Err(); err != nil {
		// Ended before the call: no borrow, nothing broken, as on an
		// exclusive connection, where nothing would be sent.
		return nil, fmt.Errorf("redispool: get connection: %w", err)
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	pc.stop.Store(&stop)
	defer pc.stop.Store(nil)
	// Close sets closed, then calls stop if stored: checked after the
	// Store, so either Close finds stop or this finds closed.
	if pc.closed.Load() {
		return nil, ErrConnClosed
	}
	c, err := pc.p.get(ctx)
	if err != nil {
		if pc.closed.Load() {
			return nil, ErrConnClosed
		}
		// As a Get that failed leaves an error connection: redigo's
		// MULTI idiom ignores the errors before EXEC's, and a later
		// borrow, or the pipeline, would run the queued commands
		// outside any transaction.
		pc.fail(err)
		return nil, err
	}
	ac := &activeConn{p: pc.p, c: c}
	pc.ex.Store(ac)
	return ac, nil
}

// failed returns what broke the connection, or nil.
func (pc *pipeConn) failed() error {
	if err := pc.err.Load(); err != nil {
		return *err
	}
	return nil
}

// fail breaks the connection with err, unless it is broken already.
func (pc *pipeConn) fail(err error) { pc.err.CompareAndSwap(nil, &err) }

func (pc *pipeConn) Close() error {
	if pc.closed.Swap(true) {
		return nil
	}
	// A borrow under way is stopped; if it got a connection even so, it
	// is returned here.
	if stop := pc.stop.Load(); stop != nil {
		(*stop)()
	}
	pc.mu.Lock()
	ac := pc.ex.Load()
	pc.mu.Unlock()
	if ac != nil {
		return ac.Close()
	}
	return nil
}

func (pc *pipeConn) Err() error {
	switch {
	case pc.closed.Load():
		return ErrConnClosed
	case pc.failed() != nil:
		return pc.failed()
	}
	if ac := pc.ex.Load(); ac != nil {
		return ac.Err()
	}
	return nil
}

func (pc *pipeConn) Do(cmd string, args ...any) (any, error) {
	return pc.do(context.Background(), cmd, args)
}

func (pc *pipeConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	return pc.do(ctx, cmd, args)
}

func (pc *pipeConn) do(ctx context.Context, cmd string, args []any) (any, error) {
	if pc.closed.Load() {
		return nil, ErrConnClosed
	}
	if err := pc.failed(); err != nil {
		return nil, err
	}
	ac := pc.ex.Load()
	if ac == nil {
		info := lookupCommand(cmd)
		switch {
		case info.pipelined || info.state == kindSelect && pc.ownDB(args):
			if ctx.Err() != nil {
				return nil, fmt.Errorf("redispool: %w", ctx.Err()) // nothing sent: nothing broken
			}
			reply, err := pc.p.pipes.do(ctx, cmd, args)
			if err == errNotPipelined { // too large to share a connection
				break
			}
			if mayWrite(cmd, info) {
				pc.wrote = true
			}
			if _, ok := err.(redis.Error); err != nil && !ok {
				pc.fail(err)
			}
			return reply, err
		case cmd == "":
			return []any{}, nil // no replies pending: nothing was sent
		}
		var err error
		if ac, err = pc.exclusive(ctx); err != nil {
			return nil, err
		}
	}
	if err := pc.markWrites(ctx, ac, cmd, false); err != nil {
		return nil, err
	}
	return ac.DoContext(ctx, cmd, args...)
}

// markWrites prepares WAIT or WAITAOF (cmd) on ac after pipelined
// writes: it makes ac's last write later than theirs with a PUBLISH to
// waitChannel (see the type's doc). For any other command, or with no
// pipelined write since the last PUBLISH, it does nothing.
//
// In a transaction it does nothing either: the PUBLISH would be queued,
// and EXEC would answer one command more than the borrower queued; a
// WAIT there does not wait (as clusterConn.markWrites). A MULTI whose
// EXEC or DISCARD was sent but not yet answered is over by the time
// the PUBLISH runs.
//
// send is for Send: the PUBLISH's reply must not reach Receive, so it
// is read here, which it can only be before anything else is sent.
func (pc *pipeConn) markWrites(ctx context.Context, ac *activeConn, cmd string, send bool) error {
	if !pc.wrote || lookupCommand(cmd).block != blockOwnWrites {
		return nil
	}
	t := &ac.c.t
	if t.flags()&stateMulti != 0 && t.pending.Load() == 0 {
		return nil
	}
	switch {
	case send && t.sent != 0:
		return errors.New("redispool: " + cmd + " sent with Send after other Sends on a PipelineGet connection that wrote pipelined: send it with Do, or first")
	case t.sent != t.recvd:
		// Replies of Sends are unread, and the Do of cmd will read them
		// all, returning the last reply and the first error: the
		// PUBLISH goes with them, so that its Do does not take them.
		if err := ac.Send("PUBLISH", waitChannel, ""); err != nil {
			return err
		}
		pc.wrote = false
		return nil
	}
	if _, err := ac.DoContext(ctx, "PUBLISH", waitChannel, ""); err != nil {
		return fmt.Errorf("redispool: PUBLISH to %s before %s, to cover the writes sent pipelined: %w", waitChannel, cmd, err)
	}
	pc.wrote = false
	return nil
}

// mayWrite reports whether a pipelined command may write: a keyed one
// not known to only read, or PUBLISH, which Redis replicates. SELECT of
// the pool's database, PING, ECHO, TIME, DBSIZE, SCAN and RANDOMKEY do
// not.
func mayWrite(cmd string, info cmdInfo) bool {
	if info.rule == keyNone {
		return equalFoldUpper(cmd, "PUBLISH")
	}
	return !info.readOnly
}

// ownDB reports whether SELECT's arguments name the pool's database.
func (pc *pipeConn) ownDB(args []any) bool {
	if len(args) != 1 {
		return false
	}
	n, ok := argInt(args[0])
	return ok && n == pc.p.cfg.DB
}

func (pc *pipeConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	// A timeout may be longer than a shared connection's ReadTimeout.
	ac, err := pc.own(context.Background())
	if err != nil {
		return nil, err
	}
	if err := pc.markWrites(context.Background(), ac, cmd, false); err != nil {
		return nil, err
	}
	return ac.DoWithTimeout(timeout, cmd, args...)
}

// own returns the borrower's own connection for a call other than Do.
func (pc *pipeConn) own(ctx context.Context) (*activeConn, error) {
	if pc.closed.Load() {
		return nil, ErrConnClosed
	}
	if err := pc.failed(); err != nil {
		return nil, err
	}
	return pc.exclusive(ctx)
}

func (pc *pipeConn) Send(cmd string, args ...any) error {
	ac, err := pc.own(context.Background())
	if err != nil {
		return err
	}
	if err := pc.markWrites(context.Background(), ac, cmd, true); err != nil {
		return err
	}
	return ac.Send(cmd, args...)
}

func (pc *pipeConn) Flush() error {
	if pc.closed.Load() {
		return ErrConnClosed
	}
	if ac := pc.ex.Load(); ac != nil {
		return ac.Flush()
	}
	return pc.failed() // nothing sent, nothing to flush
}

func (pc *pipeConn) Receive() (any, error) {
	ac, err := pc.own(context.Background())
	if err != nil {
		return nil, err
	}
	return ac.Receive()
}

func (pc *pipeConn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	ac, err := pc.own(context.Background())
	if err != nil {
		return nil, err
	}
	return ac.ReceiveWithTimeout(timeout)
}

func (pc *pipeConn) ReceiveContext(ctx context.Context) (any, error) {
	ac, err := pc.own(ctx)
	if err != nil {
		return nil, err
	}
	return ac.ReceiveContext(ctx)
}
