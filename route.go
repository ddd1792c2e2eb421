package redispool

// The command path: Cluster.do routes a command to the node that serves
// its slot, follows MOVED and ASK replies (redirected: the replies
// themselves are parsed in redirect.go) and retries what the cluster did
// not run (retrier). Cluster.borrowFor finds and borrows a connection
// the same way for a clusterConn that binds to a node.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gomodule/redigo/redis"
)

const (
	// retryPauseMin and retryPauseMax bound the pause before a command
	// the cluster did not run is sent again; it doubles from the first
	// to the second.
	retryPauseMin = 10 * time.Millisecond
	retryPauseMax = 100 * time.Millisecond
)

// suspectWindow is how long after an I/O error on a node's connection
// every connection borrowed from its pool is checked first.
const suspectWindow = 100 * time.Millisecond

// do runs cmd, routed by slot (-1: any master), to replica if readOnly,
// on exclusive connections. start, if non-nil, is a redirect already
// received, the redirects-th.
func (c *Cluster) do(ctx context.Context, timeout time.Duration, slot int, readOnly bool, start *RedirectError, redirects int, cmd string, args []any) (any, error) {
	return c.dispatch(ctx, timeout, slot, readOnly, false, start, redirects, cmd, args, args)
}

// dispatch is do, and with pipe, cmd goes down the node pool's shared
// connections (pipeline.go) where it can: not after an ASK (ASKING and
// the command must go on one connection), nor while the node is
// suspect (see borrowFrom: the pipe would not PING a connection it got
// from the pool first). Its reply is handled as an exclusive one's.
//
// owned, if not nil, is args, the caller's to give away; if nil, args
// is copied for an exclusive send, which keeps it, and only then: so
// that a pipelined Cluster.Do does not make its caller's variadic
// slice escape.
func (c *Cluster) dispatch(ctx context.Context, timeout time.Duration, slot int, readOnly, pipe bool, start *RedirectError, redirects int, cmd string, args, owned []any) (any, error) {
	if c.isClosed() {
		return nil, ErrPoolClosed
	}
	var r retrier
	var n *clusterNode
	asking := false
	if start != nil {
		var err error
		if n, err = c.redirectNode(start); err != nil {
			return nil, err
		}
		asking = start.Ask
	}
	for {
		if n == nil {
			t, err := c.slotMap(ctx)
			if err != nil {
				return nil, err
			}
			if n, err = t.route(slot, readOnly && r.deadline.IsZero(), &c.next); err != nil {
				c.requestRefresh()
				if !errors.Is(err, errSlotUnserved) {
					return nil, err
				}
				if err := r.wait(ctx, c, err); err != nil {
					return nil, err
				}
				continue
			}
		}
		var reply any
		var err error
		piped := false
		if pipe && !asking && !n.suspected() {
			var sent bool
			reply, sent, err = n.pool.pipelined(ctx, cmd, args)
			switch {
			case sent:
				piped = true
				if err != nil && ctx.Err() == nil {
					if _, ok := err.(redis.Error); !ok {
						n.suspect.Store(time.Now().Add(suspectWindow).UnixNano())
					}
				}
			case err != errNotPipelined:
				// Not written: as a failed borrow.
				if !c.retryableBorrow(ctx, err) {
					return nil, err
				}
				if err := r.wait(ctx, c, err); err != nil {
					return nil, err
				}
				n, redirects = nil, 0
				continue
			}
		}
		if !piped {
			var pc *conn
			pc, err = c.borrowFrom(ctx, n)
			if err != nil {
				if !c.retryableBorrow(ctx, err) {
					return nil, err
				}
				if err := r.wait(ctx, c, err); err != nil {
					return nil, err
				}
				n, asking, redirects = nil, false, 0
				continue
			}
			if owned == nil && len(args) > 0 {
				owned = append([]any(nil), args...)
			}
			reply, err = c.send(ctx, n, pc, timeout, asking, cmd, owned)
		}
		asking = false
		kind, rerr := classifyReply(err)
		switch kind {
		case replyOther:
			return reply, err
		case replyCrossSlot:
			return nil, crossSlotError{rerr}
		case replyMoved, replyAsk:
			rd, perr := c.redirected(kind, rerr, n.addr)
			if perr != nil {
				return nil, perr
			}
			redirects++
			if err := c.redirectLimit(rd, redirects); err != nil {
				return nil, err
			}
			if n, err = c.redirectNode(rd); err != nil {
				return nil, err
			}
			asking = rd.Ask
			continue
		case replyTryAgain:
			c.stats.tryAgain.Add(1)
		case replyClusterDown, replyLoading, replyReadOnly:
			if kind == replyClusterDown {
				c.stats.clusterDown.Add(1)
			}
			c.requestRefresh()
		}
		if err := r.wait(ctx, c, err); err != nil {
			return nil, err
		}
		// A retry starts afresh from the slot map, with a fresh redirect
		// budget: during a migration a multi-key command goes round ASK
		// (source) then TRYAGAIN (target) until the migration ends, and
		// only RetryTimeout and ctx bound that.
		n, redirects = nil, 0
	}
}

// borrowFrom borrows a connection from n's pool. A node that dies
// breaks all its connections at once, and under load the next command
// would go out on one the pool handed back unchecked (returned under
// peekAfterIdle ago), or on one dialed into the dying listener's
// backlog (a dial without AUTH or SELECT makes no round trip). So for
// suspectWindow after an I/O error on one of n's connections,
// borrowFrom checks every connection with a PING before the command is
// sent; one that fails is closed and the error returned as a failed
// borrow, which Do retries.
func (c *Cluster) borrowFrom(ctx context.Context, n *clusterNode) (*conn, error) {
	pc, err := n.pool.lend(ctx)
	if err != nil {
		return nil, err
	}
	if !n.suspected() {
		return pc, nil
	}
	if err := n.pool.ping(ctx, pc); err != nil {
		n.pool.takeBack(pc)
		return nil, fmt.Errorf("%w: %s: %w", errCheckFailed, n.addr, err)
	}
	return pc, nil
}

