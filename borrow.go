package redispool

import (
	"context"
	"fmt"
	"time"
)

// The borrow path: the pool's front. A borrow takes an idle connection
// from the hot stack, else a free slot and a connection from the engine,
// else waits in a FIFO queue; a return hands the connection straight to
// the oldest waiter, or pushes it on the hot stack, which the engine
// still counts as lent so that its MaxTotal cap keeps holding — the way
// HikariCP's ConcurrentBag keeps a fast list in front of the real
// bookkeeping for JDBC. engine.go says what the engine under it does,
// and why the busy path stays off it.

// epoch is when the package was initialized; see now.
var epoch = time.Now()

// now is time.Now for the borrow path's clock reads, at half the cost:
// time.Now reads the wall clock and the monotonic clock, and a read cost
// 40-90ns on the machines measured, where a borrow and a return cost a
// few hundred; time.Since reads only the monotonic one. The wall-clock
// part of the result drifts from time.Now if the system clock is set,
// but comparisons and Sub use the monotonic reading, as they do for any
// two times from one process.
func now() time.Time {
	return epoch.Add(time.Since(epoch))
}

// get borrows a connection, for GetContext and for a Cluster's node
// pools alike, and with AbandonedTimeout records the loan.
func (p *Pool) get(ctx context.Context) (*conn, error) {
	c, err := p.take(ctx)
	if err == nil && p.cfg.AbandonedTimeout > 0 {
		p.track(c)
	}
	return c, err
}

// take borrows a connection: from the hot stack, else with a free slot
// from the engine, else after waiting.
func (p *Pool) take(ctx context.Context) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redispool: get connection: %w", err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	if c := p.hot.pop(p.cfg.FIFO); c != nil {
		p.held++
		p.active++
		p.mu.Unlock()
		if p.usable(ctx, c) {
			p.stats.borrows.Add(1)
			return c, nil
		}
		return p.withSlot(ctx, nil)
	}
	if p.held+p.moving < p.cfg.MaxTotal {
		p.held++
		p.mu.Unlock()
		return p.fromEngine(ctx)
	}
	return p.wait(ctx) // unlocks p.mu
}

// usable runs the borrow check on c, just taken with its slot and
// counted active. A connection that fails it is closed; the slot stays
// with the caller.
func (p *Pool) usable(ctx context.Context, c *conn) bool {
	return p.usableAt(ctx, c, now())
}

// usableAt is usable with the time already read.
func (p *Pool) usableAt(ctx context.Context, c *conn, t time.Time) bool {
	if p.f.validate(ctx, c, t, c.idleSince) == nil {
		return true
	}
	// No longer active before no longer open, so that keepLocked,
	// reading open - active, never counts one idle connection too few.
	p.mu.Lock()
	p.active--
	p.mu.Unlock()
	p.invalidate(c)
	return false
}

// withSlot gets a connection for a borrower holding a slot: from the hot
// stack while it has one that passes the check, else from the engine.
// spare, if not nil, is the borrower's finished waiter, to recycle.
func (p *Pool) withSlot(ctx context.Context, spare *waiter) (*conn, error) {
	for {
		p.mu.Lock()
		p.recycleLocked(spare)
		spare = nil
		if p.closed {
			w := p.releaseLocked()
			p.mu.Unlock()
			grantSlot(w)
			return nil, ErrPoolClosed
		}
		c := p.hot.pop(p.cfg.FIFO)
		if c != nil {
			p.active++
		}
		p.mu.Unlock()
		if c == nil {
			return p.fromEngine(ctx)
		}
		if p.usable(ctx, c) {
			p.stats.borrows.Add(1)
			return c, nil
		}
	}
}

// fromEngine borrows a connection from the engine for a borrower holding
// a slot, giving the slot back if it cannot.
func (p *Pool) fromEngine(ctx context.Context) (*conn, error) {
	c, err := p.borrowFromEngine(ctx)
	if err != nil {
		p.release()
		return nil, err
	}
	p.mu.Lock()
	p.active++
	p.mu.Unlock()
	p.stats.borrows.Add(1)
	return c, nil
}

