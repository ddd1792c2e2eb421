package redispool

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
	"go.uber.org/goleak"
)

// Cluster.Do auto-pipelined per node (route.go's dispatch, nodepool.go's
// pipelined), on real clusters. These tests are not parallel: each
// checks that it leaves no goroutine behind.

const clusterPipeName = "clusterpipe"

func isClusterPipeConn(ci redistest.ClientInfo) bool { return ci.Name == clusterPipeName }

// pipelinedCommands sums the node pools' PipelinedCommands.
func pipelinedCommands(s ClusterStats) (n int64) {
	for _, ns := range s.Nodes {
		n += ns.PipelinedCommands
	}
	return n
}

// checkClusterConns checks, by CLIENT LIST, that no running node has more
// of the cluster's connections than its pool's MaxTotal plus the control
// connection, and then, once c is closed, that none is left anywhere.
func checkClusterConns(t testing.TB, rc *redistest.Cluster, c *Cluster, maxTotal int) {
	t.Helper()
	for _, n := range rc.Nodes() {
		if !n.Running() {
			continue
		}
		if got := n.CountClients(t, isClusterPipeConn); got > maxTotal+1 {
			t.Errorf("%s: %d connections of the cluster; want at most MaxTotal %d + 1 control", n, got, maxTotal)
		}
	}
	c.Close()
	for _, n := range rc.Nodes() {
		if n.Running() {
			n.WaitClients(t, 0, isClusterPipeConn)
		}
	}
}

