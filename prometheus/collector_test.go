package redispoolprom_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/redispool/redispool"
	redispoolprom "github.com/redispool/redispool/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newPool returns a pool on a fresh miniredis, closed at the end of the
// test. The evictor is off so that no background work changes the counts.
func newPool(t testing.TB, cfg redispool.Config) *redispool.Pool {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = miniredis.RunT(t).Addr()
	}
	cfg.EvictionInterval = -1
	p, err := redispool.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func borrow(t testing.TB, p *redispool.Pool) interface{ Close() error } {
	t.Helper()
	c, err := p.GetContext(context.Background())
	if err != nil {
		t.Fatalf("GetContext: %v", err)
	}
	if _, err := c.Do("PING"); err != nil {
		t.Fatalf("PING: %v", err)
	}
	return c
}

const allHelp = `
# HELP redispool_max_connections Maximum number of connections the pool holds, borrowed and idle together (MaxTotal).
# TYPE redispool_max_connections gauge
# HELP redispool_connections Number of open connections, by state: active (borrowed), idle (waiting in the pool) or shared (held by Do's auto-pipelining).
# TYPE redispool_connections gauge
# HELP redispool_borrows_total Total number of successful borrows.
# TYPE redispool_borrows_total counter
# HELP redispool_waits_total Total number of borrows that had to wait because MaxTotal connections were borrowed.
# TYPE redispool_waits_total counter
# HELP redispool_timeouts_total Total number of borrows that gave up with ErrPoolExhausted.
# TYPE redispool_timeouts_total counter
# HELP redispool_connections_created_total Total number of connections dialed and set up.
# TYPE redispool_connections_created_total counter
# HELP redispool_dial_errors_total Total number of dials that failed, including AUTH, SELECT and CLIENT SETNAME.
# TYPE redispool_dial_errors_total counter
# HELP redispool_connections_destroyed_total Total number of connections closed, by reason.
# TYPE redispool_connections_destroyed_total counter
# HELP redispool_master_changes_total Total number of times the pool switched to a new master (Sentinel); zero without Sentinel.
# TYPE redispool_master_changes_total counter
`

// compare checks every metric except redispool_wait_seconds_total, whose
// value depends on timing, against want (values only; allHelp supplies
// the HELP and TYPE lines).
func compare(t *testing.T, c prometheus.Collector, want string) {
	t.Helper()
	names := []string{
		"redispool_max_connections", "redispool_connections", "redispool_borrows_total",
		"redispool_waits_total", "redispool_timeouts_total", "redispool_connections_created_total",
		"redispool_dial_errors_total", "redispool_connections_destroyed_total",
		"redispool_master_changes_total",
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(allHelp+want), names...); err != nil {
		t.Error(err)
	}
}

func TestCollectorExportsBorrowsTimeoutsAndDestroyedByReason(t *testing.T) {
	p := newPool(t, redispool.Config{MaxTotal: 2, MaxIdle: 1, FailFast: true})
	c := redispoolprom.NewCollector(p)

	c1, c2 := borrow(t, p), borrow(t, p)
	if _, err := p.GetContext(context.Background()); !errors.Is(err, redispool.ErrPoolExhausted) {
		t.Fatalf("third borrow: got %v; want ErrPoolExhausted", err)
	}
	compare(t, c, `
redispool_max_connections 2
redispool_connections{state="active"} 2
redispool_connections{state="idle"} 0
redispool_connections{state="shared"} 0
redispool_borrows_total 2
redispool_waits_total 0
redispool_timeouts_total 1
redispool_connections_created_total 2
redispool_dial_errors_total 0
redispool_connections_destroyed_total{reason="broken"} 0
redispool_connections_destroyed_total{reason="unhealthy"} 0
redispool_connections_destroyed_total{reason="dirty"} 0
redispool_connections_destroyed_total{reason="idle"} 0
redispool_connections_destroyed_total{reason="lifetime"} 0
redispool_connections_destroyed_total{reason="surplus"} 0
redispool_connections_destroyed_total{reason="closed"} 0
redispool_connections_destroyed_total{reason="abandoned"} 0
redispool_connections_destroyed_total{reason="failover"} 0
redispool_master_changes_total 0
`)

	// MaxIdle is 1: the second connection returned is surplus.
	c1.Close()
	c2.Close()
	compare(t, c, `
redispool_max_connections 2
redispool_connections{state="active"} 0
redispool_connections{state="idle"} 1
redispool_connections{state="shared"} 0
redispool_borrows_total 2
redispool_waits_total 0
redispool_timeouts_total 1
redispool_connections_created_total 2
redispool_dial_errors_total 0
redispool_connections_destroyed_total{reason="broken"} 0
redispool_connections_destroyed_total{reason="unhealthy"} 0
redispool_connections_destroyed_total{reason="dirty"} 0
redispool_connections_destroyed_total{reason="idle"} 0
redispool_connections_destroyed_total{reason="lifetime"} 0
redispool_connections_destroyed_total{reason="surplus"} 1
redispool_connections_destroyed_total{reason="closed"} 0
redispool_connections_destroyed_total{reason="abandoned"} 0
redispool_connections_destroyed_total{reason="failover"} 0
redispool_master_changes_total 0
`)

	// After Close the collector goes on reporting the final counts.
	p.Close()
	compare(t, c, `
redispool_max_connections 2
redispool_connections{state="active"} 0
redispool_connections{state="idle"} 0
redispool_connections{state="shared"} 0
redispool_borrows_total 2
redispool_waits_total 0
redispool_timeouts_total 1
redispool_connections_created_total 2
redispool_dial_errors_total 0
redispool_connections_destroyed_total{reason="broken"} 0
redispool_connections_destroyed_total{reason="unhealthy"} 0
redispool_connections_destroyed_total{reason="dirty"} 0
redispool_connections_destroyed_total{reason="idle"} 0
redispool_connections_destroyed_total{reason="lifetime"} 0
redispool_connections_destroyed_total{reason="surplus"} 1
redispool_connections_destroyed_total{reason="closed"} 1
redispool_connections_destroyed_total{reason="abandoned"} 0
redispool_connections_destroyed_total{reason="failover"} 0
redispool_master_changes_total 0
`)
}

