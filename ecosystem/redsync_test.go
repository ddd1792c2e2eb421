package ecosystem_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncredigo "github.com/go-redsync/redsync/v4/redis/redigo"
	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
	"github.com/redispool/redispool/redistest"
)

// pipeGetName names the connections of the PipelineGet scenarios' pools.
const pipeGetName = "ecosystem-pipeget"

// pipeGetPools starts n redis-servers with a PipelineGet pool on each,
// closed at the end of the test, after which no connection of theirs
// may be left on a server.
func pipeGetPools(t *testing.T, n int, cfg redispool.Config) ([]*redispool.Pool, []*redistest.Server) {
	t.Helper()
	var pools []*redispool.Pool
	var servers []*redistest.Server
	for range n {
		srv := redistest.StartServer(t)
		cfg.Addr = srv.Addr()
		cfg.ClientName = pipeGetName
		cfg.MaxTotal = maxTotal
		cfg.PipelineGet = true
		p, err := redispool.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.Close()
			srv.WaitClients(t, 0, func(c redistest.ClientInfo) bool { return c.Name == pipeGetName })
		})
		pools = append(pools, p)
		servers = append(servers, srv)
	}
	return pools, servers
}

// checkConnections fails if any pool has a connection borrowed, or any
// server more connections of the pools than MaxTotal.
func checkConnections(t *testing.T, pools []*redispool.Pool, servers []*redistest.Server) {
	t.Helper()
	for i, p := range pools {
		if st := p.Stats(); st.Active != 0 {
			t.Errorf("pool %d: Stats.Active = %d after the scenario; want 0", i, st.Active)
		}
		if n := servers[i].CountClients(t, func(c redistest.ClientInfo) bool { return c.Name == pipeGetName }); n > maxTotal {
			t.Errorf("server %d: %d connections of the pool; want at most MaxTotal %d", i, n, maxTotal)
		}
	}
}

// TestRedsyncOnPipelineGet runs redsync's Redlock across three pools of
// real redis-servers with Config.PipelineGet on: SET NX PX, the lock,
// goes down the shared pipelines, and the unlock and extend scripts
// borrow a connection of their own.
func TestRedsyncOnPipelineGet(t *testing.T) {
	pools, servers := pipeGetPools(t, 3, redispool.Config{})
	var rpools []redsyncredigo.Pool
	for _, p := range pools {
		rpools = append(rpools, p)
	}
	rs := redsync.New(redsyncredigo.NewPool(rpools[0]), redsyncredigo.NewPool(rpools[1]), redsyncredigo.NewPool(rpools[2]))

	t.Run("Contended", func(t *testing.T) {
		lockedIncrements(t, rs, pools[0])
		checkConnections(t, pools, servers)
	})

	t.Run("ExtendUnlock", func(t *testing.T) {
		m := rs.NewMutex("rs:extend", redsync.WithExpiry(2*time.Second))
		if err := m.Lock(); err != nil {
			t.Fatal(err)
		}
		for _, srv := range servers {
			srv.Do(t, "PEXPIRE", "rs:extend", 500) // as if time had passed
		}
		if ok, err := m.Extend(); err != nil || !ok {
			t.Fatalf("Extend = %v, %v; want true", ok, err)
		}
		for i, srv := range servers {
			if ms, _ := srv.Do(t, "PTTL", "rs:extend").(int64); ms <= 500 {
				t.Errorf("server %d: PTTL %d ms after Extend; want more than 500", i, ms)
			}
		}
		// Until is the validity redsync tracks after Extend (Valid, which
		// asked the servers, is deprecated: redsync issue 72); the PTTLs
		// above are the servers' word.
		if until := m.Until(); !time.Now().Before(until) {
			t.Errorf("Until = %v after Extend; want a time still ahead", until)
		}
		if ok, err := m.Unlock(); err != nil || !ok {
			t.Fatalf("Unlock = %v, %v; want true", ok, err)
		}
		for i, srv := range servers {
			if n, _ := srv.Do(t, "EXISTS", "rs:extend").(int64); n != 0 {
				t.Errorf("server %d: the lock's key is still there after Unlock", i)
			}
		}
		checkConnections(t, pools, servers)
	})

	t.Run("Expiry", func(t *testing.T) {
		holder := rs.NewMutex("rs:expiry", redsync.WithExpiry(300*time.Millisecond))
		if err := holder.Lock(); err != nil {
			t.Fatal(err)
		}
		other := rs.NewMutex("rs:expiry", redsync.WithExpiry(time.Second))
		var taken *redsync.ErrTaken
		if err := other.TryLock(); !errors.As(err, &taken) && !errors.Is(err, redsync.ErrFailed) {
			t.Fatalf("TryLock of a held lock: %v; want it taken", err)
		}
		// Never unlocked: it expires on every server.
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := other.TryLock()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("TryLock after the holder's expiry: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ok, err := holder.Unlock(); ok || err == nil {
			t.Errorf("the expired holder's Unlock = %v, %v; want false and an error", ok, err)
		}
		if ok, err := other.Unlock(); err != nil || !ok {
			t.Errorf("Unlock = %v, %v; want true", ok, err)
		}
		checkConnections(t, pools, servers)
	})

	var pipelined int64
	for _, p := range pools {
		pipelined += p.Stats().PipelinedCommands
	}
	if pipelined == 0 {
		t.Error("no command was pipelined: PipelineGet is not in use")
	}
	t.Logf("pipelined commands: %d", pipelined)
}

