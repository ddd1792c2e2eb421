package redispool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Defaults applied by NewCluster to zero-valued ClusterConfig fields.
const (
	DefaultMaxRedirects    = 5
	DefaultRetryTimeout    = 5 * time.Second
	DefaultRefreshInterval = time.Minute
)

// ClusterConfig describes a Redis Cluster and the pool kept for each of
// its nodes.
//
// The zero value of every field but Addrs is usable: it selects the
// default written in the field's comment.
type ClusterConfig struct {
	// Addrs are seed nodes, host:port, asked for the slot map until one
	// answers; one reachable node is enough. Required.
	Addrs []string

	// Node is the template of every node's Pool: credentials,
	// ClientName, TLSConfig, Dial, timeouts and sizes, which are per
	// node (MaxTotal bounds the connections to each node). Leave Addr
	// empty and DB 0: addresses come from the cluster, which has only
	// database 0. An empty TLSConfig.ServerName is filled in per node
	// from its address.
	Node Config

	// MaxRedirects is how many MOVED and ASK replies one command
	// follows in a row. A retry (after TRYAGAIN, CLUSTERDOWN, LOADING,
	// READONLY or a refused dial) starts a fresh count: RetryTimeout
	// bounds the whole. Zero means 5; negative means none: the first
	// redirect is returned as a *RedirectError.
	MaxRedirects int

	// RetryTimeout bounds the retries of commands the cluster did not
	// run: TRYAGAIN, CLUSTERDOWN, LOADING and READONLY replies, and
	// refused dials. It must cover a failover, about
	// cluster-node-timeout plus 1–2 seconds. Zero means 5 seconds;
	// negative means no retries. The context deadline, if earlier, wins.
	RetryTimeout time.Duration

	// RefreshInterval is how often the slot map is reloaded in the
	// background. It is also reloaded, at most every 200ms, after MOVED
	// replies and errors. Zero means 1 minute; negative means only after
	// MOVED replies and errors.
	RefreshInterval time.Duration

	// ReadFromReplicas makes Do send read-only commands (GET, MGET,
	// HGETALL, EVAL_RO, ...) to a replica of the key's slot, chosen at
	// random, or to the master when the slot has none. Connections are
	// put into READONLY mode when dialed. Replicas lag their master:
	// enable it only where reads may be slightly stale. Connections from
	// Get, GetContext and GetForKeys always use masters. False means
	// masters only.
	ReadFromReplicas bool
}

// A Cluster is a set of pools, one per node of a Redis Cluster, that
// routes each command to the node serving its key's hash slot.
//
// Cluster.Do routes one command, follows MOVED and ASK redirects, and
// retries commands the cluster did not run. Get, GetContext and
// GetForKeys return connections bound to one node, for transactions,
// pipelines and code written for redigo's *redis.Pool. ForEachMaster
// and ForEachNode reach every node, for DBSIZE, SCAN, FLUSHALL and the
// like.
//
// The slot map is loaded, and Ping checks the masters, over control
// connections of the Cluster's own (at most one idle per master),
// never a node pool's: topology work goes on while every data
// connection is borrowed.
//
// A Cluster is safe for concurrent use by multiple goroutines. Create
// one per cluster with NewCluster and reuse it.
type Cluster struct {
	cfg        ClusterConfig // with defaults applied; internally, 0 means none
	node       Config        // template for node pools, validated
	readTO     time.Duration // the nodes' ReadTimeout, defaults applied
	maxRedir   int           // redirects followed per command; 0: none
	retryLimit time.Duration // 0: no retries

	table atomic.Pointer[slotTable] // nil until first loaded

	nodesMu     sync.Mutex // protects following fields
	nodes       map[string]*clusterNode
	nodesClosed bool

	loadMu   sync.Mutex // protects loading
	loading  *loadCall  // the reload in progress, if any
	lastLoad atomic.Int64

	// Control connections (see ctlDo) carry CLUSTER SLOTS and Ping's
	// PINGs outside the node pools.
	ctlCfg    Config     // the node template with defaults, for dialing them
	ctlMu     sync.Mutex // protects following fields
	ctl       map[string]*conn
	ctlClosed bool

	kick      chan struct{} // asks the refresher for a reload; buffered 1
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	bgCtx     context.Context // cancelled by Close: ends background reloads
	bgCancel  context.CancelFunc
	bg        sync.WaitGroup

	next  atomic.Uint32 // spreads keyless commands over the masters
	stats clusterCounters

	redigo atomicRedigoPool // RedigoPool's (bridge.go)
}

// clusterCounters are the cluster's live statistics.
type clusterCounters struct {
	moved, ask, tryAgain, clusterDown, retries, refreshes, refreshErrors atomic.Int64
}

