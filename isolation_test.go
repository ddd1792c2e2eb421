package redispool

import (
	"context"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

// These tests use a real redis-server as the oracle: CLIENT INFO, run on
// the borrowed connection itself, tells what the connection really is.

const (
	isoDB   = 2
	isoName = "pool"
)

func TestStateIsolation(t *testing.T) {
	s := redistest.StartServer(t, "--enable-debug-command", "yes")
	s.Do(t, "ACL", "SETUSER", "other", "on", ">otherpw", "~*", "+@all")

	for _, tt := range []struct {
		name  string
		dirty func(t *testing.T, c redis.Conn)
		keep  bool // the connection must be reused, not closed
		after func(t *testing.T, c redis.Conn)
	}{
		{name: "SELECT", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "SELECT", 5)
		}},
		{name: "CLIENT SETNAME", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "CLIENT", "SETNAME", "borrower")
		}},
		{name: "MULTI left open", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "MULTI")
			mustDo(t, c, "SET", "discarded", "1")
		}, after: func(t *testing.T, c redis.Conn) {
			if n, _ := redis.Int(c.Do("EXISTS", "discarded")); n != 0 {
				t.Error("a command queued in an abandoned MULTI ran")
			}
		}},
		{name: "MULTI pipelined, not flushed", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			c.Send("MULTI")
			c.Send("SET", "discarded", "1")
		}, after: func(t *testing.T, c redis.Conn) {
			if n, _ := redis.Int(c.Do("EXISTS", "discarded")); n != 0 {
				t.Error("a command queued in an abandoned MULTI ran")
			}
		}},
		{name: "WATCH", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "WATCH", "watched")
		}},
		{name: "WATCH then EXEC without MULTI", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "WATCH", "watched")
			c.Do("EXEC") // an error: WATCH still stands
		}},
		{name: "SUBSCRIBE with messages in flight", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			psc := redis.PubSubConn{Conn: c}
			psc.Subscribe("news")
			psc.Receive() // the subscription confirmation
			for i := 0; i < 100; i++ {
				s.Do(t, "PUBLISH", "news", i)
			}
		}},
		{name: "PSUBSCRIBE", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			psc := redis.PubSubConn{Conn: c}
			psc.PSubscribe("n*")
			psc.Receive()
			s.Do(t, "PUBLISH", "news", "x")
		}},
		{name: "SSUBSCRIBE", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			c.Send("SSUBSCRIBE", "shard")
			c.Flush()
			c.Receive()
		}},
		{name: "SUBSCRIBE then UNSUBSCRIBE", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			psc := redis.PubSubConn{Conn: c}
			psc.Subscribe("news")
			psc.Receive()
			psc.Unsubscribe()
			psc.Receive()
		}},
		{name: "pipelined replies not read", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			c.Send("SET", "p", "1")
			c.Send("GET", "p")
			c.Send("INCR", "p")
			c.Flush()
			c.Receive()
		}},
		{name: "pipelined commands not flushed", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			c.Send("GET", "p")
			c.Send("GET", "p")
		}},
		{name: "pipeline with an error reply not read", keep: true, dirty: func(t *testing.T, c redis.Conn) {
			c.Send("SET", "str", "x")
			c.Send("LPUSH", "str", "y") // WRONGTYPE
			c.Flush()
		}},
		{name: "MONITOR", dirty: func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "MONITOR")
		}},
		{name: "CLIENT REPLY OFF", dirty: func(t *testing.T, c redis.Conn) {
			c.Send("CLIENT", "REPLY", "OFF")
			c.Flush()
		}},
		{name: "CLIENT REPLY SKIP", dirty: func(t *testing.T, c redis.Conn) {
			c.Send("CLIENT", "REPLY", "SKIP")
			c.Flush()
		}},
		{name: "CLIENT TRACKING", dirty: func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "CLIENT", "TRACKING", "ON")
		}},
		{name: "CLIENT NO-EVICT", dirty: func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "client", "no-evict", "on")
		}},
		{name: "AUTH as another user", dirty: func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "AUTH", "other", "otherpw")
		}},
		{name: "HELLO 3", dirty: func(t *testing.T, c redis.Conn) {
			c.Do("HELLO", "3") // redigo may not parse the RESP3 reply
		}},
		{name: "READONLY", dirty: func(t *testing.T, c redis.Conn) {
			c.Do("READONLY") // an error outside cluster mode; still not ours to judge
		}},
		{name: "ASKING", dirty: func(t *testing.T, c redis.Conn) {
			c.Do("ASKING") // an error outside cluster mode; still closes
		}},
		{name: "RESET", dirty: func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "RESET")
		}},
		{name: "QUIT", dirty: func(t *testing.T, c redis.Conn) {
			c.Do("QUIT")
		}},
		{name: "BLPOP pending", dirty: func(t *testing.T, c redis.Conn) {
			c.Send("BLPOP", "nothing", 0) // would block the reset: closed after CheckTimeout
			c.Flush()
		}},
		{name: "client-side timeout mid-command", dirty: func(t *testing.T, c redis.Conn) {
			_, err := c.(redis.ConnWithTimeout).DoWithTimeout(20*time.Millisecond, "DEBUG", "SLEEP", "0.3")
			if err == nil {
				t.Fatal("DEBUG SLEEP 0.3 with a 20ms timeout succeeded")
			}
		}},
		{name: "context cancelled mid-command", dirty: func(t *testing.T, c redis.Conn) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			_, err := c.(redis.ConnWithContext).DoContext(ctx, "DEBUG", "SLEEP", "0.3")
			if err == nil || ctx.Err() == nil {
				t.Fatalf("DoContext cancelled mid-command = %v", err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.Do(t, "FLUSHALL")
			p := isolationPool(t, s)
			c := mustGet(t, p)
			before := clientInfo(t, c)
			tt.dirty(t, c)
			c.Close()

			c = mustGet(t, p)
			defer c.Close()
			after := clientInfo(t, c)
			st := p.Stats()
			if tt.keep && (after.ID != before.ID || st.Destroyed != 0) {
				t.Errorf("connection closed (id %d -> %d, %+v); want it reset and reused", before.ID, after.ID, st)
			}
			if !tt.keep && (after.ID == before.ID || st.Destroyed != 1) {
				t.Errorf("connection reused (id %d -> %d, %+v); want it closed", before.ID, after.ID, st)
			}
			assertPristine(t, s, c)
			if tt.after != nil {
				tt.after(t, c)
			}
			// The server agrees: one pool connection, the one we hold.
			s.WaitClients(t, 1, func(ci redistest.ClientInfo) bool { return ci.Name == isoName })
		})
	}
}

