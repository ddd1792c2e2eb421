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

// Tests of Config.PipelineGet: connections from Get whose Do calls go
// down the shared pipelines until they need a connection of their own.

func pipeGetPool(t *testing.T, s *redistest.Server, cfg Config) *Pool {
	t.Helper()
	cfg.Addr = s.Addr()
	cfg.PipelineGet = true
	return newTestPool(t, cfg)
}

func TestPipelineGetSharesUntilSessionState(t *testing.T) {
	s := redistest.StartServer(t)
	p := pipeGetPool(t, s, Config{ClientName: "pipeget", MaxTotal: 4})
	c := p.Get()
	defer c.Close()

	if _, err := c.Do("SET", "pg:k", "v1"); err != nil {
		t.Fatal(err)
	}
	if got, err := redis.String(c.Do("GET", "pg:k")); err != nil || got != "v1" {
		t.Fatalf("GET = %q, %v; want v1", got, err)
	}
	st := p.Stats()
	if st.Active != 0 || st.PipelinedCommands != 2 {
		t.Fatalf("after two plain commands: Active %d, PipelinedCommands %d; want 0 and 2", st.Active, st.PipelinedCommands)
	}

	// MULTI is session state: the connection borrows one of its own and
	// keeps it, for the transaction and after it.
	if _, err := c.Do("MULTI"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Do("SET", "pg:k", "v2"); err != nil || r != "QUEUED" {
		t.Fatalf("SET in MULTI = %v, %v; want QUEUED", r, err)
	}
	if _, err := c.Do("EXEC"); err != nil {
		t.Fatal(err)
	}
	if got, err := redis.String(c.Do("GET", "pg:k")); err != nil || got != "v2" {
		t.Fatalf("GET = %q, %v; want v2", got, err)
	}
	st = p.Stats()
	if st.Active != 1 || st.PipelinedCommands != 2 {
		t.Fatalf("after MULTI: Active %d, PipelinedCommands %d; want 1 and 2", st.Active, st.PipelinedCommands)
	}
	c.Close()
	if st := p.Stats(); st.Active != 0 {
		t.Fatalf("after Close: Active %d; want 0", st.Active)
	}
	if _, err := c.Do("GET", "pg:k"); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Do after Close: %v; want ErrConnClosed", err)
	}
}

func TestPipelineGetCommandsThatNeedTheirOwnConnection(t *testing.T) {
	s := redistest.StartServer(t)
	p := pipeGetPool(t, s, Config{MaxTotal: 4})
	for _, tc := range []struct {
		name string
		run  func(c redis.Conn) error
	}{
		{"BLPOP", func(c redis.Conn) error { _, err := c.Do("BLPOP", "pg:none", "0.01"); return err }},
		{"CLIENT ID", func(c redis.Conn) error { _, err := c.Do("CLIENT", "ID"); return err }},
		{"SELECT other", func(c redis.Conn) error { _, err := c.Do("SELECT", 1); return err }},
		{"EVAL", func(c redis.Conn) error { _, err := c.Do("EVAL", "return 1", 0); return err }},
		{"unknown", func(c redis.Conn) error { _, err := c.Do("NOSUCHCOMMAND"); return nil2(err) }},
		{"DoWithTimeout", func(c redis.Conn) error {
			_, err := redis.DoWithTimeout(c, time.Second, "GET", "pg:k")
			return err
		}},
		{"Send", func(c redis.Conn) error { return c.Send("GET", "pg:k") }},
		{"large", func(c redis.Conn) error {
			_, err := c.Do("SET", "pg:large", strings.Repeat("x", pipeMaxCommand+1))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := p.Get()
			defer c.Close()
			if _, err := c.Do("PING"); err != nil {
				t.Fatal(err)
			}
			if st := p.Stats(); st.Active != 0 {
				t.Fatalf("after PING: Active %d; want 0", st.Active)
			}
			if err := tc.run(c); err != nil {
				t.Fatal(err)
			}
			if st := p.Stats(); st.Active != 1 {
				t.Fatalf("Active %d; want 1: a connection of its own", st.Active)
			}
		})
	}
}

// nil2 drops the error reply of an unknown command, which the server
// gives on any connection.
func nil2(err error) error {
	if _, ok := err.(redis.Error); ok {
		return nil
	}
	return err
}