// TestRedsyncOnClusterPipelineGet runs the contended scenario of
// TestRedsyncOnPipelineGet with one Cluster of three masters, with
// ClusterConfig.Node.PipelineGet, as redsync's single pool: the lock's
// SET NX PX goes down the node's pipe, the unlock script binds a
// connection to the lock's node.
func TestRedsyncOnClusterPipelineGet(t *testing.T) {
	pipeGetCluster(t, func(c *redispool.Cluster) {
		lockedIncrements(t, redsync.New(redsyncredigo.NewPool(c)), c)
	})
}

// pipeGetCluster starts a Cluster of three masters, runs scenario on a
// redispool Cluster with ClusterConfig.Node.PipelineGet, and checks
// that commands were pipelined, no connection is left borrowed and no
// master holds more connections than MaxTotal and a control one.
func pipeGetCluster(t *testing.T, scenario func(*redispool.Cluster)) {
	t.Helper()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	const name = "ecosystem-cluster-pipeget"
	c, err := redispool.NewCluster(context.Background(), redispool.ClusterConfig{
		Addrs: rc.Addrs(),
		Node:  redispool.Config{PipelineGet: true, ClientName: name, MaxTotal: maxTotal},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	scenario(c)
	var pipelined int64
	for addr, ns := range c.Stats().Nodes {
		pipelined += ns.PipelinedCommands
		if ns.Active != 0 {
			t.Errorf("node %s: %d connections still borrowed", addr, ns.Active)
		}
	}
	if pipelined == 0 {
		t.Error("no command was pipelined: PipelineGet is not in use")
	}
	for _, m := range rc.Masters(t) {
		if n := m.CountClients(t, func(ci redistest.ClientInfo) bool { return ci.Name == name }); n > maxTotal+1 {
			t.Errorf("%d connections to %s; want at most %d", n, m, maxTotal+1)
		}
	}
}

// lockedIncrements runs a read-modify-write of a counter on counter
// from many goroutines under one redsync mutex: not atomic by itself,
// only mutual exclusion keeps every increment.
func lockedIncrements(t *testing.T, rs *redsync.Redsync, counter interface {
	Do(context.Context, string, ...any) (any, error)
}) {
	t.Helper()
	const workers, rounds = 16, 10
	if _, err := counter.Do(context.Background(), "SET", "rs:counter", 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			m := rs.NewMutex("rs:lock", redsync.WithExpiry(10*time.Second), redsync.WithTries(10000),
				redsync.WithRetryDelay(time.Millisecond))
			for range rounds {
				if err := m.LockContext(ctx); err != nil {
					errs <- err
					return
				}
				n, err := redis.Int(counter.Do(ctx, "GET", "rs:counter"))
				if err == nil {
					_, err = counter.Do(ctx, "SET", "rs:counter", n+1)
				}
				if ok, uerr := m.UnlockContext(ctx); err == nil && (uerr != nil || !ok) {
					err = errors.Join(errors.New("unlock failed"), uerr)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, err := redis.Int(counter.Do(context.Background(), "GET", "rs:counter")); err != nil || n != workers*rounds {
		t.Errorf("counter = %d, %v; want %d: increments lost, so two held the lock at once", n, err, workers*rounds)
	}
}
