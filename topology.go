package redispool

// A Cluster's topology: the pool of each node (nodeFor) and their
// retirement when the slot map no longer lists a node (retire); the
// slot map's loading, single-flight (reload, load) and in the
// background at most every refreshCooldown (refresher); and the control
// connections that topology work runs on, outside the node pools
// (ctlDo).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

const (
	// refreshCooldown is the least time between two slot-map reloads
	// that MOVED replies and errors ask for: however many goroutines see
	// a MOVED at once, the cluster is asked once, and again at most
	// every refreshCooldown while they keep coming.
	refreshCooldown = 200 * time.Millisecond

	// redirectGrace keeps the pool of a node that a redirect named
	// although the slot map does not list it (a new master importing its
	// first slot) from being closed by the next reload.
	redirectGrace = 10 * time.Second

	// maxPendingNodes bounds the pools of nodes known only from
	// redirects. A real migration names one or two such nodes at a time
	// (the targets of a first import); a node that answers MOVED to ever
	// new addresses would otherwise create a pool, and its goroutines,
	// per address.
	maxPendingNodes = 8
)

// clusterNode is one node of the cluster and its pool.
type clusterNode struct {
	addr string
	pool *Pool
	// redirected is when a redirect last named the node (UnixNano), so
	// that a reload that does not list a node known only from redirects
	// leaves its pool open for redirectGrace.
	redirected atomic.Int64
	// listed is set once the slot map lists the node; until then it is
	// known only from a redirect, and counts against maxPendingNodes.
	listed atomic.Bool
	// suspect is when (UnixNano) the window that follows an I/O error
	// on one of the node's connections ends; see Cluster.borrowFrom.
	suspect atomic.Int64
}

// nodeRole says why nodeFor is asked for a node.
type nodeRole uint8

const (
	roleListed   nodeRole = iota // the slot map lists it
	roleReplica                  // the slot map lists it as a replica: READONLY on its connections
	roleRedirect                 // a MOVED or ASK named it: pending until a slot map lists it
)

// nodeFor returns the node at addr, creating its pool if needed. A node
// known only from redirects is pending, and at most maxPendingNodes
// are: a further one fails with errTooManyPending. Creating a pending
// node asks for a reload, which lists it or, after redirectGrace,
// retires it.
func (c *Cluster) nodeFor(addr string, role nodeRole) (*clusterNode, error) {
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	if c.nodesClosed {
		return nil, ErrPoolClosed
	}
	n := c.nodes[addr]
	if n == nil {
		if role == roleRedirect {
			pending := 0
			for _, m := range c.nodes {
				if !m.listed.Load() {
					pending++
				}
			}
			if pending >= maxPendingNodes {
				return nil, errTooManyPending
			}
			c.requestRefresh()
		}
		cfg := c.node
		cfg.Addr = addr
		if role == roleReplica {
			cfg = cfg.readOnly()
		}
		p, err := New(context.Background(), cfg) // no I/O: it only starts the pool's goroutines
		if err != nil {
			return nil, fmt.Errorf("redispool: cluster: node %s: %w", addr, err)
		}
		n = &clusterNode{addr: addr, pool: p}
		c.nodes[addr] = n
	}
	if role != roleRedirect {
		n.listed.Store(true)
	}
	return n, nil
}

// errTooManyPending is the error of a redirect to yet another node that
// the slot map does not list while maxPendingNodes such nodes wait for
// a reload to list them.
var errTooManyPending = fmt.Errorf("redispool: cluster: redirected to a node the slot map does not list while %d such nodes await a reload that lists them", maxPendingNodes)

// retire closes the pools of nodes that t does not list, except those
// known only from a recent redirect: a master importing its first slot
// is named by ASK replies before CLUSTER SLOTS lists it. It also closes
// the control connections to nodes that are not masters of t.
func (c *Cluster) retire(t *slotTable) {
	listed := make(map[string]bool)
	masters := make(map[string]bool)
	for _, sh := range t.shards[1:] {
		if sh.master != nil {
			listed[sh.master.addr] = true
			masters[sh.master.addr] = true
		}
		for _, a := range sh.replicaAddrs {
			listed[a] = true
		}
	}
	recent := time.Now().Add(-redirectGrace).UnixNano()
	var gone []*clusterNode
	c.nodesMu.Lock()
	for addr, n := range c.nodes {
		switch {
		case listed[addr]:
			n.listed.Store(true)
		case n.listed.Load() || n.redirected.Load() < recent:
			delete(c.nodes, addr)
			gone = append(gone, n)
		}
	}
	c.nodesMu.Unlock()
	for _, n := range gone {
		n.pool.Close()
	}

	var idle []*conn
	c.ctlMu.Lock()
	for addr, pc := range c.ctl {
		if !masters[addr] {
			delete(c.ctl, addr)
			idle = append(idle, pc)
		}
	}
	c.ctlMu.Unlock()
	for _, pc := range idle {
		pc.closeUnpooled()
	}
}

// slotMap returns the slot map, loading it on first use.
func (c *Cluster) slotMap(ctx context.Context) (*slotTable, error) {
	if t := c.table.Load(); t != nil {
		return t, nil
	}
	if err := c.reload(ctx); err != nil {
		return nil, err
	}
	if t := c.table.Load(); t != nil {
		return t, nil
	}
	return nil, ErrPoolClosed // the table is never unset; Close raced the load
}