// wait queues the borrower until a connection or a slot is handed to it,
// BorrowTimeout passes, ctx ends or the pool closes. It is called with
// p.mu held, and unlocks it.
func (p *Pool) wait(ctx context.Context) (*conn, error) {
	if p.cfg.FailFast && p.pipes == nil {
		p.mu.Unlock()
		return nil, p.failFast()
	}
	start := now()
	w := p.waiterLocked()
	if p.cfg.BorrowTimeout > 0 {
		// Every waiter waits the same BorrowTimeout, so deadlines grow
		// along the queue and one timer, armed for the first waiter's,
		// serves them all (see expireWaiters).
		w.deadline = start.Add(p.cfg.BorrowTimeout)
		if !p.timerOn {
			p.timer.Reset(p.cfg.BorrowTimeout)
			p.timerOn = true
		}
	}
	p.waiters.push(w, &p.stats)
	p.mu.Unlock()
	if p.cfg.FailFast {
		// Exhausted, unless a pipe holds a connection with nothing
		// queued: that one is not borrowed, and, made to give it back,
		// comes to the queue once its replies in flight are read. One
		// pipe's connection is claimed by one FailFast borrower only,
		// so the queue never holds more of them than connections on
		// their way. Replies in flight are waited for only under a
		// BorrowTimeout: without one, only an idle pipe is claimed.
		if !p.pipes.yieldOne(p.cfg.BorrowTimeout > 0) && p.leaveQueue(w) {
			return nil, p.failFast()
		}
	} else if p.pipes != nil {
		p.pipes.yieldIdle() // an idle shared connection is free for the taking
	}
	p.stats.waitCount.Add(1)

	var g grant
	if done := ctx.Done(); done == nil {
		g = <-w.ch // cheaper than a select, for contexts that never end
	} else {
		select {
		case g = <-w.ch:
		case <-done:
			return nil, p.abandonWait(ctx, w, start)
		}
	}
	t := now()
	p.stats.waitNanos.Add(int64(t.Sub(start)))
	switch {
	case g.err != nil:
		p.mu.Lock()
		p.recycleLocked(w)
		p.mu.Unlock()
		if g.err == p.errTimeout {
			p.stats.timeouts.Add(1)
		}
		return nil, g.err
	case g.c != nil:
		// Counted active already, by the return that handed it over.
		if p.usableAt(ctx, g.c, t) {
			g.c.spare = w // recycled when the connection comes back
			p.stats.borrows.Add(1)
			return g.c, nil
		}
	}
	return p.withSlot(ctx, w)
}

// failFast is the error of a FailFast borrow that found every
// connection borrowed.
func (p *Pool) failFast() error {
	p.stats.timeouts.Add(1)
	return fmt.Errorf("%w: all %d connections are borrowed (FailFast)", ErrPoolExhausted, p.cfg.MaxTotal)
}

// leaveQueue takes w off the queue and recycles it, and reports true;
// or reports false if something was handed to w meanwhile, which the
// caller must then receive.
func (p *Pool) leaveQueue(w *waiter) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !w.queued {
		return false
	}
	p.waiters.remove(w, &p.stats)
	p.recycleLocked(w)
	return true
}

// abandonWait takes w, whose context ended, off the queue, or gives back
// what was handed to it meanwhile, and returns the error for the borrow.
func (p *Pool) abandonWait(ctx context.Context, w *waiter, start time.Time) error {
	p.mu.Lock()
	queued := w.queued
	if queued {
		p.waiters.remove(w, &p.stats)
	}
	p.mu.Unlock()
	if !queued {
		// Something was handed over as ctx ended: give it back.
		switch g := <-w.ch; {
		case g.c != nil:
			p.keep(g.c)
		case g.err == nil:
			p.release()
		}
	}
	p.mu.Lock()
	p.recycleLocked(w)
	p.mu.Unlock()
	p.stats.waitNanos.Add(int64(time.Since(start)))
	p.stats.timeouts.Add(1)
	return fmt.Errorf("%w: %w while waiting for one of %d borrowed connections", ErrPoolExhausted, ctx.Err(), p.cfg.MaxTotal)
}

