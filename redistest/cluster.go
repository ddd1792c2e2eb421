package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clusterTimeout bounds every wait of the cluster launcher: for the
// cluster to form, for a redis-cli run, for the nodes to agree after a
// change. A failover with --cluster-node-timeout 1000 takes 2–3 seconds.
const clusterTimeout = 30 * time.Second

// ClusterOptions configures StartCluster. The zero value is 3 masters with
// one replica each.
type ClusterOptions struct {
	// Masters is the number of masters. Zero means 3.
	Masters int

	// Replicas is the number of replicas of each master. Zero means 1;
	// negative means none.
	Replicas int

	// Args are more redis-server arguments for every node, after the
	// cluster ones; see StartServer. With "--requirepass", the launcher
	// also sets --masterauth and gives the password to redis-cli.
	Args []string
}

// Cluster is a Redis Cluster of real redis-server processes on loopback
// ports, started for one test by StartCluster. Its methods that take a
// testing.TB fail the test on error and must be called from the test
// goroutine; load can run meanwhile in other goroutines.
type Cluster struct {
	t    testing.TB
	cli  string   // redis-cli binary
	args []string // redis-server arguments of every node
	pass string   // --requirepass, or ""

	mu    sync.Mutex // protects nodes
	nodes []*ClusterNode
}

// ClusterNode is one node of a Cluster: a Server (Addr, Kill, Restart, Do,
// ClientList ...) with its cluster node ID. Its role changes with
// failovers; ask the Cluster (Masters, Replicas, Info) for the current one.
type ClusterNode struct {
	*Server
	id string
}

// ID returns the node's cluster node ID (CLUSTER MYID). It survives
// restarts: the node's nodes.conf is kept in its directory.
func (n *ClusterNode) ID() string { return n.id }

// String returns the node's address and the start of its ID, for messages.
func (n *ClusterNode) String() string { return n.Addr() + "/" + n.id[:8] }

// StartCluster starts a Redis Cluster: opts.Masters masters with
// opts.Replicas replicas each, every node on its own loopback data port and
// bus port (both below 32000, see FreeLowPort), with
//
//	--cluster-enabled yes --cluster-node-timeout 1000
//	--repl-diskless-sync-delay 0 --shutdown-timeout 0
//
// on top of StartServer's defaults (no persistence, own directory, where
// nodes.conf lives), and creates the cluster with redis-cli --cluster
// create. It returns once every node reports cluster_state:ok and, after a
// write to each master, every node's CLUSTER SLOTS lists every replica,
// which is when a client that loads the slot map sees the whole cluster.
//
// It skips the test when redis-server or redis-cli is missing, unless
// REDISPOOL_REQUIRE_SERVER=1. Every node is stopped when the test
// completes, whether it passed or not.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	masters, replicas := opts.Masters, opts.Replicas
	if masters == 0 {
		masters = 3
	}
	switch {
	case replicas == 0:
		replicas = 1
	case replicas < 0:
		replicas = 0
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		skipOrFail(t, "redistest: redis-cli not found in $PATH: %v", err)
	}
	c := &Cluster{
		t:   t,
		cli: cli,
		args: []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", // in the node's --dir
			"--cluster-node-timeout", "1000",
			"--repl-diskless-sync-delay", "0",
			"--shutdown-timeout", "0", // a master does not wait for its replicas on SIGTERM
		},
		pass: passwordFromArgs(opts.Args),
	}
	if c.pass != "" {
		c.args = append(c.args, "--masterauth", c.pass)
	}
	c.args = append(c.args, opts.Args...)

	addrs := make([]string, 0, masters*(1+replicas))
	for range masters * (1 + replicas) {
		n := c.startNode(t)
		addrs = append(addrs, n.Addr())
	}
	c.redisCLI(t, append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")...)
	c.waitReady(t, masters*replicas)
	return c
}

// startNode starts one cluster node, not yet part of the cluster, and adds
// it to c.nodes.
func (c *Cluster) startNode(t testing.TB) *ClusterNode {
	t.Helper()
	s := startServerWith(t, serverSetup{network: "tcp", cluster: true}, c.args)
	id, err := s.Exec("CLUSTER", "MYID")
	if err != nil {
		t.Fatalf("redistest: CLUSTER MYID on %s: %v", s.Addr(), err)
	}
	n := &ClusterNode{Server: s, id: id.(string)}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

// redisCLI runs redis-cli with args and returns its output, failing the
// test with that output if it does not succeed within clusterTimeout.
func (c *Cluster) redisCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.runCLI(args...)
	if err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", quoteArgs(args), err, logTail(out))
	}
	return out
}

