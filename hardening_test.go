package redispool

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

// Regression tests for the defects of issue 8, each against a real
// redis-server (or, for hostile replies, a fake one).

// 1. redigo leaves a connection's read deadline set after each reply; a
// connection idle for longer than ReadTimeout must still pass the borrow
// check, and a dead one must still fail it.
func TestIdleLongerThanReadTimeoutIsReused(t *testing.T) {
	s := redistest.StartServer(t)
	const readTimeout = 300 * time.Millisecond
	p := newTestPool(t, Config{Addr: s.Addr(), ReadTimeout: readTimeout, PingAfterIdle: -1})
	ctx := context.Background()
	for i := range 3 {
		if _, err := p.Do(ctx, "PING"); err != nil {
			t.Fatalf("PING %d: %v", i, err)
		}
		time.Sleep(readTimeout + 200*time.Millisecond)
	}
	if st := p.Stats(); st.Created != 1 || st.Destroyed != 0 {
		t.Fatalf("Stats = %+v; want the connection idle past ReadTimeout reused: Created 1, Destroyed 0", st)
	}

	// A connection killed while idle past ReadTimeout is still caught by
	// the peek, before the borrower's command.
	if n := s.KillClients(t, nil); n != 1 {
		t.Fatalf("killed %d clients; want 1", n)
	}
	s.WaitClients(t, 0, nil)
	time.Sleep(readTimeout + 200*time.Millisecond)
	if _, err := p.Do(ctx, "PING"); err != nil {
		t.Fatalf("PING after the idle connection was killed: %v", err)
	}
	if st := p.Stats(); st.DestroyedUnhealthy != 1 || st.Created != 2 {
		t.Fatalf("Stats = %+v; want the killed connection caught on borrow (DestroyedUnhealthy 1) and replaced", st)
	}
}

// 1. The same under TLS, where the peek reads the TCP socket under the
// TLS connection whose deadline redigo set.
func TestIdleLongerThanReadTimeoutIsReusedTLS(t *testing.T) {
	s, certs := redistest.StartTLSServer(t)
	const readTimeout = 300 * time.Millisecond
	cfg := Config{Addr: s.Addr(), TLSConfig: certs.ClientConfig(), ReadTimeout: readTimeout, PingAfterIdle: -1}
	p := newTestPool(t, cfg)
	for i := range 2 {
		if _, err := p.Do(context.Background(), "PING"); err != nil {
			t.Fatalf("PING %d: %v", i, err)
		}
		time.Sleep(readTimeout + 200*time.Millisecond)
	}
	if st := p.Stats(); st.Created != 1 || st.Destroyed != 0 {
		t.Fatalf("Stats = %+v; want the TLS connection idle past ReadTimeout reused: Created 1, Destroyed 0", st)
	}
}

// 1. With the deadline no longer failing the peek, a connection idle for
// PingAfterIdle is PINGed rather than redialed.
func TestPingAfterIdleRunsAfterReadTimeout(t *testing.T) {
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), ReadTimeout: 200 * time.Millisecond, PingAfterIdle: 400 * time.Millisecond})
	ctx := context.Background()
	if _, err := p.Do(ctx, "ECHO", "a"); err != nil {
		t.Fatal(err)
	}
	pings := commandCalls(t, s, "ping")
	time.Sleep(700 * time.Millisecond)
	if _, err := p.Do(ctx, "ECHO", "b"); err != nil {
		t.Fatal(err)
	}
	if got := commandCalls(t, s, "ping") - pings; got != 1 {
		t.Errorf("server saw %d PINGs for the borrow after idling past PingAfterIdle; want 1", got)
	}
	if st := p.Stats(); st.Created != 1 || st.Destroyed != 0 {
		t.Errorf("Stats = %+v; want the idle connection PINGed and reused: Created 1, Destroyed 0", st)
	}
}

