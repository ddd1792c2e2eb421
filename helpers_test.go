package redispool

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"
	"go.uber.org/goleak"

	"github.com/redispool/redispool/redistest"
)

// Helpers shared by the test files of the package. A helper used by one
// file only stays in that file.

// Pools and connections.

// newTestPool starts a pool on cfg, closed at the end of the test.
func newTestPool(t testing.TB, cfg Config) *Pool {
	t.Helper()
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New(%v): %v", cfg, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// miniPool starts a pool on a miniredis of its own, both closed at the end of the test.
func miniPool(t testing.TB, cfg Config) (*Pool, *miniredis.Miniredis) {
	t.Helper()
	s := miniredis.RunT(t)
	cfg.Addr = s.Addr()
	return newTestPool(t, cfg), s
}

// isolationPool starts a one-connection pool on s with the DB and name assertPristine expects.
func isolationPool(t *testing.T, s *redistest.Server) *Pool {
	t.Helper()
	return newTestPool(t, Config{
		Addr:         s.Addr(),
		DB:           isoDB,
		ClientName:   isoName,
		MaxTotal:     1, // so the next borrow gets the same connection if it was kept
		CheckTimeout: 300 * time.Millisecond,
	})
}

// mustGet borrows a connection from p, failing the test if it cannot.
func mustGet(t testing.TB, p *Pool) redis.Conn {
	t.Helper()
	c, err := p.GetContext(context.Background())
	if err != nil {
		t.Fatalf("GetContext: %v", err)
	}
	return c
}

// mustDo runs cmd on c, failing the test on an error.
func mustDo(t testing.TB, c redis.Conn, cmd string, args ...any) any {
	t.Helper()
	r, err := c.Do(cmd, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return r
}

// second returns the error of a (reply, error) pair.
func second(_ any, err error) error { return err }

// flushAll gives every connection on p's hot stack back to the engine,
// as the flusher does with those idle for hotIdleLimit.
func flushAll(p *Pool) { p.flush(time.Now().Add(time.Hour)) }

// idleForPeek waits until connections returned before the call have sat
// idle long enough for the borrow check to peek at them.
func idleForPeek() { time.Sleep(2 * peekAfterIdle) }

// Server state.

// clientInfo runs CLIENT INFO on c.
func clientInfo(t testing.TB, c redis.Conn) redistest.ClientInfo {
	t.Helper()
	line, err := redis.String(c.Do("CLIENT", "INFO"))
	if err != nil {
		t.Fatalf("CLIENT INFO: %v", err)
	}
	infos, err := redistest.ParseClientList(line)
	if err != nil || len(infos) != 1 {
		t.Fatalf("parse CLIENT INFO %q: %v", line, err)
	}
	return infos[0]
}

// assertPristine fails unless c is in the state of a new pool connection:
// the configured DB and name, the default user, RESP2, no transaction,
// no subscriptions, no tracking, no pending replies, no watched keys.
func assertPristine(t testing.TB, s *redistest.Server, c redis.Conn) {
	t.Helper()
	info := clientInfo(t, c)
	if info.DB != isoDB || info.Name != isoName || info.User != "default" {
		t.Errorf("db=%d name=%q user=%q; want db=%d name=%q user=default", info.DB, info.Name, info.User, isoDB, isoName)
	}
	for field, want := range map[string]string{"multi": "-1", "sub": "0", "psub": "0", "ssub": "0", "resp": "2", "redir": "-1"} {
		if got := info.Fields[field]; got != want {
			t.Errorf("%s=%s; want %s (CLIENT INFO: %v)", field, got, want, info.Fields)
		}
	}
	if strings.ContainsAny(info.Flags, "xPOtM") {
		t.Errorf("flags=%s; want none of x (MULTI), P (pub/sub), O (MONITOR), t (tracking)", info.Flags)
	}
	// No reply left over for us: our own token must come back.
	token := fmt.Sprintf("token-%d", time.Now().UnixNano())
	if got, err := redis.String(c.Do("ECHO", token)); err != nil || got != token {
		t.Errorf("ECHO %s = %q, %v: a stale reply reached the next borrower", token, got, err)
	}
	// No watched key: a transaction on a key modified elsewhere commits.
	s.Do(t, "SELECT", isoDB)
	s.Do(t, "SET", "watched", "changed-by-admin")
	c.Send("MULTI")
	c.Send("SET", "watched", "x")
	if reply, err := c.Do("EXEC"); err != nil || reply == nil {
		t.Errorf("MULTI/SET/EXEC = %v, %v: a WATCH was left behind", reply, err)
	}
}

// commandCalls sums the calls of the named commands in INFO commandstats.
func commandCalls(t testing.TB, s *redistest.Server, names ...string) int {
	t.Helper()
	info, _ := s.Do(t, "INFO", "commandstats").(string)
	total := 0
	for _, line := range strings.Split(info, "\n") {
		for _, name := range names {
			prefix := "cmdstat_" + name + ":calls="
			if strings.HasPrefix(line, prefix) {
				n, _ := strconv.Atoi(strings.SplitN(line[len(prefix):], ",", 2)[0])
				total += n
			}
		}
	}
	return total
}

// Polls and leaks.

// waitFor polls cond every millisecond, failing the test if it is not met within 5s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitForWithin is waitFor with a deadline of d.
func waitForWithin(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkNoLeak fails t if goroutines other than those in ignore are left
// once cleanup (of the pools and pipelines, run first) is done.
func checkNoLeak(t *testing.T, ignore goleak.Option) {
	t.Helper()
	t.Cleanup(func() {
		if err := goleak.Find(ignore); err != nil {
			t.Errorf("goroutines leaked: %v", err)
		}
	})
}

// Pipelines.

// pipelineOn starts a pool on s whose Do pipelines as pc says.
func pipelineOn(t testing.TB, s *redistest.Server, cfg Config, pc pipeConfig) (*Pool, *pipeline) {
	t.Helper()
	cfg.Addr = s.Addr()
	p := newTestPool(t, cfg)
	if pc.readTimeout == 0 {
		pc.readTimeout = p.cfg.ReadTimeout
	}
	if pc.writeTimeout == 0 {
		pc.writeTimeout = p.cfg.WriteTimeout
	}
	if p.pipes != nil {
		p.pipes.close()
	}
	p.pipes = newPipeline(poolHost{p}, pc) // closed by p.Close
	return p, p.pipes
}

// isPipeConn tells the pipeline's connections (named pipeName) in CLIENT LIST.
func isPipeConn(ci redistest.ClientInfo) bool { return ci.Name == pipeName }

// Clusters.

// newTestCluster starts a Cluster on rc, closed at the end of the test, once it answers PING.
func newTestCluster(t testing.TB, rc *redistest.Cluster, cfg ClusterConfig) *Cluster {
	t.Helper()
	cfg.Addrs = rc.Addrs()
	c, err := NewCluster(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	return c
}

// ownerIn returns the address of the master that slots assign slot to, or "".
func ownerIn(slots []redistest.SlotRange, slot int) string {
	for _, r := range slots {
		if r.Start <= slot && slot <= r.End {
			return r.Master
		}
	}
	return ""
}

// keysOn returns one key per master, in rc.Masters order.
func keysOn(t testing.TB, rc *redistest.Cluster, prefix string) []string {
	t.Helper()
	slots := rc.Slots(t)
	var keys []string
	for _, m := range rc.Masters(t) {
		for i := 0; ; i++ {
			k := prefix + strconv.Itoa(i)
			s := Slot(k)
			if owner := ownerIn(slots, s); owner == m.Addr() {
				keys = append(keys, k)
				break
			}
		}
	}
	return keys
}

// infoField returns a field of INFO section from node n, as an integer.
func infoField(t testing.TB, n *redistest.ClusterNode, section, field string) int64 {
	t.Helper()
	info, _ := n.Do(t, "INFO", section).(string)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(field) + `:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	return v
}

// waitSharedReturned waits until no node pool holds a shared connection:
// once idle, the pipes give theirs back to the pools.
func waitSharedReturned(t testing.TB, c *Cluster) {
	t.Helper()
	waitForWithin(t, 10*time.Second, func() bool {
		for _, ns := range c.Stats().Nodes {
			if ns.Shared != 0 {
				return false
			}
		}
		return true
	})
}

// Fake servers.

// fakeNode starts a fake cluster node that claims every slot and answers
// other commands than CLUSTER SLOTS and PING with reply(n, cmd), n being
// how many such commands it has received, itself included. A nil reply
// string closes the connection.
func fakeNode(t testing.TB, reply func(n int64, cmd []string) *string) (addr string, count *atomic.Int64) {
	t.Helper()
	count = new(atomic.Int64)
	var self atomic.Pointer[string]
	srv := redistest.NewFakeServer(t, redistest.Dispatch(func(_ *redistest.FakeConn, cmd []string) (string, bool) {
		if len(cmd) == 0 {
			return "", true
		}
		switch strings.ToUpper(cmd[0]) {
		case "CLUSTER":
			host, port, _ := net.SplitHostPort(*self.Load())
			return fmt.Sprintf("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$%d\r\n%s\r\n:%s\r\n", len(host), host, port), false
		case "PING":
			return "+PONG\r\n", false
		case "ASKING":
			return "+OK\r\n", false
		}
		r := reply(count.Add(1), cmd)
		if r == nil {
			return "", true
		}
		return *r, false
	}))
	addr = srv.Addr()
	self.Store(&addr)
	return addr, count
}

// ptr returns a pointer to s, for fakeNode's replies.
func ptr(s string) *string { return &s }

// closedPort returns a loopback address that refuses connections: a
// listener's, opened and closed.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Replies.

// formatReply renders a reply for a failure message: bulk strings quoted, arrays in brackets.
func formatReply(v any) string {
	switch v := v.(type) {
	case []byte:
		return fmt.Sprintf("%q", v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = formatReply(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	default:
		return fmt.Sprintf("%#v", v)
	}
}

// waitAfterPipelinedSet checks that WAIT counts the replicas holding a
// write that a PipelineGet connection from get sent pipelined: with
// replica stopped, WAIT 1 100 after a pipelined SET of k returns 0,
// sent by Do, by Send, by DoWithTimeout (how a WAIT longer than
// ReadTimeout is sent) and by Do after a Send whose reply is unread. On
// a connection that made no write of its own, WAIT would return at
// once, counting the replica that lacks it. In a transaction the
// marker must not be queued (EXEC would answer one command more than
// the borrower queued), and the first WAIT after EXEC still covers the
// pipelined write. then, if not nil, checks more with the replica still
// stopped.
func waitAfterPipelinedSet(t *testing.T, get func() redis.Conn, k string, replica *redistest.Server, then func(*testing.T)) {
	t.Helper()
	counter := "{" + k + "}:n" // k's slot, on a Cluster
	for _, mode := range []string{"Do", "Send", "DoWithTimeout", "DoAfterSend"} {
		t.Run(mode, func(t *testing.T) {
			// Synced first, so that the replica's acknowledged offset
			// is the master's.
			c := get()
			mustDo(t, c, "SET", k, "sync")
			if n, err := redis.Int(c.Do("WAIT", 1, 5000)); err != nil || n != 1 {
				t.Fatalf("WAIT with the replica running = %d, %v; want 1", n, err)
			}
			c.Close()

			replica.Pause()
			defer replica.Resume()
			c = get()
			defer c.Close()
			mustDo(t, c, "SET", k, mode) // pipelined
			var n int
			var err error
			switch mode {
			case "Do":
				n, err = redis.Int(c.Do("WAIT", 1, 100))
			case "DoAfterSend": // the marker goes with the Send's reply unread
				if err := c.Send("GET", k); err != nil {
					t.Fatal(err)
				}
				n, err = redis.Int(c.Do("WAIT", 1, 100))
			case "DoWithTimeout":
				n, err = redis.Int(redis.DoWithTimeout(c, 5*time.Second, "WAIT", 1, 100))
			case "Send":
				if err := c.Send("WAIT", 1, 100); err != nil {
					t.Fatal(err)
				}
				c.Flush()
				n, err = redis.Int(c.Receive())
			}
			if err != nil || n != 0 {
				t.Fatalf("WAIT with the replica stopped after a pipelined SET = %d, %v; want 0: WAIT ran where the write was not", n, err)
			}
			if then != nil {
				then(t)
			}
		})
	}
	for _, mode := range []string{"Do", "Send"} {
		t.Run("InTransaction/"+mode, func(t *testing.T) {
			replica.Pause()
			defer replica.Resume()
			c := get()
			defer c.Close()
			mustDo(t, c, "SET", k, mode) // pipelined
			var exec any
			var err error
			if mode == "Do" {
				mustDo(t, c, "MULTI")
				mustDo(t, c, "INCR", counter)
				mustDo(t, c, "WAIT", 1, 0)
				exec, err = c.Do("EXEC")
			} else {
				for _, cmd := range [][]any{{"MULTI"}, {"INCR", counter}, {"WAIT", 1, 0}, {"EXEC"}} {
					if err := c.Send(cmd[0].(string), cmd[1:]...); err != nil {
						t.Fatalf("Send %v: %v", cmd, err)
					}
				}
				var all []any
				all, err = redis.Values(c.Do(""))
				if err == nil && len(all) != 4 {
					t.Fatalf("replies %s; want 4", formatReply(all))
				}
				if err == nil {
					exec = all[3]
				}
			}
			if r, ok := exec.([]any); err != nil || !ok || len(r) != 2 {
				t.Fatalf("EXEC of INCR and WAIT = %s, %v; want two replies", formatReply(exec), err)
			}
			if n, err := redis.Int(c.Do("WAIT", 1, 100)); err != nil || n != 0 {
				t.Fatalf("WAIT after EXEC, with the replica stopped after a pipelined SET = %d, %v; want 0", n, err)
			}
		})
	}
}