// ownKeyCluster runs workers goroutines, each SETting and GETting back
// keys of its own, spread over the cluster, with values naming the worker
// and the round, until stop is closed. Odd workers' contexts can end, so
// their commands always go through a pipe's loop; even workers' cannot,
// so they take the inline round trip when a pipe is idle.
type ownKeyCluster struct {
	ops, wrong atomic.Int64
	mu         sync.Mutex
	errs       []error
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startOwnKeyCluster(t testing.TB, c *Cluster, prefix string, workers int) *ownKeyCluster {
	l := &ownKeyCluster{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if w%2 == 1 {
					ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
				}
				key := fmt.Sprintf("%s:%d:%d", prefix, w, i%16)
				val := fmt.Sprintf("%d/%d", w, i)
				_, err := c.Do(ctx, "SET", key, val)
				if err == nil {
					var got string
					got, err = redis.String(c.Do(ctx, "GET", key))
					if err == nil && got != val {
						l.wrong.Add(1)
						t.Errorf("worker %d: GET %s = %q; want %q", w, key, got, val)
					}
				}
				cancel()
				l.ops.Add(1)
				if err != nil {
					l.mu.Lock()
					l.errs = append(l.errs, err)
					l.mu.Unlock()
				}
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *ownKeyCluster) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *ownKeyCluster) errors() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func TestClusterPipeline(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	const maxTotal = 8
	node := Config{MaxTotal: maxTotal, ClientName: clusterPipeName}
	ctx := context.Background()

	t.Run("OwnKeysFrom64Goroutines", func(t *testing.T) {
		c := newTestCluster(t, rc, ClusterConfig{Node: node})
		l := startOwnKeyCluster(t, c, "cp:own", 64)
		waitForWithin(t, 30*time.Second, func() bool { return l.ops.Load() >= 5000 })
		l.halt()
		s := c.Stats()
		t.Logf("%d ops, %d errors, %d wrong; pipelined %d commands", l.ops.Load(), len(l.errors()), l.wrong.Load(), pipelinedCommands(s))
		if errs := l.errors(); len(errs) != 0 {
			t.Errorf("%d errors; want none; the first: %v", len(errs), errs[0])
		}
		if got, want := pipelinedCommands(s), 2*l.ops.Load(); got != want {
			t.Errorf("pipelined %d commands; want every SET and GET, %d", got, want)
		}
		for _, m := range rc.Masters(t) {
			if s.Nodes[m.Addr()].PipelinedCommands == 0 {
				t.Errorf("no command pipelined to %s", m)
			}
		}
		if s.Moved != 0 || s.Ask != 0 || s.Retries != 0 {
			t.Errorf("Moved %d, Ask %d, Retries %d on a stable cluster; want 0", s.Moved, s.Ask, s.Retries)
		}
		waitSharedReturned(t, c)
		checkClusterConns(t, rc, c, maxTotal)
	})

	t.Run("IOErrorIsNotRetried", func(t *testing.T) {
		// GETSET of a big value runs, then its reply, the old value,
		// passes the node's output-buffer limit: the node closes the
		// shared connection without replying. The command ran; it must
		// not run again.
		c := newTestCluster(t, rc, ClusterConfig{Node: node})
		const key = "cp:getset"
		big := strings.Repeat("x", 256<<10)
		if _, err := c.Do(ctx, "SET", key, big); err != nil {
			t.Fatal(err)
		}
		m := rc.MasterOf(t, Slot(key))
		m.Do(t, "CONFIG", "SET", "client-output-buffer-limit", "normal 65536 65536 0")
		defer m.Do(t, "CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0")
		m.Do(t, "CONFIG", "RESETSTAT")
		before := pipelinedCommands(c.Stats())
		_, err := c.Do(ctx, "GETSET", key, "new")
		if err == nil || !strings.Contains(err.Error(), "shared connection") {
			t.Errorf("GETSET = %v; want the shared connection's I/O error", err)
		}
		if got := pipelinedCommands(c.Stats()) - before; got != 1 {
			t.Errorf("pipelined %d commands; want the GETSET, once", got)
		}
		if calls := commandCalls(t, m.Server, "getset"); calls != 1 {
			t.Errorf("the node ran GETSET %d times; want once: it ran, and may not be sent again", calls)
		}
		if got := m.Do(t, "STRLEN", key); got != int64(3) {
			t.Errorf("STRLEN %s = %v; want 3: the GETSET ran", key, got)
		}
		if s := c.Stats(); s.Retries != 0 {
			t.Errorf("Retries %d; want 0", s.Retries)
		}
	})

	t.Run("ClientKillOfSharedConnections", func(t *testing.T) {
		c := newTestCluster(t, rc, ClusterConfig{Node: node})
		l := startOwnKeyCluster(t, c, "cp:kill", 64)
		waitForWithin(t, 30*time.Second, func() bool { return l.ops.Load() >= 500 })
		kills := 0
		for range 10 {
			for _, m := range rc.Masters(t) {
				kills += m.KillClients(t, isClusterPipeConn)
			}
			at := l.ops.Load()
			waitForWithin(t, 30*time.Second, func() bool { return l.ops.Load() > at+200 })
		}
		l.halt()
		errs := l.errors()
		t.Logf("%d kills, %d ops, %d errors, %d wrong", kills, l.ops.Load(), len(errs), l.wrong.Load())
		for _, err := range errs {
			// The commands in flight on a killed connection: sent, so
			// returned, never retried.
			if msg := err.Error(); !strings.Contains(msg, "shared connection") &&
				!strings.Contains(msg, "connection reset") && !strings.Contains(msg, "EOF") && !strings.Contains(msg, "broken pipe") {
				t.Errorf("an error other than a killed connection's: %v", err)
			}
		}
		if kills == 0 {
			t.Fatal("killed no connection")
		}
		for i := range 100 {
			if _, err := c.Do(ctx, "SET", "cp:kill:after:"+strconv.Itoa(i), i); err != nil {
				t.Fatalf("after the kills: SET: %v", err)
			}
		}
		waitSharedReturned(t, c)
		checkClusterConns(t, rc, c, maxTotal)
	})

	t.Run("SlotMigratedUnderLoad", func(t *testing.T) {
		c := newTestCluster(t, rc, ClusterConfig{Node: node, RetryTimeout: 10 * time.Second})
		slot := Slot("{cpmig}")
		from := rc.MasterOf(t, slot)
		var to *redistest.ClusterNode
		for _, m := range rc.Masters(t) {
			if m != from {
				to = m
				break
			}
		}
		for g := range 32 {
			for i := range 4 {
				c.Do(ctx, "RPUSH", fmt.Sprintf("{cpmig}:%d:%d", g, i), -1)
			}
		}
		// Half the writers on the migrating slot, half spread.
		l := startLoad(t, c, 64, func(g, i int) string {
			if g%2 == 0 {
				return fmt.Sprintf("{cpmig}:%d:%d", g/2, i%4)
			}
			return fmt.Sprintf("cpmig:%d:%d", g, i%32)
		})
		waitForWithin(t, 30*time.Second, func() bool { return l.ok.Load() >= 1000 })
		before := pipelinedCommands(c.Stats())
		m := rc.BeginMigration(t, slot, to)
		for m.MoveKeys(t, 8) > 0 {
			at := l.ok.Load()
			waitForWithin(t, 30*time.Second, func() bool { return l.ok.Load() > at+50 })
		}
		at := l.ok.Load()
		waitForWithin(t, 30*time.Second, func() bool { return l.ok.Load() > at+500 })
		m.Finish(t)
		at = l.ok.Load()
		waitForWithin(t, 30*time.Second, func() bool { return l.ok.Load() > at+500 })
		errs, lost := l.finish(t)
		s := c.Stats()
		piped := pipelinedCommands(s) - before
		t.Logf("slot %d migrated under load: %d writes, %d errors, %d lost; Ask %d, Moved %d, TryAgain %d, Retries %d; %d commands pipelined meanwhile",
			slot, l.ok.Load(), len(errs), lost, s.Ask, s.Moved, s.TryAgain, s.Retries, piped)
		reportErrs(t, errs)
		if len(errs) != 0 || lost != 0 {
			t.Errorf("got %d errors, %d lost writes; want 0, 0", len(errs), lost)
		}
		if s.Ask == 0 || s.Moved == 0 {
			t.Errorf("Ask %d, Moved %d; want both: the pipelined commands met the migration", s.Ask, s.Moved)
		}
		if piped == 0 {
			t.Errorf("no command pipelined during the migration")
		}
		if got := s.Slots[to.Addr()]; got == 0 {
			t.Errorf("slot map gives %s no slot; want the migrated one", to)
		}
		waitSharedReturned(t, c)
		checkClusterConns(t, rc, c, maxTotal)
	})
}

func TestClusterPipelineFailover(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	rc := redistest.StartCluster(t, redistest.ClusterOptions{})
	const maxTotal = 8
	node := Config{MaxTotal: maxTotal, ClientName: clusterPipeName}
	ctx := context.Background()

	t.Run("ReadFromReplicasPipelinedOnTheReplica", func(t *testing.T) {
		c := newTestCluster(t, rc, ClusterConfig{Node: node, ReadFromReplicas: true})
		const key = "cpf:replica"
		if _, err := c.Do(ctx, "SET", key, "v"); err != nil {
			t.Fatal(err)
		}
		master := rc.MasterOf(t, Slot(key))
		replica := rc.Replicas(t, master)[0]
		if got := master.Do(t, "WAIT", 1, 10000); got != int64(1) {
			t.Fatalf("WAIT 1 = %v; want the replica to have the key", got)
		}
		replica.Do(t, "CONFIG", "RESETSTAT")
		var wg sync.WaitGroup
		var errs atomic.Int64
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					if v, err := redis.String(c.Do(ctx, "GET", key)); err != nil || v != "v" {
						errs.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		s := c.Stats()
		gets := commandCalls(t, replica.Server, "get")
		t.Logf("800 GETs: %d on the replica, %d pipelined there, %d errors", gets, s.Nodes[replica.Addr()].PipelinedCommands, errs.Load())
		if errs.Load() != 0 {
			t.Errorf("%d GETs failed", errs.Load())
		}
		if gets != 800 {
			t.Errorf("the replica ran %d GETs; want all 800", gets)
		}
		if got := s.Nodes[replica.Addr()].PipelinedCommands; got != 800 {
			t.Errorf("%d commands pipelined to the replica; want 800", got)
		}
		waitSharedReturned(t, c)
		checkClusterConns(t, rc, c, maxTotal)
	})

	t.Run("MasterKilledUnderLoad", func(t *testing.T) {
		c := newTestCluster(t, rc, ClusterConfig{Node: node, RetryTimeout: 10 * time.Second})
		const writers = 64
		l := startLoad(t, c, writers, spreadKeys("cpf:kill"))
		waitForWithin(t, 30*time.Second, func() bool { return l.ok.Load() >= 2000 })
		victim := rc.Masters(t)[0]
		heir := rc.Replicas(t, victim)[0]
		killed := time.Now()
		rc.Kill(victim)
		rc.WaitMaster(t, heir)
		promoted := time.Now()
		at := l.ok.Load()
		waitForWithin(t, 30*time.Second, func() bool { return l.ok.Load() > at+2000 })
		errs, lost := l.finish(t)
		s := c.Stats()
		var late, repeated int
		perWriter := make(map[int]int)
		for _, e := range errs {
			if e.at.After(killed.Add(500 * time.Millisecond)) {
				late++
			}
			if perWriter[e.writer]++; perWriter[e.writer] == 2 {
				repeated++
			}
		}
		t.Logf("kill -9 of %s: %s promoted after %v; %d writes, %d errors (%d later than 500ms after the kill, %d writers with more than one), %d lost; "+
			"ClusterDown %d, Retries %d, Refreshes %d; pipelined %d",
			victim, heir, promoted.Sub(killed).Round(time.Millisecond), l.ok.Load(), len(errs), late, repeated, lost,
			s.ClusterDown, s.Retries, s.Refreshes, pipelinedCommands(s))
		reportErrs(t, errs)
		// Only the commands in flight at the kill may fail: at most one
		// per writer. Those the pipes could not send for want of a
		// connection (refused dials) were retried until the replica took
		// over.
		if len(errs) > writers || repeated != 0 || late != 0 {
			t.Errorf("got %d errors, %d writers with more than one, %d later than 500ms after the kill; want at most one per writer, all at the kill",
				len(errs), repeated, late)
		}
		if lost != 0 {
			t.Errorf("%d acknowledged writes lost", lost)
		}
		if s.Retries == 0 {
			t.Errorf("no retry while the master was down")
		}
		waitSharedReturned(t, c)
		checkClusterConns(t, rc, c, maxTotal)
	})
}

// BenchmarkClusterDoGet is the allocation count of the whole
// c.Do(ctx, "GET", "k") with a constant key on a 3-master cluster, one
// goroutine, and at 64 (Parallel64), pipelined and not.
func BenchmarkClusterDoGet(b *testing.B) {
	rc := redistest.StartCluster(b, redistest.ClusterOptions{Replicas: -1})
	for _, bc := range []struct {
		name  string
		pipes int
	}{{"Pipelined", 0}, {"Exclusive", -1}} {
		c := newTestCluster(b, rc, ClusterConfig{Node: Config{PipelineConns: bc.pipes}})
		ctx := context.Background()
		if _, err := c.Do(ctx, "SET", "k", strings.Repeat("v", 100)); err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := c.Do(ctx, "GET", "k"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/Parallel64", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(32) // 64 goroutines on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Do(ctx, "GET", "k"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
