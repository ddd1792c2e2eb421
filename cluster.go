package redispool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
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

const (
	// refreshCooldown is the least time between two slot-map reloads
	// that MOVED replies and errors ask for: however many goroutines see
	// a MOVED at once, the cluster is asked once, and again at most
	// every refreshCooldown while they keep coming.
	refreshCooldown = 200 * time.Millisecond

	// retryPauseMin and retryPauseMax bound the pause before a command
	// the cluster did not run is sent again; it doubles from the first
	// to the second.
	retryPauseMin = 10 * time.Millisecond
	retryPauseMax = 100 * time.Millisecond

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

	numSlots = 16384
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
	ctlStats  counters   // their factories' counters; not reported
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
	// on one of the node's connections ends; see Cluster.get.
	suspect atomic.Int64
}

// suspectWindow is how long after an I/O error on a node's connection
// every connection borrowed from its pool is checked first.
const suspectWindow = 100 * time.Millisecond

// slotTable is the slot map: which node serves each slot. It is never
// changed once published; a reload or a MOVED publishes a new one, so
// routing reads it without a lock.
type slotTable struct {
	slots   [numSlots]uint16 // index into shards; 0: no owner
	shards  []shard          // shards[0] is unused
	masters []*clusterNode   // every master once, for keyless commands
	from    string           // the node that sent the CLUSTER SLOTS reply
}

type shard struct {
	master *clusterNode // nil when endpoint cannot be dialed
	// endpoint is host:port of the master as CLUSTER SLOTS gave it,
	// kept for the error of a master that cannot be dialed ("?:7001").
	endpoint string
	replicas []*clusterNode // with ReadFromReplicas, the dialable replicas
	// replicaAddrs are the dialable replicas CLUSTER SLOTS lists, for
	// ForEachNode, which creates their pools; badReplicas the others.
	replicaAddrs, badReplicas []string
}

type loadCall struct {
	done chan struct{}
	err  error
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
		c.node.dialCmd = "READONLY"
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

// do runs cmd, routed by slot (-1: any master), to replica if readOnly.
// start, if non-nil, is a redirect already received, the redirects-th.
func (c *Cluster) do(ctx context.Context, timeout time.Duration, slot int, readOnly bool, start *RedirectError, redirects int, cmd string, args []any) (any, error) {
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
				return nil, err
			}
		}
		pc, err := c.get(ctx, n)
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
		reply, err := c.send(ctx, n, pc, timeout, asking, cmd, args)
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

// get borrows a connection from n's pool. A node that dies breaks all
// its connections at once, and under load the next command would go out
// on one the pool handed back unchecked (returned under peekAfterIdle
// ago), or on one dialed into the dying listener's backlog (a dial
// without AUTH or SELECT makes no round trip). So for suspectWindow
// after an I/O error on one of n's connections, get checks every
// connection with a PING before the command is sent; one that fails is
// closed and the error returned as a failed borrow, which Do retries.
func (c *Cluster) get(ctx context.Context, n *clusterNode) (*conn, error) {
	pc, err := n.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	if s := n.suspect.Load(); s == 0 || time.Now().UnixNano() >= s {
		return pc, nil
	}
	_, err = pc.withContext(ctx, pc.f.cfg.CheckTimeout, func(timeout time.Duration) (any, error) {
		return pc.rc.DoWithTimeout(timeout, "PING") // leaves no state: not tracked
	})
	if err != nil {
		pc.broken = true
		n.pool.put(pc)
		return nil, fmt.Errorf("%w: %s: %w", errCheckFailed, n.addr, err)
	}
	return pc, nil
}

// errCheckFailed is wrapped by the error of a borrow whose connection
// failed get's check: the command was not sent.
var errCheckFailed = errors.New("redispool: cluster: connection check failed")

