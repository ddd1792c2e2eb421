package redispool

import (
	"errors"
	"strings"
	"testing"

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

	t.Run("SendWaitInsideMulti", func(t *testing.T) {
		// Queued in a transaction, WAIT does not wait: Send must queue it
		// as it does without PipelineGet.
		both(t, func(t *testing.T, cl *Cluster) {
			k := keysOn(t, rc, "atk-txwait:")[0]
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "SET", k, "1")
			for _, err := range []error{
				c.Send("MULTI"), c.Send("SET", k, "2"), c.Send("WAIT", 0, 0),
			} {
				if err != nil {
					t.Fatalf("Send in MULTI: %v", err)
				}
			}
			r, err := redis.Values(c.Do("EXEC"))
			if err != nil || len(r) != 2 {
				t.Fatalf("EXEC = %v, %v; want [OK n]", r, err)
			}
		})
	})

	t.Run("SendWaitInsideMultiBeforeKey", func(t *testing.T) {
		both(t, func(t *testing.T, cl *Cluster) {
			k := keysOn(t, rc, "atk-txwait2:")[0]
			c := cl.Get()
			defer c.Close()
			mustDo(t, c, "SET", k, "1")
			for _, err := range []error{
				c.Send("MULTI"), c.Send("WAIT", 0, 0), c.Send("SET", k, "2"),
			} {
				if err != nil {
					t.Fatalf("Send in MULTI: %v", err)
				}
			}
			r, err := redis.Values(c.Do("EXEC"))
			if err != nil || len(r) != 2 {
				t.Fatalf("EXEC = %v, %v; want [n OK]", r, err)
			}
		})
	})

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
				if keys, _ := redis.Strings(m.Exec("KEYS", "__redispool:wait:*")); len(keys) != 0 {
					t.Errorf("marker keys left on %s: %q", m, keys)
				}
			}
		})
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