// expireWaiters is the timer's function: it fails the waiters whose
// deadline has passed and arms the timer for the next one. It compares
// deadlines with the clock, so a timer that fired early could not fail
// a wait early.
func (p *Pool) expireWaiters() {
	var expired chain
	p.mu.Lock()
	p.timerOn = false
	t := time.Now()
	for w := p.waiters.head; w != nil && !w.deadline.IsZero() && !t.Before(w.deadline); w = p.waiters.head {
		p.waiters.remove(w, &p.stats)
		expired.add(w)
	}
	if w := p.waiters.head; w != nil && !p.closed {
		p.timer.Reset(w.deadline.Sub(t))
		p.timerOn = true
	}
	p.mu.Unlock()
	expired.send(grant{err: p.errTimeout})
}

// put takes back a connection its borrower has closed.
func (p *Pool) put(c *conn) {
	if p.cfg.AbandonedTimeout > 0 && !p.returned(c) {
		return // reclaimed as abandoned: closed, and its slot given away
	}
	p.putUntracked(c, time.Time{})
}

// putUntracked takes back a connection that AbandonedTimeout does not
// track: one put has checked, or a pipeline's shared connection. Its
// idle time counts from idle, or from now when idle is zero: a shared
// connection's from its last write, so that the borrow check PINGs it
// as it would one that sat idle in the pool.
func (p *Pool) putUntracked(c *conn, idle time.Time) {
	// Decide and reset outside the lock: the reset may take round trips.
	reason := c.reusable(p.isClosed())
	if reason == reasonNone && p.f.passivate(c) != nil {
		reason = reasonDirty
	}
	if reason != reasonNone {
		// No longer active before no longer open, so that keepLocked,
		// reading open - active, never counts one idle connection too
		// few.
		p.mu.Lock()
		p.active--
		p.recycleLocked(c.spare)
		c.spare = nil
		p.mu.Unlock()
		c.reason = reason
		p.invalidate(c)
		p.release()
		return
	}
	if idle.IsZero() {
		idle = now()
	}
	c.idleSince = idle
	p.mu.Lock()
	p.recycleLocked(c.spare)
	c.spare = nil
	w, reason := p.keepLocked(c)
	p.mu.Unlock()
	p.settle(c, w, reason)
}

// settle carries out keepLocked's decision for c, after p.mu is
// released: hand c to w, or close it and give up its slot.
func (p *Pool) settle(c *conn, w *waiter, reason destroyReason) {
	switch {
	case w != nil:
		w.ch <- grant{c: c}
	case reason != reasonNone:
		c.reason = reason
		p.invalidate(c)
		p.release()
	}
}

// keep takes back a clean connection, with its slot, that was handed to
// a waiter whose context ended.
func (p *Pool) keep(c *conn) {
	p.mu.Lock()
	w, reason := p.keepLocked(c)
	p.mu.Unlock()
	p.settle(c, w, reason)
}

// keepLocked decides where a clean connection, returned with its slot
// and still counted active, goes: to the oldest waiter, returned for
// the caller to hand c to once p.mu is released (c stays active, in
// transit); else onto the hot stack, the slot freed. Otherwise it
// returns why c must be closed, the slot still held (see settle).
func (p *Pool) keepLocked(c *conn) (*waiter, destroyReason) {
	if !p.closed {
		if w := p.waiters.pop(&p.stats); w != nil {
			return w, reasonNone
		}
	}
	p.active--
	if p.closed {
		return nil, reasonPoolClosed
	}
	// open - active counts c, and counts connections being dialed or
	// closed as idle: never fewer than there are.
	if p.cfg.MaxIdle < p.cfg.MaxTotal && p.stats.open.Load()-int64(p.active) > int64(p.cfg.MaxIdle) {
		return nil, reasonSurplus
	}
	if !p.hot.push(c) {
		return nil, reasonSurplus // cannot happen while held+hot.n <= MaxTotal
	}
	p.held--
	return nil, reasonNone
}

