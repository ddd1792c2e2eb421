package redistest_test

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redispool/redispool/redistest"
)

// wantReply fails the test unless cmd on n replies want, or, for a want
// ending in "*", a reply or error starting with it.
func wantReply(t *testing.T, n *redistest.ClusterNode, want string, cmd string, args ...any) {
	t.Helper()
	reply, err := n.Exec(cmd, args...)
	got := ""
	switch {
	case err != nil:
		got = err.Error()
	default:
		got, _ = reply.(string)
	}
	if prefix, ok := strings.CutSuffix(want, "*"); ok && strings.HasPrefix(got, prefix) || got == want {
		return
	}
	t.Fatalf("%s %v on %s: got %q, %v; want %q", cmd, args, n, reply, err, want)
}

// TestClusterLauncher walks the launcher through what the cluster tests
// need, on one 3+3 cluster: the topology, a slot migrated by hand with the
// ASK it produces, a reshard, a failover, a crash and restart, and a node
// added and removed.
func TestClusterLauncher(t *testing.T) {
	t.Parallel()
	start := time.Now()
	step := func(what string) {
		t.Logf("%-28s %v", what, time.Since(start).Round(time.Millisecond))
		start = time.Now()
	}
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	step("StartCluster (3+3)")

	// Topology: 3 masters, 3 replicas, low ports, all slots served with a
	// replica each.
	masters, replicas := c.Masters(t), c.Replicas(t)
	if len(masters) != 3 || len(replicas) != 3 || len(c.Nodes()) != 6 {
		t.Fatalf("got %d masters, %d replicas, %d nodes; want 3, 3, 6", len(masters), len(replicas), len(c.Nodes()))
	}
	for _, n := range c.Nodes() {
		if n.Port() >= 32000 || n.BusPort() >= 32000 || n.BusPort() == 0 {
			t.Errorf("%s: port %d, bus port %d; want both below 32000", n, n.Port(), n.BusPort())
		}
		if len(n.ID()) != 40 {
			t.Errorf("%s: ID %q; want 40 hex digits", n, n.ID())
		}
	}
	for _, m := range masters {
		if got := len(c.Replicas(t, m)); got != 1 {
			t.Errorf("%s has %d replicas; want 1", m, got)
		}
	}
	covered := 0
	for _, r := range c.Slots(t) {
		covered += r.End - r.Start + 1
		if len(r.Replicas) != 1 {
			t.Errorf("slots %d-%d: replicas %v; want 1", r.Start, r.End, r.Replicas)
		}
	}
	if covered != 16384 {
		t.Errorf("CLUSTER SLOTS covers %d slots; want 16384", covered)
	}

	// KeySlot and KeysInSlot agree with the server.
	for _, key := range []string{"foo", "{user1000}.following", "", "a{b}c"} {
		if got, want := redistest.KeySlot(key), masters[0].Do(t, "CLUSTER", "KEYSLOT", key); int64(got) != want {
			t.Errorf("KeySlot(%q): got %d; CLUSTER KEYSLOT says %v", key, got, want)
		}
	}
	const slot = 1000
	keys := redistest.KeysInSlot(slot, 10)
	for _, k := range keys {
		if got := redistest.KeySlot(k); got != slot {
			t.Fatalf("KeySlot(%q): got %d; want %d", k, got, slot)
		}
	}

	// A slot migrated by hand: ASK for moved keys while it is half done.
	from := c.MasterOf(t, slot)
	to := masters[1]
	if to == from {
		to = masters[2]
	}
	for _, k := range keys {
		from.Do(t, "SET", k, "v")
	}
	m := c.BeginMigration(t, slot, to)
	if got := m.MoveKeys(t, 4); got != 4 {
		t.Fatalf("MoveKeys(4): moved %d; want 4", got)
	}
	moved := to.Do(t, "CLUSTER", "GETKEYSINSLOT", slot, 10).([]any)
	if len(moved) != 4 {
		t.Fatalf("target holds %d keys of slot %d; want 4", len(moved), slot)
	}
	wantReply(t, from, "ASK *", "GET", moved[0])
	wantReply(t, to, "MOVED *", "GET", moved[0]) // without ASKING
	m.Finish(t)
	step("migration by hand")
	if got := c.MasterOf(t, slot); got != to {
		t.Fatalf("slot %d on %s after the migration; want %s", slot, got, to)
	}
	wantReply(t, from, "MOVED *", "GET", keys[0])
	wantReply(t, to, "v", "GET", keys[9])

	// Reshard 10 slots.
	before := c.Info(t, masters[2]).SlotCount()
	c.Reshard(t, masters[0], masters[2], 10)
	if got := c.Info(t, masters[2]).SlotCount(); got != before+10 {
		t.Errorf("after Reshard of 10 slots: %d slots; want %d", got, before+10)
	}

	step("Reshard 10 slots")

	// Failover: the replica of masters[0] takes over.
	r := c.Replicas(t, masters[0])[0]
	c.Failover(t, r)
	if !c.Info(t, r).Master() || c.Info(t, masters[0]).Master() {
		t.Errorf("after Failover: %s is %v, %s is %v; want master, slave",
			r, c.Info(t, r).Flags, masters[0], c.Info(t, masters[0]).Flags)
	}

	step("Failover")

	// Crash of a master: its replica is promoted; restarted, it follows.
	victim := masters[1]
	heir := c.Replicas(t, victim)[0]
	c.Kill(victim)
	c.WaitMaster(t, heir)
	c.WaitStable(t)
	step("Kill, promotion")
	c.Restart(t, victim)
	step("Restart")
	if info := c.Info(t, victim); info.Master() || info.MasterID != heir.ID() {
		t.Errorf("restarted %s: flags %v, master %s; want a replica of %s", victim, info.Flags, info.MasterID, heir)
	}

	// A node added as an empty master, given a slot, then removed.
	added := c.AddNode(t)
	if info := c.Info(t, added); !info.Master() || info.SlotCount() != 0 {
		t.Fatalf("added %s: flags %v, %d slots; want an empty master", added, info.Flags, info.SlotCount())
	}
	step("AddNode")
	c.MigrateSlot(t, slot, added)
	wantReply(t, added, "v", "GET", keys[0])
	c.RemoveNode(t, added)
	step("RemoveNode")
	if added.Running() || c.Node(added.ID()) != nil {
		t.Errorf("removed %s: still running or listed", added)
	}
	for _, info := range c.Topology(t) {
		if info.ID == added.ID() {
			t.Errorf("removed %s is still in CLUSTER NODES", added)
		}
	}
	owner := c.MasterOf(t, slot)
	wantReply(t, owner, "v", "GET", keys[0])

	// A replica removed.
	gone := c.Replicas(t)[0]
	c.RemoveNode(t, gone)
	step("RemoveNode of a replica")
	if got := len(c.Nodes()); got != 5 {
		t.Errorf("after removing a replica: %d nodes; want 5", got)
	}
}

