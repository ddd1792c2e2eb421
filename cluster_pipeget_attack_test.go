package redispool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

// Hostile cases for ClusterConfig.Node.PipelineGet: a connection from
// Cluster.Get must give every command the result it gives without
// PipelineGet.

func TestAttackClusterPipelineGetWait(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{})

	// both runs f with PipelineGet off and on.
	both := func(t *testing.T, f func(t *testing.T, cl *Cluster)) {
		for _, on := range []bool{false, true} {
			name := "Exclusive"
			if on {
				name = "PipelineGet"
			}
			t.Run(name, func(t *testing.T) {
				f(t, newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: on}}))
			})
		}
	}

	// Queued in a transaction, WAIT does not wait: Send must queue it as
	// it does without PipelineGet, before the transaction's first key or
	// after it.
	for _, tc := range []struct {
		name  string
		order []string
	}{
		{"SendWaitInsideMulti", []string{"SET", "WAIT"}},
		{"SendWaitInsideMultiBeforeKey", []string{"WAIT", "SET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			both(t, func(t *testing.T, cl *Cluster) {
				k := keysOn(t, rc, "atk-"+tc.name+":")[0]
				c := cl.Get()
				defer c.Close()
				mustDo(t, c, "SET", k, "1")
				if err := c.Send("MULTI"); err != nil {
					t.Fatalf("Send MULTI: %v", err)
				}
				for _, cmd := range tc.order {
					args := []any{k, "2"}
					if cmd == "WAIT" {
						args = []any{0, 0}
					}
					if err := c.Send(cmd, args...); err != nil {
						t.Fatalf("Send %s in MULTI: %v", cmd, err)
					}
				}
				r, err := redis.Values(c.Do("EXEC"))
				if err != nil || len(r) != 2 {
					t.Fatalf("EXEC = %v, %v; want two replies", r, err)
				}
			})
		})
	}

	t.Run("WaitAfterReshard", func(t *testing.T) {
		// A pipelined SET, then its slot moves to another master (keys
		// included), then WAIT: it must not fail with the marker's MOVED.
		both(t, func(t *testing.T, cl *Cluster) {
			keys := keysOn(t, rc, "atk-reshard:")
			k := keys[0]
			from := rc.MasterOf(t, Slot(k))
			to := rc.MasterOf(t, Slot(keys[1]))
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "SET", k, "v")
			rc.MigrateSlot(t, Slot(k), to)
			defer rc.MigrateSlot(t, Slot(k), from)
			if n, err := redis.Int(c.Do("WAIT", 1, 5000)); err != nil || n != 1 {
				t.Fatalf("WAIT after the written slot moved = %d, %v; want 1", n, err)
			}
			if got, err := redis.String(c.Do("GET", k)); err != nil || got != "v" {
				t.Errorf("GET %s = %q, %v; want v", k, got, err)
			}
		})
	})

	t.Run("WaitDuringMigration", func(t *testing.T) {
		// The written slot is MIGRATING (the key still on the source):
		// the marker key, absent, would get ASK.
		both(t, func(t *testing.T, cl *Cluster) {
			keys := keysOn(t, rc, "atk-migr:")
			k := keys[0]
			to := rc.MasterOf(t, Slot(keys[1]))
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "SET", k, "v")
			m := rc.BeginMigration(t, Slot(k), to)
			defer m.Finish(t)
			if n, err := redis.Int(c.Do("WAIT", 1, 5000)); err != nil || n != 1 {
				t.Fatalf("WAIT while the written slot migrates = %d, %v; want 1", n, err)
			}
		})
	})

	t.Run("WaitAfterWritesOnTwoNodes", func(t *testing.T) {
		both(t, func(t *testing.T, cl *Cluster) {
			keys := keysOn(t, rc, "atk-two:")
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "SET", keys[0], "a")
			mustDo(t, c, "SET", keys[1], "b")
			if n, err := redis.Int(c.Do("WAIT", 1, 5000)); err != nil || n != 1 {
				t.Fatalf("WAIT = %d, %v; want 1", n, err)
			}
			if n, err := redis.Int(c.Do("WAIT", 1, 5000)); err != nil || n != 1 {
				t.Fatalf("second WAIT = %d, %v; want 1", n, err)
			}
			for _, m := range rc.Nodes() {
				keys, err := redis.Strings(m.Exec("KEYS", "__redispool:wait:*"))
				if err != nil || len(keys) != 0 {
					t.Errorf("marker keys on %s: %q, %v; want none", m, keys, err)
				}
			}
		})
	})

	t.Run("WaitWatchingAfterReshard", func(t *testing.T) {
		// Bound by a WATCH to the node of the pipelined write, whose slot
		// then moves away: the marker goes to another of its slots, WAIT
		// counts that node's replicas, and the WATCH holds.
		both(t, func(t *testing.T, cl *Cluster) {
			keys := keysOn(t, rc, "atk-watchmv:")
			k := keys[0]
			from := rc.MasterOf(t, Slot(k))
			to := rc.MasterOf(t, Slot(keys[1]))
			var w string // another key on from, in another slot
			for i := 0; ; i++ {
				w = "atk-watchmv-w:" + strconv.Itoa(i)
				if Slot(w) != Slot(k) && rc.MasterOf(t, Slot(w)).Addr() == from.Addr() {
					break
				}
			}
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "SET", k, "v")
			mustDo(t, c, "WATCH", w)
			rc.MigrateSlot(t, Slot(k), to)
			defer rc.MigrateSlot(t, Slot(k), from)
			if n, err := redis.Int(c.Do("WAIT", 1, 5000)); err != nil || n != 1 {
				t.Fatalf("WAIT = %d, %v; want 1", n, err)
			}
			if _, err := cl.Do(context.Background(), "SET", w, "other"); err != nil {
				t.Fatal(err)
			}
			mustDo(t, c, "MULTI")
			mustDo(t, c, "SET", w, "mine")
			if r, err := c.Do("EXEC"); r != nil || err != nil {
				t.Errorf("EXEC after the watched key changed = %v, %v; want nil: the WATCH was lost", r, err)
			}
		})
	})

	t.Run("WaitUnderEndedContext", func(t *testing.T) {
		both(t, func(t *testing.T, cl *Cluster) {
			k := keysOn(t, rc, "atk-waitctx:")[0]
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "SET", k, "v")
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := redis.DoContext(c, ctx, "WAIT", 1, 5000); !errors.Is(err, context.Canceled) {
				t.Errorf("WAIT under an ended ctx = %v; want context.Canceled", err)
			}
			if got, err := redis.String(c.Do("GET", k)); err != nil || got != "v" {
				t.Errorf("GET after = %q, %v; want v", got, err)
			}
			if n, err := redis.Int(c.Do("WAIT", 1, 5000)); err != nil || n != 1 {
				t.Fatalf("WAIT after = %d, %v; want 1", n, err)
			}
		})
	})

	t.Run("ACLWithoutMarkerKeys", func(t *testing.T) {
		for _, m := range rc.Masters(t) {
			m.Do(t, "ACL", "SETUSER", "nomark", "on", ">pw2", "~atk-*", "+@all")
		}
		cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: true, Username: "nomark", Password: "pw2"}})
		k := keysOn(t, rc, "atk-nomark:")[0]
		c := cl.Get()
		defer c.Close()
		mustDo(t, c, "SET", k, "a")
		_, err := c.Do("WAIT", 1, 100)
		if err == nil || !strings.Contains(err.Error(), waitMarkKey(Slot(k))) || strings.Contains(err.Error(), "pw2") {
			t.Fatalf("WAIT without access to the marker keys = %v; want an error naming %s", err, waitMarkKey(Slot(k)))
		}
	})

	t.Run("SendWaitAfterSends", func(t *testing.T) {
		cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: true}})
		k := keysOn(t, rc, "atk-sendwait:")[0]
		c := cl.Get()
		defer c.Close()
		mustDo(t, c, "SET", k, "a")
		c.Send("GET", k)
		err := c.Send("WAIT", 1, 100)
		if err == nil || !strings.Contains(err.Error(), "WAIT") {
			t.Fatalf("Send WAIT after a Send = %v; want an error naming WAIT", err)
		}
		c.Flush()
		if got, err := redis.String(c.Receive()); err != nil || got != "a" {
			t.Errorf("GET's reply = %q, %v", got, err)
		}
		if n, err := redis.Int(c.Do("WAIT", 1, 5000)); err != nil || n != 1 {
			t.Fatalf("WAIT by Do afterwards = %d, %v; want 1", n, err)
		}
	})

	t.Run("ACLWithoutEval", func(t *testing.T) {
		for _, m := range rc.Masters(t) {
			m.Do(t, "ACL", "SETUSER", "noeval", "on", ">pw", "~*", "+@all", "-eval")
		}
		cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: true, Username: "noeval", Password: "pw"}})
		k := keysOn(t, rc, "atk-acl:")[0]
		c := cl.Get()
		defer c.Close()
		mustDo(t, c, "SET", k, "a")
		_, err := c.Do("WAIT", 1, 100)
		if err == nil || !strings.Contains(err.Error(), waitMarkKey(Slot(k))) || strings.Contains(err.Error(), "pw") {
			t.Fatalf("WAIT without EVAL = %v; want an error naming %s", err, waitMarkKey(Slot(k)))
		}
		var rerr redis.Error
		if !errors.As(err, &rerr) {
			t.Errorf("WAIT's error %v does not wrap the server's", err)
		}
		if got, err := redis.String(c.Do("GET", k)); err != nil || got != "a" {
			t.Errorf("GET after = %q, %v", got, err)
		}
	})
}

