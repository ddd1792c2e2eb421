package redispool

// The methods a Cluster drives a node's Pool through, and the
// connections that Pool lends.
//
// A Cluster is a client of its nodes' pools, as go-redis's ClusterClient
// is of its node clients, and like it should need nothing but their
// methods. It needs a little more than the exported ones: a connection
// for one command without an activeConn per command, ASKING sent
// outside the session tracker, a PING that proves a connection of a
// node just seen failing, what a bound connection holds on its node, and
// control connections dialed as a node's pool would dial them but kept
// out of it. This file is that little. Nothing in the cluster files
// (cluster.go, clusterconn.go, slotmap.go, topology.go, route.go)
// touches a field of a Pool, a conn, an activeConn, a factory, a tracker
// or a Config: what they rely on is written down here, so that the Pool
// can change inside without the Cluster noticing.

import (
	"context"
	"time"

	"github.com/gomodule/redigo/redis"
)

// lend borrows a connection as GetContext does, but bare: the
// Cluster's command path runs one command on it (run) and takes it back
// (takeBack) without the activeConn a user would get; a clusterConn
// that binds to the node wraps it (handOut).
func (p *Pool) lend(ctx context.Context) (*conn, error) { return p.get(ctx) }

// takeBack returns a connection lend lent. One that broke, or that ping
// found wanting, is closed.
func (p *Pool) takeBack(pc *conn) { p.put(pc) }

// ping checks pc, lent by p, with a PING within CheckTimeout and ctx.
// The PING leaves no state, so it bypasses the tracker, and the
// CommandHook: it is not a user's command. A pc that fails is marked
// broken, so that takeBack closes it.
func (p *Pool) ping(ctx context.Context, pc *conn) error {
	_, err := pc.withContext(ctx, pc.f.cfg.CheckTimeout, func(timeout time.Duration) (any, error) {
		return pc.rc.DoWithTimeout(timeout, "PING") // leaves no state: not tracked
	})
	if err != nil {
		pc.broken = true
	}
	return err
}

// run runs cmd on pc, lent by p, as DoContext would but within timeout
// rather than ReadTimeout (a blocking command's own), preceded by ASKING
// when asking.
func (p *Pool) run(ctx context.Context, pc *conn, timeout time.Duration, asking bool, cmd string, args []any) (any, error) {
	if asking {
		// Straight to redigo, not through the tracker: ASKING flags only
		// the next command, which is ours, so it leaves nothing behind
		// and the connection stays reusable. Do reads its reply first.
		pc.rc.Send("ASKING")
	}
	return pc.withContext(ctx, timeout, func(timeout time.Duration) (any, error) {
		return pc.do(ctx, timeout, cmd, args)
	})
}

// handOut makes pc, lent by p, the connection GetContext would have
// returned, for a clusterConn bound to the node: its Close undoes the
// session state and takes pc back.
func (p *Pool) handOut(pc *conn) *activeConn { return &activeConn{p: p, c: pc} }

// What a clusterConn reads of the connection it is bound to, to know
// whether it may move to another node.

// idle reports whether ac holds no session state on its server (SELECT
// aside: a cluster has only database 0) and no reply is unread.
func (ac *activeConn) idle() bool {
	t := &ac.c.t
	return t.flags()&^stateSelect == 0 && t.sent == t.recvd
}

// sent returns how many commands were sent on ac, as its tracker counts
// them. Like Send, it must not run concurrently with Send or Do.
func (ac *activeConn) sent() uint64 { return ac.c.t.sent }

// received returns how many replies were received on ac, as its tracker
// counts them. Like Receive, it must not run concurrently with Receive
// or Do; unlike sent, it may run concurrently with Send.
func (ac *activeConn) received() uint64 { return ac.c.t.recvd }

// watching reports whether ac has a WATCH in force.
func (ac *activeConn) watching() bool { return ac.c.t.flags()&stateWatch != 0 }

// abort closes the socket under a goroutine in Receive on ac, as Close
// does when it finds one (see conn.abort).
func (ac *activeConn) abort() { ac.c.abort() }

// Connections outside any pool: the Cluster's control connections
// (topology.go), dialed as a node's pool would dial them so that
// credentials, TLS and timeouts are the same, but kept apart so that
// topology work never waits behind borrowed connections.

// dialUnpooled dials cfg.Addr as a pool with cfg, defaults applied,
// would. When closing ends, so does the dial.
func dialUnpooled(ctx context.Context, cfg Config, closing context.Context) (*conn, error) {
	f := newFactory(cfg, new(counters)) // a lone connection's counters: never reported
	f.closing = closing
	return f.dial(ctx)
}

// doUnpooled runs cmd on pc, from dialUnpooled, within timeout and ctx,
// straight through redigo: not tracked, for it must leave no session
// state, and not hooked, for it is the Cluster's command, not a user's.
// fit reports whether pc may be used again: not after an error that is
// not a reply.
func (pc *conn) doUnpooled(ctx context.Context, timeout time.Duration, cmd string, args []any) (reply any, fit bool, err error) {
	reply, err = pc.withContext(ctx, timeout, func(timeout time.Duration) (any, error) {
		return pc.rc.DoWithTimeout(timeout, cmd, args...)
	})
	if _, isReply := err.(redis.Error); err != nil && !isReply {
		pc.broken = true
	}
	return reply, !pc.broken && pc.rc.Err() == nil, err
}

// closeUnpooled closes pc, from dialUnpooled.
func (pc *conn) closeUnpooled() { pc.rc.Close() }

// readOnly returns cfg for a pool whose connections send READONLY when
// dialed, so that a replica serves keyed reads rather than answering
// MOVED.
func (cfg Config) readOnly() Config {
	cfg.dialCmd = "READONLY"
	return cfg
}
