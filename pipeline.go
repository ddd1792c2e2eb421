package redispool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Auto-pipelining (issue 16). A pool lends a whole connection for a
// whole round trip, so under load every command pays a write, a read
// and a wake-up on both sides. A pipeline instead queues the one-shot
// commands of many goroutines onto a few shared connections: whatever
// is queued goes out in one write, and the replies, which Redis sends
// in order, are matched to their callers first in, first out.
//
// Each shared connection (a pipe) has one loop goroutine that writes
// and reads; callers encode their command into the pipe's buffer under
// its lock and wait for their reply. The loop writes what is queued
// only when it would otherwise block on the socket, so replies already
// buffered are handed out first and the batches grow with the load.
// When the pipe is idle, a caller does its own round trip instead, on
// the loop's behalf: with nobody else waiting a hand-off to the loop
// would only add latency (at one goroutine, half the throughput). A
// context that ends meanwhile interrupts the I/O through the socket's
// deadline; a command written whose reply has not begun is then left
// in flight for the loop to read and drop, as if it had gone through
// the loop.
//
// A shared connection is a pooled connection, borrowed through
// pipeHost: set up as every other, counted in MaxTotal and Stats, but
// not tracked for AbandonedTimeout. It goes back when it has had
// nothing in flight for pipeIdleReturn, or at once when an exclusive
// borrower waits, and is retired when stale (MaxConnLifetime, or a
// master the pool has left) once its replies are in.
//
// Lock order: pipe.mu, then nothing. The loop does no I/O under it.

const (
	// pipeIdleReturn is how long a shared connection with nothing in
	// flight stays with its pipe before it goes back to the pool, where
	// the evictor, MinIdle and the borrow check see it.
	pipeIdleReturn = 20 * time.Millisecond

	// pipeMaxCommand is the largest encoded command that is pipelined;
	// a larger one takes an exclusive connection, so that a big write
	// does not hold up the small commands queued behind it.
	pipeMaxCommand = 64 << 10

	// pipeReadBuffer is the size of a pipe's read buffer.
	pipeReadBuffer = 16 << 10

	// pipeKeepBuffer is the largest write buffer a pipe keeps for
	// reuse; a larger one, grown by a burst, goes to the collector.
	pipeKeepBuffer = 1 << 20
)

// errNotPipelined tells the caller of pipeline.do to send the command
// on an exclusive connection instead.
var errNotPipelined = errors.New("redispool: command not pipelined")

// An unsentError is the error of commands that failed before they were
// written: the pipe could not get a connection for them (a refused
// dial, say). A Cluster may send them again; its text is the cause's.
type unsentError struct{ err error }

func (e unsentError) Error() string { return e.err.Error() }
func (e unsentError) Unwrap() error { return e.err }

// A sharedConn is a pooled connection as a pipe uses it.
type sharedConn interface {
	// sharedStream is what the pipe writes to and reads from (TLS and
	// the reply guard included).
	sharedStream() net.Conn
	// stale reports that the connection must not take new commands: it
	// is past MaxConnLifetime, or connected to a master the pool left.
	stale() bool
	// noteReply shows the host an error reply or an I/O error.
	noteReply(err error)
}

// A pipeHost lends shared connections: the pool, seen by its pipeline.
type pipeHost interface {
	// lendShared borrows a connection for a pipe. It is not tracked
	// for AbandonedTimeout.
	lendShared(ctx context.Context) (sharedConn, error)
	// returnShared gives a connection back; broken, if not nil, is why
	// it must be closed. lastWrite is when the pipe last wrote to it:
	// the pool counts its idle time from then, so that the borrow
	// check PINGs a connection the pipe held idle, as it would one
	// idle in the pool.
	returnShared(c sharedConn, broken error, lastWrite time.Time)
	// borrowersWaiting reports whether an exclusive borrower waits for
	// a connection.
	borrowersWaiting() bool
	// serverAddr names the server, for errors.
	serverAddr() string
}

type pipeConfig struct {
	conns        int           // pipes, at least 1
	readTimeout  time.Duration // zero: none
	writeTimeout time.Duration // zero: none
	idleReturn   time.Duration
}