func TestAttackClusterPipelineGetSequences(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	ctx := context.Background()
	for _, on := range []bool{false, true} {
		name := "Exclusive"
		if on {
			name = "PipelineGet"
		}
		t.Run(name, func(t *testing.T) {
			cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: on}})
			keys := keysOn(t, rc, "atk-seq-"+name+":")
			a, b := keys[0], keys[1]

			t.Run("WatchAfterPipelinedSet", func(t *testing.T) {
				c := cl.Get()
				defer c.Close()
				if r, err := c.Do(""); r != nil || err != nil {
					t.Errorf("Do(\"\") first = %v, %v", r, err)
				}
				mustDo(t, c, "SET", a, "1")
				mustDo(t, c, "SET", b, "x")
				if r, err := c.Do(""); r != nil || err != nil {
					t.Errorf("Do(\"\") after Do = %v, %v", r, err)
				}
				mustDo(t, c, "WATCH", a)
				if got, err := redis.String(redis.DoWithTimeout(c, time.Second, "GET", a)); err != nil || got != "1" {
					t.Fatalf("GET = %q, %v", got, err)
				}
				if _, err := cl.Do(ctx, "SET", a, "other"); err != nil {
					t.Fatal(err)
				}
				mustDo(t, c, "MULTI")
				mustDo(t, c, "SET", a, "2")
				if r, err := c.Do("EXEC"); r != nil || err != nil {
					t.Fatalf("EXEC after the watched key changed = %v, %v; want nil", r, err)
				}
				mustDo(t, c, "WATCH", a)
				mustDo(t, c, "MULTI")
				mustDo(t, c, "APPEND", a, "+")
				if r, err := redis.Values(c.Do("EXEC")); err != nil || len(r) != 1 {
					t.Fatalf("EXEC = %v, %v", r, err)
				}
				if got, err := redis.String(c.Do("GET", b)); err != nil || got != "x" {
					t.Errorf("GET %s on another node after the transaction = %q, %v", b, got, err)
				}
			})

			t.Run("SendPipelineAfterPipelinedWrites", func(t *testing.T) {
				c := cl.Get()
				defer c.Close()
				for i := range 5 {
					mustDo(t, c, "SET", a, i)
				}
				c.Send("INCR", a)
				c.Send("PING")
				c.Send("GET", a)
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
				want := []any{int64(5), "PONG", []byte("5")}
				for i, w := range want {
					r, err := c.Receive()
					if err != nil || formatReply(r) != formatReply(w) {
						t.Errorf("reply %d = %s, %v; want %s", i, formatReply(r), err, formatReply(w))
					}
				}
				c.Send("GET", a)
				r, err := redis.Values(c.Do(""))
				if err != nil || len(r) != 1 || string(r[0].([]byte)) != "5" {
					t.Errorf("Do(\"\") after Send GET = %s, %v", formatReply(r), err)
				}
				if r, err := c.Do(""); r != nil || err != nil {
					t.Errorf("Do(\"\") with nothing pending = %v, %v", r, err)
				}
				if got, err := redis.String(c.Do("GET", b)); err != nil || got != "x" {
					t.Errorf("GET %s = %q, %v", b, got, err)
				}
			})

			t.Run("SubscribeAfterPipelinedCommands", func(t *testing.T) {
				c := cl.Get()
				defer c.Close()
				mustDo(t, c, "SET", a, "s")
				mustDo(t, c, "GET", b)
				ch := "atk-seq-ch-" + name
				psc := redis.PubSubConn{Conn: c}
				if err := psc.Subscribe(ch); err != nil {
					t.Fatal(err)
				}
				if m, ok := psc.Receive().(redis.Subscription); !ok || m.Count != 1 {
					t.Fatalf("subscribe reply = %#v", m)
				}
				waitForWithin(t, 5*time.Second, func() bool {
					n, _ := redis.Int(cl.Do(ctx, "PUBLISH", ch, "hello"))
					return n > 0
				})
				switch m := psc.Receive().(type) {
				case redis.Message:
					if string(m.Data) != "hello" {
						t.Errorf("message = %q", m.Data)
					}
				default:
					t.Fatalf("Receive = %#v; want the message", m)
				}
			})

			t.Run("GetForKeysNeverPipelines", func(t *testing.T) {
				before := int64(0)
				for _, ns := range cl.Stats().Nodes {
					before += ns.PipelinedCommands
				}
				c, err := cl.GetForKeys(ctx, a)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				for range 5 {
					mustDo(t, c, "SET", a, "k")
					mustDo(t, c, "PING")
				}
				if _, err := c.Do("GET", b); !errors.Is(err, ErrCrossSlot) {
					t.Errorf("GET %s on another node from GetForKeys = %v; want ErrCrossSlot", b, err)
				}
				after := int64(0)
				for _, ns := range cl.Stats().Nodes {
					after += ns.PipelinedCommands
				}
				if after != before {
					t.Errorf("%d commands pipelined from a GetForKeys connection; want 0", after-before)
				}
			})
		})
	}
}