// suspected reports whether n is within suspectWindow of an I/O error
// on one of its connections.
func (n *clusterNode) suspected() bool {
	s := n.suspect.Load()
	return s != 0 && time.Now().UnixNano() < s
}

// errCheckFailed is wrapped by the error of a borrow whose connection
// failed borrowFrom's check: the command was not sent.
var errCheckFailed = errors.New("redispool: cluster: connection check failed")

// send runs cmd on pc, a connection of n, preceded by ASKING when
// asking, and returns pc to its pool.
func (c *Cluster) send(ctx context.Context, n *clusterNode, pc *conn, timeout time.Duration, asking bool, cmd string, args []any) (any, error) {
	reply, err := n.pool.run(ctx, pc, timeout, asking, cmd, args)
	if err != nil && ctx.Err() == nil {
		if _, ok := err.(redis.Error); !ok {
			n.suspect.Store(time.Now().Add(suspectWindow).UnixNano())
		}
	}
	n.pool.takeBack(pc)
	return reply, err
}

// redirected records a MOVED or ASK reply from the node at from: a
// MOVED patches the slot map at once and asks for a reload.
func (c *Cluster) redirected(kind replyKind, reply redis.Error, from string) (*RedirectError, error) {
	rd, err := parseRedirect(reply, from)
	if err != nil {
		return nil, err
	}
	if kind == replyAsk {
		c.stats.ask.Add(1)
		return rd, nil
	}
	c.stats.moved.Add(1)
	if n, err := c.redirectNode(rd); err == nil {
		c.patch(rd.Slot, n)
	}
	c.requestRefresh()
	return rd, nil
}

// redirectLimit returns the error for the redirects-th redirect, rd, if
// that is more than MaxRedirects.
func (c *Cluster) redirectLimit(rd *RedirectError, redirects int) error {
	switch {
	case redirects <= c.maxRedir:
		return nil
	case c.maxRedir == 0:
		return rd
	}
	return fmt.Errorf("%w: %d redirects: %w", ErrTooManyRedirects, redirects, rd)
}

func (c *Cluster) redirectNode(rd *RedirectError) (*clusterNode, error) {
	n, err := c.nodeFor(rd.Addr, roleRedirect)
	if errors.Is(err, errTooManyPending) {
		return nil, fmt.Errorf("%w: not following %w", err, rd)
	}
	if err != nil {
		return nil, err
	}
	n.redirected.Store(time.Now().UnixNano())
	return n, nil
}

// retryableBorrow reports whether a failed borrow from a node's pool may
// be retried on a fresh route: the pool was closed by a reload, or the
// node refused the connection or failed borrowFrom's check (it may be
// down while a replica takes over). Exhausted pools, rejected
// credentials and ended contexts are not retried.
func (c *Cluster) retryableBorrow(ctx context.Context, err error) bool {
	if ctx.Err() != nil || c.isClosed() {
		return false
	}
	if errors.Is(err, ErrPoolClosed) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) || errors.Is(err, errCheckFailed) {
		c.requestRefresh()
		return true
	}
	return false
}

// retrier paces the retries of one command.
type retrier struct {
	deadline time.Time // zero until the first retry
	pause    time.Duration
}

// wait pauses before a retry of a command that failed with cause. It
// returns cause, wrapped, when RetryTimeout is used up, and an error
// when ctx ends or the cluster is closed first.
func (r *retrier) wait(ctx context.Context, c *Cluster, cause error) error {
	now := time.Now()
	if r.deadline.IsZero() {
		if c.retryLimit <= 0 {
			return cause
		}
		r.deadline = now.Add(c.retryLimit)
		r.pause = retryPauseMin
	}
	left := r.deadline.Sub(now)
	if left <= 0 {
		return fmt.Errorf("redispool: cluster: gave up after retrying for %v: %w", c.retryLimit, cause)
	}
	d := min(r.pause, left)
	r.pause = min(2*r.pause, retryPauseMax)
	c.stats.retries.Add(1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redispool: cluster: %w while retrying after: %w", ctx.Err(), cause)
	case <-c.closed:
		return ErrPoolClosed
	}
}

// borrowFor borrows a connection from the master of slot (-1: any master),
// retrying refused dials within RetryTimeout.
func (c *Cluster) borrowFor(ctx context.Context, slot int) (*clusterNode, *conn, error) {
	var r retrier
	for {
		if c.isClosed() {
			return nil, nil, ErrPoolClosed
		}
		t, err := c.slotMap(ctx)
		if err != nil {
			return nil, nil, err
		}
		n, err := t.route(slot, false, &c.next)
		if err != nil {
			c.requestRefresh()
			if !errors.Is(err, errSlotUnserved) {
				return nil, nil, err
			}
			if err := r.wait(ctx, c, err); err != nil {
				return nil, nil, err
			}
			continue
		}
		pc, err := c.borrowFrom(ctx, n)
		if err == nil {
			return n, pc, nil
		}
		if !c.retryableBorrow(ctx, err) {
			return nil, nil, err
		}
		if err := r.wait(ctx, c, err); err != nil {
			return nil, nil, err
		}
	}
}