// A pipeline is a pool's set of pipes.
type pipeline struct {
	host   pipeHost
	hook   func(ctx context.Context, cmd string) func(error) // Config.CommandHook's start, or nil
	cfg    pipeConfig
	pipes  []*pipe
	rr     atomic.Uint32
	ctx    context.Context // ends lends in progress at close
	cancel context.CancelFunc
	loops  sync.WaitGroup

	commands atomic.Int64 // commands written, inline round trips included
	batches  atomic.Int64 // writes of the loops and inline round trips
	sizes    [PipelineBatchBuckets]atomic.Int64
	shared   atomic.Int64 // connections the pipes hold now
}

// noteBatch counts a write of n commands: per write, not per command,
// so that the counters cost a busy pipe less as its batches grow.
func (pl *pipeline) noteBatch(n int) {
	pl.batches.Add(1)
	pl.commands.Add(int64(n))
	pl.sizes[batchBucket(n)].Add(1)
}

func newPipeline(host pipeHost, cfg pipeConfig) *pipeline {
	cfg.conns = max(cfg.conns, 1)
	if cfg.idleReturn <= 0 {
		cfg.idleReturn = pipeIdleReturn
	}
	pl := &pipeline{host: host, cfg: cfg}
	pl.ctx, pl.cancel = context.WithCancel(context.Background())
	for range cfg.conns {
		p := &pipe{pl: pl, wake: make(chan struct{}, 1), interrupted: make(chan struct{}, 1)}
		p.interrupt = p.interruptIO
		pl.pipes = append(pl.pipes, p)
	}
	return pl
}

// pipeState is where a pipe's connection is and who does its I/O.
type pipeState uint8

const (
	pipeStopped pipeState = iota // no connection, no loop
	pipeBusy                     // the loop is writing, reading or getting a connection
	pipeIdle                     // the loop is parked with a connection and nothing in flight
	pipeInline                   // a caller does its own round trip on the connection
)

// A pipe is one shared connection and the commands queued on it.
type pipe struct {
	pl   *pipeline
	wake chan struct{} // to the parked loop; buffered

	// interrupt is interruptIO, bound once, for context.AfterFunc;
	// interrupted gets a token when it has run.
	interrupt   func()
	interrupted chan struct{}

	mu      sync.Mutex // protects following fields
	state   pipeState
	closed  bool
	buf     []byte  // the encoded commands of queued
	queued  []*call // not yet written, oldest first
	ops     uint64  // commands taken, for the idle check
	yield   bool    // give the connection back as soon as nothing is in flight
	lending bool    // the loop is borrowing a connection for the queue
	lendFor int     // while lending: how many of queued it borrows for
	held    bool    // the pipe holds a connection: from a lend until its release

	nq atomic.Int32 // len(queued), read by the loop without the lock

	// Owned by whoever does the I/O: the loop, or an inline caller
	// while the state is pipeInline; handed over under mu.
	c         sharedConn
	rw        net.Conn
	rd        *bufio.Reader
	spare     []byte  // the buffer not in use as buf
	inflight  []*call // written, reply not yet read, oldest first from head
	head      int
	batch     []*call   // the slice not in use as queued
	rdFor     time.Time // the send time the read deadline was set for
	lastWrite time.Time // when c was last written to
	deadlines bool      // a deadline was set on rw: clear it on release
}

// A call is one pipelined command waiting for its reply.
type call struct {
	st       atomic.Int32
	ch       chan struct{} // gets a token when the reply or error is set
	reply    any
	err      error
	off, end int       // its bytes in pipe.buf, while queued
	sent     time.Time // when its batch was written
}

const (
	callQueued    int32 = iota // in pipe.queued, not yet written
	callSent                   // written, caller waiting
	callAbandoned              // written, caller gone: drop the reply
	callDone                   // reply or error set, token sent or on its way
)

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan struct{}, 1)} }}

func (pl *pipeline) pick() *pipe {
	if len(pl.pipes) == 1 {
		return pl.pipes[0]
	}
	return pl.pipes[pl.rr.Add(1)%uint32(len(pl.pipes))]
}