func (c *Cluster) runCLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if c.pass != "" {
		args = append([]string{"-a", c.pass, "--no-auth-warning"}, args...)
	}
	cmd := exec.CommandContext(ctx, c.cli, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil && strings.Contains(out.String(), "[ERR]") {
		err = errors.New("redis-cli reported an error")
	}
	return out.String(), err
}

// waitReady waits until every node reports cluster_state:ok and, after one
// write per master, every node's CLUSTER SLOTS lists all wantReplicas
// replicas. A replica appears there only once its replication offset is
// not zero, hence the writes.
func (c *Cluster) waitReady(t testing.TB, wantReplicas int) {
	t.Helper()
	c.waitFor(t, "cluster_state:ok on every node", func() error {
		for _, n := range c.running() {
			if err := stateOK(n); err != nil {
				return err
			}
		}
		return nil
	})
	for _, m := range c.Masters(t) {
		slots := c.Info(t, m).Slots
		if len(slots) == 0 {
			continue
		}
		key := "{" + KeyForSlot(slots[0][0]) + "}:redistest"
		if _, err := m.Exec("SET", key, "ready"); err != nil {
			t.Fatalf("redistest: SET %s on %s: %v", key, m, err)
		}
	}
	c.waitFor(t, fmt.Sprintf("CLUSTER SLOTS to list %d replicas on every node", wantReplicas), func() error {
		for _, n := range c.running() {
			got, err := slotsReplicas(n)
			if err != nil {
				return err
			}
			if got != wantReplicas {
				return fmt.Errorf("%s lists %d replicas", n, got)
			}
		}
		return nil
	})
}

func stateOK(n *ClusterNode) error {
	reply, err := n.Exec("CLUSTER", "INFO")
	if err != nil {
		return fmt.Errorf("%s: CLUSTER INFO: %w", n, err)
	}
	if s, _ := reply.(string); !strings.Contains(s, "cluster_state:ok") {
		return fmt.Errorf("%s: cluster_state is not ok", n)
	}
	return nil
}

// slotsReplicas counts the distinct replicas in n's CLUSTER SLOTS.
func slotsReplicas(n *ClusterNode) (int, error) {
	ranges, err := clusterSlots(n)
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, r := range ranges {
		for _, addr := range r.Replicas {
			seen[addr] = true
		}
	}
	return len(seen), nil
}

// SlotRange is one entry of CLUSTER SLOTS.
type SlotRange struct {
	Start, End int      // first and last slot, inclusive
	Master     string   // host:port
	Replicas   []string // host:port
}

func clusterSlots(n *ClusterNode) ([]SlotRange, error) {
	reply, err := n.Exec("CLUSTER", "SLOTS")
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER SLOTS: %w", n, err)
	}
	var ranges []SlotRange
	for _, e := range reply.([]any) {
		e := e.([]any)
		r := SlotRange{Start: int(e[0].(int64)), End: int(e[1].(int64))}
		for i, nd := range e[2:] {
			nd := nd.([]any)
			addr := net.JoinHostPort(nd[0].(string), strconv.FormatInt(nd[1].(int64), 10))
			if i == 0 {
				r.Master = addr
			} else {
				r.Replicas = append(r.Replicas, addr)
			}
		}
		ranges = append(ranges, r)
	}
	slices.SortFunc(ranges, func(a, b SlotRange) int { return a.Start - b.Start })
	return ranges, nil
}

// Slots returns CLUSTER SLOTS as a running node sees it, sorted by slot.
func (c *Cluster) Slots(t testing.TB) []SlotRange {
	t.Helper()
	ranges, err := clusterSlots(c.anyRunning(t))
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return ranges
}

// waitFor polls cond every 20 ms until it returns nil, and fails the test
// with its last error after clusterTimeout.
func (c *Cluster) waitFor(t testing.TB, what string, cond func() error) {
	t.Helper()
	if err := poll(clusterTimeout, 20*time.Millisecond, cond); err != nil {
		t.Fatalf("redistest: cluster: waited %v for %s: %v", clusterTimeout, what, err)
	}
}