// release gives up a slot: to the oldest waiter, or back to the pool.
func (p *Pool) release() {
	p.mu.Lock()
	w := p.releaseLocked()
	p.mu.Unlock()
	grantSlot(w)
}

// releaseLocked gives up a slot. It returns the waiter the slot passes
// to, for grantSlot once p.mu is released, or nil.
func (p *Pool) releaseLocked() *waiter {
	if w := p.waiters.pop(&p.stats); w != nil {
		return w
	}
	p.held--
	return nil
}

// grantSlot tells w, if not nil, that it holds a slot.
func grantSlot(w *waiter) {
	if w != nil {
		w.ch <- grant{}
	}
}

// wakeLocked gives up to n freed slots to waiters, returned for the
// caller to send their grants once p.mu is released.
func (p *Pool) wakeLocked(n int) chain {
	var woken chain
	for ; n > 0; n-- {
		w := p.waiters.pop(&p.stats)
		if w == nil {
			break
		}
		p.held++
		woken.add(w)
	}
	return woken
}

// A waiter is a borrower in the queue. Whoever takes it off the queue,
// under p.mu, then sends it exactly one grant; a waiter that leaves the
// queue itself, as its context ends, gets none.
type waiter struct {
	ch         chan grant // buffered: a send never blocks
	deadline   time.Time  // zero without BorrowTimeout
	prev, next *waiter
	queued     bool
}

// A grant is what a waiter receives: a connection with its slot, or a
// slot alone (both fields zero), or the error ending the wait. Grants
// are sent after p.mu is released: waking a goroutine can mean waking a
// thread, a system call too slow to make under a lock every borrow
// takes.
type grant struct {
	c   *conn
	err error
}

// A chain is a list of waiters taken off the queue, oldest first,
// linked by next, to send the same grant.
type chain struct{ head, tail *waiter }

func (ch *chain) add(w *waiter) {
	if ch.tail == nil {
		ch.head = w
	} else {
		ch.tail.next = w
	}
	ch.tail = w
}

// send sends g to every waiter in the chain. A waiter may be reused as
// soon as it has its grant, so its link is read first.
func (ch chain) send(g grant) {
	for w := ch.head; w != nil; {
		next := w.next
		w.next = nil
		w.ch <- g
		w = next
	}
}

// maxSpareWaiters bounds the waiters a pool keeps for reuse, about
// 200 bytes each.
const maxSpareWaiters = 1024

// waiterLocked returns one of the pool's spare waiters, or a new one.
// Spares are kept under p.mu rather than in a sync.Pool, which every
// garbage collection empties: a pool whose borrowers all wait would then
// allocate two objects per wait after each collection.
func (p *Pool) waiterLocked() *waiter {
	w := p.spares
	if w == nil {
		return &waiter{ch: make(chan grant, 1)}
	}
	p.spares, w.next = w.next, nil
	p.nspares--
	return w
}

// recycleLocked keeps w, if not nil, for a later wait. Its wait must be
// over: off the queue, and its grant, if it had one, received, so that
// its channel is empty. A waiter whose borrow got a connection rides on
// the connection (conn.spare) until its return takes the lock anyway.
func (p *Pool) recycleLocked(w *waiter) {
	if w == nil || p.nspares >= maxSpareWaiters {
		return
	}
	w.next = p.spares
	p.spares = w
	p.nspares++
}

// waitQueue is a FIFO of waiters, linked through the waiters so that a
// waiter whose context ends leaves from the middle in O(1).
type waitQueue struct {
	head, tail *waiter
}

func (q *waitQueue) push(w *waiter, s *counters) {
	w.queued = true
	w.prev, w.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	s.waiting.Add(1)
}

// pop takes the oldest waiter off the queue, or returns nil.
func (q *waitQueue) pop(s *counters) *waiter {
	w := q.head
	if w != nil {
		q.remove(w, s)
	}
	return w
}

func (q *waitQueue) remove(w *waiter, s *counters) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	w.deadline = time.Time{}
	s.waiting.Add(-1)
}