// ClusterStats is a snapshot of a cluster's pools and counters.
// Counters count from NewCluster and only grow.
type ClusterStats struct {
	Nodes map[string]Stats // each node's pool, by host:port as CLUSTER SLOTS reports it
	Slots map[string]int   // the number of slots each master serves, by host:port

	// PendingNodes counts the pools in Nodes of nodes known only from a
	// MOVED or ASK reply, which no slot map has listed yet: the target
	// of a migration to a new master, or an address a misbehaving node
	// made up. At most 8; a redirect to a further unlisted node fails.
	PendingNodes int

	// ControlConns counts the idle control connections: one at most
	// per master, outside every node pool, on which the Cluster loads
	// the slot map and Ping PINGs, so that topology work never waits
	// behind borrowed data connections. The servers see them beside
	// the pools' connections.
	ControlConns int

	Moved         int64 // MOVED replies: the slot map was out of date
	Ask           int64 // ASK replies: a slot was being migrated
	TryAgain      int64 // TRYAGAIN replies: a multi-key command met a slot in migration
	ClusterDown   int64 // CLUSTERDOWN replies: no quorum or a slot not served, as during a failover
	Retries       int64 // commands sent again because the cluster had not run them
	Refreshes     int64 // slot-map reloads
	RefreshErrors int64 // slot-map reloads that failed
}

var _ interface {
	Get() redis.Conn
	GetContext(context.Context) (redis.Conn, error)
} = (*Cluster)(nil)

// NewCluster validates cfg and creates a Cluster. It does not connect:
// the slot map is loaded on first use, or by Ping. It starts the
// goroutine that reloads the slot map, which Close stops. ctx is not
// retained.
func NewCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redispool: new cluster: %w", err)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:        cfg,
		node:       cfg.Node,
		maxRedir:   cfg.MaxRedirects,
		retryLimit: orDefault(cfg.RetryTimeout, DefaultRetryTimeout),
		nodes:      make(map[string]*clusterNode),
		kick:       make(chan struct{}, 1),
		closed:     make(chan struct{}),
	}
	c.cfg.Addrs = slices.Clone(cfg.Addrs)
	c.cfg.RefreshInterval = orDefault(cfg.RefreshInterval, DefaultRefreshInterval)
	switch {
	case c.maxRedir == 0:
		c.maxRedir = DefaultMaxRedirects
	case c.maxRedir < 0:
		c.maxRedir = 0
	}
	c.node.Network = "tcp"
	if cfg.ReadFromReplicas {
		c.node = c.node.readOnly()
	}
	c.ctlCfg = c.node.withDefaults()
	c.readTO = c.ctlCfg.ReadTimeout
	c.ctl = make(map[string]*conn)
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	c.bg.Add(1)
	go c.refresher()
	return c, nil
}

func (cfg ClusterConfig) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if len(cfg.Addrs) == 0 {
		return bad("ClusterConfig.Addrs: at least one seed node (host:port) is required")
	}
	for _, a := range cfg.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil || a == "" {
			return bad("ClusterConfig.Addrs: seed %q: want host:port", a)
		}
		if err := (Config{Addr: a}).validate(); err != nil {
			return fmt.Errorf("%w (ClusterConfig.Addrs)", err)
		}
	}
	n := cfg.Node
	switch {
	case n.Addr != "":
		return bad("ClusterConfig.Node.Addr %q: leave it empty; node addresses come from Addrs and the cluster", n.Addr)
	case n.DB != 0:
		return bad("ClusterConfig.Node.DB %d: a cluster has only database 0", n.DB)
	case n.Sentinel != nil:
		return bad("ClusterConfig.Node.Sentinel: leave it nil; a cluster fails over by itself")
	case n.Network != "" && n.Network != "tcp":
		return bad("ClusterConfig.Node.Network %q: a cluster is reached over tcp", n.Network)
	}
	n.Addr = cfg.Addrs[0]
	if err := n.validate(); err != nil {
		return fmt.Errorf("%w (ClusterConfig.Node)", err)
	}
	return nil
}

// String describes the cluster by its seeds. It exists so that printing
// a *Cluster cannot show the password.
func (c *Cluster) String() string {
	return fmt.Sprintf("redispool.Cluster{%s}", strings.Join(c.cfg.Addrs, ","))
}

// GoString makes %#v as safe as %v.
func (c *Cluster) GoString() string { return c.String() }

// Get returns a connection that binds to a node lazily (see
// GetContext). It never returns nil: after Close, the connection's
// methods return ErrPoolClosed.
func (c *Cluster) Get() redis.Conn {
	if c.isClosed() {
		return errorConn{ErrPoolClosed}
	}
	return &clusterConn{c: c}
}