// TestPipelineGetSelectOwnDatabase: throttled's store sends SELECT db on
// every borrow; SELECT of the pool's own database leaves no state and
// is pipelined, SELECT of another is state, undone on Close.
func TestPipelineGetSelectOwnDatabase(t *testing.T) {
	s := redistest.StartServer(t)
	p := pipeGetPool(t, s, Config{DB: 2, MaxTotal: 4})
	c := p.Get()
	if r, err := c.Do("SELECT", "2"); err != nil || r != "OK" {
		t.Fatalf("SELECT 2 = %v, %v; want OK", r, err)
	}
	if _, err := c.Do("SET", "pg:db", "two"); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Active != 0 {
		t.Fatalf("after SELECT of the pool's database: Active %d; want 0", st.Active)
	}
	if _, err := c.Do("SELECT", 3); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Do("GET", "pg:db"); err != nil || r != nil {
		t.Fatalf("GET on database 3 = %v, %v; want nil", r, err)
	}
	c.Close()
	c = p.Get()
	defer c.Close()
	if _, err := c.Do("MULTI"); err != nil { // its own connection, back on database 2
		t.Fatal(err)
	}
	c.Do("GET", "pg:db")
	r, err := redis.Values(c.Do("EXEC"))
	if err != nil || len(r) != 1 || string(r[0].([]byte)) != "two" {
		t.Fatalf("GET on a borrowed connection after SELECT 3 was undone = %v, %v; want [two]", r, err)
	}
}

// TestPipelineGetSendReceive is throttled's GetWithTime: TIME and GET
// sent together, then two Receives.
func TestPipelineGetSendReceive(t *testing.T) {
	s := redistest.StartServer(t)
	p := pipeGetPool(t, s, Config{MaxTotal: 4})
	c := p.Get()
	defer c.Close()
	if _, err := c.Do("SET", "pg:n", 7); err != nil {
		t.Fatal(err)
	}
	c.Send("TIME")
	c.Send("GET", "pg:n")
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if tm, err := redis.Values(c.Receive()); err != nil || len(tm) != 2 {
		t.Fatalf("TIME = %v, %v", tm, err)
	}
	if n, err := redis.Int(c.Receive()); err != nil || n != 7 {
		t.Fatalf("GET = %v, %v; want 7", n, err)
	}
}

