package redispoolotel_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
	redispoolotel "github.com/redispool/redispool/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newPool(t testing.TB, cfg redispool.Config) (*redispool.Pool, *miniredis.Miniredis) {
	t.Helper()
	s := miniredis.RunT(t)
	cfg.Addr = s.Addr()
	cfg.EvictionInterval = -1 // no background work changes the counts
	p, err := redispool.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, s
}

// collect reads every metric of reader, by name.
func collect(t testing.TB, reader *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// value returns the data point of m whose attributes include want
// (key=value pairs), failing the test unless there is exactly one.
func value(t testing.TB, ms map[string]metricdata.Metrics, name string, want ...attribute.KeyValue) float64 {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	var found []float64
	match := func(set attribute.Set) bool {
		for _, kv := range want {
			if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	switch d := m.Data.(type) {
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				found = append(found, float64(p.Value))
			}
		}
	case metricdata.Sum[int64]:
		if !d.IsMonotonic {
			t.Errorf("%s is a non-monotonic sum; want a counter", name)
		}
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				found = append(found, float64(p.Value))
			}
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				found = append(found, p.Value)
			}
		}
	default:
		t.Fatalf("%s: data %T", name, m.Data)
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d data points; want 1", name, want, len(found))
	}
	return found[0]
}

func TestMetricsOfPool(t *testing.T) {
	p, _ := newPool(t, redispool.Config{MaxTotal: 2, BorrowTimeout: 20 * time.Millisecond, MaxIdle: 1})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	poolName := attribute.String("db.client.connection.pool.name", "sessions")
	reg, err := redispoolotel.RegisterMetrics(p, redispoolotel.WithMeterProvider(mp), redispoolotel.WithAttributes(poolName))
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	a, _ := p.GetContext(ctx)
	b, _ := p.GetContext(ctx)
	if _, err := p.GetContext(ctx); !errors.Is(err, redispool.ErrPoolExhausted) {
		t.Fatalf("third borrow: %v; want ErrPoolExhausted", err)
	}
	ms := collect(t, reader)
	for name, want := range map[string]float64{
		"redispool.connections.max":     2,
		"redispool.waiting":             0,
		"redispool.borrows":             2,
		"redispool.waits":               1,
		"redispool.timeouts":            1,
		"redispool.connections.created": 2,
		"redispool.dial_errors":         0,
		"redispool.master_changes":      0,
	} {
		if got := value(t, ms, name, poolName); got != want {
			t.Errorf("%s = %v; want %v", name, got, want)
		}
	}
	if got := value(t, ms, "redispool.connections", attribute.String("state", "active")); got != 2 {
		t.Errorf("active connections = %v; want 2", got)
	}
	if got := value(t, ms, "redispool.wait.duration"); got < 0.02 {
		t.Errorf("wait duration = %vs; want at least the 20ms BorrowTimeout", got)
	}

	a.Close()
	b.Close() // MaxIdle 1: closed as surplus
	ms = collect(t, reader)
	if got := value(t, ms, "redispool.connections", attribute.String("state", "idle")); got != 1 {
		t.Errorf("idle connections = %v; want 1", got)
	}
	if got := value(t, ms, "redispool.connections.destroyed", attribute.String("reason", "surplus"), poolName); got != 1 {
		t.Errorf("destroyed{reason=surplus} = %v; want 1", got)
	}
	if got := value(t, ms, "redispool.connections.destroyed", attribute.String("reason", "abandoned")); got != 0 {
		t.Errorf("destroyed{reason=abandoned} = %v; want 0 (every reason reported)", got)
	}
	if n := len(ms["redispool.connections.destroyed"].Data.(metricdata.Sum[int64]).DataPoints); n != 9 {
		t.Errorf("%d reasons of redispool.connections.destroyed; want 9", n)
	}

	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if ms := collect(t, reader); len(ms) != 0 {
		t.Errorf("after Unregister: %d metrics; want none", len(ms))
	}
}