// Nodes returns every node started, running or not, in the order they
// were started.
func (c *Cluster) Nodes() []*ClusterNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.nodes)
}

// Addrs returns the addresses of every running node: seeds for a client.
func (c *Cluster) Addrs() []string {
	var addrs []string
	for _, n := range c.running() {
		addrs = append(addrs, n.Addr())
	}
	return addrs
}

func (c *Cluster) running() []*ClusterNode {
	var up []*ClusterNode
	for _, n := range c.Nodes() {
		if n.Running() {
			up = append(up, n)
		}
	}
	return up
}

func (c *Cluster) anyRunning(t testing.TB) *ClusterNode {
	t.Helper()
	up := c.running()
	if len(up) == 0 {
		t.Fatalf("redistest: no cluster node is running")
	}
	return up[0]
}

// Node returns the node with the given ID or address, or nil.
func (c *Cluster) Node(idOrAddr string) *ClusterNode {
	for _, n := range c.Nodes() {
		if n.id == idOrAddr || n.Addr() == idOrAddr {
			return n
		}
	}
	return nil
}

// NodeInfo is one line of CLUSTER NODES.
type NodeInfo struct {
	ID       string
	Addr     string   // host:port, without the bus port
	Flags    []string // myself, master, slave, fail?, fail, handshake, noaddr ...
	MasterID string   // of a replica; "" for a master
	Slots    [][2]int // ranges owned, inclusive; open (migrating) slots not included
}

// Master reports whether the node is a master.
func (i NodeInfo) Master() bool { return slices.Contains(i.Flags, "master") }

// Failed reports whether the node is flagged as failing (fail or fail?).
func (i NodeInfo) Failed() bool {
	return slices.Contains(i.Flags, "fail") || slices.Contains(i.Flags, "fail?")
}

// SlotCount returns how many slots the node owns.
func (i NodeInfo) SlotCount() int {
	n := 0
	for _, r := range i.Slots {
		n += r[1] - r[0] + 1
	}
	return n
}

func clusterNodes(n *ClusterNode) ([]NodeInfo, error) {
	reply, err := n.Exec("CLUSTER", "NODES")
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER NODES: %w", n, err)
	}
	return parseClusterNodes(reply.(string))
}

func parseClusterNodes(s string) ([]NodeInfo, error) {
	var infos []NodeInfo
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES: malformed line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		info := NodeInfo{ID: f[0], Addr: addr, Flags: strings.Split(f[2], ",")}
		if f[3] != "-" {
			info.MasterID = f[3]
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // [slot->-id] migrating, [slot-<-id] importing
			}
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("CLUSTER NODES: malformed slots %q in %q", r, line)
			}
			info.Slots = append(info.Slots, [2]int{a, b})
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// Topology returns CLUSTER NODES as a running node sees it.
func (c *Cluster) Topology(t testing.TB) []NodeInfo {
	t.Helper()
	infos, err := clusterNodes(c.anyRunning(t))
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return infos
}

// Info returns what a running node's CLUSTER NODES says about n.
func (c *Cluster) Info(t testing.TB, n *ClusterNode) NodeInfo {
	t.Helper()
	for _, info := range c.Topology(t) {
		if info.ID == n.id {
			return info
		}
	}
	t.Fatalf("redistest: cluster: node %s unknown to the cluster", n)
	return NodeInfo{}
}

// Masters returns the running nodes that are masters, by CLUSTER NODES of
// a running node, ordered by their first slot (masters without slots
// last).
func (c *Cluster) Masters(t testing.TB) []*ClusterNode {
	t.Helper()
	infos := c.Topology(t)
	slices.SortStableFunc(infos, func(a, b NodeInfo) int { return firstSlot(a) - firstSlot(b) })
	var masters []*ClusterNode
	for _, info := range infos {
		if n := c.Node(info.ID); n != nil && n.Running() && info.Master() && !info.Failed() {
			masters = append(masters, n)
		}
	}
	return masters
}

func firstSlot(i NodeInfo) int {
	if len(i.Slots) == 0 {
		return 1 << 20
	}
	return i.Slots[0][0]
}

