// Package redispoolprom exports a redispool.Pool's statistics as
// Prometheus metrics.
//
// It lives in its own module so that the redispool library does not
// depend on the Prometheus client. Import it under its package name:
//
//	import redispoolprom "github.com/redispool/redispool/prometheus"
//
// # Registering a collector
//
//	p, err := redispool.New(ctx, cfg)
//	...
//	prometheus.MustRegister(redispoolprom.NewCollector(p,
//		redispoolprom.WithConstLabels(prometheus.Labels{"pool": "sessions"})))
//
// The collector reads Pool.Stats once per scrape; it keeps no state of its
// own and starts no goroutines. Register one collector per pool, and give
// each pool a distinct constant label when a process has several.
//
// # Metrics
//
//	redispool_max_connections                       gauge    MaxTotal
//	redispool_connections{state="active|idle|shared"} gauge  Active, Idle, Shared
//	redispool_waiting                               gauge    Waiting
//	redispool_dialing                               gauge    Dialing
//	redispool_borrows_total                         counter  Borrows
//	redispool_waits_total                           counter  WaitCount
//	redispool_wait_seconds_total                    counter  WaitDuration
//	redispool_timeouts_total                        counter  Timeouts
//	redispool_connections_created_total             counter  Created
//	redispool_dial_errors_total                     counter  DialErrors
//	redispool_connections_destroyed_total{reason}   counter  Destroyed*
//	redispool_master_changes_total                  counter  MasterChanges (Sentinel)
//	redispool_pipelined_commands_total              counter  PipelinedCommands
//	redispool_pipeline_batches_total                counter  PipelineBatches
//	redispool_pipeline_batch_size                   histogram PipelineBatchSizes
//
// The shared connections are those Pool.Do's auto-pipelining holds
// (Config.PipelineConns). redispool_pipeline_batch_size is the number
// of commands in each write on a shared connection, in buckets of
// 1, 2, 4 ... 256 and +Inf; its _count is the batches and its _sum the
// commands, so _sum / _count is the mean batch.
//
// The reason label of redispool_connections_destroyed_total is one of
// broken, unhealthy, dirty, idle, lifetime, surplus, closed, failover
// and abandoned, after the Stats fields DestroyedBroken ...
// DestroyedFailover and Abandoned (connections reclaimed after
// AbandonedTimeout); every
// reason is exported from the first scrape, at zero until it happens.
//
// # A Redis Cluster
//
//	prometheus.MustRegister(redispoolprom.NewClusterCollector(cluster))
//
// exports each node's pool with the metrics above, renamed
// redispool_cluster_node_* and labelled with the node's address
// (redispool_cluster_node_connections{node="10.0.0.1:7000",state="idle"}),
// and the cluster's own statistics (ClusterStats):
//
//	redispool_cluster_slots{node}                   gauge    Slots (0 for a replica)
//	redispool_cluster_pending_nodes                 gauge    PendingNodes
//	redispool_cluster_moved_total                   counter  Moved
//	redispool_cluster_ask_total                     counter  Ask
//	redispool_cluster_tryagain_total                counter  TryAgain
//	redispool_cluster_clusterdown_total             counter  ClusterDown
//	redispool_cluster_retries_total                 counter  Retries
//	redispool_cluster_refreshes_total               counter  Refreshes
//	redispool_cluster_refresh_errors_total          counter  RefreshErrors
//
// A node's series appear once the cluster has a pool for it and go when
// the slot map drops the node. The node pools' names differ from a
// single pool's so that one registry takes both collectors: Prometheus
// wants one set of label names per metric name.
package redispoolprom

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redispool/redispool"
)

// An Option configures a collector made by NewCollector.
type Option func(*options)

type options struct {
	namespace   string
	constLabels prometheus.Labels
}

// WithConstLabels adds labels with fixed values to every metric, typically
// {"pool": "name"} to tell several pools in one process apart.
func WithConstLabels(labels prometheus.Labels) Option {
	return func(o *options) {
		if o.constLabels == nil {
			o.constLabels = prometheus.Labels{}
		}
		for k, v := range labels {
			o.constLabels[k] = v
		}
	}
}

// WithNamespace replaces the "redispool" prefix of every metric name, so
// that redispool_borrows_total becomes <namespace>_borrows_total.
func WithNamespace(namespace string) Option {
	return func(o *options) { o.namespace = namespace }
}

// destroyReasons are the values of the reason label, in the order of the
// Stats fields they come from.
var destroyReasons = [...]string{"broken", "unhealthy", "dirty", "idle", "lifetime", "surplus", "closed", "failover", "abandoned"}

func destroyedByReason(s *redispool.Stats) [len(destroyReasons)]int64 {
	return [...]int64{
		s.DestroyedBroken, s.DestroyedUnhealthy, s.DestroyedDirty,
		s.DestroyedIdle, s.DestroyedLifetime, s.DestroyedSurplus, s.DestroyedClosed,
		s.DestroyedFailover,
		s.Abandoned,
	}
}

// poolDescs describes one pool's metrics. For a Cluster's node pools
// the names have the subsystem cluster_node, and every desc has a node
// label before its own ones.
type poolDescs struct {
	maxConnections *prometheus.Desc
	connections    *prometheus.Desc
	waiting        *prometheus.Desc
	dialing        *prometheus.Desc
	borrows        *prometheus.Desc
	waits          *prometheus.Desc
	waitSeconds    *prometheus.Desc
	timeouts       *prometheus.Desc
	created        *prometheus.Desc
	dialErrors     *prometheus.Desc
	destroyed      *prometheus.Desc
	masterChanges  *prometheus.Desc
	pipelined      *prometheus.Desc
	batches        *prometheus.Desc
	batchSize      *prometheus.Desc
}

