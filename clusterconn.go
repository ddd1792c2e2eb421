package redispool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// clusterConn is a connection from Cluster.Get, GetContext or
// GetForKeys. It binds to a node at its first command with a key; until
// then it holds the keyless commands sent on it. Bound, it is an
// ordinary connection of that node's pool.
type clusterConn struct {
	c      *Cluster
	ac     *activeConn  // the bound connection; nil while unbound
	node   *clusterNode // the node of ac
	held   []heldCmd    // keyless commands awaiting the binding, in order
	skip   int          // replies of held commands that Do already answered
	closed bool
}

// heldCmd is a command sent before the connection was bound.
type heldCmd struct {
	cmd  string
	args []any
}

var (
	_ redis.Conn            = (*clusterConn)(nil)
	_ redis.ConnWithTimeout = (*clusterConn)(nil)
	_ redis.ConnWithContext = (*clusterConn)(nil)
)

// noTimeout marks a do without a timeout of its own: the bound
// connection's ReadTimeout applies.
const noTimeout = time.Duration(-1)

func (cc *clusterConn) Do(cmd string, args ...any) (any, error) {
	return cc.do(context.Background(), noTimeout, cmd, args)
}

func (cc *clusterConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	return cc.do(context.Background(), timeout, cmd, args)
}

func (cc *clusterConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	return cc.do(ctx, noTimeout, cmd, args)
}

func (cc *clusterConn) do(ctx context.Context, timeout time.Duration, cmd string, args []any) (any, error) {
	if err := cc.usable(); err != nil {
		return nil, err
	}
	slot, keyed, _ := commandSlot(cmd, args)
	if !keyed {
		slot = -1
	}
	if cc.ac == nil {
		switch {
		case keyed:
		case cmd == "" && len(cc.held) == 0:
			return nil, nil // nothing pending, as with redigo
		case len(cc.held) == 0 && classify(cmd, args) == kindMulti:
			// Hold it until a key says where the transaction runs. Its
			// own reply, skipped later, can only be OK.
			cc.held = append(cc.held, heldCmd{cmd, args})
			cc.skip++
			return "OK", nil
		case len(cc.held) == 0 && classify(cmd, args) != kindSubscribe:
			// PING, SELECT 0, TIME: any master answers, and the
			// connection stays free to bind.
			if timeout == noTimeout {
				timeout = cc.c.readTO
			}
			return cc.c.do(ctx, timeout, -1, false, nil, 0, cmd, args)
		}
		if err := cc.bind(ctx, slot); err != nil {
			return nil, err
		}
	} else if keyed {
		if err := cc.checkSlot(slot); err != nil {
			return nil, err
		}
	}

	for redirects := 1; ; redirects++ {
		clean := cc.ac.c.t.clean()
		reply, err := cc.run(ctx, timeout, cmd, args)
		cc.skip = 0 // Do read every pending reply
		kind, rerr := classifyReply(err)
		switch kind {
		case replyCrossSlot:
			return nil, crossSlotError{rerr}
		case replyMoved, replyAsk:
		default:
			return reply, err
		}
		rd, perr := cc.c.redirected(kind, rerr, cc.node.addr)
		if perr != nil {
			return nil, perr
		}
		if !clean || cc.c.maxRedir == 0 {
			// The connection holds state on this node (a transaction,
			// WATCH, unread replies): the command cannot follow.
			return nil, rd
		}
		if err := cc.c.redirectLimit(rd, redirects); err != nil {
			return nil, err
		}
		if classify(cmd, args) == kindPlain {
			// Nothing ties the command to this connection: the cluster
			// follows the redirect on a connection of the target's pool.
			// After a MOVED the connection unbinds (it was clean), and
			// its next command binds by the updated slot map.
			if !rd.Ask {
				cc.unbind()
			}
			if timeout == noTimeout {
				timeout = cc.c.readTO
			}
			return cc.c.do(ctx, timeout, slot, false, rd, redirects, cmd, args)
		}
		if rd.Ask {
			return nil, rd // WATCH and the like cannot be split across nodes
		}
		// A session command (WATCH k): run it again bound to the new
		// owner.
		cc.unbind()
		if err := cc.bind(ctx, slot); err != nil {
			return nil, err
		}
	}
}

func (cc *clusterConn) run(ctx context.Context, timeout time.Duration, cmd string, args []any) (any, error) {
	if timeout == noTimeout {
		return cc.ac.DoContext(ctx, cmd, args...)
	}
	return cc.ac.DoWithTimeout(timeout, cmd, args...)
}

// usable returns the error every method returns after Close, or after
// the cluster's Close on a connection not yet bound.
func (cc *clusterConn) usable() error {
	switch {
	case cc.closed:
		return ErrConnClosed
	case cc.ac == nil && cc.c.isClosed():
		return ErrPoolClosed
	}
	return nil
}