func TestMetricsOfCluster(t *testing.T) {
	s := miniredis.RunT(t) // answers CLUSTER SLOTS: every slot is its own
	c, err := redispool.NewCluster(context.Background(), redispool.ClusterConfig{Addrs: []string{s.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	if _, err := redispoolotel.RegisterMetrics(c, redispoolotel.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(context.Background(), "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	var node string
	for addr := range c.Stats().Nodes {
		node = addr
	}
	ms := collect(t, reader)
	at := attribute.String("server.address", node)
	if got := value(t, ms, "redispool.borrows", at); got < 1 {
		t.Errorf("borrows of node %s = %v; want at least 1", node, got)
	}
	if got, want := value(t, ms, "redispool.pipeline.commands", at), c.Stats().Nodes[node].PipelinedCommands; got != float64(want) {
		t.Errorf("pipelined commands of node %s = %v; want %d", node, got, want)
	}
	if got := value(t, ms, "redispool.cluster.slots", at); got != 16384 {
		t.Errorf("slots of %s = %v; want 16384", node, got)
	}
	if got := value(t, ms, "redispool.cluster.refreshes"); got < 1 {
		t.Errorf("refreshes = %v; want at least 1", got)
	}
	if got := value(t, ms, "redispool.cluster.redirects", attribute.String("kind", "moved")); got != 0 {
		t.Errorf("moved = %v; want 0", got)
	}
}

func TestRegisterMetricsRejectsOtherClients(t *testing.T) {
	var other struct{ redispool.Client }
	if _, err := redispoolotel.RegisterMetrics(other); err == nil || !strings.HasPrefix(err.Error(), "redispool: ") {
		t.Fatalf("RegisterMetrics of another Client: %v; want a redispool error", err)
	}
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestCommandSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	p, s := newPool(t, redispool.Config{DB: 2, CommandHook: redispoolotel.CommandHook(redispoolotel.WithTracerProvider(tp))})

	ctx, parent := tp.Tracer("test").Start(context.Background(), "handler")
	if _, err := p.Do(ctx, "SET", "user:42", "s3cret-value"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Do(ctx, "incr", "user:42"); err == nil {
		t.Fatal("INCR of a string succeeded")
	}
	if _, err := p.Do(ctx, "NOSUCHCOMMAND", "s3cret-arg"); err == nil {
		t.Fatal("an unknown command succeeded")
	}
	parent.End()
	conn := p.RedigoPool().Get() // no context: a trace of its own
	conn.Do("GET", "user:42")
	conn.Close()

	spans := rec.Ended()
	var cmds []sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.Name() != "handler" {
			cmds = append(cmds, sp)
		}
	}
	if len(cmds) != 4 {
		t.Fatalf("%d command spans; want 4 (SET, INCR, NOSUCHCOMMAND, GET)", len(cmds))
	}
	host, port, _ := strings.Cut(s.Addr(), ":")
	for i, want := range []struct {
		name   string
		status codes.Code
		desc   string
	}{
		{"SET", codes.Unset, ""},
		{"INCR", codes.Error, "ERR"},
		{"NOSUCHCOMMAND", codes.Error, "ERR"},
		{"GET", codes.Unset, ""},
	} {
		sp := cmds[i]
		a := attrs(sp)
		if sp.Name() != want.name || a["db.operation.name"].AsString() != want.name {
			t.Errorf("span %d: name %q, db.operation.name %q; want %q", i, sp.Name(), a["db.operation.name"].AsString(), want.name)
		}
		if sp.SpanKind() != trace.SpanKindClient {
			t.Errorf("span %s: kind %v; want client", sp.Name(), sp.SpanKind())
		}
		if a["db.system"].AsString() != "redis" || a["db.system.name"].AsString() != "redis" ||
			a["server.address"].AsString() != host || a["network.transport"].AsString() != "tcp" ||
			a["db.namespace"].AsString() != "2" {
			t.Errorf("span %s: attributes %v; want db.system redis, server.address %s, db.namespace 2", sp.Name(), a, host)
		}
		if got := a["server.port"].AsInt64(); got == 0 || port == "" {
			t.Errorf("span %s: server.port %d; want %s", sp.Name(), got, port)
		}
		if sp.Status().Code != want.status || sp.Status().Description != want.desc {
			t.Errorf("span %s: status %v %q; want %v %q", sp.Name(), sp.Status().Code, sp.Status().Description, want.status, want.desc)
		}
		wantParent := i < 3
		if got := sp.Parent().SpanID() == parent.SpanContext().SpanID(); got != wantParent {
			t.Errorf("span %s: child of the handler span: %v; want %v", sp.Name(), got, wantParent)
		}
		// Nothing of the arguments, anywhere in the span.
		all := sp.Name() + sp.Status().Description
		for k, v := range a {
			all += string(k) + v.String()
		}
		for _, e := range sp.Events() {
			all += e.Name
			for _, kv := range e.Attributes {
				all += kv.Value.String()
			}
		}
		if strings.Contains(all, "s3cret") || strings.Contains(all, "user:42") {
			t.Errorf("span %s shows an argument: %s", sp.Name(), all)
		}
	}
}

func TestCommandSpansOnUnixSocket(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	hook := redispoolotel.CommandHook(redispoolotel.WithTracerProvider(tp))
	hook(context.Background(), redispool.CommandInfo{Name: "get", Network: "unix", Addr: "/run/redis.sock"})(redis.Error("WRONGTYPE Operation against a key"))
	sp := rec.Ended()[0]
	a := attrs(sp)
	if a["server.address"].AsString() != "/run/redis.sock" || a["network.transport"].AsString() != "unix" {
		t.Errorf("attributes %v; want server.address /run/redis.sock, network.transport unix", a)
	}
	if _, ok := a["server.port"]; ok {
		t.Error("a unix socket span has a server.port")
	}
	if a["db.response.status_code"].AsString() != "WRONGTYPE" || sp.Status().Description != "WRONGTYPE" {
		t.Errorf("status %q, db.response.status_code %q; want WRONGTYPE", sp.Status().Description, a["db.response.status_code"].AsString())
	}
}

// TestMetricsOfPipelining sends three commands through Do one after
// another: each is a round trip of its own on the shared connection, a
// batch of one.
func TestMetricsOfPipelining(t *testing.T) {
	p, _ := newPool(t, redispool.Config{})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	if _, err := redispoolotel.RegisterMetrics(p, redispoolotel.WithMeterProvider(mp)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := p.Do(context.Background(), "INCR", "n"); err != nil {
			t.Fatal(err)
		}
	}
	ms := collect(t, reader)
	if got := value(t, ms, "redispool.pipeline.commands"); got != 3 {
		t.Errorf("redispool.pipeline.commands = %v; want 3", got)
	}
	want := map[string]int64{"1": 3, "2": 0, "3-4": 0, "5-8": 0, "9-16": 0, "17-32": 0, "33-64": 0, "65-128": 0, "129-256": 0, "257+": 0}
	points := ms["redispool.pipeline.batches"].Data.(metricdata.Sum[int64]).DataPoints
	if len(points) != len(want) {
		t.Errorf("%d data points of redispool.pipeline.batches; want %d, one per batch.size", len(points), len(want))
	}
	for size, n := range want {
		if got := value(t, ms, "redispool.pipeline.batches", attribute.String("batch.size", size)); got != float64(n) {
			t.Errorf("redispool.pipeline.batches{batch.size=%s} = %v; want %d", size, got, n)
		}
	}
	// The shared connection goes back to the pool after a short idle
	// time: it is shared or idle, never active.
	shared := value(t, ms, "redispool.connections", attribute.String("state", "shared"))
	idle := value(t, ms, "redispool.connections", attribute.String("state", "idle"))
	if active := value(t, ms, "redispool.connections", attribute.String("state", "active")); active != 0 || shared+idle != 1 {
		t.Errorf("connections: active %v, idle %v, shared %v; want the one connection shared or idle", active, idle, shared)
	}
}