func TestCollectorExportsWaitsAndWaitSeconds(t *testing.T) {
	p := newPool(t, redispool.Config{MaxTotal: 1})
	c := redispoolprom.NewCollector(p)

	held := borrow(t, p)
	done := make(chan error)
	go func() {
		c, err := p.GetContext(context.Background())
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	for p.Stats().WaitCount == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	held.Close()
	if err := <-done; err != nil {
		t.Fatalf("waiting borrow: %v", err)
	}

	if got := metricValue(t, c, "redispool_waits_total"); got != 1 {
		t.Errorf("redispool_waits_total = %v; want 1", got)
	}
	got := metricValue(t, c, "redispool_wait_seconds_total")
	if want := p.Stats().WaitDuration.Seconds(); got != want || got < 0.01 {
		t.Errorf("redispool_wait_seconds_total = %v; want %v (Stats.WaitDuration), at least 0.01", got, want)
	}
}

func TestCollectorCountsDialErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: dials are refused

	p := newPool(t, redispool.Config{Addr: addr, DialTimeout: time.Second})
	c := redispoolprom.NewCollector(p)
	if err := p.Ping(context.Background()); err == nil {
		t.Fatal("Ping to a closed port succeeded")
	}
	if got := metricValue(t, c, "redispool_dial_errors_total"); got != 1 {
		t.Errorf("redispool_dial_errors_total = %v; want 1", got)
	}
	if got := metricValue(t, c, "redispool_connections_created_total"); got != 0 {
		t.Errorf("redispool_connections_created_total = %v; want 0", got)
	}
}