// do sends one command down a shared connection and returns its reply.
// It returns errNotPipelined, having sent nothing, for a command the
// caller must send on an exclusive connection.
func (pl *pipeline) do(ctx context.Context, cmd string, args []any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redispool: %w", err)
	}
	p := pl.pick()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	off := len(p.buf)
	p.appendLocked(off, cmd, args)
	if len(p.buf)-off > pipeMaxCommand {
		p.buf = p.buf[:off]
		p.mu.Unlock()
		return nil, errNotPipelined
	}
	p.ops++
	wake := false
	switch p.state {
	case pipeIdle:
		if !p.c.stale() {
			p.state = pipeInline
			b := p.buf
			p.buf = p.spare[:0]
			p.spare = nil
			p.mu.Unlock()
			if pl.hook == nil {
				return p.inline(ctx, b)
			}
			done := p.hookInline(ctx, cmd, b)
			reply, err := p.inline(ctx, b)
			if done != nil {
				done(hookErr(reply, err))
			}
			return reply, err
		}
		p.state = pipeBusy
		wake = true
	case pipeStopped:
		p.state = pipeBusy
		pl.loops.Add(1)
		go p.loop()
	}
	cl := callPool.Get().(*call)
	cl.st.Store(callQueued)
	cl.off, cl.end = off, len(p.buf)
	p.queued = append(p.queued, cl)
	p.nq.Store(int32(len(p.queued)))
	p.mu.Unlock()
	if wake {
		p.signal()
	}
	if pl.hook == nil {
		return p.wait(ctx, cl)
	}
	// Started once the command is queued, not before: a command that
	// goes to an exclusive connection instead is seen there.
	done := pl.hook(ctx, cmd)
	reply, err := p.wait(ctx, cl)
	if done != nil {
		done(hookErr(reply, err))
	}
	return reply, err
}

// appendLocked encodes a command into p.buf, with p.mu held. An argument
// whose encoding panics (a caller's redis.Argument) must neither leave
// the lock held, which would wedge every caller of the pool, nor leave
// half a command in the buffer for the next write to send.
func (p *pipe) appendLocked(off int, cmd string, args []any) {
	defer func() {
		if r := recover(); r != nil {
			p.buf = p.buf[:off]
			p.mu.Unlock()
			panic(r)
		}
	}()
	p.buf = appendCommand(p.buf, cmd, args)
}

// hookErr is the error a CommandHook is told of: err, or the error
// reply.
func hookErr(reply any, err error) error {
	if e, ok := reply.(redis.Error); ok && err == nil {
		return e
	}
	return err
}

func (p *pipe) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// inline does one round trip for a caller that found the pipe idle. b
// holds its command; nothing else is in flight. A context that can end
// interrupts the I/O through the socket's deadline, as on an exclusive
// connection (conn.withContext). If it ends after the command was
// written and before any of the reply arrived, the call is left in
// flight, abandoned, for the loop to read and drop its reply, and the
// connection stays in use; if the write or the reply is cut short, the
// connection is closed.
func (p *pipe) inline(ctx context.Context, b []byte) (any, error) {
	c := p.c
	p.pl.noteBatch(1)
	t := time.Now()
	p.lastWrite = t
	// Both deadlines are set before the interrupt can fire, so that
	// neither undoes it.
	err := p.setDeadlines(t)
	var stop func() bool
	if err == nil && ctx.Done() != nil {
		stop = context.AfterFunc(ctx, p.interrupt)
	}
	var reply any
	sent, started := false, false
	if err == nil {
		if _, err = p.rw.Write(b); err == nil {
			sent = true
			// Peek first, so that an interrupt that finds no reply
			// yet leaves nothing of it consumed.
			if _, err = p.rd.Peek(1); err == nil {
				started = true
				reply, err = p.readReply()
			}
		}
	}
	p.keepSpare(b)
	interrupted := stop != nil && !stop()
	if interrupted {
		<-p.interrupted // its deadline is set: ours may replace it
	}
	switch {
	case err == nil:
		if interrupted {
			p.clearDeadlines()
		}
	case interrupted && sent && !started:
		// The reply is still to come, whole: the loop reads and drops
		// it.
		p.clearDeadlines()
		cl := callPool.Get().(*call)
		cl.st.Store(callAbandoned)
		cl.sent = t
		if p.head == len(p.inflight) {
			p.inflight, p.head = p.inflight[:0], 0
		}
		p.inflight = append(p.inflight, cl)
		err = fmt.Errorf("redispool: %w", ctx.Err())
	case interrupted:
		err = fmt.Errorf("redispool: %w", ctx.Err())
		p.release(fmt.Errorf("redispool: shared connection to %s interrupted mid-command: %w", p.pl.host.serverAddr(), err))
	default:
		// Closed before the caller hears of it, as an exclusive
		// connection would be; the loop lends another if need be.
		err = p.failure(err, 1)
		p.release(err)
	}
	p.endInline()
	if err != nil {
		return nil, err
	}
	if e, ok := reply.(redis.Error); ok {
		c.noteReply(e)
		return nil, e
	}
	return reply, nil
}