type loadCall struct {
	done chan struct{}
	err  error
}

// reload loads the slot map, single-flight: callers that arrive during
// a load wait for its result.
func (c *Cluster) reload(ctx context.Context) error {
	c.loadMu.Lock()
	for c.loading != nil {
		call := c.loading
		c.loadMu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return fmt.Errorf("redispool: cluster: load slot map: %w", ctx.Err())
		}
		if call.err == nil || !errors.Is(call.err, context.Canceled) && !errors.Is(call.err, context.DeadlineExceeded) {
			return call.err
		}
		// The load ended with its leader's context, not ours: lead the
		// next one.
		c.loadMu.Lock()
	}
	call := &loadCall{done: make(chan struct{})}
	c.loading = call
	c.loadMu.Unlock()

	call.err = c.load(ctx)
	if call.err != nil {
		c.stats.refreshErrors.Add(1)
	} else {
		c.stats.refreshes.Add(1)
	}
	c.lastLoad.Store(time.Now().UnixNano())
	c.loadMu.Lock()
	c.loading = nil
	c.loadMu.Unlock()
	close(call.done)
	return call.err
}

// load asks the known masters, then the seeds, for CLUSTER SLOTS until
// one answers, publishes the new slot map and closes the pools of nodes
// it no longer lists. It asks over control connections, never a node
// pool's: with every data connection borrowed (BLPOP workers), the map
// still loads at once.
func (c *Cluster) load(ctx context.Context) error {
	var addrs []string
	if t := c.table.Load(); t != nil {
		for _, n := range t.masters {
			addrs = append(addrs, n.addr)
		}
		rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	}
	for _, a := range c.cfg.Addrs {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	var errs []error
	for _, addr := range addrs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("redispool: cluster: load slot map: %w", err)
		}
		reply, err := c.ctlDo(ctx, addr, "CLUSTER", "SLOTS")
		var t *slotTable
		if err == nil {
			t, err = c.parseSlots(reply, addr)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.table.Store(t)
		c.retire(t)
		return nil
	}
	return fmt.Errorf("redispool: cluster: no node answered CLUSTER SLOTS (seeds %s): %w",
		strings.Join(c.cfg.Addrs, ", "), errors.Join(errs...))
}

// requestRefresh asks the refresher for a reload of the slot map. It
// never blocks: a request made while one is pending joins it.
func (c *Cluster) requestRefresh() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// refresher reloads the slot map when asked, at most once per
// refreshCooldown, and every RefreshInterval.
func (c *Cluster) refresher() {
	defer c.bg.Done()
	var tick <-chan time.Time
	if c.cfg.RefreshInterval > 0 {
		t := time.NewTicker(c.cfg.RefreshInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.closed:
			return
		case <-tick:
		case <-c.kick:
			if wait := refreshCooldown - time.Since(time.Unix(0, c.lastLoad.Load())); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-c.closed:
					t.Stop()
					return
				}
			}
		}
		c.reload(c.bgCtx) //nolint:errcheck // counted in RefreshErrors; commands see the consequences
	}
}

// ctlDo runs cmd on a control connection to addr: a connection of the
// cluster's own, outside the node's pool, so that topology work — CLUSTER
// SLOTS, Ping — never waits behind borrowed data connections. At most
// one idle control connection is kept per master (retire closes the
// others, Close all); a caller that finds none dials one, and of two
// returned at once the second is closed. cmd must leave no session
// state. A connection that died while idle (a restart, the server's
// timeout) is replaced once: CLUSTER SLOTS and PING are safe to repeat.
func (c *Cluster) ctlDo(ctx context.Context, addr, cmd string, args ...any) (any, error) {
	for attempt := 0; ; attempt++ {
		pc, reused, err := c.ctlTake(ctx, addr)
		if err != nil {
			return nil, err
		}
		reply, fit, err := pc.doUnpooled(ctx, c.readTO, cmd, args)
		c.ctlPut(addr, pc, fit) // pc is another caller's once put back
		if !fit && reused && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return reply, err
	}
}

// ctlTake takes the idle control connection to addr, or dials one.
func (c *Cluster) ctlTake(ctx context.Context, addr string) (pc *conn, reused bool, err error) {
	c.ctlMu.Lock()
	if c.ctlClosed {
		c.ctlMu.Unlock()
		return nil, false, ErrPoolClosed
	}
	if pc := c.ctl[addr]; pc != nil {
		delete(c.ctl, addr)
		c.ctlMu.Unlock()
		return pc, true, nil
	}
	c.ctlMu.Unlock()
	cfg := c.ctlCfg
	cfg.Addr = addr
	pc, err = dialUnpooled(ctx, cfg, c.bgCtx) // Close ends the dial
	return pc, false, err
}

// ctlPut keeps pc as addr's idle control connection if it is fit, or
// closes it.
func (c *Cluster) ctlPut(addr string, pc *conn, fit bool) {
	c.ctlMu.Lock()
	keep := fit && !c.ctlClosed && c.ctl[addr] == nil
	if keep {
		c.ctl[addr] = pc
	}
	c.ctlMu.Unlock()
	if !keep {
		pc.closeUnpooled()
	}
}