func TestCollectorOptionsSetConstLabelsAndNamespace(t *testing.T) {
	p := newPool(t, redispool.Config{MaxTotal: 3})
	c := redispoolprom.NewCollector(p,
		redispoolprom.WithConstLabels(prometheus.Labels{"pool": "cache"}),
		redispoolprom.WithConstLabels(prometheus.Labels{"shard": "1"}),
		redispoolprom.WithNamespace("myapp_redis"))

	want := `
# HELP myapp_redis_max_connections Maximum number of connections the pool holds, borrowed and idle together (MaxTotal).
# TYPE myapp_redis_max_connections gauge
myapp_redis_max_connections{pool="cache",shard="1"} 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "myapp_redis_max_connections"); err != nil {
		t.Error(err)
	}
	if n, want := testutil.CollectAndCount(c), 25; n != want {
		t.Errorf("collected %d metrics; want %d", n, want)
	}
}

func TestCollectorPassesLintAndPedanticRegistry(t *testing.T) {
	p := newPool(t, redispool.Config{})
	c := redispoolprom.NewCollector(p, redispoolprom.WithConstLabels(prometheus.Labels{"pool": "main"}))

	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("lint: %s: %s", pr.Metric, pr.Text)
	}

	// The pedantic registry checks that what Collect sends matches what
	// Describe declares.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Errorf("Gather: %v", err)
	}
	// A second collector for another pool registers alongside when its
	// constant labels differ.
	other := redispoolprom.NewCollector(newPool(t, redispool.Config{}),
		redispoolprom.WithConstLabels(prometheus.Labels{"pool": "other"}))
	if err := reg.Register(other); err != nil {
		t.Errorf("registering a second pool's collector: %v", err)
	}
}

// metricValue returns the value of the single unlabelled metric name
// collected from c.
func metricValue(t *testing.T, c prometheus.Collector, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%s has %d series; want 1", name, len(mf.GetMetric()))
		}
		return value(mf.GetMetric()[0])
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestCollectorExportsWaitingBorrowers(t *testing.T) {
	p := newPool(t, redispool.Config{MaxTotal: 1})
	c := redispoolprom.NewCollector(p)
	held := borrow(t, p)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if conn, err := p.GetContext(context.Background()); err == nil {
			conn.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, c, "redispool_waiting") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("redispool_waiting never reached 1 with one borrower waiting")
		}
		time.Sleep(time.Millisecond)
	}
	held.Close()
	<-done
	if got := metricValue(t, c, "redispool_waiting"); got != 0 {
		t.Errorf("redispool_waiting = %v after the waiter was served; want 0", got)
	}
}

// A server that accepts and never answers holds the borrower in its dial
// (the dial's PING): redispool_dialing shows it, where Active, Idle and
// Waiting are all 0.
func TestCollectorExportsBorrowersWaitingOnADial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted []net.Conn
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted = append(accepted, nc) // never answered
		}
	}()
	defer func() {
		ln.Close()
		<-acceptDone
		for _, nc := range accepted {
			nc.Close()
		}
	}()
	p := newPool(t, redispool.Config{Addr: ln.Addr().String(), DialTimeout: 30 * time.Second})
	c := redispoolprom.NewCollector(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if conn, err := p.GetContext(ctx); err == nil {
			conn.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, c, "redispool_dialing") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("redispool_dialing never reached 1 with one borrower dialing a silent server")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := metricValue(t, c, "redispool_dialing"); got != 0 {
		t.Errorf("redispool_dialing = %v after the borrow ended; want 0", got)
	}
}

func TestCollectorCountsAbandonedConnections(t *testing.T) {
	p := newPool(t, redispool.Config{MaxTotal: 2, AbandonedTimeout: 50 * time.Millisecond})
	c := redispoolprom.NewCollector(p)
	borrow(t, p) // and never returned
	deadline := time.Now().Add(5 * time.Second)
	for labelledValue(t, c, "redispool_connections_destroyed_total", "reason", "abandoned") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("connections_destroyed_total{reason=\"abandoned\"} never reached 1; Stats %+v", p.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := labelledValue(t, c, "redispool_connections", "state", "active"); got != 0 {
		t.Errorf("redispool_connections{state=\"active\"} = %v after the reclaim; want 0", got)
	}
}

// labelledValue returns the value of the series of metric name whose
// label has the value v.
func labelledValue(t *testing.T, c prometheus.Collector, name, label, v string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == v {
					return value(m)
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, v)
	return 0
}

// TestCollectorExportsPipelineMetrics sends three commands through
// Do one after another: each is a round trip of its own on the shared
// connection, a batch of one.
func TestCollectorExportsPipelineMetrics(t *testing.T) {
	p := newPool(t, redispool.Config{})
	c := redispoolprom.NewCollector(p)
	for range 3 {
		if _, err := p.Do(context.Background(), "INCR", "n"); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP redispool_pipelined_commands_total Total number of commands Do wrote on a shared connection (auto-pipelining).
# TYPE redispool_pipelined_commands_total counter
redispool_pipelined_commands_total 3
# HELP redispool_pipeline_batches_total Total number of writes on shared connections; pipelined commands / batches is the mean batch.
# TYPE redispool_pipeline_batches_total counter
redispool_pipeline_batches_total 3
# HELP redispool_pipeline_batch_size Number of commands in each write on a shared connection.
# TYPE redispool_pipeline_batch_size histogram
redispool_pipeline_batch_size_bucket{le="1"} 3
redispool_pipeline_batch_size_bucket{le="2"} 3
redispool_pipeline_batch_size_bucket{le="4"} 3
redispool_pipeline_batch_size_bucket{le="8"} 3
redispool_pipeline_batch_size_bucket{le="16"} 3
redispool_pipeline_batch_size_bucket{le="32"} 3
redispool_pipeline_batch_size_bucket{le="64"} 3
redispool_pipeline_batch_size_bucket{le="128"} 3
redispool_pipeline_batch_size_bucket{le="256"} 3
redispool_pipeline_batch_size_bucket{le="+Inf"} 3
redispool_pipeline_batch_size_sum 3
redispool_pipeline_batch_size_count 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"redispool_pipelined_commands_total", "redispool_pipeline_batches_total", "redispool_pipeline_batch_size"); err != nil {
		t.Error(err)
	}
	// The shared connection goes back to the pool after a short idle
	// time: it is shared or idle, never active.
	shared := labelledValue(t, c, "redispool_connections", "state", "shared")
	idle := labelledValue(t, c, "redispool_connections", "state", "idle")
	if active := labelledValue(t, c, "redispool_connections", "state", "active"); active != 0 || shared+idle < 1 {
		t.Errorf("connections: active %v, idle %v, shared %v; want the one connection shared or idle", active, idle, shared)
	}
}
