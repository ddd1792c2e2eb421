package redispoolotel

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redispool/redispool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// destroyReasons are the values of the reason attribute, in the order
// of the Stats fields they come from (as in the prometheus module).
var destroyReasons = [...]string{"broken", "unhealthy", "dirty", "idle", "lifetime", "surplus", "closed", "failover", "abandoned"}

func destroyedByReason(s *redispool.Stats) [len(destroyReasons)]int64 {
	return [...]int64{
		s.DestroyedBroken, s.DestroyedUnhealthy, s.DestroyedDirty,
		s.DestroyedIdle, s.DestroyedLifetime, s.DestroyedSurplus, s.DestroyedClosed,
		s.DestroyedFailover,
		s.Abandoned,
	}
}

// instruments are the observable instruments of one registration.
type instruments struct {
	max, conns, waiting, dialing             metric.Int64ObservableGauge
	borrows, waits, timeouts                 metric.Int64ObservableCounter
	created, dialErrors, destroyed, masterCh metric.Int64ObservableCounter
	waitSeconds                              metric.Float64ObservableCounter
	pipelined, batches                       metric.Int64ObservableCounter

	// A Cluster's.
	slots                                                    metric.Int64ObservableGauge
	redirects, tryAgain, clusterDown, retries, refr, refrErr metric.Int64ObservableCounter
}

// RegisterMetrics registers instruments that report client's
// statistics (see the package documentation), read at each collection,
// with the MeterProvider of WithMeterProvider. client must be a
// *redispool.Pool or a *redispool.Cluster. The instruments keep
// reporting the final counts after client is closed; Unregister the
// returned Registration to stop them.
func RegisterMetrics(client redispool.Client, opts ...Option) (metric.Registration, error) {
	cfg := newConfig(opts)
	var observe func(context.Context, metric.Observer, *instruments) error
	cluster := false
	switch c := client.(type) {
	case *redispool.Pool:
		observe = func(_ context.Context, o metric.Observer, in *instruments) error {
			in.observePool(o, c.Stats(), cfg.attrs)
			return nil
		}
	case *redispool.Cluster:
		cluster = true
		observe = func(_ context.Context, o metric.Observer, in *instruments) error {
			in.observeCluster(o, c.Stats(), cfg.attrs)
			return nil
		}
	default:
		return nil, fmt.Errorf("redispool: otel: RegisterMetrics of a %T: want a *redispool.Pool or a *redispool.Cluster", client)
	}

	m := cfg.meterProvider.Meter(scope)
	in := new(instruments)
	var errs []error
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	in.max = gauge("redispool.connections.max", "{connection}",
		"Maximum number of connections the pool holds, borrowed and idle together (MaxTotal).")
	in.conns = gauge("redispool.connections", "{connection}",
		"Number of open connections, by state: active (borrowed), idle (waiting in the pool) or shared (held by Do's auto-pipelining).")
	in.waiting = gauge("redispool.waiting", "{borrow}",
		"Number of borrowers waiting now because MaxTotal connections are borrowed.")
	in.dialing = gauge("redispool.dialing", "{borrow}",
		"Number of borrowers waiting now on a dial made for them: an unreachable server shows here.")
	in.borrows = counter("redispool.borrows", "{borrow}", "Number of successful borrows.")
	in.waits = counter("redispool.waits", "{borrow}",
		"Number of borrows that had to wait because MaxTotal connections were borrowed.")
	ws, err := m.Float64ObservableCounter("redispool.wait.duration", metric.WithUnit("s"),
		metric.WithDescription("Time borrows spent waiting for a connection."))
	errs = append(errs, err)
	in.waitSeconds = ws
	in.timeouts = counter("redispool.timeouts", "{borrow}", "Number of borrows that gave up with ErrPoolExhausted.")
	in.created = counter("redispool.connections.created", "{connection}", "Number of connections dialed and set up.")
	in.dialErrors = counter("redispool.dial_errors", "{dial}",
		"Number of dials that failed, including AUTH, SELECT and CLIENT SETNAME.")
	in.destroyed = counter("redispool.connections.destroyed", "{connection}", "Number of connections closed, by reason.")
	in.masterCh = counter("redispool.master_changes", "{change}",
		"Number of times the pool switched to a new master (Sentinel); zero without Sentinel.")
	in.pipelined = counter("redispool.pipeline.commands", "{command}",
		"Number of commands Do wrote on a shared connection (auto-pipelining).")
	in.batches = counter("redispool.pipeline.batches", "{batch}",
		"Number of writes on shared connections, by the number of commands in them (batch.size: 1, 2, 3-4 ... 257+).")
	insts := []metric.Observable{in.max, in.conns, in.waiting, in.dialing, in.borrows, in.waits, in.waitSeconds,
		in.timeouts, in.created, in.dialErrors, in.destroyed, in.masterCh, in.pipelined, in.batches}
	if cluster {
		in.slots = gauge("redispool.cluster.slots", "{slot}", "Number of hash slots each master serves.")
		in.redirects = counter("redispool.cluster.redirects", "{redirect}", "Number of MOVED and ASK replies, by kind.")
		in.tryAgain = counter("redispool.cluster.try_again", "{reply}",
			"Number of TRYAGAIN replies: a multi-key command met a slot in migration.")
		in.clusterDown = counter("redispool.cluster.cluster_down", "{reply}", "Number of CLUSTERDOWN replies.")
		in.retries = counter("redispool.cluster.retries", "{command}",
			"Number of commands sent again because the cluster had not run them.")
		in.refr = counter("redispool.cluster.refreshes", "{refresh}", "Number of slot-map reloads.")
		in.refrErr = counter("redispool.cluster.refresh_errors", "{refresh}", "Number of slot-map reloads that failed.")
		insts = append(insts, in.slots, in.redirects, in.tryAgain, in.clusterDown, in.retries, in.refr, in.refrErr)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("redispool: otel: %w", err)
	}
	reg, err := m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		return observe(ctx, o, in)
	}, insts...)
	if err != nil {
		return nil, fmt.Errorf("redispool: otel: %w", err)
	}
	return reg, nil
}

