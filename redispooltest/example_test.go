package redispooltest_test

import (
	"context"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
	"github.com/redispool/redispool/redispooltest"
	"github.com/redispool/redispool/redistest"
)

// Counter is a service's data layer, as the examples test it.
type Counter struct{ Pool *redispool.Pool }

// Hit counts a visit to page and returns the count.
func (c Counter) Hit(ctx context.Context, page string) (int, error) {
	return redis.Int(c.Pool.Do(ctx, "INCR", "hits:"+page))
}

// runTest stands for go test, which runs a service's test functions;
// TestExamples runs each example's test through it, for real.
var runTest = func(func(*testing.T)) {}

func TestExamples(t *testing.T) {
	for _, ex := range []struct {
		name string
		run  func()
	}{
		{"New", ExampleNew},
		{"NewServer", ExampleNewServer},
		{"NewPool", ExampleNewPool},
		{"NewCluster", ExampleNewCluster},
	} {
		t.Run(ex.name, func(t *testing.T) {
			ran := false
			runTest = func(test func(*testing.T)) { ran = true; test(t) }
			defer func() { runTest = func(func(*testing.T)) {} }()
			ex.run()
			if !ran {
				t.Fatal("the example ran no test")
			}
		})
	}
}

// A service's unit test of its data layer, on an embedded miniredis.
// The pool is closed when the test ends; a connection the code under
// test forgot to close fails the test with the line that borrowed it.
func ExampleNew() {
	TestCounter := func(t *testing.T) {
		c := Counter{Pool: redispooltest.New(t)}
		for want := 1; want <= 3; want++ {
			got, err := c.Hit(context.Background(), "home")
			if err != nil || got != want {
				t.Fatalf("Hit = %d, %v; want %d", got, err, want)
			}
		}
	}
	runTest(TestCounter) // in counter_test.go: func TestCounter(t *testing.T) { ... }
}

// An integration test on a real redis-server, here one that evicts
// keys at 1 MB, which miniredis does not model.
func ExampleNewServer() {
	TestCounterUnderMemoryPressure := func(t *testing.T) {
		p := redispooltest.NewServer(t, "--maxmemory", "1mb", "--maxmemory-policy", "allkeys-lru")
		c := Counter{Pool: p}
		if _, err := c.Hit(context.Background(), "home"); err != nil {
			t.Fatal(err)
		}
	}
	runTest(TestCounterUnderMemoryPressure)
}

// A test of how the service rides out a Redis restart, with the
// launcher's fault helpers.
func ExampleNewPool() {
	TestCounterSurvivesRestart := func(t *testing.T) {
		srv := redistest.StartServer(t)
		c := Counter{Pool: redispooltest.NewPool(t, redispool.Config{Addr: srv.Addr()})}
		ctx := context.Background()
		if _, err := c.Hit(ctx, "home"); err != nil {
			t.Fatal(err)
		}
		srv.Restart() // same port; the data is gone (no persistence)
		// The pool notices the dead connections and dials again.
		if got, err := c.Hit(ctx, "home"); err != nil || got != 1 {
			t.Fatalf("Hit after restart = %d, %v; want 1", got, err)
		}
	}
	runTest(TestCounterSurvivesRestart)
}

// A test on a real three-master Redis Cluster.
func ExampleNewCluster() {
	TestOnCluster := func(t *testing.T) {
		cl := redispooltest.NewCluster(t, 3)
		ctx := context.Background()
		if _, err := cl.Do(ctx, "SET", "user:1", "ann"); err != nil {
			t.Fatal(err)
		}
	}
	runTest(TestOnCluster)
}
