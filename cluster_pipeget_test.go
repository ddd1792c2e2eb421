package redispool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

// ClusterConfig.Node.PipelineGet on a real cluster with a replica per
// master. TestClusterConn runs every routing and transaction scenario
// with it too; these are the cases it changes.

func TestClusterPipelineGet(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{})
	ctx := context.Background()
	pipelined := func(cl *Cluster) int64 {
		var n int64
		for _, ns := range cl.Stats().Nodes {
			n += ns.PipelinedCommands
		}
		return n
	}

	t.Run("CommandsGoDownThePipes", func(t *testing.T) {
		cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: true}})
		keys := keysOn(t, rc, "cpg:")
		before := pipelined(cl)
		c := cl.Get()
		defer c.Close()
		for i, k := range keys {
			mustDo(t, c, "SET", k, i)
		}
		mustDo(t, c, "SELECT", 0)
		mustDo(t, c, "PING")
		for i, k := range keys {
			if got, err := redis.Int(c.Do("GET", k)); err != nil || got != i {
				t.Errorf("GET %s = %d, %v; want %d", k, got, err, i)
			}
		}
		if got, want := pipelined(cl)-before, int64(2*len(keys)+2); got < want {
			t.Errorf("%d commands pipelined; want %d: SET, GET, SELECT 0 and PING on every node", got, want)
		}
		if cc := c.(*clusterConn); cc.ac != nil {
			t.Errorf("the connection borrowed from %s for commands that may be pipelined", cc.node.addr)
		}
		for addr, ns := range cl.Stats().Nodes {
			if ns.Active != 0 {
				t.Errorf("node %s: %d connections borrowed beside the %d shared; want none", addr, ns.Active, ns.Shared)
			}
		}
	})

	t.Run("OffWithPipelineConnsNegative", func(t *testing.T) {
		cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: true, PipelineConns: -1}})
		k := keysOn(t, rc, "cpg-off:")[0]
		c := cl.Get()
		defer c.Close()
		mustDo(t, c, "SET", k, "v")
		if got, err := redis.String(c.Do("GET", k)); err != nil || got != "v" {
			t.Errorf("GET = %q, %v", got, err)
		}
		if n := pipelined(cl); n != 0 {
			t.Errorf("%d commands pipelined with PipelineConns -1", n)
		}
	})

	t.Run("WatchSurvivesTheWaitMarker", func(t *testing.T) {
		// The write before WAIT must not end the borrower's WATCH, as
		// MULTI ... EXEC would.
		cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: true}})
		k := keysOn(t, rc, "cpg-watch:")[0]
		c := cl.Get()
		defer c.Close()
		mustDo(t, c, "SET", k, "1") // pipelined
		mustDo(t, c, "WATCH", k)
		if n, err := redis.Int(c.Do("WAIT", 1, 5000)); err != nil || n != 1 {
			t.Fatalf("WAIT = %d, %v; want 1", n, err)
		}
		if _, err := cl.Do(ctx, "SET", k, "2"); err != nil { // another client
			t.Fatal(err)
		}
		mustDo(t, c, "MULTI")
		mustDo(t, c, "SET", k, "3")
		if r, err := c.Do("EXEC"); err != nil || r != nil {
			t.Errorf("EXEC after the watched key changed = %v, %v; want nil (aborted): the WATCH was lost", r, err)
		}
		if got, _ := redis.String(cl.Do(ctx, "GET", k)); got != "2" {
			t.Errorf("%s = %q; want 2", k, got)
		}
	})

	t.Run("ContextEndedInFlightLeavesTheConnectionUsable", func(t *testing.T) {
		cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: true}})
		keys := keysOn(t, rc, "cpg-ctx:")
		c := cl.Get()
		defer c.Close()
		for i, k := range keys {
			mustDo(t, c, "SET", k, i)
		}
		m := rc.MasterOf(t, Slot(keys[0]))
		m.Do(t, "CLIENT", "PAUSE", 500, "ALL")
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := redis.DoContext(c, short, "GET", keys[0])
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("GET during CLIENT PAUSE under a 100ms ctx = %v; want context.DeadlineExceeded", err)
		}
		// The late reply is the shared connection's to drop: every later
		// command gets its own.
		for range 3 {
			for i, k := range keys {
				if got, err := redis.Int(c.Do("GET", k)); err != nil || got != i {
					t.Errorf("GET %s after the interrupted one = %d, %v; want %d", k, got, err, i)
				}
			}
		}
	})

	t.Run("ManyBorrowers", func(t *testing.T) {
		// Goroutines borrowing with Get, each reading back its own keys
		// and running transactions on its own hash tag: no reply reaches
		// another caller, nothing is left borrowed.
		const name = "cpg-many"
		cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: true, ClientName: name, MaxTotal: 6}})
		const workers, rounds = 32, 20
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- borrowerRounds(cl, w, rounds)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		waitSharedReturned(t, cl)
		for addr, ns := range cl.Stats().Nodes {
			if ns.Active != 0 {
				t.Errorf("node %s: %d connections still borrowed", addr, ns.Active)
			}
		}
		for _, m := range rc.Masters(t) {
			// MaxTotal, and a control connection for slot-map loads.
			if n := m.CountClients(t, func(ci redistest.ClientInfo) bool { return ci.Name == name }); n > 7 {
				t.Errorf("%d connections to %s; want at most 7", n, m)
			}
		}
	})

	// Last: it stops a replica for a moment.
	t.Run("WaitCoversPipelinedWrites", func(t *testing.T) {
		cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: true}})
		k := keysOn(t, rc, "cpg-wait:")[1]
		master := rc.MasterOf(t, Slot(k))
		replica := rc.Replicas(t, master)[0]
		waitAfterPipelinedSet(t, cl.Get, k, replica.Server, func(t *testing.T) {
			if n := master.Do(t, "EXISTS", waitMarkKey(Slot(k))); n != int64(0) {
				t.Errorf("the WAIT marker key is left on the master: EXISTS = %v", n)
			}
		})

		t.Run("AfterAnOwnWriteElsewhere", func(t *testing.T) {
			// A pipelined SET on one node, then a script's write on
			// another, which binds the connection there: WAIT is for the
			// last node's writes, as on a connection of its own, not
			// sent back to the pipelined write's node.
			keys := keysOn(t, rc, "cpg-wait2:")
			a := keys[0]
			var b string
			for _, kb := range keys[1:] {
				if rc.MasterOf(t, Slot(kb)).Addr() == master.Addr() {
					b = kb
				}
			}
			if rc.MasterOf(t, Slot(a)).Addr() == master.Addr() {
				a = keys[1]
			}
			replica.Pause()
			defer replica.Resume()
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "SET", a, "piped")
			mustDo(t, c, "EVAL", "return redis.call('SET', KEYS[1], 'own')", 1, b)
			if n, err := redis.Int(c.Do("WAIT", 1, 300)); err != nil || n != 0 {
				t.Fatalf("WAIT after a script's write on the node whose replica is stopped = %d, %v; want 0", n, err)
			}
		})
	})
}