// 2. redigo allows one goroutine in Receive while another Sends and
// Flushes, which is how redis.PubSubConn is used. Run under -race.
func TestPubSubReceiverAndSubscriberInTwoGoroutines(t *testing.T) {
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 1})
	c := mustGet(t, p)
	psc := redis.PubSubConn{Conn: c}
	if err := psc.Subscribe("control"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var messages int
	go func() {
		for {
			switch v := psc.ReceiveWithTimeout(10 * time.Second).(type) {
			case redis.Subscription:
				if v.Count == 0 {
					done <- nil
					return
				}
			case redis.Message:
				messages++
			case error:
				done <- v
				return
			}
		}
	}()
	const rounds = 200
	for i := range rounds {
		ch := fmt.Sprintf("ch-%d", i)
		if err := psc.Subscribe(ch); err != nil {
			t.Fatal(err)
		}
		if err := psc.PSubscribe(ch + ".*"); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			s.Exec("PUBLISH", ch, "x")
		}
		if err := psc.Unsubscribe(ch); err != nil {
			t.Fatal(err)
		}
		if err := psc.PUnsubscribe(ch + ".*"); err != nil {
			t.Fatal(err)
		}
	}
	if err := psc.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("receiver: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("receiver did not see the last unsubscribe within 20s")
	}
	c.Close()

	c = mustGet(t, p)
	defer c.Close()
	info := clientInfo(t, c)
	if info.Fields["sub"] != "0" || info.Fields["psub"] != "0" || info.Flags != "N" {
		t.Errorf("next borrower: sub=%s psub=%s flags=%s; want 0, 0, N", info.Fields["sub"], info.Fields["psub"], info.Flags)
	}
	if st := p.Stats(); st.Created != 1 {
		t.Errorf("Stats = %+v; want the subscriber's connection reset and reused", st)
	}
}

// 2. A pipeline whose sender and receiver are separate goroutines, with
// a transaction per round, must leave no transaction open for the next
// borrower.
func TestSplitSenderReceiverTransactionsLeaveNoState(t *testing.T) {
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 1})
	const rounds = 3000
	for attempt := range 3 {
		c := mustGet(t, p)
		errc := make(chan error, 2)
		go func() {
			for r := range rounds {
				c.Send("MULTI")
				c.Send("SET", "k", r)
				c.Send("EXEC")
				if r%8 == 7 {
					if err := c.Flush(); err != nil {
						errc <- err
						return
					}
				}
			}
			errc <- c.Flush()
		}()
		go func() {
			for r := range rounds {
				for _, want := range []string{"OK", "QUEUED"} {
					if got, err := redis.String(c.Receive()); err != nil || got != want {
						errc <- fmt.Errorf("round %d: got %q, %v; want %s", r, got, err, want)
						return
					}
				}
				if _, err := redis.Values(c.Receive()); err != nil {
					errc <- fmt.Errorf("round %d: EXEC: %v", r, err)
					return
				}
			}
			errc <- nil
		}()
		for range 2 {
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
		c.Close()

		c = mustGet(t, p)
		if got, err := c.Do("SET", "after", attempt); err != nil || got != "OK" {
			t.Fatalf("attempt %d: next borrower's SET = %v, %v; want OK (QUEUED means a MULTI leaked)", attempt, got, err)
		}
		if info := clientInfo(t, c); info.Flags != "N" || info.Fields["multi"] != "-1" {
			t.Fatalf("attempt %d: next borrower's flags=%s multi=%s; want N, -1", attempt, info.Flags, info.Fields["multi"])
		}
		c.Close()
	}
}

// 2. Closing a borrowed connection from two goroutines returns it once.
func TestConcurrentCloseReturnsOnce(t *testing.T) {
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 2})
	const n = 200
	for range n {
		c := mustGet(t, p)
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Close()
			}()
		}
		wg.Wait()
	}
	if st := p.Stats(); st.Active != 0 || st.Idle != 1 || st.Created != 1 || st.Borrows != n {
		t.Fatalf("Stats = %+v; want Active 0, Idle 1, Created 1, Borrows %d", st, n)
	}
}