// Replicas returns the running nodes that are replicas, by CLUSTER NODES
// of a running node; of the given masters only, if any are given.
func (c *Cluster) Replicas(t testing.TB, of ...*ClusterNode) []*ClusterNode {
	t.Helper()
	var replicas []*ClusterNode
	for _, info := range c.Topology(t) {
		n := c.Node(info.ID)
		if n == nil || !n.Running() || info.MasterID == "" || info.Failed() {
			continue
		}
		if len(of) > 0 && !slices.ContainsFunc(of, func(m *ClusterNode) bool { return m.id == info.MasterID }) {
			continue
		}
		replicas = append(replicas, n)
	}
	return replicas
}

// MasterOf returns the master that owns slot, by CLUSTER NODES of a
// running node.
func (c *Cluster) MasterOf(t testing.TB, slot int) *ClusterNode {
	t.Helper()
	for _, info := range c.Topology(t) {
		for _, r := range info.Slots {
			if r[0] <= slot && slot <= r[1] && info.Master() {
				if n := c.Node(info.ID); n != nil {
					return n
				}
			}
		}
	}
	t.Fatalf("redistest: cluster: no master owns slot %d", slot)
	return nil
}

// WaitStable waits until the cluster has settled: every running node
// reports cluster_state:ok, sees every other running node connected and
// not failing, agrees with the others on which nodes are masters and whom
// each replica follows, and gives the same CLUSTER SLOTS, covering all
// 16384 slots, with no slot importing or migrating.
func (c *Cluster) WaitStable(t testing.TB) {
	t.Helper()
	c.waitFor(t, "the nodes to agree on the slot map", c.stable)
}

func (c *Cluster) stable() error {
	up := c.running()
	var first, firstRoles string
	for _, n := range up {
		if err := stateOK(n); err != nil {
			return err
		}
		reply, err := n.Exec("CLUSTER", "NODES")
		if err != nil {
			return fmt.Errorf("%s: CLUSTER NODES: %w", n, err)
		}
		if s := reply.(string); strings.Contains(s, "->-") || strings.Contains(s, "-<-") {
			return fmt.Errorf("%s: a slot is migrating", n)
		}
		infos, err := parseClusterNodes(reply.(string))
		if err != nil {
			return err
		}
		var roles strings.Builder
		for _, other := range up {
			i := slices.IndexFunc(infos, func(info NodeInfo) bool { return info.ID == other.id })
			switch {
			case i < 0:
				return fmt.Errorf("%s does not know %s", n, other)
			case infos[i].Failed() || slices.Contains(infos[i].Flags, "handshake"):
				return fmt.Errorf("%s sees %s as %v", n, other, infos[i].Flags)
			}
			fmt.Fprintf(&roles, "%s:%v:%s ", other, infos[i].Master(), infos[i].MasterID)
		}
		// A node learns its own new role (a restarted master that lost its
		// slots turns replica) before gossip tells the others: the slot
		// maps agree while the roles do not yet.
		switch {
		case firstRoles == "":
			firstRoles = roles.String()
		case roles.String() != firstRoles:
			return fmt.Errorf("%s sees the roles %s; another node sees %s", n, roles.String(), firstRoles)
		}
		ranges, err := clusterSlots(n)
		if err != nil {
			return err
		}
		covered := 0
		var sig strings.Builder
		for _, r := range ranges {
			covered += r.End - r.Start + 1
			fmt.Fprintf(&sig, "%d-%d:%s ", r.Start, r.End, r.Master)
		}
		if covered != 16384 {
			return fmt.Errorf("%s: CLUSTER SLOTS covers %d slots", n, covered)
		}
		switch {
		case first == "":
			first = sig.String()
		case sig.String() != first:
			return fmt.Errorf("%s: CLUSTER SLOTS %s; another node says %s", n, sig.String(), first)
		}
	}
	return nil
}

// Reshard moves n slots from one master to another with redis-cli
// --cluster reshard, keys included, and waits until the cluster is stable.
// Clients see MOVED and ASK meanwhile.
func (c *Cluster) Reshard(t testing.TB, from, to *ClusterNode, n int) {
	t.Helper()
	c.redisCLI(t, "--cluster", "reshard", to.Addr(),
		"--cluster-from", from.id, "--cluster-to", to.id,
		"--cluster-slots", strconv.Itoa(n), "--cluster-yes")
	c.WaitStable(t)
}