// GetContext returns a connection that routes each command while it
// holds no session state: a keyed command goes to its key's node and a
// keyless one (PING, SELECT 0, TIME) to any master. A pipeline binds it
// at its first keyed command, keyless commands sent before that being
// held and sent with it, so that MULTI, GET k, TIME, EXEC run on one
// node; so do WATCH and a subscription. Bound, a command whose key is
// served by another node fails with ErrCrossSlot before any I/O (inside
// MULTI it also dooms the transaction: EXEC discards it and returns a
// *TxAbortError). Once its replies are read and its transaction or
// WATCH has ended, the connection routes freely again.
//
// While the connection is clean, MOVED and ASK replies to Do are
// followed. Otherwise the redirect is returned as a *RedirectError: a
// transaction is never split across nodes.
//
// ctx is checked, not retained; each borrow from a node's pool runs
// under the context of the command that needs it (DoContext), or under
// BorrowTimeout. The caller must Close the connection.
func (c *Cluster) GetContext(ctx context.Context) (redis.Conn, error) {
	if c.isClosed() {
		return nil, ErrPoolClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redispool: get connection: %w", err)
	}
	return &clusterConn{c: c}, nil
}

// GetForKeys returns a connection bound to the master that serves the
// keys' slot, for a transaction (WATCH, MULTI, EXEC) or a pipeline on
// those keys. The keys must share a slot (use a {hash tag}); if they do
// not, it returns an error wrapping ErrCrossSlot before any I/O.
// Without keys it is GetContext.
func (c *Cluster) GetForKeys(ctx context.Context, keys ...string) (redis.Conn, error) {
	if len(keys) == 0 {
		return c.GetContext(ctx)
	}
	slot := Slot(keys[0])
	for i, k := range keys[1:] {
		if s := Slot(k); s != slot {
			return nil, fmt.Errorf("%w: key %d hashes to slot %d, key 0 to slot %d (use a {hash tag})", ErrCrossSlot, i+1, s, slot)
		}
	}
	if c.isClosed() {
		return nil, ErrPoolClosed
	}
	cc := &clusterConn{c: c, pinned: true}
	if err := cc.bind(ctx, slot); err != nil {
		return nil, err
	}
	return cc, nil
}

// Do runs one command on the node that serves its key's slot, or on
// any master for a command without a key; with ReadFromReplicas, a
// read-only command goes to a replica. It follows up to MaxRedirects
// MOVED and ASK replies, and retries, within RetryTimeout and ctx, the
// commands the cluster did not run: TRYAGAIN, CLUSTERDOWN, LOADING and
// READONLY replies and refused dials. A command that failed after it
// was sent (an I/O error, a timeout) is never retried: it may have run.
func (c *Cluster) Do(ctx context.Context, cmd string, args ...any) (any, error) {
	slot, keyed, _ := commandSlot(cmd, args)
	if !keyed {
		slot = -1
	}
	// A blocking command waits as long as it says, as with Pool.Do.
	timeout := blockingReadTimeout(ctx, c.readTO, cmd, args)
	reply, err := c.do(ctx, timeout, slot, c.cfg.ReadFromReplicas && keyed && isReadOnlyCommand(cmd), nil, 0, cmd, args)
	return reply, deadlineErr(ctx, err)
}

// Refresh reloads the slot map now. A reload already in progress is
// joined rather than repeated.
func (c *Cluster) Refresh(ctx context.Context) error {
	if c.isClosed() {
		return ErrPoolClosed
	}
	return c.reload(ctx)
}

// Ping loads the slot map and PINGs every master, so a service can fail
// fast at startup when the cluster is unreachable or not set up. It
// fails when a master's address in CLUSTER SLOTS cannot be dialed ("?"
// with cluster-preferred-endpoint-type hostname and no hostname
// announced), naming its slots: every command for them would fail.
// Like the slot map's reloads, it uses connections of its own, not the
// node pools': it answers at once even while every data connection is
// borrowed.
func (c *Cluster) Ping(ctx context.Context) error {
	if c.isClosed() {
		return ErrPoolClosed
	}
	if err := c.reload(ctx); err != nil {
		return err
	}
	t := c.table.Load()
	errs := make([]error, len(t.masters))
	var wg sync.WaitGroup
	for i, n := range t.masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reply, err := redis.String(c.ctlDo(ctx, n.addr, "PING"))
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("redispool: cluster: PING %s: %w", n.addr, err)
			case reply != "PONG":
				errs[i] = fmt.Errorf("redispool: cluster: PING %s: unexpected reply %q", n.addr, reply)
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(t.undialable(), errs...)...)
}