// endInline hands the pipe back from an inline round trip: to the loop
// if there is work for it, else idle.
func (p *pipe) endInline() {
	p.mu.Lock()
	switch {
	case p.c == nil || p.head < len(p.inflight) || len(p.queued) > 0 || p.closed || p.yield:
		p.state = pipeBusy
	default:
		p.state = pipeIdle
	}
	busy := p.state == pipeBusy
	p.mu.Unlock()
	if busy {
		p.signal()
	}
}

// hookInline starts the CommandHook for an inline round trip whose
// command b is not yet written. A hook that panics (user code, perhaps
// recovered by an HTTP server) must not leave the pipe inline for ever,
// with every later caller queued behind a round trip that never comes:
// the command is dropped unsent and the pipe handed back.
func (p *pipe) hookInline(ctx context.Context, cmd string, b []byte) (done func(error)) {
	ok := false
	defer func() {
		if !ok {
			p.keepSpare(b)
			p.endInline()
		}
	}()
	done = p.pl.hook(ctx, cmd)
	ok = true
	return done
}

// interruptIO makes the I/O of an inline round trip fail at once; the
// context of its caller ended. It runs in a goroutine of its own
// (context.AfterFunc), and tells the caller when it is done.
func (p *pipe) interruptIO() {
	p.rw.SetDeadline(aLongTimeAgo)
	p.interrupted <- struct{}{}
}

// clearDeadlines undoes an interrupt that did not break the connection.
func (p *pipe) clearDeadlines() {
	p.rw.SetDeadline(time.Time{})
	p.rdFor, p.deadlines = time.Time{}, false
}

// keepSpare keeps b, written, as the next buffer to hand the callers,
// unless it grew too large to keep. Either way spare must stop naming
// the buffer the callers hold now: with both the same, the next write
// would go out while callers append to it.
func (p *pipe) keepSpare(b []byte) {
	if cap(b) <= pipeKeepBuffer {
		p.spare = b[:0]
	} else {
		p.spare = nil
	}
}

// setDeadlines sets the write and read deadlines of a round trip
// started at t.
func (p *pipe) setDeadlines(t time.Time) error {
	if wt := p.pl.cfg.writeTimeout; wt > 0 {
		if err := p.rw.SetWriteDeadline(t.Add(wt)); err != nil {
			return err
		}
		p.deadlines = true
	}
	p.setReadDeadline(t)
	return nil
}

// wait waits for cl's reply, or for ctx to end.
func (p *pipe) wait(ctx context.Context, cl *call) (any, error) {
	if done := ctx.Done(); done == nil {
		<-cl.ch
	} else {
		select {
		case <-cl.ch:
		case <-done:
			if cancelled, waitedForConn := p.cancel(cl); waitedForConn {
				// Not sent because every connection was borrowed: the
				// error an exclusive borrow would have given.
				return nil, fmt.Errorf("%w: %w while the pipeline waited for a connection", ErrPoolExhausted, ctx.Err())
			} else if cancelled {
				return nil, fmt.Errorf("redispool: %w", ctx.Err())
			}
			<-cl.ch // delivered as ctx ended
		}
	}
	reply, err := cl.reply, cl.err
	cl.reply, cl.err = nil, nil
	callPool.Put(cl)
	return reply, err
}

// cancel withdraws cl, whose caller's context ended. A command not yet
// written is taken out of the queue, never to be sent; one written is
// abandoned, its reply to be read and dropped. It reports false when
// the reply was delivered meanwhile.
func (p *pipe) cancel(cl *call) (cancelled, waitedForConn bool) {
	p.mu.Lock()
	if cl.st.Load() == callQueued {
		waitedForConn = p.lending
		for i, q := range p.queued {
			if q != cl {
				continue
			}
			if p.lending && i < p.lendFor {
				p.lendFor--
			}
			n := cl.end - cl.off
			p.buf = append(p.buf[:cl.off], p.buf[cl.end:]...)
			for _, later := range p.queued[i+1:] {
				later.off -= n
				later.end -= n
			}
			copy(p.queued[i:], p.queued[i+1:])
			p.queued[len(p.queued)-1] = nil
			p.queued = p.queued[:len(p.queued)-1]
			break
		}
		p.nq.Store(int32(len(p.queued)))
		p.mu.Unlock()
		callPool.Put(cl)
		return true, waitedForConn
	}
	p.mu.Unlock()
	return cl.st.CompareAndSwap(callSent, callAbandoned), false
}