// hostile returns a handler that answers the first command with prefix
// followed by filler bytes up to size bytes in all, without a line end,
// then keeps the connection open without writing. Its buffers are made
// here, so that what a test measures is the client's allocation.
func hostile(prefix string, filler byte, size int) func(net.Conn) {
	chunk := bytes.Repeat([]byte{filler}, 64<<10)
	return func(conn net.Conn) {
		if _, err := redistest.ReadCommand(bufio.NewReader(conn)); err != nil {
			return
		}
		if _, err := io.WriteString(conn, prefix); err != nil {
			return
		}
		for left := size - len(prefix); left > 0; left -= len(chunk) {
			if _, err := conn.Write(chunk[:min(left, len(chunk))]); err != nil {
				return
			}
		}
		io.Copy(io.Discard, conn) //nolint:errcheck // until closed
	}
}

// deepNesting returns a handler that answers the first command with
// levels nested one-element arrays, then keeps the connection open
// without writing.
func deepNesting(levels int) func(net.Conn) {
	reply := bytes.Repeat([]byte("*1\r\n"), levels)
	return func(conn net.Conn) {
		if _, err := redistest.ReadCommand(bufio.NewReader(conn)); err != nil {
			return
		}
		if _, err := conn.Write(reply); err != nil {
			return
		}
		io.Copy(io.Discard, conn) //nolint:errcheck // until closed
	}
}

// 3. A reply must not crash the process (redigo's parser recurses once
// per nesting level) or grow memory without bound (redigo reads a line
// until its CRLF).
func TestHostileRepliesFailCleanly(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handler func(net.Conn)
		wantErr string
		maxMB   uint64
	}{
		// 36 MB of "*1\r\n" overflowed the goroutine stack: fatal error.
		{"deep nesting", deepNesting(9 << 20), "nested deeper than", 64},
		// An error line has the same limit (TestRespGuard).
		{"endless status line", hostile("+", 'x', maxTextLine+2<<20), "line longer than", 8 * maxTextLine >> 20},
		{"endless integer line", hostile(":", '1', 8<<20), "line longer than", 64},
		{"endless bulk header", hostile("$5", 'x', 8<<20), "line longer than", 64},
		{"endless line of unknown type", hostile("?", 'x', 8<<20), "line longer than", 64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake := redistest.NewFakeServer(t, redistest.PongFirst(tt.handler))
			p := newTestPool(t, Config{Addr: fake.Addr(), MaxTotal: 1, DialTimeout: 20 * time.Second, ReadTimeout: 20 * time.Second, PingAfterIdle: -1})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := p.Do(context.Background(), "GET", "k")
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), fake.Addr()) {
				t.Fatalf("GET = %v; want an error containing %q and naming %s", err, tt.wantErr, fake.Addr())
			}
			alloc := (after.TotalAlloc - before.TotalAlloc) >> 20
			if alloc > tt.maxMB {
				t.Errorf("the reply made the client allocate %d MB; want at most %d MB", alloc, tt.maxMB)
			}
			t.Logf("%v; %d MB allocated", err, alloc)
			if st := p.Stats(); st.Idle != 0 || st.Active != 0 {
				t.Errorf("Stats = %+v; want no connection kept", st)
			}
		})
	}
}

// 4. SCRIPT DEBUG changes how the connection's next EVAL runs; the next
// borrower must not inherit it.
func TestScriptDebugIsNotLeaked(t *testing.T) {
	for _, mode := range []string{"YES", "SYNC"} {
		t.Run(mode, func(t *testing.T) {
			s := redistest.StartServer(t)
			p := isolationPool(t, s)
			c := mustGet(t, p)
			if got, err := c.Do("SCRIPT", "DEBUG", mode); err != nil || got != "OK" {
				t.Fatalf("SCRIPT DEBUG %s = %v, %v", mode, got, err)
			}
			c.Close()

			c = mustGet(t, p)
			defer c.Close()
			got, err := redis.String(redis.DoWithTimeout(c, 2*time.Second, "EVAL", "return 'plain'", 0))
			if err != nil || got != "plain" {
				t.Fatalf("next borrower's EVAL = %q, %v; want \"plain\"", got, err)
			}
			assertPristine(t, s, c)
		})
	}
}