// TestClusterWithPasswordAndNoReplicas starts the smallest cluster with a
// password: redis-cli, the readiness checks and MIGRATE must all
// authenticate. When the subtest that owns the cluster ends, every node's
// process is gone.
func TestClusterWithPasswordAndNoReplicas(t *testing.T) {
	t.Parallel()
	var pids []int
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Replicas: -1, Args: []string{"--requirepass", "s3cret"}})
		for _, n := range c.Nodes() {
			pids = append(pids, n.PID())
		}
		if got := len(c.Replicas(t)); got != 0 {
			t.Fatalf("got %d replicas; want 0", got)
		}
		for _, n := range c.Nodes() {
			if n.Password() != "s3cret" {
				t.Errorf("%s: Password %q; want s3cret", n, n.Password())
			}
		}
		const slot = 16383
		keys := redistest.KeysInSlot(slot, 3)
		from := c.MasterOf(t, slot)
		for _, k := range keys {
			from.Do(t, "SET", k, "v")
		}
		to := c.Masters(t)[0]
		c.MigrateSlot(t, slot, to)
		wantReply(t, to, "v", "GET", keys[2])
		wantReply(t, from, "MOVED *", "GET", keys[2])
	})
	if len(pids) != 3 {
		t.Fatalf("got %d PIDs; want 3", len(pids))
	}
	for _, pid := range pids {
		// Signal 0 checks that the process exists; the cleanup has waited
		// for it, so it is not even a zombie.
		p, err := os.FindProcess(pid)
		if err == nil {
			err = p.Signal(syscall.Signal(0))
		}
		if !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("node process %d after the test: signal 0 says %v; want it gone", pid, err)
		}
	}
}
