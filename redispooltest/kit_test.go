package redispooltest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
	"github.com/redispool/redispool/redistest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a testing.TB whose Errorf and Fatalf are recorded rather
// than failing the real test, and whose Cleanups run when run says.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	errors   []string
	cleanups []func()
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// run runs the recorded cleanups, last first, as the testing package does.
func (r *recorder) run() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// line is the file:line of its caller.
func line() string {
	_, file, n, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", file, n)
}

// nextLine is the file:line after its caller's.
func nextLine() string {
	_, file, n, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", file, n+1)
}

func TestLeakedConnectionFailsTheTestNamingWhereItWasBorrowed(t *testing.T) {
	r := &recorder{TB: t}
	p := New(r)
	c, where := p.Get(), line() // the leak: never closed
	if _, err := c.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	r.run()
	if len(r.errors) != 1 {
		t.Fatalf("got %d errors %q; want 1", len(r.errors), r.errors)
	}
	msg := r.errors[0]
	for _, want := range []string{"1 connection(s) still borrowed", where, "TestLeakedConnectionFailsTheTestNamingWhereItWasBorrowed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("report %q does not contain %q", msg, want)
		}
	}
	if _, err := c.Do("GET", "k"); err == nil {
		t.Error("the leaked connection still works after cleanup; want the pool closed")
	}
}

func TestCleanTestIsNotFailed(t *testing.T) {
	r := &recorder{TB: t}
	p := New(r)
	ctx := context.Background()
	for range 3 {
		c, err := p.GetContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Do("INCR", "n"); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if n, err := redis.Int(p.Do(ctx, "GET", "n")); err != nil || n != 3 {
		t.Fatalf("GET n = %d, %v; want 3", n, err)
	}
	r.run()
	if len(r.errors) != 0 {
		t.Fatalf("a clean test was failed: %q", r.errors)
	}
	if err := p.Ping(ctx); err == nil {
		t.Error("pool still open after cleanup")
	}
}

func TestConnectionClosedByALaterCleanupCountsAsReturned(t *testing.T) {
	r := &recorder{TB: t}
	p := New(r)
	c := p.Get()
	r.Cleanup(func() { c.Close() }) // registered after the kit's: runs first
	r.run()
	if len(r.errors) != 0 {
		t.Fatalf("got %q; want no error", r.errors)
	}
}

func TestNewServerIsARealRedisServer(t *testing.T) {
	p := NewServer(t)
	info, err := redis.String(p.Do(context.Background(), "INFO", "server"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "redis_version:") || strings.Contains(info, "miniredis") {
		t.Fatalf("INFO server = %q; want a real redis-server", info)
	}
}

func TestNewServerLeakReport(t *testing.T) {
	r := &recorder{TB: t}
	p := NewServer(r)
	_, where := p.Get(), line()
	r.run()
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], where) {
		t.Fatalf("got %q; want one report naming %s", r.errors, where)
	}
}

func TestNewClusterLeakReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	r := &recorder{TB: t}
	c := NewCluster(r, 3)
	ctx := context.Background()
	if _, err := c.Do(ctx, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	conn := c.Get()
	where := nextLine()
	if _, err := conn.Do("GET", "k"); err != nil { // borrows from k's node
		t.Fatal(err)
	}
	r.run()
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], where) {
		t.Fatalf("got %q; want one report naming %s", r.errors, where)
	}
}

func TestNewServerWithoutRedisFailsOrSkips(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no redis-server here
	for _, skip := range []string{"", "1"} {
		t.Setenv(SkipEnv, skip)
		r := &fatalRecorder{recorder: recorder{TB: t}}
		func() {
			defer func() { recover() }() // Fatalf and Skipf end the "test" by panicking here
			NewServer(r)
		}()
		switch {
		case skip == "1" && !strings.Contains(r.skip, "not found"):
			t.Errorf("%s=1: skip message %q; want a skip naming the missing binary", SkipEnv, r.skip)
		case skip == "" && !strings.Contains(r.fatal, "redis-server not found"):
			t.Errorf("without %s: fatal %q; want a failure naming redis-server", SkipEnv, r.fatal)
		}
	}
}

// fatalRecorder records Fatalf and Skipf and stops the caller by
// panicking, as runtime.Goexit would stop a real test.
type fatalRecorder struct {
	recorder
	fatal, skip string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	panic("fatal")
}

func (r *fatalRecorder) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	panic("skip")
}

func (r *fatalRecorder) Helper() {}

func TestNewSentinelFollowsAFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Sentinel group")
	}
	p, d := NewSentinel(t)
	ctx := context.Background()
	if _, err := p.Do(ctx, "SET", "k", "before"); err != nil {
		t.Fatal(err)
	}
	old := d.MasterAddr(t)
	d.Failover(t)
	now := d.WaitMaster(t, old)
	// The pool follows within a few seconds: announcements, or its
	// next query after a write to the demoted master fails.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := p.Do(ctx, "SET", "k", "after")
		if err == nil && p.Addr() == now {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool at %s (want %s) 20s after the failover; last SET: %v", p.Addr(), now, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPipelineGetLeakReport: with Config.PipelineGet a connection from
// Get borrows at its first call that needs a connection of its own; a
// leaked one that did is reported with that call's line, through Get
// and through RedigoPool. One that only pipelined holds nothing, and is
// not reported (README: PipelineGet, Accounting).
func TestPipelineGetLeakReport(t *testing.T) {
	srv := redistest.StartServer(t)
	r := &recorder{TB: t}
	p := NewPool(r, redispool.Config{Addr: srv.Addr(), PipelineGet: true})
	pipelinedOnly := p.Get()
	if _, err := pipelinedOnly.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	c := p.Get()
	where := nextLine()
	if _, err := c.Do("MULTI"); err != nil {
		t.Fatal(err)
	}
	bridged := p.RedigoPool().Get()
	whereBridged := nextLine()
	if _, err := bridged.Do("WATCH", "k"); err != nil {
		t.Fatal(err)
	}
	r.run()
	if len(r.errors) != 1 {
		t.Fatalf("got %d errors %q; want 1", len(r.errors), r.errors)
	}
	for _, want := range []string{"2 connection(s) still borrowed", where, whereBridged} {
		if !strings.Contains(r.errors[0], want) {
			t.Errorf("report %q does not contain %q", r.errors[0], want)
		}
	}
}
