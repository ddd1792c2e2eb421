package redispool

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// With Config.AbandonedTimeout, the pool keeps the connections lent out
// in p.lent and the flusher reclaims those held too long. A borrower
// and the flusher may both want a connection at once (a late Close, a
// reclaim); loan.out decides: whoever clears it owns the connection.

// maxStackDepth bounds the stack recorded for each borrow.
const maxStackDepth = 32

// loan describes the borrow holding a connection, with AbandonedTimeout.
type loan struct {
	out   atomic.Bool // lent out and not yet returned or reclaimed
	since time.Time
	index int // in p.lent
	stack []uintptr
}

// track records the borrow of c by GetContext's caller.
func (p *Pool) track(c *conn) {
	l := &c.loan
	if l.stack == nil {
		l.stack = make([]uintptr, maxStackDepth)
	}
	// Skip runtime.Callers, track and get: the stack starts at
	// GetContext, or at the Cluster's borrow.
	l.stack = l.stack[:runtime.Callers(3, l.stack[:maxStackDepth])]
	l.since = time.Now()
	l.out.Store(true)
	p.mu.Lock()
	l.index = len(p.lent)
	p.lent = append(p.lent, c)
	p.mu.Unlock()
}

// returned reports whether the borrower still held c when it closed
// it, and stops tracking it; false means the flusher reclaimed it.
func (p *Pool) returned(c *conn) bool {
	if !c.loan.out.CompareAndSwap(true, false) {
		return false
	}
	p.mu.Lock()
	p.untrackLocked(c)
	p.recycleLocked(c.spare)
	c.spare = nil
	p.mu.Unlock()
	return true
}

func (p *Pool) untrackLocked(c *conn) {
	i, last := c.loan.index, len(p.lent)-1
	p.lent[i] = p.lent[last]
	p.lent[i].loan.index = i
	p.lent[last] = nil
	p.lent = p.lent[:last]
}

// reclaimAbandoned closes the connections lent out for longer than
// AbandonedTimeout and frees their slots. It runs on the flusher's
// goroutine.
func (p *Pool) reclaimAbandoned(now time.Time) {
	var found []*conn
	p.mu.Lock()
	for i := 0; i < len(p.lent); {
		c := p.lent[i]
		if now.Sub(c.loan.since) >= p.cfg.AbandonedTimeout && c.loan.out.CompareAndSwap(true, false) {
			p.untrackLocked(c) // moves the last one to i
			p.active--
			p.recycleLocked(c.spare)
			c.spare = nil
			found = append(found, c)
			continue
		}
		i++
	}
	p.mu.Unlock()

	for _, c := range found {
		// The holder may be using the connection: closing the socket
		// is safe from another goroutine, and makes its next call, or
		// the one in progress, fail. The holder no longer touches
		// c.reason, since its Close will find the loan gone.
		c.nc.Close()
		c.reason = reasonAbandoned
		p.invalidate(c)
		if p.f.log != nil {
			p.f.log.LogAttrs(context.Background(), slog.LevelWarn, "redispool: abandoned connection reclaimed",
				slog.String("addr", p.cfg.Addr),
				slog.Duration("borrowed_for", now.Sub(c.loan.since)),
				slog.Duration("abandoned_timeout", p.cfg.AbandonedTimeout),
				slog.String("stack", formatStack(c.loan.stack)))
		}
		p.release()
	}
}

// formatStack writes pcs one frame per line pair, as a panic does.
func formatStack(pcs []uintptr) string {
	var b strings.Builder
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		b.WriteString(f.Function)
		b.WriteString("\n\t")
		b.WriteString(f.File)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(f.Line))
		b.WriteByte('\n')
		if !more {
			return b.String()
		}
	}
}

// A Loan is a connection lent out and not yet returned, as Pool.Loans
// reports it.
type Loan struct {
	// Since is when the connection was borrowed.
	Since time.Time
	// Stack is where it was borrowed: the borrower's call stack, one
	// function and its file:line per frame, as a panic prints them.
	Stack string
}

// Loans lists the connections borrowed and not yet returned, oldest
// first, with where each was borrowed, so that a leak can be traced to
// the code that holds it (redispooltest fails a test with it). Loans
// are recorded only while AbandonedTimeout is set; without it Loans
// returns nil. Shared connections of the pipeline are not loans.
func (p *Pool) Loans() []Loan {
	type raw struct {
		since time.Time
		stack []uintptr
	}
	p.mu.Lock()
	// Copied under p.mu: a loan's stack is reused by the connection's
	// next borrow. track writes them before it adds c to p.lent.
	held := make([]raw, 0, len(p.lent))
	for _, c := range p.lent {
		held = append(held, raw{c.loan.since, slices.Clone(c.loan.stack)})
	}
	p.mu.Unlock()
	if len(held) == 0 {
		return nil
	}
	loans := make([]Loan, len(held))
	for i, h := range held {
		loans[i] = Loan{Since: h.since, Stack: formatStack(h.stack)}
	}
	slices.SortFunc(loans, func(a, b Loan) int { return a.Since.Compare(b.Since) })
	return loans
}
