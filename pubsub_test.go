package redispool

import (
	"context"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

// TestPubSubCloseStopsReceiver: redigo documents stopping a receiver by
// closing its connection from another goroutine. Close must not drain
// the subscription under the receiver (a data race, and replies read by
// the wrong goroutine): it closes the socket, the receiver gets an error
// and returns, and the slot is freed.
func TestPubSubCloseStopsReceiver(t *testing.T) {
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), ClientName: "psc", MaxTotal: 2})
	publish := func(ch, msg string) error {
		_, err := p.Do(context.Background(), "PUBLISH", ch, msg)
		return err
	}
	stopReceiverByClose(t, p.Get, publish)
	s.Client(t).WaitClients(t, 0, func(ci redistest.ClientInfo) bool { return ci.Name == "psc" && ci.Fields["sub"] != "0" })
	if st := p.Stats(); st.Active != 0 {
		t.Errorf("Stats = %+v; want no connection borrowed", st)
	}
	// The pool still works, on both slots.
	c1, c2 := mustGet(t, p), mustGet(t, p)
	mustDo(t, c1, "PING")
	mustDo(t, c2, "PING")
	c1.Close()
	c2.Close()
}

// TestPubSubUnsubscribedNeedsNoDrain: a connection whose last
// unsubscribe confirmation counted 0 subscriptions, with nothing in
// flight, is clean: Close sends nothing, and the connection is kept.
// One that is not (a confirmation unread, a subscription in flight)
// is still drained, and the next borrower gets it pristine.
func TestPubSubUnsubscribedNeedsNoDrain(t *testing.T) {
	s := redistest.StartServer(t)
	recv := func(t *testing.T, c redis.Conn, n int) {
		t.Helper()
		c.Flush()
		for range n {
			if _, err := c.Receive(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tt := range []struct {
		name  string
		clean bool
		use   func(t *testing.T, c redis.Conn)
	}{
		{"SUBSCRIBE then UNSUBSCRIBE", true, func(t *testing.T, c redis.Conn) {
			psc := redis.PubSubConn{Conn: c}
			psc.Subscribe("ch")
			recv(t, c, 1)
			psc.Unsubscribe()
			recv(t, c, 1)
		}},
		{"channels and patterns, unsubscribed without arguments", true, func(t *testing.T, c redis.Conn) {
			psc := redis.PubSubConn{Conn: c}
			psc.Subscribe("a", "b")
			psc.PSubscribe("p*")
			recv(t, c, 3)
			psc.Unsubscribe()
			psc.PUnsubscribe()
			recv(t, c, 3)
		}},
		{"with a message and a PING", true, func(t *testing.T, c redis.Conn) {
			psc := redis.PubSubConn{Conn: c}
			psc.Subscribe("ch")
			recv(t, c, 1)
			s.Do(t, "PUBLISH", "ch", "hi")
			psc.Ping("x")
			recv(t, c, 2)
			psc.Unsubscribe("ch")
			recv(t, c, 1)
		}},
		{"SSUBSCRIBE then SUNSUBSCRIBE", true, func(t *testing.T, c redis.Conn) {
			c.Send("SSUBSCRIBE", "s")
			recv(t, c, 1)
			c.Send("SUNSUBSCRIBE")
			recv(t, c, 1)
		}},
		{"still subscribed", false, func(t *testing.T, c redis.Conn) {
			redis.PubSubConn{Conn: c}.Subscribe("ch")
			recv(t, c, 1)
		}},
		{"confirmation unread", false, func(t *testing.T, c redis.Conn) {
			psc := redis.PubSubConn{Conn: c}
			psc.Subscribe("ch")
			recv(t, c, 1)
			psc.Unsubscribe()
		}},
		{"subscription in flight after the last confirmation", false, func(t *testing.T, c redis.Conn) {
			psc := redis.PubSubConn{Conn: c}
			psc.Subscribe("ch")
			recv(t, c, 1)
			psc.Unsubscribe()
			recv(t, c, 1)
			psc.Subscribe("again")
		}},
		{"one of two unsubscribed", false, func(t *testing.T, c redis.Conn) {
			psc := redis.PubSubConn{Conn: c}
			psc.Subscribe("a", "b")
			recv(t, c, 2)
			psc.Unsubscribe("a")
			recv(t, c, 1)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := isolationPool(t, s)
			c := mustGet(t, p)
			id := mustDo(t, c, "CLIENT", "ID")
			tt.use(t, c)
			resetCmds := []string{"unsubscribe", "punsubscribe", "sunsubscribe", "echo", "discard", "unwatch", "select", "client|setname"}
			before := commandCalls(t, s, resetCmds...)
			echoes := commandCalls(t, s, "echo")
			c.Close()
			resets := commandCalls(t, s, resetCmds...) - before
			drains := commandCalls(t, s, "echo") - echoes
			c = mustGet(t, p)
			defer c.Close()
			assertPristine(t, s, c)
			if tt.clean {
				if resets != 0 {
					t.Errorf("Close sent %d reset commands; want none", resets)
				}
				if got := mustDo(t, c, "CLIENT", "ID"); got != id {
					t.Errorf("connection replaced (id %v -> %v); want it kept", id, got)
				}
			} else if drains != 1 {
				t.Errorf("Close drained %d times; want once", drains)
			}
		})
	}
}