// newPoolDescs returns the descs of a pool's metrics, named
// <namespace>_[<subsystem>_]<name>, each with the variable labels in
// labels (the node of a cluster's pool) before its own.
func newPoolDescs(o *options, subsystem string, labels ...string) poolDescs {
	desc := func(name, help string, own ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(o.namespace, subsystem, name), help,
			append(labels[:len(labels):len(labels)], own...), o.constLabels)
	}
	return poolDescs{
		maxConnections: desc("max_connections",
			"Maximum number of connections the pool holds, borrowed and idle together (MaxTotal)."),
		connections: desc("connections",
			"Number of open connections, by state: active (borrowed), idle (waiting in the pool) or shared (held by Do's auto-pipelining).", "state"),
		waiting: desc("waiting",
			"Number of borrowers waiting now because MaxTotal connections are borrowed."),
		dialing: desc("dialing",
			"Number of borrowers waiting now on a dial made for them: an unreachable server shows here."),
		borrows: desc("borrows_total",
			"Total number of successful borrows."),
		waits: desc("waits_total",
			"Total number of borrows that had to wait because MaxTotal connections were borrowed."),
		waitSeconds: desc("wait_seconds_total",
			"Total time borrows spent waiting for a connection, in seconds."),
		timeouts: desc("timeouts_total",
			"Total number of borrows that gave up with ErrPoolExhausted."),
		created: desc("connections_created_total",
			"Total number of connections dialed and set up."),
		dialErrors: desc("dial_errors_total",
			"Total number of dials that failed, including AUTH, SELECT and CLIENT SETNAME."),
		destroyed: desc("connections_destroyed_total",
			"Total number of connections closed, by reason.", "reason"),
		masterChanges: desc("master_changes_total",
			"Total number of times the pool switched to a new master (Sentinel); zero without Sentinel."),
		pipelined: desc("pipelined_commands_total",
			"Total number of commands Do wrote on a shared connection (auto-pipelining)."),
		batches: desc("pipeline_batches_total",
			"Total number of writes on shared connections; pipelined commands / batches is the mean batch."),
		batchSize: desc("pipeline_batch_size",
			"Number of commands in each write on a shared connection."),
	}
}

func (d *poolDescs) describe(ch chan<- *prometheus.Desc) {
	ch <- d.maxConnections
	ch <- d.connections
	ch <- d.waiting
	ch <- d.dialing
	ch <- d.borrows
	ch <- d.waits
	ch <- d.waitSeconds
	ch <- d.timeouts
	ch <- d.created
	ch <- d.dialErrors
	ch <- d.destroyed
	ch <- d.masterChanges
	ch <- d.pipelined
	ch <- d.batches
	ch <- d.batchSize
}

// collect sends the metrics of one pool's statistics s, with the values
// of newPoolDescs' labels in labels.
func (d *poolDescs) collect(ch chan<- prometheus.Metric, s *redispool.Stats, labels ...string) {
	gauge := func(d *prometheus.Desc, v float64, own ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(labels[:len(labels):len(labels)], own...)...)
	}
	counter := func(d *prometheus.Desc, v float64, own ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append(labels[:len(labels):len(labels)], own...)...)
	}
	gauge(d.maxConnections, float64(s.MaxTotal))
	gauge(d.connections, float64(s.Active), "active")
	gauge(d.connections, float64(s.Idle), "idle")
	gauge(d.connections, float64(s.Shared), "shared")
	gauge(d.waiting, float64(s.Waiting))
	gauge(d.dialing, float64(s.Dialing))
	counter(d.borrows, float64(s.Borrows))
	counter(d.waits, float64(s.WaitCount))
	counter(d.waitSeconds, s.WaitDuration.Seconds())
	counter(d.timeouts, float64(s.Timeouts))
	counter(d.created, float64(s.Created))
	counter(d.dialErrors, float64(s.DialErrors))
	for i, n := range destroyedByReason(s) {
		counter(d.destroyed, float64(n), destroyReasons[i])
	}
	counter(d.masterChanges, float64(s.MasterChanges))
	counter(d.pipelined, float64(s.PipelinedCommands))
	counter(d.batches, float64(s.PipelineBatches))
	count, buckets := batchSizeBuckets(s)
	ch <- prometheus.MustNewConstHistogram(d.batchSize, count, float64(s.PipelinedCommands), buckets, labels...)
}

// batchSizeBuckets returns the number of batches in s and the
// cumulative counts of Prometheus's buckets, keyed by upper bound, from
// Stats.PipelineBatchSizes. The last bucket, unbounded, is +Inf, which
// Prometheus adds from the count.
func batchSizeBuckets(s *redispool.Stats) (uint64, map[float64]uint64) {
	buckets := make(map[float64]uint64, redispool.PipelineBatchBuckets-1)
	var cum uint64
	for i, n := range s.PipelineBatchSizes {
		cum += uint64(n)
		if le := redispool.PipelineBatchSizeBound(i); le > 0 {
			buckets[float64(le)] = cum
		}
	}
	return cum, buckets
}

func newOptions(opts []Option) *options {
	o := &options{namespace: "redispool"}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// collector is a prometheus.Collector for one pool.
type collector struct {
	pool *redispool.Pool
	poolDescs
}

var _ prometheus.Collector = (*collector)(nil)

// NewCollector returns a collector that exports p's statistics (see the
// package documentation for the metrics). It reads p.Stats on every
// scrape, so it stays valid for the life of p; after p.Close it goes on
// reporting the final counts.
func NewCollector(p *redispool.Pool, opts ...Option) prometheus.Collector {
	return &collector{pool: p, poolDescs: newPoolDescs(newOptions(opts), "")}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) { c.describe(ch) }

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stats()
	c.collect(ch, &s)
}