// borrowerRounds is one ManyBorrowers goroutine: rounds of a pipelined
// SET and GET of its own key, and every fifth round a transaction on
// keys of its own hash tag.
func borrowerRounds(cl *Cluster, w, rounds int) error {
	key := "cpg-many:" + strconv.Itoa(w)
	tag := "{cpg-many-tx:" + strconv.Itoa(w) + "}"
	for r := range rounds {
		c := cl.Get()
		v := strconv.Itoa(w*1000 + r)
		if _, err := c.Do("SET", key, v); err != nil {
			c.Close()
			return err
		}
		if got, err := redis.String(c.Do("GET", key)); err != nil || got != v {
			c.Close()
			return fmt.Errorf("GET %s = %q, %v; want %q", key, got, err, v)
		}
		if r%5 == 0 {
			c.Send("MULTI")
			c.Send("INCR", tag+"a")
			c.Send("INCR", tag+"b")
			reply, err := redis.Ints(c.Do("EXEC"))
			if err != nil || len(reply) != 2 || reply[0] != reply[1] {
				c.Close()
				return fmt.Errorf("EXEC on %s = %v, %v; want two equal counts", tag, reply, err)
			}
		}
		c.Close()
	}
	return nil
}

func TestWaitMarkKeyCoversEverySlot(t *testing.T) {
	var seen [slotCount]bool
	left := slotCount
	for i := 0; i < 1<<20 && left > 0; i++ {
		if s := Slot(strconv.Itoa(i)); !seen[s] {
			seen[s] = true
			left--
		}
	}
	if left > 0 {
		t.Fatalf("%d slots have no decimal hash tag below 1<<20: waitMarkKey would search on", left)
	}
	for _, slot := range []int{0, 1, 5000, slotCount - 1} {
		if k := waitMarkKey(slot); Slot(k) != slot {
			t.Errorf("waitMarkKey(%d) = %q, in slot %d", slot, k, Slot(k))
		}
	}
}

// BenchmarkClusterPipelineGet is BenchmarkPipelineGet's one-shot GET
// (Get, Do, Close) on a 3-master cluster at 64 goroutines, with
// ClusterConfig.Node.PipelineGet off and on.
func BenchmarkClusterPipelineGet(b *testing.B) {
	rc := redistest.StartCluster(b, redistest.ClusterOptions{Replicas: -1})
	for _, on := range []bool{false, true} {
		c := newTestCluster(b, rc, ClusterConfig{Node: Config{PipelineGet: on}})
		if _, err := c.Do(context.Background(), "SET", "k", strings.Repeat("v", 100)); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("PipelineGet=%v", on), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(64/runtime.GOMAXPROCS(0), 1))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := getOp(c.Get(), "Do"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