// TestCleanUseNeedsNoReset checks that connections used for plain
// commands, pipelines and transactions that ended cleanly go back to the
// pool as they are: no reset round trip, never closed.
func TestCleanUseNeedsNoReset(t *testing.T) {
	s := redistest.StartServer(t)
	for _, tt := range []struct {
		name string
		use  func(t *testing.T, c redis.Conn)
	}{
		{"plain commands", func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "SET", "k", "v")
			mustDo(t, c, "GET", "k")
			c.Do("LPUSH", "k", "x") // an error reply
		}},
		{"pipeline read with Receive", func(t *testing.T, c redis.Conn) {
			for i := 0; i < 10; i++ {
				c.Send("INCR", "n")
			}
			c.Flush()
			for i := 0; i < 10; i++ {
				if _, err := c.Receive(); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"pipeline read with Do", func(t *testing.T, c redis.Conn) {
			c.Send("INCR", "n")
			c.Send("INCR", "n")
			mustDo(t, c, "")
		}},
		{"MULTI/EXEC with Do", func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "MULTI")
			mustDo(t, c, "INCR", "n")
			mustDo(t, c, "EXEC")
		}},
		{"MULTI/EXEC pipelined, EXEC with Do", func(t *testing.T, c redis.Conn) {
			c.Send("MULTI")
			c.Send("INCR", "n")
			mustDo(t, c, "EXEC")
		}},
		{"MULTI/EXEC pipelined, read with Do(\"\")", func(t *testing.T, c redis.Conn) {
			c.Send("MULTI")
			c.Send("INCR", "n")
			c.Send("EXEC")
			mustDo(t, c, "")
		}},
		{"MULTI/EXEC pipelined, read with Receive", func(t *testing.T, c redis.Conn) {
			c.Send("MULTI")
			c.Send("INCR", "n")
			c.Send("EXEC")
			c.Flush()
			for i := 0; i < 3; i++ {
				if _, err := c.Receive(); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"WATCH/MULTI/EXEC", func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "WATCH", "n")
			mustDo(t, c, "MULTI")
			mustDo(t, c, "INCR", "n")
			mustDo(t, c, "EXEC")
		}},
		{"WATCH then UNWATCH", func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "WATCH", "n")
			mustDo(t, c, "UNWATCH")
		}},
		{"MULTI then DISCARD", func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "MULTI")
			mustDo(t, c, "INCR", "n")
			mustDo(t, c, "DISCARD")
		}},
		{"EXECABORT", func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "MULTI")
			c.Do("NOSUCHCOMMAND")
			if _, err := c.Do("EXEC"); err == nil {
				t.Fatal("want EXECABORT")
			}
		}},
		{"CLIENT ID and LIST", func(t *testing.T, c redis.Conn) {
			mustDo(t, c, "CLIENT", "ID")
			mustDo(t, c, "CLIENT", "LIST")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.Do(t, "FLUSHALL")
			p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 1})
			c := mustGet(t, p)
			id := mustDo(t, c, "CLIENT", "ID")
			tt.use(t, c)
			resetCmds := []string{"discard", "unwatch", "select", "echo", "unsubscribe", "client|setname"}
			before := commandCalls(t, s, resetCmds...)
			c.Close()
			resets := commandCalls(t, s, resetCmds...) - before
			c = mustGet(t, p)
			defer c.Close()
			if got := mustDo(t, c, "CLIENT", "ID"); got != id {
				t.Errorf("connection replaced (id %v -> %v); want it reused", id, got)
			}
			if resets != 0 {
				t.Errorf("return sent %d reset commands; want none", resets)
			}
			if st := p.Stats(); st.Destroyed != 0 {
				t.Errorf("Stats = %+v; want nothing destroyed", st)
			}
		})
	}
}