// SlotMigration is one slot being moved by hand, step by step, as
// redis-cli does it: Begin marks the slot IMPORTING on the target and
// MIGRATING on the source, MoveKeys migrates keys in batches, Finish
// assigns the slot to the target. Between Begin and Finish, commands for
// keys already moved get ASK from the source — which is what a test needs
// to produce ASK redirects.
type SlotMigration struct {
	c        *Cluster
	Slot     int
	From, To *ClusterNode
}

// BeginMigration starts moving slot from its current master to the master
// to: CLUSTER SETSLOT slot IMPORTING on to, then MIGRATING on the source.
func (c *Cluster) BeginMigration(t testing.TB, slot int, to *ClusterNode) *SlotMigration {
	t.Helper()
	m := &SlotMigration{c: c, Slot: slot, From: c.MasterOf(t, slot), To: to}
	if m.From == to {
		t.Fatalf("redistest: cluster: slot %d is on %s already", slot, to)
	}
	to.Do(t, "CLUSTER", "SETSLOT", slot, "IMPORTING", m.From.id)
	m.From.Do(t, "CLUSTER", "SETSLOT", slot, "MIGRATING", to.id)
	return m
}

// MoveKeys migrates up to batch of the slot's keys still on the source to
// the target with one MIGRATE, and returns how many it moved: 0 when none
// are left.
func (m *SlotMigration) MoveKeys(t testing.TB, batch int) int {
	t.Helper()
	reply := m.From.Do(t, "CLUSTER", "GETKEYSINSLOT", m.Slot, batch)
	keys := reply.([]any)
	if len(keys) == 0 {
		return 0
	}
	args := []any{"127.0.0.1", m.To.Port(), "", 0, 5000}
	if m.c.pass != "" {
		args = append(args, "AUTH", m.c.pass)
	}
	args = append(append(args, "KEYS"), keys...)
	if got := m.From.Do(t, "MIGRATE", args...); got != "OK" {
		t.Fatalf("redistest: MIGRATE of %d keys of slot %d to %s: got %#v; want OK", len(keys), m.Slot, m.To, got)
	}
	return len(keys)
}

// Finish moves the keys left, then assigns the slot to the target with
// CLUSTER SETSLOT NODE — on the target first, then the source, then every
// other master, as the specification advises — and waits until the
// cluster is stable.
func (m *SlotMigration) Finish(t testing.TB) {
	t.Helper()
	for m.MoveKeys(t, 100) > 0 {
	}
	m.To.Do(t, "CLUSTER", "SETSLOT", m.Slot, "NODE", m.To.id)
	m.From.Do(t, "CLUSTER", "SETSLOT", m.Slot, "NODE", m.To.id)
	for _, n := range m.c.Masters(t) {
		if n != m.To && n != m.From {
			n.Do(t, "CLUSTER", "SETSLOT", m.Slot, "NODE", m.To.id)
		}
	}
	m.c.WaitStable(t)
}

// MigrateSlot moves slot, with its keys, to the master to, by hand:
// BeginMigration and Finish.
func (c *Cluster) MigrateSlot(t testing.TB, slot int, to *ClusterNode) {
	t.Helper()
	c.BeginMigration(t, slot, to).Finish(t)
}

// Failover makes replica the master of its slots with CLUSTER FAILOVER (a
// coordinated failover: no write is lost), and waits until the cluster is
// stable with replica as a master. mode may be "FORCE" or "TAKEOVER".
func (c *Cluster) Failover(t testing.TB, replica *ClusterNode, mode ...string) {
	t.Helper()
	args := []any{"FAILOVER"}
	for _, m := range mode {
		args = append(args, m)
	}
	replica.Do(t, "CLUSTER", args...)
	c.waitFor(t, fmt.Sprintf("%s to become a master", replica), func() error {
		return c.isMasterEverywhere(replica)
	})
	c.WaitStable(t)
}

// WaitMaster waits until every running node sees n as a master: after a
// Kill of n's master, for instance, when n has been promoted.
func (c *Cluster) WaitMaster(t testing.TB, n *ClusterNode) {
	t.Helper()
	c.waitFor(t, fmt.Sprintf("%s to become a master", n), func() error {
		return c.isMasterEverywhere(n)
	})
}