// deliver hands cl its reply, or drops the reply if its caller left.
func deliver(cl *call, reply any, err error) {
	cl.reply, cl.err = reply, err
	if cl.st.CompareAndSwap(callSent, callDone) {
		cl.ch <- struct{}{}
		return
	}
	// Abandoned: the call is the loop's now.
	cl.reply, cl.err = nil, nil
	callPool.Put(cl)
}

// failQueued fails every queued call with err. It is called with p.mu
// held and returns the calls, to be signalled once it is released.
func (p *pipe) failQueuedLocked(err error) []*call {
	return p.failOldestLocked(err, len(p.queued))
}

// failOldestLocked fails the n oldest queued commands with err and
// returns them, to be signalled once p.mu is released.
func (p *pipe) failOldestLocked(err error, n int) []*call {
	failed := p.queued
	if n < len(p.queued) {
		failed = append([]*call(nil), p.queued[:n]...)
		cut := p.queued[n].off
		p.buf = append(p.buf[:0], p.buf[cut:]...)
		rest := copy(p.queued, p.queued[n:])
		clear(p.queued[rest:])
		p.queued = p.queued[:rest]
		for _, cl := range p.queued {
			cl.off -= cut
			cl.end -= cut
		}
	} else {
		p.queued = nil
		p.buf = p.buf[:0]
	}
	for _, cl := range failed {
		cl.reply, cl.err = nil, err
		cl.st.Store(callDone)
	}
	p.nq.Store(int32(len(p.queued)))
	return failed
}

func signalAll(calls []*call) {
	for _, cl := range calls {
		cl.ch <- struct{}{}
	}
}

// loop writes and reads for the pipe while it has a connection or
// commands queued.
func (p *pipe) loop() {
	defer p.pl.loops.Done()
	tick := time.NewTicker(p.pl.cfg.idleReturn)
	defer tick.Stop()
	var lastOps uint64
	for {
		p.mu.Lock()
		if p.closed && len(p.queued) > 0 {
			failed := p.failQueuedLocked(ErrPoolClosed)
			p.mu.Unlock()
			signalAll(failed)
			continue
		}
		drained := p.head == len(p.inflight)
		stale := p.c != nil && p.c.stale()
		if drained && p.c != nil && (p.closed || p.yield || stale || (len(p.queued) == 0 && p.pl.host.borrowersWaiting())) {
			p.mu.Unlock()
			p.release(nil)
			continue
		}
		if len(p.queued) > 0 && p.c == nil {
			p.lending, p.lendFor = true, len(p.queued)
			p.mu.Unlock()
			err := p.lend()
			p.mu.Lock()
			p.lending = false
			p.held = err == nil
			if err == nil {
				p.mu.Unlock()
				continue
			}
			// A failed borrow fails the commands it was made for, not
			// those queued while it was under way: theirs is the next
			// one. A command sent once the server has recovered must not
			// fail for a dial that began before (a password being
			// rotated, a restart), as it would not on a connection of
			// its own. Each command so fails only for a borrow begun
			// after it was queued.
			n := p.lendFor
			if p.closed || errors.Is(err, ErrPoolClosed) {
				n = len(p.queued)
			}
			failed := p.failOldestLocked(err, n)
			stop := len(p.queued) == 0
			if stop {
				p.state = pipeStopped
			}
			p.mu.Unlock()
			signalAll(failed)
			if stop {
				return
			}
			continue
		}
		// A stale connection takes no more commands: its replies are
		// read, then it goes back and the queue waits for another.
		canWrite := !stale
		if len(p.queued) > 0 && canWrite {
			p.writeBatchLocked() // unlocks p.mu
		} else if drained {
			if p.c == nil {
				p.state = pipeStopped
				p.yield = false
				p.mu.Unlock()
				return
			}
			p.state = pipeIdle
			p.mu.Unlock()
			p.park(tick, &lastOps)
			continue
		} else {
			p.mu.Unlock()
		}
		p.readInflight(canWrite)
	}
}

