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
//	redispool_connections{state="active|idle"}      gauge    Active, Idle
//	redispool_waiting                               gauge    Waiting
//	redispool_borrows_total                         counter  Borrows
//	redispool_waits_total                           counter  WaitCount
//	redispool_wait_seconds_total                    counter  WaitDuration
//	redispool_timeouts_total                        counter  Timeouts
//	redispool_connections_created_total             counter  Created
//	redispool_dial_errors_total                     counter  DialErrors
//	redispool_connections_destroyed_total{reason}   counter  Destroyed*
//	redispool_master_changes_total                  counter  MasterChanges (Sentinel)
//
// The reason label of redispool_connections_destroyed_total is one of
// broken, unhealthy, dirty, idle, lifetime, surplus, closed, failover
// and abandoned, after the Stats fields DestroyedBroken ...
// DestroyedFailover and Abandoned (connections reclaimed after
// AbandonedTimeout); every
// reason is exported from the first scrape, at zero until it happens.
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

// collector is a prometheus.Collector for one pool.
type collector struct {
	pool *redispool.Pool

	maxConnections *prometheus.Desc
	connections    *prometheus.Desc
	waiting        *prometheus.Desc
	borrows        *prometheus.Desc
	waits          *prometheus.Desc
	waitSeconds    *prometheus.Desc
	timeouts       *prometheus.Desc
	created        *prometheus.Desc
	dialErrors     *prometheus.Desc
	destroyed      *prometheus.Desc
	masterChanges  *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

// NewCollector returns a collector that exports p's statistics (see the
// package documentation for the metrics). It reads p.Stats on every
// scrape, so it stays valid for the life of p; after p.Close it goes on
// reporting the final counts.
func NewCollector(p *redispool.Pool, opts ...Option) prometheus.Collector {
	o := options{namespace: "redispool"}
	for _, opt := range opts {
		opt(&o)
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(o.namespace, "", name), help, labels, o.constLabels)
	}
	return &collector{
		pool: p,
		maxConnections: desc("max_connections",
			"Maximum number of connections the pool holds, borrowed and idle together (MaxTotal)."),
		connections: desc("connections",
			"Number of open connections, by state: active (borrowed) or idle (waiting in the pool).", "state"),
		waiting: desc("waiting",
			"Number of borrowers waiting now because MaxTotal connections are borrowed."),
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
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.maxConnections
	ch <- c.connections
	ch <- c.waiting
	ch <- c.borrows
	ch <- c.waits
	ch <- c.waitSeconds
	ch <- c.timeouts
	ch <- c.created
	ch <- c.dialErrors
	ch <- c.destroyed
	ch <- c.masterChanges
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.maxConnections, float64(s.MaxTotal))
	gauge(c.connections, float64(s.Active), "active")
	gauge(c.connections, float64(s.Idle), "idle")
	gauge(c.waiting, float64(s.Waiting))
	counter(c.borrows, float64(s.Borrows))
	counter(c.waits, float64(s.WaitCount))
	counter(c.waitSeconds, s.WaitDuration.Seconds())
	counter(c.timeouts, float64(s.Timeouts))
	counter(c.created, float64(s.Created))
	counter(c.dialErrors, float64(s.DialErrors))
	for i, n := range destroyedByReason(&s) {
		counter(c.destroyed, float64(n), destroyReasons[i])
	}
	counter(c.masterChanges, float64(s.MasterChanges))
}