// with returns an option for base's attributes and kv.
func with(base []attribute.KeyValue, kv ...attribute.KeyValue) metric.ObserveOption {
	return metric.WithAttributeSet(attribute.NewSet(slices.Concat(base, kv)...))
}

func (in *instruments) observePool(o metric.Observer, s redispool.Stats, attrs []attribute.KeyValue) {
	all := with(attrs)
	o.ObserveInt64(in.max, int64(s.MaxTotal), all)
	o.ObserveInt64(in.conns, int64(s.Active), with(attrs, attribute.String("state", "active")))
	o.ObserveInt64(in.conns, int64(s.Idle), with(attrs, attribute.String("state", "idle")))
	o.ObserveInt64(in.conns, int64(s.Shared), with(attrs, attribute.String("state", "shared")))
	o.ObserveInt64(in.waiting, int64(s.Waiting), all)
	o.ObserveInt64(in.dialing, int64(s.Dialing), all)
	o.ObserveInt64(in.borrows, s.Borrows, all)
	o.ObserveInt64(in.waits, s.WaitCount, all)
	o.ObserveFloat64(in.waitSeconds, s.WaitDuration.Seconds(), all)
	o.ObserveInt64(in.timeouts, s.Timeouts, all)
	o.ObserveInt64(in.created, s.Created, all)
	o.ObserveInt64(in.dialErrors, s.DialErrors, all)
	for i, n := range destroyedByReason(&s) {
		o.ObserveInt64(in.destroyed, n, with(attrs, attribute.String("reason", destroyReasons[i])))
	}
	o.ObserveInt64(in.masterCh, s.MasterChanges, all)
	o.ObserveInt64(in.pipelined, s.PipelinedCommands, all)
	for i, n := range s.PipelineBatchSizes {
		o.ObserveInt64(in.batches, n, with(attrs, attribute.String("batch.size", batchSizes[i])))
	}
}

// batchSizes are the values of the batch.size attribute of
// redispool.pipeline.batches, one per bucket of
// Stats.PipelineBatchSizes. The OTel metric API has no observable
// histogram, so the distribution is a counter split by bucket: summed
// over batch.size it is PipelineBatches.
var batchSizes = func() [redispool.PipelineBatchBuckets]string {
	var out [redispool.PipelineBatchBuckets]string
	lo := 1
	for i := range out {
		hi := redispool.PipelineBatchSizeBound(i)
		switch {
		case hi == 0:
			out[i] = fmt.Sprintf("%d+", lo)
		case hi == lo:
			out[i] = fmt.Sprint(hi)
		default:
			out[i] = fmt.Sprintf("%d-%d", lo, hi)
		}
		lo = hi + 1
	}
	return out
}()

func (in *instruments) observeCluster(o metric.Observer, s redispool.ClusterStats, attrs []attribute.KeyValue) {
	for addr, ns := range s.Nodes {
		in.observePool(o, ns, slices.Concat(attrs, []attribute.KeyValue{attribute.String("server.address", addr)}))
	}
	for addr, n := range s.Slots {
		o.ObserveInt64(in.slots, int64(n), with(attrs, attribute.String("server.address", addr)))
	}
	all := with(attrs)
	o.ObserveInt64(in.redirects, s.Moved, with(attrs, attribute.String("kind", "moved")))
	o.ObserveInt64(in.redirects, s.Ask, with(attrs, attribute.String("kind", "ask")))
	o.ObserveInt64(in.tryAgain, s.TryAgain, all)
	o.ObserveInt64(in.clusterDown, s.ClusterDown, all)
	o.ObserveInt64(in.retries, s.Retries, all)
	o.ObserveInt64(in.refr, s.Refreshes, all)
	o.ObserveInt64(in.refrErr, s.RefreshErrors, all)
}
