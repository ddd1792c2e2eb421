package ecosystem_test

import (
	"context"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
	"github.com/redispool/redispool/redistest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// scs.New starts a cleanup goroutine for its default in-memory
	// store, which never stops, before the test replaces that store.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/alexedwards/scs/v2/memstore.(*MemStore).startCleanup"))
}

// clientName names the pools' connections, so that the servers' CLIENT
// LIST tells them from everything else.
const clientName = "ecosystem-bridge"

// maxTotal is small so that the concurrent scenarios wait in redispool.
const maxTotal = 4

// backend is a redispool Pool or Cluster on real servers, and the
// *redis.Pool a library is given.
type backend struct {
	name    string
	client  interface{ Close() error }
	rp      *redis.Pool
	stats   func() redispool.Stats // a Cluster's summed over its nodes
	control func() int             // a Cluster's idle control connections
	servers []*redistest.Server
}

// backends returns a Pool on a redis-server and a Cluster of three
// masters, each closed at the end of the test.
func backends(t *testing.T) []*backend {
	t.Helper()
	ctx := context.Background()

	srv := redistest.StartServer(t)
	p, err := redispool.New(ctx, redispool.Config{Addr: srv.Addr(), ClientName: clientName, MaxTotal: maxTotal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	c, err := redispool.NewCluster(ctx, redispool.ClusterConfig{
		Addrs: rc.Addrs(),
		Node:  redispool.Config{ClientName: clientName, MaxTotal: maxTotal},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	var nodes []*redistest.Server
	for _, n := range rc.Nodes() {
		nodes = append(nodes, n.Server)
	}

	return []*backend{
		{name: "Pool", client: p, rp: p.RedigoPool(), stats: p.Stats, control: func() int { return 0 }, servers: []*redistest.Server{srv}},
		{name: "Cluster", client: c, rp: c.RedigoPool(), stats: func() redispool.Stats {
			var sum redispool.Stats
			for _, s := range c.Stats().Nodes {
				sum.Active += s.Active
				sum.Idle += s.Idle
				sum.Created += s.Created
				sum.Borrows += s.Borrows
				sum.Shared += s.Shared
			}
			return sum
		}, control: func() int { return c.Stats().ControlConns }, servers: nodes},
	}
}

// serverConns counts the pool's connections as the servers see them.
func (b *backend) serverConns(t testing.TB) int {
	t.Helper()
	n := 0
	for _, s := range b.servers {
		n += s.CountClients(t, func(c redistest.ClientInfo) bool { return c.Name == clientName })
	}
	return n
}

// checkNothingBorrowed checks that no connection is left borrowed, in
// the bridge or in redispool, and that every connection the servers see
// is one redispool holds idle (in its pools, in the pipeline, or as a
// Cluster's control connection): the bridge kept none of its own.
func (b *backend) checkNothingBorrowed(t testing.TB) {
	t.Helper()
	if n := b.rp.ActiveCount(); n != 0 {
		t.Errorf("%s: bridge ActiveCount = %d; want 0", b.name, n)
	}
	if n := b.rp.IdleCount(); n != 0 {
		t.Errorf("%s: bridge IdleCount = %d; want 0", b.name, n)
	}
	s := b.stats()
	if s.Active != 0 {
		t.Errorf("%s: redispool Stats.Active = %d; want 0", b.name, s.Active)
	}
	// The server notices a closed connection asynchronously: poll.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := b.stats()
		idle, got := st.Idle+st.Shared+b.control(), b.serverConns(t)
		if got == idle {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: the servers see %d connections; redispool holds %d idle", b.name, got, idle)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closeAndCount closes the Pool or Cluster and waits until the servers
// see none of its connections.
func (b *backend) closeAndCount(t testing.TB) {
	t.Helper()
	if err := b.client.Close(); err != nil {
		t.Fatalf("%s: Close: %v", b.name, err)
	}
	for _, s := range b.servers {
		s.WaitClients(t, 0, func(c redistest.ClientInfo) bool { return c.Name == clientName })
	}
}

// forEachBackend runs f as a subtest on each backend, then checks that
// nothing is left borrowed and that closing the pool leaves no
// connection on the servers.
func forEachBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f(t, b)
			b.checkNothingBorrowed(t)
			s := b.stats()
			t.Logf("%s: %d borrows, %d connections dialed, %d idle, %d seen by the servers",
				b.name, s.Borrows, s.Created, s.Idle, b.serverConns(t))
			if s := b.stats(); s.Created > int64(maxTotal*len(b.servers)) {
				t.Errorf("%s: %d connections dialed; want at most MaxTotal %d per node", b.name, s.Created, maxTotal)
			}
			b.closeAndCount(t)
		})
	}
}

// waitUntil polls cond until it holds, failing the test after 10s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