// TestPipelineGetDoEmptyBorrowsNothing: redigo's own pool (RedigoPool)
// calls Do("") when a connection is closed; with nothing sent it has
// nothing to read, and must not borrow a connection for it.
func TestPipelineGetDoEmptyBorrowsNothing(t *testing.T) {
	s := redistest.StartServer(t)
	p := pipeGetPool(t, s, Config{MaxTotal: 4})
	rp := p.RedigoPool()
	c := rp.Get()
	if _, err := c.Do("SET", "pg:e", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Borrows != 0 && st.Borrows != st.Created {
		t.Logf("Stats %+v", st)
	}
	if st := p.Stats(); st.Active != 0 {
		t.Fatalf("Active %d; want 0", st.Active)
	}
	if r, err := p.Get().Do(""); err != nil || len(r.([]any)) != 0 {
		t.Fatalf(`Do("") = %v, %v; want an empty reply`, r, err)
	}
}

// TestPipelineGetContextEndedBeforeSendBreaksNothing: a command whose
// context has ended is not sent, and the connection stays usable, as an
// exclusive one does; one that fails after it may have been sent breaks
// the connection, as an exclusive one's read deadline does.
func TestPipelineGetContextEndedBeforeSendBreaksNothing(t *testing.T) {
	s := redistest.StartServer(t)
	p := pipeGetPool(t, s, Config{MaxTotal: 4})
	c := p.Get().(redis.ConnWithContext)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.DoContext(ctx, "GET", "pg:x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("DoContext with a cancelled ctx: %v; want context.Canceled", err)
	}
	if _, err := c.DoContext(context.Background(), "GET", "pg:x"); err != nil {
		t.Fatalf("DoContext after: %v; want none", err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err() = %v; want nil", err)
	}
}

// TestPipelineGetWaitCoversPipelinedWrites: WAIT counts the replicas that
// have the writes of its own connection. A borrower whose writes went
// down a shared connection must not be told that a replica has them
// when it does not: with the replica stopped, WAIT must time out with
// 0, not return 1 at once.
func TestPipelineGetWaitCoversPipelinedWrites(t *testing.T) {
	// No delay before the replica's first sync (5 s by default).
	master := redistest.StartServer(t, "--repl-diskless-sync-delay", "0")
	replica := redistest.StartServer(t)
	replica.Do(t, "REPLICAOF", "127.0.0.1", strconv.Itoa(master.Port()))
	waitForWithin(t, 10*time.Second, func() bool {
		info, _ := master.Exec("INFO", "replication")
		s, _ := info.(string)
		return strings.Contains(s, "state=online")
	})
	p := pipeGetPool(t, master, Config{MaxTotal: 8})

	waitAfterPipelinedSet(t, p.Get, "pg:wait", replica, nil)
}

// TestPipelineGetManyBorrowers: goroutines borrowing with Get, each
// mixing pipelined commands with transactions on its own connection and
// reading back its own keys; every reply reaches its caller, and no
// connection is left borrowed or open beyond MaxTotal.
func TestPipelineGetManyBorrowers(t *testing.T) {
	s := redistest.StartServer(t)
	const name = "pipeget-many"
	p := pipeGetPool(t, s, Config{ClientName: name, MaxTotal: 6})
	const workers, rounds = 64, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "pg:many:" + strconv.Itoa(w)
			for i := range rounds {
				c := p.Get()
				val := fmt.Sprintf("%d/%d", w, i)
				if _, err := c.Do("SET", key, val); err != nil {
					errs <- err
					c.Close()
					return
				}
				if got, err := redis.String(c.Do("GET", key)); err != nil || got != val {
					errs <- fmt.Errorf("GET %s = %q, %v; want %q", key, got, err, val)
					c.Close()
					return
				}
				if i%4 == 0 {
					c.Do("MULTI")
					c.Do("INCR", key+":n")
					if _, err := c.Do("EXEC"); err != nil {
						errs <- err
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := p.Stats(); st.Active != 0 || st.Created > 6 {
		t.Errorf("Stats: Active %d, Created %d; want 0 and at most 6", st.Active, st.Created)
	}
	if n := s.CountClients(t, func(c redistest.ClientInfo) bool { return c.Name == name }); n > 6 {
		t.Errorf("%d connections on the server; want at most 6", n)
	}
	p.Close()
	s.WaitClients(t, 0, func(c redistest.ClientInfo) bool { return c.Name == name })
}

// BenchmarkPipelineGet is the measurement behind PipelineGet's choices,
// at 64 goroutines on one redis-server: a borrowed connection's one-shot
// GET (Get, Do, Close), and a batch of four GETs sent with Send (Get,
// four Sends, Flush, four Receives, Close), each with PipelineGet off
// and on. A batch takes a connection of its own with PipelineGet too;
// this shows what that costs next to one-shot commands shared.
func BenchmarkPipelineGet(b *testing.B) {
	s := redistest.StartServer(b)
	s.Do(b, "SET", "k", strings.Repeat("v", 100))
	for _, on := range []bool{false, true} {
		p := newTestPool(b, Config{Addr: s.Addr(), MaxTotal: 16, PipelineGet: on})
		for _, op := range []string{"Do", "Send4"} {
			b.Run(fmt.Sprintf("PipelineGet=%v/%s", on, op), func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(max(64/runtime.GOMAXPROCS(0), 1))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := getOp(p.Get(), op); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// getOp runs op of BenchmarkPipelineGet on c, and closes it.
func getOp(c redis.Conn, op string) error {
	defer c.Close()
	if op == "Do" {
		_, err := c.Do("GET", "k")
		return err
	}
	for range 4 {
		c.Send("GET", "k")
	}
	if err := c.Flush(); err != nil {
		return err
	}
	for range 4 {
		if _, err := c.Receive(); err != nil {
			return err
		}
	}
	return nil
}

// TestPipelineGetCloseStopsABorrowingReceiver: redigo stops a pub/sub
// receiver by closing its connection from another goroutine. A
// PipelineGet connection's first Receive borrows, and may wait for a
// connection; Close must end that wait at once, as it ends a read,
// rather than wait BorrowTimeout for it, and the receiver must learn
// that the connection was closed.
func TestPipelineGetCloseStopsABorrowingReceiver(t *testing.T) {
	s := redistest.StartServer(t)
	p := pipeGetPool(t, s, Config{MaxTotal: 1, BorrowTimeout: 20 * time.Second})
	held := mustGet(t, p)
	defer held.Close()
	mustDo(t, held, "MULTI") // the pool's only connection, borrowed

	c := p.Get()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Receive()
		errc <- err
	}()
	waitForWithin(t, 5*time.Second, func() bool { return p.Stats().Waiting == 1 })
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close still waiting after 5s for the receiver's borrow (BorrowTimeout 20s)")
	}
	if err := <-errc; !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Receive ended by Close: %v; want ErrConnClosed", err)
	}
	if st := p.Stats(); st.Waiting != 0 || st.Active != 1 {
		t.Fatalf("Stats: Waiting %d, Active %d; want 0 and 1 (the held connection)", st.Waiting, st.Active)
	}
}

// TestPipelineGetFailedBorrowBreaksTheConnection: redigo's transaction
// idiom ignores the errors of Send("MULTI") and the queued commands and
// reads EXEC's. On an exclusive connection whose Get failed, every call
// fails and nothing runs. A PipelineGet connection borrows at MULTI; if
// that borrow fails and a later one succeeds, the queued INCRs must not
// run outside a transaction: a failed borrow breaks the connection, as
// a failed Get leaves an error connection.
func TestPipelineGetFailedBorrowBreaksTheConnection(t *testing.T) {
	s := redistest.StartServer(t)
	p := pipeGetPool(t, s, Config{MaxTotal: 2, FailFast: true})
	for _, mode := range []string{"Send", "Do"} {
		t.Run(mode, func(t *testing.T) {
			key := "pg:failed:" + mode
			held1, held2 := mustGet(t, p), mustGet(t, p)
			mustDo(t, held1, "CLIENT", "ID") // borrows
			mustDo(t, held2, "CLIENT", "ID")
			defer held1.Close()

			c := p.Get()
			defer c.Close()
			var err error
			if mode == "Send" {
				err = c.Send("MULTI")
			} else {
				_, err = c.Do("MULTI")
			}
			if !errors.Is(err, ErrPoolExhausted) {
				t.Fatalf("MULTI with every connection borrowed: %v; want ErrPoolExhausted", err)
			}
			held2.Close() // a connection is free again

			var exec error
			if mode == "Send" {
				c.Send("INCR", key)
				c.Send("INCR", key)
				_, exec = c.Do("EXEC")
			} else {
				c.Do("INCR", key)
				c.Do("INCR", key)
				_, exec = c.Do("EXEC")
			}
			if !errors.Is(exec, ErrPoolExhausted) {
				t.Errorf("EXEC after the failed MULTI: %v; want the borrow's ErrPoolExhausted", exec)
			}
			if !errors.Is(c.Err(), ErrPoolExhausted) {
				t.Errorf("Err() = %v; want ErrPoolExhausted", c.Err())
			}
			if v, err := s.Exec("GET", key); err != nil || v != nil {
				t.Fatalf("%s = %v, %v; want nil: the INCRs ran outside the transaction", key, v, err)
			}
		})
	}
}

// TestPipelineGetRepliesAsAnExclusiveConnection runs each script on a
// PipelineGet connection and on an exclusive one, each on a server of
// its own, and compares every reply and error.
func TestPipelineGetRepliesAsAnExclusiveConnection(t *testing.T) {
	type step struct {
		send bool // Send, not Do
		cmd  string
		args []any
	}
	do := func(cmd string, args ...any) step { return step{cmd: cmd, args: args} }
	send := func(cmd string, args ...any) step { return step{send: true, cmd: cmd, args: args} }
	scripts := []struct {
		name  string
		steps []step
	}{
		// WAIT after pipelined writes and Sends whose replies are
		// unread: Do returns the last reply and the first error, and
		// the PUBLISH before WAIT must not take their place.
		{"WaitAfterSends", []step{do("SET", "s", "x"), send("SET", "t", "y"), send("INCR", "s"), do("WAIT", 0, 0)}},
		{"DoEmptyAfterSends", []step{do("SET", "s", "x"), send("INCR", "s"), send("GET", "s"), do("")}},
		{"SelectOther", []step{do("SET", "s", "0"), do("SELECT", 3), do("GET", "s"), do("SET", "s", "3"), do("SELECT", 0), do("GET", "s")}},
		{"WatchGetMulti", []step{do("SET", "s", "1"), do("WATCH", "s"), do("GET", "s"), do("MULTI"), do("INCR", "s"), do("EXEC"), do("GET", "s")}},
		{"MultiError", []step{do("SET", "s", "x"), do("MULTI"), do("INCR", "s"), do("NOSUCH"), do("EXEC"), do("GET", "s")}},
		{"Unknown", []step{do("NOSUCH", "s"), do("SET", "s", "1"), do("GET", "s")}},
		{"ExpireTTL", []step{do("SET", "s", "1"), do("EXPIRE", "s", 100), do("TTL", "s"), do("PERSIST", "s"), do("TTL", "s")}},
		{"EvalWait", []step{do("EVAL", "return redis.call('SET', KEYS[1], 'v')", 1, "s"), do("WAIT", 0, 0), do("GET", "s")}},
		{"SetName", []step{do("CLIENT", "SETNAME", "mine"), do("CLIENT", "GETNAME")}},
		// Reply types as the pipeline parses them and as redigo does.
		{"ReplyTypes", []step{
			do("SET", "e", ""), do("GET", "e"), do("GET", "missing"), do("HGETALL", "missing"),
			do("INCRBY", "i", -9223372036854775807), do("INCRBYFLOAT", "f", "1.5"),
			do("XADD", "x", "1-1", "a", "b"), do("XRANGE", "x", "-", "+"), do("SCAN", 0, "MATCH", "x"),
			do("ZADD", "z", 1, "m"), do("ZRANGE", "z", 0, -1, "WITHSCORES"), do("SET", "big", strings.Repeat("b", 1<<20)),
			do("STRLEN", "big"), do("GETRANGE", "big", 0, 3), do("LPOP", "missing", 2), do("HSET", "s", "f", "v"),
		}},
	}
	run := func(t *testing.T, p *Pool, steps []step) []string {
		c := p.Get()
		defer c.Close()
		var got []string
		for _, st := range steps {
			if st.send {
				if err := c.Send(st.cmd, st.args...); err != nil {
					got = append(got, "send error: "+err.Error())
				}
				continue
			}
			r, err := c.Do(st.cmd, st.args...)
			got = append(got, fmt.Sprintf("%s %v", formatReply(r), err))
		}
		return got
	}
	piped := pipeGetPool(t, redistest.StartServer(t), Config{MaxTotal: 2})
	s := redistest.StartServer(t)
	exclusive := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 2, PipelineConns: -1})
	for _, sc := range scripts {
		t.Run(sc.name, func(t *testing.T) {
			want := run(t, exclusive, sc.steps)
			got := run(t, piped, sc.steps)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("PipelineGet:\n\t%s\nexclusive:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
			}
		})
	}
}

// TestPipelineGetFailFastTakesTheIdleSharedConnection: with FailFast a
// borrow fails when every connection is borrowed. A connection the
// pipeline holds with nothing in flight is not borrowed: it goes back
// at once to a borrower that waits for one, and must to a FailFast
// borrower too. Otherwise the plainest PipelineGet sequence, a
// pipelined SET and then MULTI, fails on a pool of one connection, as
// does a borrow right after Pool.Do.
func TestPipelineGetFailFastTakesTheIdleSharedConnection(t *testing.T) {
	s := redistest.StartServer(t)
	p := pipeGetPool(t, s, Config{MaxTotal: 1, FailFast: true})

	c := p.Get()
	mustDo(t, c, "SET", "pg:ff", 1) // the pipeline takes the pool's one connection
	if r, err := c.Do("MULTI"); err != nil || r != "OK" {
		t.Fatalf("MULTI after a pipelined SET, FailFast, MaxTotal 1: %v, %v; want OK", r, err)
	}
	mustDo(t, c, "INCR", "pg:ff")
	if r, err := redis.Ints(c.Do("EXEC")); err != nil || len(r) != 1 || r[0] != 2 {
		t.Fatalf("EXEC = %v, %v; want [2]", r, err)
	}
	c.Close()

	ctx := context.Background()
	if _, err := p.Do(ctx, "SET", "pg:ff", 1); err != nil {
		t.Fatal(err)
	}
	c, err := p.GetContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do("CLIENT", "ID"); err != nil {
		t.Fatalf("a borrow right after Pool.Do, FailFast, MaxTotal 1: %v; want none", err)
	}

	// Truly exhausted, FailFast still fails at once.
	c2 := p.Get()
	defer c2.Close()
	start := time.Now()
	if _, err := c2.Do("CLIENT", "ID"); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("a second borrow: %v; want ErrPoolExhausted", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("FailFast failed after %v; want at once", d)
	}
}

// TestPipelineGetPubSubAndClose: redigo's pub/sub idiom on a PipelineGet
// connection — a receiver goroutine in Receive while another subscribes
// (both may be first to borrow) — then Close while the receiver is
// blocked reading, Close twice, and every method after Close.
func TestPipelineGetPubSubAndClose(t *testing.T) {
	s := redistest.StartServer(t)
	const name = "pipeget-pubsub"
	p := pipeGetPool(t, s, Config{ClientName: name, MaxTotal: 4})
	c := p.Get()
	psc := redis.PubSubConn{Conn: c}
	got := make(chan any, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			v := psc.ReceiveWithTimeout(0)
			got <- v
			if _, ok := v.(error); ok {
				return
			}
		}
	}()
	if err := psc.Subscribe("pg:ch"); err != nil {
		t.Fatal(err)
	}
	waitForWithin(t, 5*time.Second, func() bool {
		r, _ := redis.Values(s.Exec("PUBSUB", "NUMSUB", "pg:ch"))
		return len(r) == 2 && r[1] == int64(1)
	})
	s.Do(t, "PUBLISH", "pg:ch", "hello")
	for received := false; !received; {
		select {
		case v := <-got:
			switch v := v.(type) {
			case redis.Message:
				received = string(v.Data) == "hello"
			case error:
				t.Fatalf("receiver: %v", v)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no message within 5s")
		}
	}

	c.Close() // the receiver is blocked reading
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("receiver still blocked 5s after Close")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, call := range map[string]func() error{
		"Do":                 func() error { return second(c.Do("GET", "k")) },
		"Send":               func() error { return c.Send("GET", "k") },
		"Flush":              c.Flush,
		"Receive":            func() error { return second(c.Receive()) },
		"DoWithTimeout":      func() error { return second(redis.DoWithTimeout(c, time.Second, "GET", "k")) },
		"ReceiveWithTimeout": func() error { return second(redis.ReceiveWithTimeout(c, time.Second)) },
		"Err":                c.Err,
	} {
		if err := call(); !errors.Is(err, ErrConnClosed) {
			t.Errorf("%s after Close: %v; want ErrConnClosed", name, err)
		}
	}
	// The subscribed connection was closed, not kept.
	waitForWithin(t, 5*time.Second, func() bool {
		st := p.Stats()
		n := s.CountClients(t, func(c redistest.ClientInfo) bool { return c.Name == name })
		return st.Active == 0 && n == st.Idle+st.Shared
	})
	if n := s.CountClients(t, func(c redistest.ClientInfo) bool { return c.Name == name && c.Fields["sub"] != "0" }); n != 0 {
		t.Fatalf("%d subscribed connections left on the server; want 0", n)
	}
}

// TestPipelineGetWaitNeedsPublish: the PUBLISH before WAIT after
// pipelined writes needs the ACL user's permission to publish to
// __redispool:wait; without it WAIT fails, naming the channel, rather
// than answer for writes it does not cover. WAIT with no pipelined
// write before it needs no PUBLISH.
func TestPipelineGetWaitNeedsPublish(t *testing.T) {
	s := redistest.StartServer(t)
	s.Do(t, "ACL", "SETUSER", "nopub", "on", ">pw", "~*", "&*", "+@all", "-publish")
	p := pipeGetPool(t, s, Config{Username: "nopub", Password: "pw", MaxTotal: 2})

	c := p.Get()
	if n, err := redis.Int(c.Do("WAIT", 0, 0)); err != nil || n != 0 {
		t.Fatalf("WAIT with nothing pipelined = %d, %v; want 0, no error", n, err)
	}
	c.Close()

	c = p.Get()
	defer c.Close()
	mustDo(t, c, "SET", "pg:nopub", 1)
	_, err := c.Do("WAIT", 0, 0)
	if err == nil || !strings.Contains(err.Error(), "PUBLISH to __redispool:wait before WAIT") || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("WAIT after a pipelined SET without PUBLISH permission: %v; want the PUBLISH's NOPERM error", err)
	}
}
