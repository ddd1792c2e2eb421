package redispoolprom_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/redispool/redispool"
	redispoolprom "github.com/redispool/redispool/prometheus"
	"github.com/redispool/redispool/redistest"
)

func newCluster(t testing.TB, cfg redispool.ClusterConfig) *redispool.Cluster {
	t.Helper()
	c, err := redispool.NewCluster(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	return c
}

// gather scrapes c through a pedantic registry, which checks that what
// Collect sends matches what Describe declares, and returns the series
// by metric name.
func gather(t *testing.T, c prometheus.Collector) map[string][]*dto.Metric {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string][]*dto.Metric{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetMetric()
	}
	return out
}

// series returns the value of the series of name whose labels include
// every name=value pair of labels, and whether there is one.
func series(mfs map[string][]*dto.Metric, name string, labels ...string) (float64, bool) {
next:
	for _, m := range mfs[name] {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return value(m), true
	}
	return 0, false
}

// TestClusterCollectorOnMiniredis checks the shape of a cluster's
// metrics on a one-node "cluster" (miniredis answers CLUSTER SLOTS with
// itself serving every slot): the node's pool series with its node
// label, its slots, and the cluster counters.
func TestClusterCollectorOnMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	c := newCluster(t, redispool.ClusterConfig{Addrs: []string{m.Addr()}, Node: redispool.Config{MaxTotal: 4, EvictionInterval: -1}})
	ctx := context.Background()
	for i := range 5 {
		if _, err := c.Do(ctx, "SET", fmt.Sprint("k", i), i); err != nil {
			t.Fatal(err)
		}
	}
	node := c.Stats()
	var addr string
	for a := range node.Nodes {
		addr = a
	}
	coll := redispoolprom.NewClusterCollector(c, redispoolprom.WithConstLabels(prometheus.Labels{"cluster": "main"}))
	want := fmt.Sprintf(`
# HELP redispool_cluster_node_max_connections Maximum number of connections the pool holds, borrowed and idle together (MaxTotal).
# TYPE redispool_cluster_node_max_connections gauge
redispool_cluster_node_max_connections{cluster="main",node=%[1]q} 4
# HELP redispool_cluster_node_connections Number of open connections, by state: active (borrowed), idle (waiting in the pool) or shared (held by Do's auto-pipelining).
# TYPE redispool_cluster_node_connections gauge
redispool_cluster_node_connections{cluster="main",node=%[1]q,state="active"} 0
redispool_cluster_node_connections{cluster="main",node=%[1]q,state="idle"} 1
redispool_cluster_node_connections{cluster="main",node=%[1]q,state="shared"} 0
# HELP redispool_cluster_slots Number of hash slots the node serves as a master in the slot map; zero for a replica or a node known from a redirect only.
# TYPE redispool_cluster_slots gauge
redispool_cluster_slots{cluster="main",node=%[1]q} 16384
# HELP redispool_cluster_moved_total Total number of MOVED replies: the slot map was out of date.
# TYPE redispool_cluster_moved_total counter
redispool_cluster_moved_total{cluster="main"} 0
# HELP redispool_cluster_ask_total Total number of ASK replies: a slot was being migrated.
# TYPE redispool_cluster_ask_total counter
redispool_cluster_ask_total{cluster="main"} 0
# HELP redispool_cluster_tryagain_total Total number of TRYAGAIN replies: a multi-key command met a slot in migration.
# TYPE redispool_cluster_tryagain_total counter
redispool_cluster_tryagain_total{cluster="main"} 0
# HELP redispool_cluster_retries_total Total number of commands sent again because the cluster had not run them.
# TYPE redispool_cluster_retries_total counter
redispool_cluster_retries_total{cluster="main"} 0
`, addr)
	names := []string{"redispool_cluster_node_max_connections", "redispool_cluster_node_connections", "redispool_cluster_slots",
		"redispool_cluster_moved_total", "redispool_cluster_ask_total", "redispool_cluster_tryagain_total",
		"redispool_cluster_retries_total"}
	if err := testutil.CollectAndCompare(coll, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	mfs := gather(t, coll)
	if got, _ := series(mfs, "redispool_cluster_node_borrows_total", "node", addr); got < 5 {
		t.Errorf("redispool_cluster_node_borrows_total{node=%q} = %v; want 5 or more", addr, got)
	}
	// Each node's pipelining, labelled by node.
	st := c.Stats().Nodes[addr]
	if got, ok := series(mfs, "redispool_cluster_node_pipelined_commands_total", "node", addr); !ok || got != float64(st.PipelinedCommands) {
		t.Errorf("redispool_cluster_node_pipelined_commands_total{node=%q} = %v, %v; want %d", addr, got, ok, st.PipelinedCommands)
	}
	if h := mfs["redispool_cluster_node_pipeline_batch_size"]; len(h) != 1 || h[0].GetHistogram().GetSampleCount() != uint64(st.PipelineBatches) {
		t.Errorf("redispool_cluster_node_pipeline_batch_size: %v; want one histogram of %d batches", h, st.PipelineBatches)
	}
	if got, ok := series(mfs, "redispool_cluster_pending_nodes"); !ok || got != 0 {
		t.Errorf("redispool_cluster_pending_nodes = %v, %v; want 0", got, ok)
	}
	if got, _ := series(mfs, "redispool_cluster_refreshes_total"); got < 1 {
		t.Errorf("redispool_cluster_refreshes_total = %v; want 1 or more (Ping loaded the slot map)", got)
	}

	problems, err := testutil.CollectAndLint(coll)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("lint: %s: %s", pr.Metric, pr.Text)
	}
	// A pool's collector and a cluster's register side by side.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(coll)
	if err := reg.Register(redispoolprom.NewCollector(newPool(t, redispool.Config{}),
		redispoolprom.WithConstLabels(prometheus.Labels{"pool": "other"}))); err != nil {
		t.Errorf("registering a pool's collector next to a cluster's: %v", err)
	}
}