// ForEachMaster runs fn on the Pool of every master of the slot map,
// concurrently, and returns when all have returned: their errors
// joined (errors.Join), each naming its node. It is how a command that
// acts on one node's keyspace reaches the whole cluster: DBSIZE
// (summed), FLUSHALL, SCAN and KEYS (concatenated), SCRIPT LOAD.
//
// The slot map is the current one, loaded if need be; call Refresh
// first for one as fresh as the cluster's. A master whose address
// cannot be dialed is an error, not skipped. fn must not keep p: the
// pool is closed when a reload no longer lists the node.
func (c *Cluster) ForEachMaster(ctx context.Context, fn func(ctx context.Context, p *Pool) error) error {
	if c.isClosed() {
		return ErrPoolClosed
	}
	t, err := c.slotMap(ctx)
	if err != nil {
		return err
	}
	return forEach(ctx, t.masters, t.undialable(), fn)
}

// ForEachNode is ForEachMaster for every node the slot map lists:
// masters, and replicas, whose pools are created on first use and send
// READONLY on each new connection, so that keyed reads run there
// rather than answering MOVED.
func (c *Cluster) ForEachNode(ctx context.Context, fn func(ctx context.Context, p *Pool) error) error {
	if c.isClosed() {
		return ErrPoolClosed
	}
	t, err := c.slotMap(ctx)
	if err != nil {
		return err
	}
	errs := t.undialable()
	nodes := slices.Clone(t.masters)
	for _, sh := range t.shards[1:] {
		for _, addr := range sh.badReplicas {
			errs = append(errs, endpointError("a replica of "+sh.endpoint, "it", addr, t.from))
		}
		for _, addr := range sh.replicaAddrs {
			n, err := c.nodeFor(addr, roleReplica)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !slices.Contains(nodes, n) {
				nodes = append(nodes, n)
			}
		}
	}
	return forEach(ctx, nodes, errs, fn)
}

// forEach runs fn on the pools of nodes concurrently and joins errs
// and fn's errors, each naming its node.
func forEach(ctx context.Context, nodes []*clusterNode, errs []error, fn func(ctx context.Context, p *Pool) error) error {
	results := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, n.pool); err != nil {
				results[i] = fmt.Errorf("redispool: cluster: node %s: %w", n.addr, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, results...)...)
}

// Stats returns a snapshot of the cluster's statistics.
func (c *Cluster) Stats() ClusterStats {
	s := ClusterStats{
		Nodes:         make(map[string]Stats),
		Slots:         make(map[string]int),
		Moved:         c.stats.moved.Load(),
		Ask:           c.stats.ask.Load(),
		TryAgain:      c.stats.tryAgain.Load(),
		ClusterDown:   c.stats.clusterDown.Load(),
		Retries:       c.stats.retries.Load(),
		Refreshes:     c.stats.refreshes.Load(),
		RefreshErrors: c.stats.refreshErrors.Load(),
	}
	c.nodesMu.Lock()
	nodes := make([]*clusterNode, 0, len(c.nodes))
	for _, n := range c.nodes {
		nodes = append(nodes, n)
	}
	c.nodesMu.Unlock()
	c.ctlMu.Lock()
	s.ControlConns = len(c.ctl)
	c.ctlMu.Unlock()
	for _, n := range nodes {
		s.Nodes[n.addr] = n.pool.Stats()
		if !n.listed.Load() {
			s.PendingNodes++
		}
	}
	if t := c.table.Load(); t != nil {
		for _, i := range t.slots {
			if m := t.shards[i].master; i != 0 && m != nil {
				s.Slots[m.addr]++
			}
		}
	}
	return s
}

// Close closes every node's pool and the control connections, and
// stops the refresher. Connections still borrowed are closed when they
// are returned; later borrows fail with ErrPoolClosed. Close is
// idempotent and returns when the cluster's goroutines have stopped.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.bgCancel() // also ends control-connection dials in flight
		c.bg.Wait()
		c.nodesMu.Lock()
		c.nodesClosed = true
		nodes := c.nodes
		c.nodes = nil
		c.nodesMu.Unlock()
		for _, n := range nodes {
			n.pool.Close()
		}
		// A control connection in use now is closed by ctlPut.
		c.ctlMu.Lock()
		c.ctlClosed = true
		idle := c.ctl
		c.ctl = nil
		c.ctlMu.Unlock()
		for _, pc := range idle {
			pc.closeUnpooled()
		}
	})
	return nil
}

func (c *Cluster) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}