// park waits, idle, for a command, or until the connection has been
// idle for the idle limit, and then gives it back.
func (p *pipe) park(tick *time.Ticker, lastOps *uint64) {
	for {
		select {
		case <-p.wake:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		if p.state != pipeIdle {
			p.mu.Unlock()
			continue // an inline round trip is under way, or a wake is coming
		}
		if p.ops != *lastOps && !p.c.stale() {
			*lastOps = p.ops
			p.mu.Unlock()
			continue
		}
		// Busy while it is given back, so that no caller starts a round
		// trip on it or another loop.
		p.state = pipeBusy
		p.mu.Unlock()
		p.release(nil)
		return
	}
}

// writeBatchLocked writes every queued command in one write. It is
// called with p.mu held, and unlocks it.
func (p *pipe) writeBatchLocked() {
	b := p.buf
	p.buf = p.spare[:0]
	batch := p.queued
	p.queued = p.batch[:0]
	p.nq.Store(0)
	for _, cl := range batch {
		cl.st.Store(callSent)
	}
	p.mu.Unlock()

	p.pl.noteBatch(len(batch))
	t := time.Now()
	p.lastWrite = t
	for _, cl := range batch {
		cl.sent = t
	}
	if p.head == len(p.inflight) {
		p.inflight, p.head = p.inflight[:0], 0
	}
	p.inflight = append(p.inflight, batch...)
	clear(batch)
	p.batch = batch[:0]
	err := p.write(b, t)
	p.keepSpare(b)
	if err != nil {
		p.failInflight(p.failure(err, len(p.inflight)-p.head))
	}
}

// readInflight reads replies and hands them out until nothing is in
// flight; but when it has read every reply buffered and commands wait to
// be written, it returns first, if canWrite, so that the loop writes
// them before it blocks on the socket.
func (p *pipe) readInflight(canWrite bool) {
	for p.head < len(p.inflight) {
		if p.rd.Buffered() == 0 {
			if canWrite && p.nq.Load() > 0 {
				return
			}
			p.setReadDeadline(p.inflight[p.head].sent)
		}
		reply, err := p.readReply()
		if err != nil {
			p.failInflight(p.failure(err, len(p.inflight)-p.head))
			return
		}
		cl := p.inflight[p.head]
		p.inflight[p.head] = nil
		p.head++
		if e, ok := reply.(redis.Error); ok {
			p.c.noteReply(e)
			deliver(cl, nil, e)
		} else {
			deliver(cl, reply, nil)
		}
	}
	p.inflight, p.head = p.inflight[:0], 0
}

// failInflight closes the connection and fails every command in flight
// on it with err: closed first, so that a caller who hears of the
// failure finds it closed, as with an exclusive connection.
func (p *pipe) failInflight(err error) {
	p.release(err)
	for i := p.head; i < len(p.inflight); i++ {
		deliver(p.inflight[i], nil, err)
		p.inflight[i] = nil
	}
	p.inflight, p.head = p.inflight[:0], 0
}

// failure describes an I/O or protocol error on the shared connection
// with n commands in flight.
func (p *pipe) failure(err error, n int) error {
	p.c.noteReply(err)
	addr := p.pl.host.serverAddr()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("redispool: no reply from %s within ReadTimeout %v on a shared connection; closed it, failing the %d commands in flight (they may have run): %w",
			addr, p.pl.cfg.readTimeout, n, err)
	}
	return fmt.Errorf("redispool: shared connection to %s failed; closed it, failing the %d commands in flight (they may have run): %w", addr, n, err)
}

func (p *pipe) lend() error {
	ctx := p.pl.ctx
	c, err := p.pl.host.lendShared(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ErrPoolClosed
		}
		return unsentError{err}
	}
	p.pl.shared.Add(1)
	p.c, p.rw = c, c.sharedStream()
	if p.rd == nil {
		p.rd = bufio.NewReaderSize(p.rw, pipeReadBuffer)
	} else {
		p.rd.Reset(p.rw)
	}
	p.rdFor, p.deadlines = time.Time{}, false
	return nil
}