// bind borrows a connection from the master of slot (-1: any master)
// and sends the held commands on it.
func (cc *clusterConn) bind(ctx context.Context, slot int) error {
	n, pc, err := cc.c.borrow(ctx, slot)
	if err != nil {
		return err
	}
	cc.ac = &activeConn{p: n.pool, c: pc}
	cc.node = n
	for _, h := range cc.held {
		if err := cc.ac.Send(h.cmd, h.args...); err != nil {
			return err
		}
	}
	cc.held = nil
	return nil
}

// unbind returns the bound connection to its pool.
func (cc *clusterConn) unbind() {
	if cc.ac != nil {
		cc.ac.Close()
		cc.ac, cc.node = nil, nil
	}
}

// checkSlot fails, before any I/O, a command for a slot that the node
// the connection is bound to does not serve.
func (cc *clusterConn) checkSlot(slot int) error {
	t := cc.c.table.Load()
	if t == nil {
		return nil
	}
	if owner := t.owner(slot); owner != nil && owner != cc.node {
		return fmt.Errorf("%w: the key's slot %d is served by %s; the connection is bound to %s", ErrCrossSlot, slot, owner.addr, cc.node.addr)
	}
	return nil
}

// borrow borrows a connection from the master of slot (-1: any master),
// retrying refused dials within RetryTimeout.
func (c *Cluster) borrow(ctx context.Context, slot int) (*clusterNode, *conn, error) {
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
			return nil, nil, err
		}
		pc, err := c.get(ctx, n)
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

func (cc *clusterConn) Send(cmd string, args ...any) error {
	if err := cc.usable(); err != nil {
		return err
	}
	slot, keyed, _ := commandSlot(cmd, args)
	if cc.ac == nil {
		if !keyed {
			cc.held = append(cc.held, heldCmd{cmd, args})
			return nil
		}
		if err := cc.bind(context.Background(), slot); err != nil {
			return err
		}
	} else if keyed {
		if err := cc.checkSlot(slot); err != nil {
			return err
		}
	}
	return cc.ac.Send(cmd, args...)
}

// Flush sends what was sent. Unbound, held commands stay held until a
// key binds the connection, unless they include a subscription, which
// binds it to any master (classic pub/sub reaches every node).
func (cc *clusterConn) Flush() error {
	if err := cc.usable(); err != nil {
		return err
	}
	if cc.ac == nil {
		subscribe := false
		for _, h := range cc.held {
			if k := classify(h.cmd, h.args); k == kindSubscribe {
				subscribe = true
			}
		}
		if !subscribe {
			return nil
		}
		if err := cc.bind(context.Background(), -1); err != nil {
			return err
		}
	}
	return cc.ac.Flush()
}

func (cc *clusterConn) Receive() (any, error) {
	return cc.receive(context.Background(), noTimeout)
}

func (cc *clusterConn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	return cc.receive(context.Background(), timeout)
}

func (cc *clusterConn) ReceiveContext(ctx context.Context) (any, error) {
	return cc.receive(ctx, noTimeout)
}

var errNothingSent = errors.New("redispool: cluster: Receive on a connection with no command sent")

func (cc *clusterConn) receive(ctx context.Context, timeout time.Duration) (any, error) {
	if err := cc.usable(); err != nil {
		return nil, err
	}
	if cc.ac == nil {
		// Keyless commands only: any master answers them.
		if len(cc.held) == 0 {
			return nil, errNothingSent
		}
		if err := cc.bind(ctx, -1); err != nil {
			return nil, err
		}
		if err := cc.ac.Flush(); err != nil {
			return nil, err
		}
	}
	for {
		var reply any
		var err error
		if timeout == noTimeout {
			reply, err = cc.ac.ReceiveContext(ctx)
		} else {
			reply, err = cc.ac.ReceiveWithTimeout(timeout)
		}
		if cc.skip > 0 && err == nil {
			cc.skip--
			continue
		}
		cc.skip = 0
		kind, rerr := classifyReply(err)
		switch kind {
		case replyCrossSlot:
			return nil, crossSlotError{rerr}
		case replyMoved, replyAsk:
			// A pipelined command cannot be followed: its neighbours ran
			// here. The caller sees the redirect; the map is patched.
			rd, perr := cc.c.redirected(kind, rerr, cc.node.addr)
			if perr != nil {
				return nil, perr
			}
			return nil, rd
		}
		return reply, err
	}
}

func (cc *clusterConn) Err() error {
	if err := cc.usable(); err != nil {
		return err
	}
	if cc.ac == nil {
		return nil
	}
	return cc.ac.Err()
}

// Close returns the bound connection to its pool, undoing its session
// state as Pool connections do. Held commands were never sent. A second
// Close does nothing.
func (cc *clusterConn) Close() error {
	if cc.closed {
		return nil
	}
	cc.closed = true
	cc.unbind()
	cc.held = nil
	return nil
}