// TestClusterCollectorOnRealCluster scrapes a real 3-master cluster:
// one series per master's pool, the slot map summed to every slot, and
// the MOVED that a slot migration causes.
func TestClusterCollectorOnRealCluster(t *testing.T) {
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	c := newCluster(t, redispool.ClusterConfig{Addrs: rc.Addrs(), Node: redispool.Config{MaxTotal: 7}})
	coll := redispoolprom.NewClusterCollector(c)
	ctx := context.Background()

	const key = "metrics:moved"
	if _, err := c.Do(ctx, "SET", key, "v"); err != nil {
		t.Fatal(err)
	}
	slot := redistest.KeySlot(key)
	from := rc.MasterOf(t, slot)
	var to *redistest.ClusterNode
	for _, m := range rc.Masters(t) {
		if m != from {
			to = m
			break
		}
	}
	rc.MigrateSlot(t, slot, to)
	if _, err := c.Do(ctx, "GET", key); err != nil { // MOVED, followed
		t.Fatal(err)
	}

	mfs := gather(t, coll)
	total := 0.0
	for _, m := range rc.Masters(t) {
		if got, ok := series(mfs, "redispool_cluster_node_max_connections", "node", m.Addr()); !ok || got != 7 {
			t.Errorf("redispool_cluster_node_max_connections{node=%q} = %v, %v; want 7", m.Addr(), got, ok)
		}
		n, ok := series(mfs, "redispool_cluster_slots", "node", m.Addr())
		if !ok || n < 5000 {
			t.Errorf("redispool_cluster_slots{node=%q} = %v, %v; want a third of the slots", m.Addr(), n, ok)
		}
		total += n
	}
	if total != 16384 {
		t.Errorf("redispool_cluster_slots sum to %v; want 16384", total)
	}
	if got, _ := series(mfs, "redispool_cluster_node_borrows_total", "node", to.Addr()); got < 1 {
		t.Errorf("redispool_cluster_node_borrows_total{node=%q} = %v; want the GET that followed MOVED", to.Addr(), got)
	}
	if got, want := len(mfs["redispool_cluster_node_connections_destroyed_total"]), 3*9; got != want {
		t.Errorf("%d redispool_cluster_node_connections_destroyed_total series; want %d, every reason of every node", got, want)
	}
	moved, _ := series(mfs, "redispool_cluster_moved_total")
	if s := c.Stats(); moved < 1 || moved != float64(s.Moved) {
		t.Errorf("redispool_cluster_moved_total = %v; want 1 or more, Stats().Moved = %d", moved, s.Moved)
	}
}
