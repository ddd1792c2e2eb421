package redispoolprom

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redispool/redispool"
)

// clusterCollector is a prometheus.Collector for a Cluster: its node
// pools' metrics, labelled by node, and its own counters.
type clusterCollector struct {
	cluster *redispool.Cluster
	nodes   poolDescs // with the node label

	slots         *prometheus.Desc
	pendingNodes  *prometheus.Desc
	moved         *prometheus.Desc
	ask           *prometheus.Desc
	tryAgain      *prometheus.Desc
	clusterDown   *prometheus.Desc
	retries       *prometheus.Desc
	refreshes     *prometheus.Desc
	refreshErrors *prometheus.Desc
}

var _ prometheus.Collector = (*clusterCollector)(nil)

// NewClusterCollector returns a collector that exports c's statistics:
// every pool metric of NewCollector for each node's pool, named
// <namespace>_cluster_node_* and labelled with the node (host:port, as
// CLUSTER SLOTS names it), and the cluster's own counters (see the
// package documentation). The names differ from a pool's so that a
// process with a Pool and a Cluster registers both collectors in one
// registry: Prometheus wants one set of label names per metric name. It reads c.Stats on every
// scrape, so a node appears once the cluster has a pool for it, and
// disappears when the slot map drops it; after c.Close it goes on
// reporting the final counts of the pools that were open.
func NewClusterCollector(c *redispool.Cluster, opts ...Option) prometheus.Collector {
	o := newOptions(opts)
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(o.namespace, "cluster", name), help, labels, o.constLabels)
	}
	return &clusterCollector{
		cluster: c,
		nodes:   newPoolDescs(o, "cluster_node", "node"),
		slots: desc("slots",
			"Number of hash slots the node serves as a master in the slot map; zero for a replica or a node known from a redirect only.", "node"),
		pendingNodes: desc("pending_nodes",
			"Number of node pools for nodes known only from a MOVED or ASK reply, not yet in a slot map."),
		moved: desc("moved_total",
			"Total number of MOVED replies: the slot map was out of date."),
		ask: desc("ask_total",
			"Total number of ASK replies: a slot was being migrated."),
		tryAgain: desc("tryagain_total",
			"Total number of TRYAGAIN replies: a multi-key command met a slot in migration."),
		clusterDown: desc("clusterdown_total",
			"Total number of CLUSTERDOWN replies, as during a failover."),
		retries: desc("retries_total",
			"Total number of commands sent again because the cluster had not run them."),
		refreshes: desc("refreshes_total",
			"Total number of slot-map reloads."),
		refreshErrors: desc("refresh_errors_total",
			"Total number of slot-map reloads that failed."),
	}
}

// Describe implements prometheus.Collector.
func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	c.nodes.describe(ch)
	ch <- c.slots
	ch <- c.pendingNodes
	ch <- c.moved
	ch <- c.ask
	ch <- c.tryAgain
	ch <- c.clusterDown
	ch <- c.retries
	ch <- c.refreshes
	ch <- c.refreshErrors
}

// Collect implements prometheus.Collector.
func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	cs := c.cluster.Stats()
	for _, addr := range slices.Sorted(maps.Keys(cs.Nodes)) {
		s := cs.Nodes[addr]
		c.nodes.collect(ch, &s, addr)
	}
	// Every node with a pool or with slots: a pool that serves none is
	// worth seeing as such.
	slots := make(map[string]int, len(cs.Nodes))
	for addr := range cs.Nodes {
		slots[addr] = 0
	}
	maps.Copy(slots, cs.Slots)
	for addr, n := range slots {
		ch <- prometheus.MustNewConstMetric(c.slots, prometheus.GaugeValue, float64(n), addr)
	}
	ch <- prometheus.MustNewConstMetric(c.pendingNodes, prometheus.GaugeValue, float64(cs.PendingNodes))
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.moved, cs.Moved)
	counter(c.ask, cs.Ask)
	counter(c.tryAgain, cs.TryAgain)
	counter(c.clusterDown, cs.ClusterDown)
	counter(c.retries, cs.Retries)
	counter(c.refreshes, cs.Refreshes)
	counter(c.refreshErrors, cs.RefreshErrors)
}