func TestAttackClusterPipelineGetPubSubReceiver(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	ctx := context.Background()
	cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: true}})
	k := keysOn(t, rc, "atk-ps:")[0]
	c := cl.Get()
	mustDo(t, c, "SET", k, "v") // pipelined first
	psc := redis.PubSubConn{Conn: c}
	if err := psc.Subscribe("atk-ps-a"); err != nil {
		t.Fatal(err)
	}
	got := make(chan any, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			r := psc.Receive()
			got <- r
			if _, ok := r.(error); ok {
				return
			}
		}
	}()
	// The other goroutine: more subscriptions and pings while the
	// receiver reads.
	for i := range 20 {
		if err := psc.Subscribe("atk-ps-" + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if err := psc.Ping("p" + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitForWithin(t, 5*time.Second, func() bool {
		n, _ := redis.Int(cl.Do(ctx, "PUBLISH", "atk-ps-19", "m"))
		return n > 0
	})
	deadline := time.After(5 * time.Second)
	pongs, msg := 0, false
	for !msg || pongs < 20 {
		select {
		case r := <-got:
			switch r := r.(type) {
			case redis.Pong:
				pongs++
			case redis.Message:
				msg = true
			case error:
				t.Fatalf("Receive: %v", r)
			}
		case <-deadline:
			t.Fatalf("after 5s: %d pongs, message %v", pongs, msg)
		}
	}
	c.Close() // stops the receiver
	<-done
	waitSharedReturned(t, cl)
	waitForWithin(t, 5*time.Second, func() bool {
		for _, ns := range cl.Stats().Nodes {
			if ns.Active != 0 {
				return false
			}
		}
		return true
	})
}

// TestAttackClusterPipelineGetKilledAndCancelled: goroutines pipeline
// their own keys on Get connections while the pool's connections are
// killed with CLIENT KILL and contexts end at random points. Every
// reply reaches its own caller, nothing stays borrowed, and the
// connections to each master stay bounded.
func TestAttackClusterPipelineGetKilledAndCancelled(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	const name = "atk-kill"
	cl := newTestCluster(t, rc, ClusterConfig{Node: Config{PipelineGet: true, ClientName: name, MaxTotal: 6}})
	masters := rc.Masters(t)
	const workers = 24
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- killedWorker(cl, w, stop)
		}()
	}
	killed := 0
	for range 15 {
		time.Sleep(40 * time.Millisecond)
		for _, m := range masters {
			killed += m.KillClients(t, func(ci redistest.ClientInfo) bool { return ci.Name == name })
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if killed == 0 {
		t.Error("no connection killed: the attack did not happen")
	}
	waitSharedReturned(t, cl)
	for addr, ns := range cl.Stats().Nodes {
		if ns.Active != 0 {
			t.Errorf("node %s: %d connections still borrowed", addr, ns.Active)
		}
	}
	for _, m := range masters {
		// MaxTotal, and a control connection for slot-map loads.
		if n := m.CountClients(t, func(ci redistest.ClientInfo) bool { return ci.Name == name }); n > 7 {
			t.Errorf("%d connections to %s; want at most 7", n, m)
		}
	}
}

// killedWorker borrows connections and, on each, writes and reads back
// its own key under contexts that may end at any point, some commands
// through WAIT and transactions, until stop.
func killedWorker(cl *Cluster, w int, stop <-chan struct{}) error {
	key := "atk-kill:" + strconv.Itoa(w)
	tag := "{atk-kill-tx:" + strconv.Itoa(w) + "}"
	bg := context.Background()
	for r := 0; ; r++ {
		select {
		case <-stop:
			return nil
		default:
		}
		c := cl.Get()
		for i := range 5 {
			v := strconv.Itoa(r*10 + i)
			ctx, cancel := context.WithTimeout(bg, time.Duration((r*7+i*13+w)%5)*200*time.Microsecond)
			if r%3 == 0 {
				ctx, cancel = context.WithCancel(bg)
			}
			_, err := redis.DoContext(c, ctx, "SET", key, v)
			cancel()
			// Until it is known to have run, the SET is repeated; a
			// failure here is the kill's, and allowed.
			for tries := 0; err != nil && tries < 50; tries++ {
				_, err = c.Do("SET", key, v)
			}
			if err != nil {
				c.Close()
				c = cl.Get()
				continue
			}
			got, err := redis.String(c.Do("GET", key))
			if err == nil && got != v {
				c.Close()
				return fmt.Errorf("GET %s = %q; want %q: a reply reached another caller", key, got, v)
			}
			switch i {
			case 2:
				if _, err := c.Do("WAIT", 0, 0); err != nil && !isIOError(err) {
					c.Close()
					return fmt.Errorf("WAIT 0 0: %w", err)
				}
			case 3:
				c.Send("MULTI")
				c.Send("INCR", tag+"a")
				c.Send("INCR", tag+"b")
				reply, err := redis.Ints(c.Do("EXEC"))
				if err == nil && (len(reply) != 2 || reply[0] != reply[1]) {
					c.Close()
					return fmt.Errorf("EXEC on %s = %v; want two equal counts", tag, reply)
				}
				if err != nil {
					c.Close()
					c = cl.Get()
				}
			}
		}
		c.Close()
	}
}

// isIOError reports whether err is not a reply of the server's.
func isIOError(err error) bool {
	var rerr redis.Error
	return !errors.As(err, &rerr)
}