// 5. At maxclients Redis accepts a connection, writes an error and
// closes it. A dial that sends no command of its own must still notice,
// so the borrow fails with a connection error and nothing dead is kept.
func TestMaxClientsFailsTheBorrow(t *testing.T) {
	s := redistest.StartServer(t)
	admins := len(s.ClientList(t))
	s.Do(t, "CONFIG", "SET", "maxclients", admins+2)
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 4, PingAfterIdle: -1})
	ctx := context.Background()
	var held []redis.Conn
	for range 2 {
		c := mustGet(t, p)
		if _, err := c.Do("SET", "k", "v"); err != nil {
			t.Fatalf("SET on one of the 2 connections the server allows: %v", err)
		}
		held = append(held, c)
	}
	c, err := p.GetContext(ctx)
	if err == nil {
		reply, doErr := c.Do("SET", "k", "v")
		c.Close()
		t.Fatalf("third borrow succeeded (its SET = %v, %v); want a connection error", reply, doErr)
	}
	// The server closes with the PING unread, so a reset may in theory
	// overtake its error line.
	rejected := strings.Contains(err.Error(), "max number of clients reached") ||
		strings.Contains(err.Error(), "connection reset by peer") || strings.Contains(err.Error(), "broken pipe")
	if !strings.HasPrefix(err.Error(), "redispool: ") || !strings.Contains(err.Error(), s.Addr()) || !rejected {
		t.Errorf("third borrow: %v; want an error naming %s and the server's rejection", err, s.Addr())
	}
	for _, c := range held {
		c.Close()
	}
	if st := p.Stats(); st.Idle != 2 || st.Created != 2 {
		t.Errorf("Stats = %+v; want the 2 accepted connections idle and no rejected one kept", st)
	}
	if got := s.CountClients(t, nil); got != 2 {
		t.Errorf("server has %d pool clients; want 2", got)
	}
}

// 7. The evictor peeks at idle connections: dead ones are closed within
// an eviction run, so Stats tells the truth, and MinIdle is refilled
// without waiting for a borrower.
func TestEvictorClosesDeadIdleAndRefillsMinIdle(t *testing.T) {
	s := redistest.StartServer(t)
	const minIdle = 4
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 8, MinIdle: minIdle, EvictionInterval: 200 * time.Millisecond, PingAfterIdle: -1})
	s.WaitClients(t, minIdle, nil)
	waitFor(t, func() bool { return p.Stats().Idle == minIdle })
	before := s.ClientList(t)
	if n := s.KillClients(t, nil); n != minIdle {
		t.Fatalf("killed %d clients; want %d", n, minIdle)
	}
	deadline := time.Now().Add(3 * time.Second) // many eviction runs
	for {
		st := p.Stats()
		server := s.CountClients(t, nil)
		if st.DestroyedUnhealthy == minIdle && st.Idle == minIdle && server == minIdle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("3s after CLIENT KILL: Stats = %+v, server clients %d; want the %d dead connections closed (DestroyedUnhealthy) and MinIdle refilled", st, server, minIdle)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, ci := range s.ClientList(t) {
		for _, old := range before {
			if ci.ID == old.ID && ci.Name != redistest.AdminName {
				t.Errorf("client %d survived CLIENT KILL", ci.ID)
			}
		}
	}
}

// 9. Close ends a dial in flight: its borrower gets ErrPoolClosed at
// once, not after DialTimeout.
func TestCloseInterruptsInFlightDial(t *testing.T) {
	fake := redistest.NewFakeServer(t, redistest.Silent()) // never answers AUTH
	p, err := New(context.Background(), Config{Addr: fake.Addr(), Password: "pw", DialTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := p.GetContext(context.Background())
		errc <- err
	}()
	waitFor(t, func() bool { return fake.Accepted() == 1 })
	time.Sleep(50 * time.Millisecond) // the dial waits for AUTH's reply
	start := time.Now()
	p.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrPoolClosed) {
			t.Errorf("borrow during Close: %v; want ErrPoolClosed", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("borrow returned %v after Close; want at once", d)
		}
	case <-time.After(8 * time.Second):
		fake.Close() // ends the dial, so the goroutine returns
		<-errc
		t.Fatal("borrow still dialing 8s after Close")
	}
	if st := p.Stats(); st.Created != 0 || st.Active != 0 || st.Idle != 0 {
		t.Errorf("Stats = %+v; want no connection", st)
	}
}