// send runs cmd on pc, a connection of n, preceded by ASKING when
// asking, and returns pc to its pool.
func (c *Cluster) send(ctx context.Context, n *clusterNode, pc *conn, timeout time.Duration, asking bool, cmd string, args []any) (any, error) {
	if asking {
		// Straight to redigo, not through the tracker: ASKING flags only
		// the next command, which is ours, so it leaves nothing behind
		// and the connection stays reusable. Do reads its reply first.
		pc.rc.Send("ASKING")
	}
	reply, err := pc.withContext(ctx, timeout, func(timeout time.Duration) (any, error) {
		return pc.do(ctx, timeout, cmd, args)
	})
	if err != nil && ctx.Err() == nil {
		if _, ok := err.(redis.Error); !ok {
			n.suspect.Store(time.Now().Add(suspectWindow).UnixNano())
		}
	}
	n.pool.put(pc)
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

// errTooManyPending is the error of a redirect to yet another node that
// the slot map does not list while maxPendingNodes such nodes wait for
// a reload to list them.
var errTooManyPending = fmt.Errorf("redispool: cluster: redirected to a node the slot map does not list while %d such nodes await a reload that lists them", maxPendingNodes)

// retryableBorrow reports whether a failed borrow from a node's pool may
// be retried on a fresh route: the pool was closed by a reload, or the
// node refused the connection or failed get's check (it may be down
// while a replica takes over). Exhausted pools, rejected credentials and ended contexts are
// not retried.
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

// route returns the node for slot: its master, or with replica a
// replica chosen at random. Slot -1 picks the next master in turn.
func (t *slotTable) route(slot int, replica bool, next *atomic.Uint32) (*clusterNode, error) {
	if slot < 0 {
		if len(t.masters) == 0 {
			if bad := t.undialable(); len(bad) > 0 {
				return nil, bad[0]
			}
			return nil, fmt.Errorf("redispool: cluster: no master in the slot map from %s", t.from)
		}
		return t.masters[int(next.Add(1))%len(t.masters)], nil
	}
	i := t.slots[slot]
	if i == 0 {
		return nil, fmt.Errorf("redispool: cluster: slot %d has no owner in the slot map from %s: the cluster does not serve it", slot, t.from)
	}
	sh := &t.shards[i]
	if sh.master == nil {
		return nil, endpointError(fmt.Sprintf("slot %d", slot), "its master", sh.endpoint, t.from)
	}
	if replica && len(sh.replicas) > 0 {
		return sh.replicas[rand.IntN(len(sh.replicas))], nil
	}
	return sh.master, nil
}

// owner returns the master of slot, or nil.
func (t *slotTable) owner(slot int) *clusterNode {
	return t.shards[t.slots[slot]].master
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

// patch publishes a slot map in which n serves slot, as a MOVED reply
// said.
func (c *Cluster) patch(slot int, n *clusterNode) {
	for {
		old := c.table.Load()
		if old == nil || old.owner(slot) == n {
			return
		}
		t := &slotTable{slots: old.slots, from: old.from}
		i := slices.IndexFunc(old.shards, func(s shard) bool { return s.master == n })
		t.shards, t.masters = old.shards, old.masters
		if i < 0 {
			i = len(old.shards)
			t.shards = append(slices.Clip(old.shards), shard{master: n})
			t.masters = append(slices.Clip(old.masters), n)
		}
		t.slots[slot] = uint16(i)
		if c.table.CompareAndSwap(old, t) {
			return
		}
	}
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
			cfg.dialCmd = "READONLY"
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

// Refresh reloads the slot map now. A reload already in progress is
// joined rather than repeated.
func (c *Cluster) Refresh(ctx context.Context) error {
	if c.isClosed() {
		return ErrPoolClosed
	}
	return c.reload(ctx)
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

// parseSlots builds a slot map from a CLUSTER SLOTS reply sent by from.
// A master whose address cannot be dialed ("?" for a host, port 0)
// still gets its shard, without a node, so that its slots fail with an
// error that says why rather than "no owner".
func (c *Cluster) parseSlots(reply any, from string) (*slotTable, error) {
	ranges, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("redispool: cluster: CLUSTER SLOTS from %s: unexpected reply %T", from, reply)
	}
	if len(ranges) == 0 {
		return nil, fmt.Errorf("redispool: cluster: CLUSTER SLOTS from %s lists no slots: the cluster is not set up", from)
	}
	fromHost, _, _ := net.SplitHostPort(from)
	t := &slotTable{shards: make([]shard, 1), from: from}
	byMaster := make(map[string]int) // shard index by the master's endpoint
	malformed := fmt.Errorf("redispool: cluster: CLUSTER SLOTS from %s: malformed reply", from)
	for _, r := range ranges {
		e, ok := r.([]any)
		if !ok || len(e) < 3 {
			return nil, malformed
		}
		lo, err1 := redis.Int(e[0], nil)
		hi, err2 := redis.Int(e[1], nil)
		if err1 != nil || err2 != nil || lo < 0 || hi >= numSlots || lo > hi {
			return nil, malformed
		}
		addr, dialable, ok := slotNodeAddr(e[2], fromHost)
		if !ok {
			return nil, malformed
		}
		i, ok := byMaster[addr]
		if !ok {
			i = len(t.shards)
			byMaster[addr] = i
			sh := shard{endpoint: addr}
			if dialable {
				n, err := c.nodeFor(addr, roleListed)
				if err != nil {
					return nil, err
				}
				sh.master = n
				t.masters = append(t.masters, n)
			}
			t.shards = append(t.shards, sh)
		}
		sh := &t.shards[i]
		for _, re := range e[3:] {
			raddr, rdialable, ok := slotNodeAddr(re, fromHost)
			switch {
			case !ok || slices.Contains(sh.replicaAddrs, raddr) || slices.Contains(sh.badReplicas, raddr):
				continue
			case !rdialable:
				sh.badReplicas = append(sh.badReplicas, raddr)
				continue
			}
			sh.replicaAddrs = append(sh.replicaAddrs, raddr)
			if c.cfg.ReadFromReplicas {
				n, err := c.nodeFor(raddr, roleListed)
				if err != nil {
					return nil, err
				}
				sh.replicas = append(sh.replicas, n)
			}
		}
		for s := lo; s <= hi; s++ {
			t.slots[s] = uint16(i)
		}
	}
	return t, nil
}

// slotNodeAddr returns host:port of a node entry of CLUSTER SLOTS
// ([host, port, id, ...]), and whether it can be dialed: not when the
// host is "?" (cluster-preferred-endpoint-type hostname, and the node
// announces none) or the port is 0 (the node has none for this kind of
// connection). An empty or null host means, as the Redis documentation
// says, the host of the node that replied: a node that has never met
// another does not know its own address, and with
// cluster-preferred-endpoint-type unknown-endpoint the client is meant
// to use the address it asked. ok is false for a malformed entry.
func slotNodeAddr(entry any, fromHost string) (addr string, dialable, ok bool) {
	e, ok := entry.([]any)
	if !ok || len(e) < 2 {
		return "", false, false
	}
	port, err := redis.Int(e[1], nil)
	if err != nil {
		return "", false, false
	}
	var host string
	switch h := e[0].(type) {
	case nil:
	case []byte:
		host = string(h)
	case string:
		host = h
	default:
		return "", false, false
	}
	if host == "" {
		host = fromHost
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), host != "?" && port > 0 && port <= 65535, true
}

// endpointError is the error for slots whose master (what) CLUSTER
// SLOTS from gives at an endpoint that cannot be dialed.
func endpointError(slots, what, endpoint, from string) error {
	why := "not an address to dial"
	if host, port, _ := net.SplitHostPort(endpoint); host == "?" {
		why = "the node has no hostname while cluster-preferred-endpoint-type is hostname: " +
			"give every node one (cluster-announce-hostname), or set cluster-preferred-endpoint-type to ip"
	} else if port == "0" {
		why = "the node announces no port for this kind of connection (TLS or plain TCP)"
	}
	return fmt.Errorf("redispool: cluster: %s: CLUSTER SLOTS from %s gives %s as %q: %s", slots, from, what, endpoint, why)
}

// undialable returns an error for each master of t whose endpoint
// cannot be dialed, naming the slots it serves.
func (t *slotTable) undialable() []error {
	var errs []error
	for i := 1; i < len(t.shards); i++ {
		if sh := &t.shards[i]; sh.master == nil {
			errs = append(errs, endpointError(t.slotRanges(uint16(i)), "their master", sh.endpoint, t.from))
		}
	}
	return errs
}

// slotRanges describes the slots of shard i: "slots 0-5460, 10923".
func (t *slotTable) slotRanges(i uint16) string {
	var b strings.Builder
	n := 0
	for s := 0; s < numSlots; s++ {
		if t.slots[s] != i {
			continue
		}
		e := s
		for e+1 < numSlots && t.slots[e+1] == i {
			e++
		}
		if n > 0 {
			b.WriteString(", ")
		}
		n += e - s + 1
		if e == s {
			fmt.Fprintf(&b, "%d", s)
		} else {
			fmt.Fprintf(&b, "%d-%d", s, e)
		}
		s = e
	}
	if n == 1 {
		return "slot " + b.String()
	}
	return "slots " + b.String()
}

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
		pc.rc.Close()
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
		reply, err := pc.withContext(ctx, c.readTO, func(timeout time.Duration) (any, error) {
			return pc.rc.DoWithTimeout(timeout, cmd, args...)
		})
		if _, isReply := err.(redis.Error); err != nil && !isReply {
			pc.broken = true
		}
		broken := pc.broken // pc is another caller's once put back
		c.ctlPut(addr, pc)
		if broken && reused && attempt == 0 && ctx.Err() == nil {
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
	f := newFactory(cfg, &c.ctlStats)
	f.closing = c.bgCtx // Close ends the dial
	pc, err = f.dial(ctx)
	return pc, false, err
}

// ctlPut keeps pc as addr's idle control connection, or closes it.
func (c *Cluster) ctlPut(addr string, pc *conn) {
	c.ctlMu.Lock()
	keep := !pc.broken && pc.rc.Err() == nil && !c.ctlClosed && c.ctl[addr] == nil
	if keep {
		c.ctl[addr] = pc
	}
	c.ctlMu.Unlock()
	if !keep {
		pc.rc.Close()
	}
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
			pc.rc.Close()
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
