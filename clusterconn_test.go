package redispool

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

// Borrowed Cluster connections on a real 3-master cluster: transactions
// are all or nothing, and a connection with no session state routes
// each command to its key's node, as redigo code expects of a
// connection.

func TestClusterConn(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{})
	// Every scenario runs as well with ClusterConfig.Node.PipelineGet:
	// the connection must behave the same with its commands pipelined.
	t.Run("Exclusive", func(t *testing.T) { testClusterConn(t, rc, false) })
	t.Run("PipelineGet", func(t *testing.T) { testClusterConn(t, rc, true) })
}

func testClusterConn(t *testing.T, rc *redistest.Cluster, pipeGet bool) {
	ctx := context.Background()
	newCluster := func(t *testing.T, rc *redistest.Cluster, cfg ClusterConfig) *Cluster {
		t.Helper()
		cfg.Node.PipelineGet = pipeGet
		return newTestCluster(t, rc, cfg)
	}

	t.Run("TransactionAllOrNothing", func(t *testing.T) {
		cl := newCluster(t, rc, ClusterConfig{Node: Config{ClientName: "tx"}})
		keys := keysOn(t, rc, "acct:")
		a, b := keys[0], keys[1] // on different masters
		nodeA, nodeB := rc.MasterOf(t, Slot(a)), rc.MasterOf(t, Slot(b))
		setUp := func(t *testing.T) {
			t.Helper()
			for k, v := range map[string]int{a: 100, b: 0} {
				if _, err := cl.Do(ctx, "SET", k, v); err != nil {
					t.Fatal(err)
				}
			}
		}
		// untouched checks the balances on the masters themselves.
		untouched := func(t *testing.T) {
			t.Helper()
			if got := nodeA.Do(t, "GET", a); got != "100" {
				t.Errorf("%s = %v after the failed transfer; want 100 (the transaction committed partly)", a, got)
			}
			if got := nodeB.Do(t, "GET", b); got != "0" {
				t.Errorf("%s = %v after the failed transfer; want 0", b, got)
			}
		}
		checkAbort := func(t *testing.T, err error) {
			t.Helper()
			var rerr redis.Error
			var abort *TxAbortError
			switch {
			case err == nil:
				t.Fatal("EXEC succeeded; want the transaction aborted")
			case !errors.Is(err, ErrTxAborted) || !errors.Is(err, ErrCrossSlot) || !errors.As(err, &abort):
				t.Errorf("EXEC = %v; want a *TxAbortError wrapping ErrTxAborted and ErrCrossSlot", err)
			case !errors.As(err, &rerr) || !strings.HasPrefix(string(rerr), "EXECABORT"):
				t.Errorf("EXEC = %v; want a redis.Error starting with EXECABORT, as the server's", err)
			}
			for _, want := range []string{strconv.Quote(b), nodeA.Addr(), nodeB.Addr()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("EXEC's error %q does not name %s", err, want)
				}
			}
		}
		// stillUsable checks that the connection is free again: the
		// transaction was discarded, not left open.
		stillUsable := func(t *testing.T, c redis.Conn) {
			t.Helper()
			for k, want := range map[string]int{a: 100, b: 0} {
				if got, err := redis.Int(c.Do("GET", k)); err != nil || got != want {
					t.Errorf("GET %s after the abort = %d, %v; want %d", k, got, err, want)
				}
			}
		}

		t.Run("SendShape", func(t *testing.T) {
			// The redigo transfer idiom: Send errors ignored, EXEC checked.
			setUp(t)
			c := cl.Get()
			defer c.Close()
			c.Send("MULTI")
			c.Send("DECRBY", a, 10)
			if err := c.Send("INCRBY", b, 10); !errors.Is(err, ErrCrossSlot) {
				t.Errorf("Send INCRBY %s = %v; want ErrCrossSlot", b, err)
			}
			_, err := c.Do("EXEC")
			checkAbort(t, err)
			untouched(t)
			stillUsable(t, c)
		})

		t.Run("DoShape", func(t *testing.T) {
			setUp(t)
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "MULTI")
			if r, err := c.Do("DECRBY", a, 10); err != nil || r != "QUEUED" {
				t.Fatalf("DECRBY = %v, %v; want QUEUED", r, err)
			}
			if _, err := c.Do("INCRBY", b, 10); !errors.Is(err, ErrCrossSlot) {
				t.Errorf("INCRBY %s = %v; want ErrCrossSlot", b, err)
			}
			// The server's MULTI is still open: never discarded early,
			// for what follows would then run outside a transaction.
			if n := nodeA.CountClients(t, func(ci redistest.ClientInfo) bool {
				return ci.Name == "tx" && ci.Fields["multi"] == "1"
			}); n != 1 {
				t.Errorf("%d connections to %s in MULTI with one queued command; want 1", n, nodeA)
			}
			// A later command of the transaction is refused unsent, even
			// on the bound node.
			before := infoField(t, nodeA, "commandstats", "cmdstat_set")
			if _, err := c.Do("SET", a, 0); !errors.Is(err, ErrTxAborted) {
				t.Errorf("SET %s in the doomed transaction = %v; want ErrTxAborted", a, err)
			}
			if after := infoField(t, nodeA, "commandstats", "cmdstat_set"); after != before {
				t.Errorf("the refused SET reached %s", nodeA)
			}
			_, err := c.Do("EXEC")
			checkAbort(t, err)
			untouched(t)
			stillUsable(t, c)
		})

		t.Run("WithWatch", func(t *testing.T) {
			setUp(t)
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "WATCH", a)
			bal, err := redis.Int(c.Do("GET", a))
			if err != nil || bal != 100 {
				t.Fatalf("GET %s = %d, %v", a, bal, err)
			}
			c.Send("MULTI")
			c.Send("SET", a, bal-10)
			c.Send("INCRBY", b, 10)
			_, err = c.Do("EXEC")
			checkAbort(t, err)
			untouched(t)
			stillUsable(t, c)
		})

		t.Run("PipelinedExec", func(t *testing.T) {
			setUp(t)
			c := cl.Get()
			defer c.Close()
			c.Send("MULTI")
			c.Send("DECRBY", a, 10)
			c.Send("INCRBY", b, 10)
			c.Send("EXEC")
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			for _, want := range []any{"OK", "QUEUED"} {
				if r, err := c.Receive(); err != nil || r != want {
					t.Errorf("Receive = %v, %v; want %v", r, err, want)
				}
			}
			_, err := c.Receive()
			checkAbort(t, err)
			untouched(t)

			// The same read with Do(""): the reply standing for EXEC's
			// is the error.
			c.Send("MULTI")
			c.Send("DECRBY", a, 10)
			c.Send("INCRBY", b, 10)
			c.Send("EXEC")
			replies, err := redis.Values(c.Do(""))
			if err != nil || len(replies) != 3 {
				t.Fatalf("Do(\"\") = %v, %v; want 3 replies", replies, err)
			}
			err, _ = replies[2].(error)
			checkAbort(t, err)
			untouched(t)
			stillUsable(t, c)
		})

		t.Run("Discard", func(t *testing.T) {
			setUp(t)
			c := cl.Get()
			defer c.Close()
			c.Send("MULTI")
			c.Send("DECRBY", a, 10)
			c.Send("INCRBY", b, 10)
			if r, err := c.Do("DISCARD"); err != nil || r != "OK" {
				t.Errorf("DISCARD = %v, %v; want OK", r, err)
			}
			untouched(t)
			stillUsable(t, c)
		})

		t.Run("OneSlotStillCommits", func(t *testing.T) {
			setUp(t)
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "GET", a) // on a's node first
			k1, k2 := "{tx}.1", "{tx}.2"
			c.Send("MULTI")
			c.Send("SET", k1, 1)
			c.Send("SET", k2, 2)
			if r, err := redis.Strings(c.Do("EXEC")); err != nil || len(r) != 2 {
				t.Errorf("EXEC on one slot = %v, %v", r, err)
			}
			mustDo(t, c, "MULTI")
			mustDo(t, c, "INCR", k1)
			if r, err := redis.Ints(c.Do("EXEC")); err != nil || len(r) != 1 || r[0] != 2 {
				t.Errorf("EXEC = %v, %v; want [2]", r, err)
			}
		})

		for _, m := range rc.Masters(t) {
			if n := m.CountClients(t, func(ci redistest.ClientInfo) bool {
				return ci.Name == "tx" && ci.Fields["multi"] != "-1"
			}); n != 0 {
				t.Errorf("%d pooled connections to %s left in MULTI", n, m)
			}
		}
	})

	t.Run("RoutesWhileFree", func(t *testing.T) {
		cl := newCluster(t, rc, ClusterConfig{Node: Config{ClientName: "route", MaxTotal: 4}})
		keys := keysOn(t, rc, "free:") // one per master
		for i, k := range keys {
			if _, err := cl.Do(ctx, "SET", k, i); err != nil {
				t.Fatal(err)
			}
		}
		// Cluster.Do's pipes hold a connection per node until idle for a
		// moment; once back in the pools, the borrows below reuse them.
		waitSharedReturned(t, cl)
		getAll := func(t *testing.T, c redis.Conn) {
			t.Helper()
			for i, k := range keys {
				if got, err := redis.Int(c.Do("GET", k)); err != nil || got != i {
					t.Errorf("GET %s = %d, %v; want %d", k, got, err, i)
				}
			}
		}
		before := cl.Stats()

		t.Run("DoOnEveryNode", func(t *testing.T) {
			c := cl.Get()
			defer c.Close()
			getAll(t, c)
			getAll(t, c)
		})

		t.Run("KeylessPipelineThenGets", func(t *testing.T) {
			c := cl.Get()
			defer c.Close()
			c.Send("PING")
			c.Flush()
			if r, err := c.Receive(); err != nil || r != "PONG" {
				t.Fatalf("Receive = %v, %v", r, err)
			}
			for range 40 {
				getAll(t, c)
			}
		})

		t.Run("PipelineBindsAtItsFirstKey", func(t *testing.T) {
			c := cl.Get()
			defer c.Close()
			c.Send("TIME") // held: any node may serve the pipeline
			c.Send("GET", keys[1])
			if err := c.Send("GET", keys[2]); !errors.Is(err, ErrCrossSlot) {
				t.Errorf("Send GET of another node's key in a pipeline = %v; want ErrCrossSlot", err)
			}
			if _, err := c.Do("GET", keys[0]); !errors.Is(err, ErrCrossSlot) {
				t.Errorf("Do GET of another node's key with replies unread = %v; want ErrCrossSlot", err)
			}
			c.Flush()
			if r, err := redis.Values(c.Receive()); err != nil || len(r) != 2 {
				t.Errorf("TIME = %v, %v", r, err)
			}
			if r, err := redis.Int(c.Receive()); err != nil || r != 1 {
				t.Errorf("GET %s = %v, %v; want 1: the pipeline's replies stay readable", keys[1], r, err)
			}
			getAll(t, c) // free again
		})

		t.Run("RedigostoreShape", func(t *testing.T) {
			// throttled's redigostore: SELECT 0, then TIME and GET
			// pipelined, on one connection per call.
			for range 10 {
				for i, k := range keys {
					c := cl.Get()
					if r, err := c.Do("SELECT", 0); err != nil || r != "OK" {
						t.Fatalf("SELECT 0 = %v, %v", r, err)
					}
					c.Send("TIME")
					c.Send("GET", k)
					c.Flush()
					if r, err := redis.Values(c.Receive()); err != nil || len(r) != 2 {
						t.Errorf("TIME = %v, %v", r, err)
					}
					if v, err := redis.Int(c.Receive()); err != nil || v != i {
						t.Errorf("GET %s = %d, %v; want %d", k, v, err, i)
					}
					if _, err := c.Do("SET", k, i, "EX", 60); err != nil {
						t.Errorf("SET %s: %v", k, err)
					}
					c.Close()
				}
			}
		})

		t.Run("SelectZeroIsNoState", func(t *testing.T) {
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "GET", keys[0])
			c.Send("SELECT", 0) // on keys[0]'s node, pipelined
			c.Flush()
			if r, err := c.Receive(); err != nil || r != "OK" {
				t.Fatalf("SELECT 0 = %v, %v", r, err)
			}
			getAll(t, c)
		})

		t.Run("WaitAfterWriteOnTheWritingConnection", func(t *testing.T) {
			// A keyless command after a keyed one stays on its node, so
			// WAIT counts the replicas of the write it follows.
			c := cl.Get()
			defer c.Close()
			for _, k := range keys {
				mustDo(t, c, "SET", k, "w")
				if n, err := redis.Int(c.Do("WAIT", 1, 5000)); err != nil || n != 1 {
					t.Errorf("WAIT after SET %s = %d, %v; want 1", k, n, err)
				}
				mustDo(t, c, "SET", k, strconv.Itoa(slicesIndex(keys, k)))
			}
		})

		t.Run("NoConnectionLeaks", func(t *testing.T) {
			// One goroutine, one borrowed connection at a time: however
			// many nodes its commands go to, each node's pool needs one
			// connection, and all are back when it is closed.
			for range 20 {
				c := cl.Get()
				for range 10 {
					getAll(t, c)
				}
				c.Close()
			}
			// Slot-map loads may hold one more. With PipelineGet the
			// GETs go down the node's shared connection, and the
			// connection an earlier scenario borrowed for WAIT may still
			// be idle beside it: one more again.
			limit := 2
			if pipeGet {
				limit = 3
			}
			for _, m := range rc.Masters(t) {
				n := m.CountClients(t, func(ci redistest.ClientInfo) bool { return ci.Name == "route" })
				t.Logf("%d connections to %s", n, m)
				if n > limit {
					t.Errorf("%d connections to %s after 600 GETs from one goroutine; want at most %d", n, m, limit)
				}
			}
			st := cl.Stats()
			for addr, ns := range st.Nodes {
				if ns.Active != 0 {
					t.Errorf("node %s: %d connections still borrowed after every Close", addr, ns.Active)
				}
			}
		})

		if after := cl.Stats(); after.Moved != before.Moved || after.Ask != before.Ask {
			t.Errorf("redirects on a stable cluster: %d MOVED, %d ASK", after.Moved-before.Moved, after.Ask-before.Ask)
		}
	})

	t.Run("BrokenWhileFreeIsRedialed", func(t *testing.T) {
		// The node's connections killed under a free connection: the
		// command that finds it broken fails, as any command in flight
		// on a broken connection does; the next one gets a fresh
		// connection to the same node instead of failing until the
		// slot moves.
		name := "broken-free"
		cl := newCluster(t, rc, ClusterConfig{Node: Config{ClientName: name}})
		k := keysOn(t, rc, "broken-free:")[0]
		c := cl.Get()
		defer c.Close()
		mustDo(t, c, "SET", k, "v")
		if _, err := c.Do("WATCH", k); err != nil { // a node connection of its own, both ways
			t.Fatal(err)
		}
		mustDo(t, c, "UNWATCH")
		m := rc.MasterOf(t, Slot(k))
		if n := m.KillClients(t, func(ci redistest.ClientInfo) bool { return ci.Name == name }); n == 0 {
			t.Fatal("killed no connection")
		}
		c.Do("GET", k) // may fail: the connection was broken under it
		for i := range 3 {
			if got, err := redis.String(c.Do("GET", k)); err != nil || got != "v" {
				t.Fatalf("GET %d after the kill = %q, %v; want v from a fresh connection", i, got, err)
			}
		}
		if err := c.Err(); err != nil {
			t.Errorf("Err() = %v after the connection recovered", err)
		}
	})

	t.Run("PubSubReceiverAndSubscriberApart", func(t *testing.T) {
		// redigo allows one goroutine in Receive while another
		// subscribes: the connection stays on its node meanwhile.
		cl := newCluster(t, rc, ClusterConfig{Node: Config{ClientName: "apart"}})
		psc := redis.PubSubConn{Conn: cl.Get()}
		defer psc.Close()
		if err := psc.Subscribe("c0"); err != nil {
			t.Fatal(err)
		}
		counts := make(chan int, 64)
		go func() {
			defer close(counts)
			for {
				switch v := psc.Receive().(type) {
				case redis.Subscription:
					counts <- v.Count
					if v.Count == 0 {
						return
					}
				case error:
					return
				}
			}
		}()
		next := func() int {
			select {
			case n := <-counts:
				return n
			case <-time.After(10 * time.Second):
				t.Fatal("no confirmation")
			}
			return -1
		}
		next()
		for i := 1; i <= 5; i++ {
			psc.Subscribe("c" + strconv.Itoa(i))
			if n := next(); n != i+1 {
				t.Fatalf("count %d; want %d", n, i+1)
			}
			if _, err := cl.Do(ctx, "PUBLISH", "c0", "x"); err != nil {
				t.Fatal(err)
			}
		}
		psc.Unsubscribe()
		for n := next(); n != 0; n = next() {
		}
	})

	t.Run("PubSubCloseStopsReceiver", func(t *testing.T) {
		cl := newCluster(t, rc, ClusterConfig{Node: Config{ClientName: "psc", MaxTotal: 2}})
		stopReceiverByClose(t, func() redis.Conn { return cl.Get() }, func(ch, msg string) error {
			_, err := cl.Do(ctx, "PUBLISH", ch, msg)
			return err
		})
		for _, m := range rc.Masters(t) {
			m.WaitClients(t, 0, func(ci redistest.ClientInfo) bool { return ci.Name == "psc" && ci.Fields["sub"] != "0" })
		}
		for addr, ns := range cl.Stats().Nodes {
			if ns.Active != 0 {
				t.Errorf("node %s: %d connections still borrowed", addr, ns.Active)
			}
		}
	})
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// stopReceiverByClose runs redigo's way of stopping a pub/sub receiver
// many times: one goroutine in Receive, another closing the connection.
// The receiver must get an error and return; under -race, nothing may
// race.
func stopReceiverByClose(t *testing.T, get func() redis.Conn, publish func(ch, msg string) error) {
	t.Helper()
	const rounds = 30
	for i := range rounds {
		ch := "stop:" + strconv.Itoa(i)
		psc := redis.PubSubConn{Conn: get()}
		if err := psc.Subscribe(ch); err != nil {
			t.Fatal(err)
		}
		if s, ok := psc.Receive().(redis.Subscription); !ok || s.Count != 1 {
			t.Fatalf("Receive = %#v; want the subscription", s)
		}
		got := make(chan struct{}) // the receiver got its first message
		done := make(chan error, 1)
		go func() {
			first := true
			for {
				switch v := psc.Receive().(type) {
				case redis.Message:
					if first {
						close(got)
						first = false
					}
				case error:
					done <- v
					return
				}
			}
		}()
		// Keep the receiver busy reading while Close runs.
		stop := make(chan struct{})
		pubDone := make(chan struct{})
		go func() {
			defer close(pubDone)
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := publish(ch, strconv.Itoa(j)); err != nil {
					return
				}
			}
		}()
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("no message reached the receiver")
		}
		psc.Close()
		select {
		case err := <-done:
			if err == nil {
				t.Error("receiver returned a nil error")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the receiver did not return after Close")
		}
		close(stop)
		<-pubDone
	}
}
