// Package redispooltest gives a service's tests a redispool.Pool or
// Cluster on a Redis of their own, and fails a test that leaves a
// connection borrowed, printing where it was borrowed.
//
// New runs an embedded miniredis: no server to install, fast, and
// enough for most tests of a data layer. NewServer starts a real
// redis-server for the test (Lua, streams, ACLs, timing and memory
// behaviour that miniredis does not model); NewCluster starts a real
// Redis Cluster. The launchers behind them, with fault helpers (kill,
// restart, pause, failover, reshard) and Sentinel groups, are package
// github.com/redispool/redispool/redistest, for tests that need to
// drive the deployment itself.
//
// Every pool is closed when the test ends. Before that, a connection
// still borrowed fails the test with the stack of the borrow that took
// it: the usual leak is a Get without a deferred Close on an error path,
// and the stack names the test's (or the service's) file and line.
//
// Importing this package compiles miniredis and the launchers into the
// test binary only: a service's production build never sees them.
package redispooltest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redispool/redispool"
	"github.com/redispool/redispool/redistest"
)

// loanTracking is the AbandonedTimeout the kit sets, when the Config
// has none, so that the pool records where each connection was
// borrowed. No test holds a connection this long, so nothing is ever
// reclaimed.
const loanTracking = 24 * time.Hour

// New returns a Pool on an embedded miniredis started for the test.
// Both are closed when the test ends; a connection still borrowed then
// fails the test (see Check).
func New(t testing.TB) *redispool.Pool {
	t.Helper()
	p, _ := NewMiniredis(t)
	return p
}

// NewMiniredis is New that also returns the miniredis, to fast-forward
// its clock (FastForward, for TTLs), inspect keys or make it fail.
func NewMiniredis(t testing.TB) (*redispool.Pool, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	return NewPool(t, redispool.Config{Addr: m.Addr()}), m
}

// NewServer returns a Pool on a real redis-server started for the test
// on a free loopback port, with args as extra redis-server arguments
// ("--maxmemory", "10mb"). It needs redis-server on $PATH: without it
// the test fails, saying so, unless the environment variable
// REDISPOOLTEST_SKIP_WITHOUT_SERVER is 1, which skips it instead (for
// developers' machines; CI should install redis-server, so that the
// tests cannot pass by skipping). The server is stopped, by its PID,
// when the test ends.
func NewServer(t testing.TB, args ...string) *redispool.Pool {
	t.Helper()
	need(t, "redis-server")
	srv := redistest.StartServer(t, args...)
	cfg := redispool.Config{Network: srv.Network(), Addr: srv.Addr(), Password: srv.Password()}
	return NewPool(t, cfg)
}

// NewPool returns a Pool for cfg (a server of the test's own, started
// with package redistest), closed when the test ends, with the leak
// check of Check. When cfg.AbandonedTimeout is zero, the pool gets a
// long one, which makes it record where each connection is borrowed.
func NewPool(t testing.TB, cfg redispool.Config) *redispool.Pool {
	t.Helper()
	if cfg.AbandonedTimeout == 0 {
		cfg.AbandonedTimeout = loanTracking
	}
	p, err := redispool.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("redispooltest: %v", err)
	}
	Check(t, p)
	return p
}

// Check closes p when the test ends, and first fails the test if any of
// p's connections is still borrowed, printing where each was borrowed
// when p records it (Config.AbandonedTimeout set; NewPool sets it).
// Cleanups run last-in first-out, so a connection that a later Cleanup
// of the test closes counts as returned.
func Check(t testing.TB, p *redispool.Pool) {
	t.Helper()
	t.Cleanup(func() {
		defer p.Close()
		if msg := leaks(p); msg != "" {
			t.Errorf("redispooltest: %s", msg)
		}
	})
}

// NewCluster returns a Cluster on a real Redis Cluster started for the
// test: masters (zero means 3) with no replicas, on loopback ports. It
// needs redis-server and redis-cli on $PATH, as NewServer needs
// redis-server. The
// Cluster is closed, and the nodes stopped, when the test ends; a
// connection still borrowed from any node then fails the test, with
// where it was borrowed.
func NewCluster(t testing.TB, masters int) *redispool.Cluster {
	t.Helper()
	need(t, "redis-server", "redis-cli")
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: masters, Replicas: -1})
	cfg := redispool.ClusterConfig{Addrs: rc.Addrs(), Node: redispool.Config{AbandonedTimeout: loanTracking}}
	c, err := redispool.NewCluster(context.Background(), cfg)
	if err != nil {
		t.Fatalf("redispooltest: %v", err)
	}
	t.Cleanup(func() {
		defer c.Close()
		err := c.ForEachMaster(context.Background(), func(_ context.Context, p *redispool.Pool) error {
			if msg := leaks(p); msg != "" {
				return errors.New(msg)
			}
			return nil
		})
		if err != nil {
			t.Errorf("redispooltest: %v", err)
		}
	})
	return c
}

// SkipEnv is the environment variable that, set to 1, makes NewServer
// and NewCluster skip the test when redis-server is not installed,
// rather than fail it.
const SkipEnv = "REDISPOOLTEST_SKIP_WITHOUT_SERVER"

// need fails the test, or skips it with SkipEnv, when a program is not
// on $PATH.
func need(t testing.TB, programs ...string) {
	t.Helper()
	for _, prog := range programs {
		if _, err := exec.LookPath(prog); err != nil {
			if os.Getenv(SkipEnv) == "1" {
				t.Skipf("redispooltest: %s not found on $PATH (%s=1)", prog, SkipEnv)
			}
			t.Fatalf("redispooltest: %s not found on $PATH: install Redis (Debian: apt-get install redis-server redis-tools), or set %s=1 to skip such tests", prog, SkipEnv)
		}
	}
}

// NewSentinel returns a Pool that follows the master of a Sentinel
// group started for the test — a master, two replicas and three
// Sentinels, each a real redis-server — and the deployment, whose
// Failover, Node(addr).Kill and Restart drive the faults a service must
// ride out. It needs redis-server on $PATH, as NewServer does. The pool
// is closed, with the leak check, and every process stopped when the
// test ends.
func NewSentinel(t testing.TB) (*redispool.Pool, *redistest.SentinelDeployment) {
	t.Helper()
	need(t, "redis-server")
	d := redistest.StartSentinel(t, redistest.SentinelOptions{})
	cfg := redispool.Config{Sentinel: &redispool.SentinelConfig{MasterName: d.MasterName(), Addrs: d.SentinelAddrs()}}
	return NewPool(t, cfg), d
}

// leaks describes the connections still borrowed from p, or returns "".
func leaks(p *redispool.Pool) string {
	active := p.Stats().Active
	if active == 0 {
		return ""
	}
	loans := p.Loans()
	var b strings.Builder
	fmt.Fprintf(&b, "%d connection(s) still borrowed at the end of the test; close every connection from Get or GetContext", active)
	if len(loans) == 0 {
		b.WriteString(" (set Config.AbandonedTimeout to see where they were borrowed)")
	}
	for i, l := range loans {
		fmt.Fprintf(&b, "\n\nconnection %d, borrowed %v ago at:\n%s", i+1, time.Since(l.Since).Round(time.Millisecond), l.Stack)
	}
	return b.String()
}