// release gives the connection back: to be closed if broken is not
// nil. Nothing may be in flight on it.
func (p *pipe) release(broken error) {
	if p.c == nil {
		return
	}
	if broken == nil && p.rd.Buffered() > 0 {
		broken = errors.New("redispool: unexpected data on a shared connection")
	}
	if broken == nil && p.deadlines {
		p.rw.SetDeadline(time.Time{})
	}
	p.pl.host.returnShared(p.c, broken, p.lastWrite)
	p.pl.shared.Add(-1)
	p.c, p.rw = nil, nil
	p.rd.Reset(nil)
	p.mu.Lock()
	p.yield, p.held = false, false
	p.mu.Unlock()
}

func (p *pipe) write(b []byte, t time.Time) error {
	if wt := p.pl.cfg.writeTimeout; wt > 0 {
		if err := p.rw.SetWriteDeadline(t.Add(wt)); err != nil {
			return err
		}
		p.deadlines = true
	}
	_, err := p.rw.Write(b)
	return err
}

// setReadDeadline bounds the wait for the reply to a command sent at t.
func (p *pipe) setReadDeadline(t time.Time) {
	rt := p.pl.cfg.readTimeout
	if rt <= 0 || t == p.rdFor {
		return
	}
	p.rw.SetReadDeadline(t.Add(rt))
	p.rdFor, p.deadlines = t, true
}

// close fails the queued commands with ErrPoolClosed, lets the loops
// read what is in flight, give their connections back and end, and
// waits for them.
func (pl *pipeline) close() {
	pl.cancel()
	for _, p := range pl.pipes {
		p.mu.Lock()
		p.closed = true
		failed := p.failQueuedLocked(ErrPoolClosed)
		idle := p.state == pipeIdle
		if idle {
			p.state = pipeBusy
		}
		p.mu.Unlock()
		signalAll(failed)
		if idle {
			p.signal()
		}
	}
	pl.loops.Wait()
}

// yieldIdle makes every idle pipe give its connection back at once,
// for an exclusive borrower about to wait. A pipe it claims is busy
// until it has given its connection back, so no other call claims the
// same connection.
func (pl *pipeline) yieldIdle() {
	for _, p := range pl.pipes {
		p.mu.Lock()
		idle := p.state == pipeIdle
		if idle {
			p.state = pipeBusy
			p.yield = true
		}
		p.mu.Unlock()
		if idle {
			p.signal()
		}
	}
}

// yieldOne makes one pipe that holds a connection with no command
// queued give it back as soon as its replies in flight are read, for a
// FailFast borrower, and reports whether it found one. Such a
// connection is not borrowed: it is idle, or about to be (the loop
// reading the last replies, a caller's inline round trip). A pipe
// already yielding is not claimed again, so that a connection is
// promised to one borrower only. With busy false only an idle pipe is
// claimed: one whose connection comes back without waiting for a reply.
func (pl *pipeline) yieldOne(busy bool) bool {
	for _, p := range pl.pipes {
		p.mu.Lock()
		var claimed bool
		switch p.state {
		case pipeIdle:
			p.state = pipeBusy
			claimed = true
		case pipeInline, pipeBusy:
			claimed = busy && p.held && !p.yield && !p.closed && len(p.queued) == 0
		}
		if claimed {
			p.yield = true
		}
		p.mu.Unlock()
		if claimed {
			p.signal()
			return true
		}
	}
	return false
}

// The pool as its pipeline's host. Shared connections are borrowed with
// take, not get, so that AbandonedTimeout does not track them.

type poolHost struct{ p *Pool }

var _ pipeHost = poolHost{}

func (h poolHost) lendShared(ctx context.Context) (sharedConn, error) {
	c, err := h.p.take(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (h poolHost) returnShared(sc sharedConn, broken error, lastWrite time.Time) {
	c := sc.(*conn)
	if broken != nil {
		c.broken = true
	}
	h.p.putUntracked(c, lastWrite)
}

func (h poolHost) borrowersWaiting() bool { return h.p.stats.waiting.Load() > 0 }

func (h poolHost) serverAddr() string { return h.p.Addr() }

var _ sharedConn = (*conn)(nil)

func (c *conn) sharedStream() net.Conn { return c.stream }

func (c *conn) stale() bool { return c.reusable(false) != reasonNone }

func (c *conn) noteReply(err error) { c.noteError(err) }