func (c *Cluster) isMasterEverywhere(n *ClusterNode) error {
	for _, o := range c.running() {
		infos, err := clusterNodes(o)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(infos, func(info NodeInfo) bool { return info.ID == n.id })
		if i < 0 || !infos[i].Master() {
			return fmt.Errorf("%s does not see %s as a master", o, n)
		}
	}
	return nil
}

// Kill kills n with SIGKILL, as in a crash. If n was a master with a
// replica, the replica is promoted after about 2 seconds: WaitMaster or
// WaitStable waits for that.
func (c *Cluster) Kill(n *ClusterNode) { n.Kill() }

// Restart starts a stopped or killed node again on the same ports and with
// the same nodes.conf, so it rejoins with the same ID (its data is lost),
// and waits until the cluster is stable. A killed master whose replica was
// promoted comes back as a replica of it.
func (c *Cluster) Restart(t testing.TB, n *ClusterNode) {
	t.Helper()
	if n.Running() {
		t.Fatalf("redistest: cluster: Restart of %s, which is running", n)
	}
	n.Restart()
	c.WaitStable(t)
}

// AddNode starts a node and adds it to the cluster as a master without
// slots (redis-cli --cluster add-node), and waits until the cluster is
// stable. Reshard or MigrateSlot give it slots.
func (c *Cluster) AddNode(t testing.TB) *ClusterNode {
	t.Helper()
	n := c.startNode(t)
	c.redisCLI(t, "--cluster", "add-node", n.Addr(), c.anyRunning(t).Addr())
	c.meetAll(t, n)
	c.WaitStable(t)
	return n
}

// meetAll introduces n to every running node directly. redis-cli
// introduces it to one, and gossip would take about two seconds to tell
// the others.
func (c *Cluster) meetAll(t testing.TB, n *ClusterNode) {
	t.Helper()
	for _, o := range c.running() {
		if o != n {
			n.Do(t, "CLUSTER", "MEET", "127.0.0.1", o.Port(), o.BusPort())
		}
	}
}

// AddReplica starts a node and adds it to the cluster as a replica of
// master (redis-cli --cluster add-node --cluster-slave), and waits until
// it has synchronized and the cluster is stable.
func (c *Cluster) AddReplica(t testing.TB, master *ClusterNode) *ClusterNode {
	t.Helper()
	n := c.startNode(t)
	c.redisCLI(t, "--cluster", "add-node", n.Addr(), master.Addr(),
		"--cluster-slave", "--cluster-master-id", master.id)
	c.meetAll(t, n)
	c.waitFor(t, fmt.Sprintf("%s to sync with %s", n, master), func() error {
		reply, err := n.Exec("INFO", "replication")
		if err != nil {
			return err
		}
		if s, _ := reply.(string); !strings.Contains(s, "master_link_status:up") {
			return fmt.Errorf("%s: master link is not up", n)
		}
		return nil
	})
	c.WaitStable(t)
	return n
}

// RemoveNode removes n from the cluster and stops it. A master's slots are
// first moved to the master with the fewest (redis-cli --cluster reshard),
// and its replicas are made replicas of that master; then redis-cli
// --cluster del-node makes every other node forget n.
func (c *Cluster) RemoveNode(t testing.TB, n *ClusterNode) {
	t.Helper()
	info := c.Info(t, n)
	if info.Master() {
		var target *ClusterNode
		fewest := 1 << 20
		for _, m := range c.Masters(t) {
			if m == n {
				continue
			}
			if k := c.Info(t, m).SlotCount(); k < fewest {
				target, fewest = m, k
			}
		}
		if target == nil {
			t.Fatalf("redistest: cluster: cannot remove %s, the only master", n)
		}
		if k := info.SlotCount(); k > 0 {
			c.Reshard(t, n, target, k)
		}
		for _, r := range c.Replicas(t, n) {
			r.Do(t, "CLUSTER", "REPLICATE", target.id)
		}
	}
	var via *ClusterNode
	for _, o := range c.running() {
		if o != n {
			via = o
			break
		}
	}
	if via == nil {
		t.Fatalf("redistest: cluster: cannot remove %s, the only node", n)
	}
	c.redisCLI(t, "--cluster", "del-node", via.Addr(), n.id)
	n.Stop()
	c.mu.Lock()
	c.nodes = slices.DeleteFunc(c.nodes, func(o *ClusterNode) bool { return o == n })
	c.mu.Unlock()
	c.WaitStable(t)
}
