package redispool

// Attacks on the Sentinel target with hostile Sentinels and hostile
// data nodes: a Sentinel that hangs, one that answers garbage, one that
// flaps, one that names a server that is not Redis, and Close while the
// resolver is stuck. Each is bounded and runs against fakes built on
// redistest.Dispatch and real redis-servers.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redispool/redispool/redistest"
	"go.uber.org/goleak"
)

// hostileSentinel is a fake Sentinel for master "m" whose answer to
// GET-MASTER-ADDR-BY-NAME is get(), written as it is, and "" to hang up
// without one. SENTINEL MASTER gets config-epoch 0, SUBSCRIBE its
// confirmation and then silence, PING its pub/sub reply.
func hostileSentinel(t testing.TB, get func() string) *redistest.FakeServer {
	t.Helper()
	return redistest.NewFakeServer(t, sentinelHandler(0, func() (string, bool) {
		r := get()
		return r, r == ""
	}))
}

// hangUntilClosed blocks until the server closes c: a Sentinel that took
// the command and never answers.
func hangUntilClosed(c *redistest.FakeConn) {
	if dc, ok := c.Conn.(interface{ Done() <-chan struct{} }); ok {
		<-dc.Done()
	}
}

// TestAttackSentinelHungSentinel: a Sentinel that accepts and never
// answers costs a query at most its Timeout, the honest Sentinels are
// used, and a borrow retrying through a failover gives up at
// BorrowTimeout, not at BorrowTimeout plus a query stuck on the hung
// Sentinel.
func TestAttackSentinelHungSentinel(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	ctx := context.Background()

	t.Run("listed first, the honest Sentinels answer", func(t *testing.T) {
		srv := redistest.StartServer(t)
		hung := redistest.NewFakeServer(t, redistest.Silent())
		h, p := splitHostPort(t, srv.Addr())
		honest := func() string { return addrReply(h, p) }
		const timeout = 300 * time.Millisecond
		pool := newTestPool(t, Config{
			ClientName: sentinelPoolName,
			Sentinel: &SentinelConfig{MasterName: "m", Timeout: timeout, PollInterval: -1,
				Addrs: []string{hung.Addr(), hostileSentinel(t, honest).Addr(), hostileSentinel(t, honest).Addr()}},
		})
		start := time.Now()
		if _, err := pool.Do(ctx, "SET", "k", "v"); err != nil {
			t.Fatalf("SET with one hung Sentinel of three: %v", err)
		}
		// Two of three agree: the query does not wait for the hung one.
		if el := time.Since(start); el > timeout+2*time.Second {
			t.Errorf("first SET took %v; want well under Timeout %v plus slack", el, timeout)
		}
		if pool.Addr() != srv.Addr() {
			t.Errorf("Addr = %s; want %s", pool.Addr(), srv.Addr())
		}
	})

	t.Run("a retrying borrow ends at BorrowTimeout", func(t *testing.T) {
		// A fake master that says master, and then goes away.
		master := redistest.NewFakeServer(t, redistest.Dispatch(func(_ *redistest.FakeConn, cmd []string) (string, bool) {
			if len(cmd) == 0 {
				return "", true
			}
			if strings.EqualFold(cmd[0], "ROLE") {
				return "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n", false
			}
			return "+OK\r\n", false
		}))
		var hang atomic.Bool
		h, p := splitHostPort(t, master.Addr())
		stalling := redistest.NewFakeServer(t, redistest.Dispatch(func(c *redistest.FakeConn, cmd []string) (string, bool) {
			if len(cmd) > 1 && strings.EqualFold(cmd[0], "SENTINEL") && hang.Load() {
				hangUntilClosed(c)
				return "", true
			}
			if len(cmd) > 1 && strings.EqualFold(cmd[1], "MASTER") {
				return "*2\r\n$12\r\nconfig-epoch\r\n$1\r\n0\r\n", false
			}
			return addrReply(h, p), false
		}))
		honest := hostileSentinel(t, func() string { return addrReply(h, p) })
		const borrowTimeout = 200 * time.Millisecond
		pool := newTestPool(t, Config{
			BorrowTimeout: borrowTimeout,
			Sentinel: &SentinelConfig{MasterName: "m", Timeout: 5 * time.Second, PollInterval: -1,
				Addrs: []string{stalling.Addr(), honest.Addr()}},
		})
		c, err := pool.GetContext(ctx)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		defer c.Close() // held, so that the next Get dials
		// The master dies, and from now on every query waits for the
		// hung Sentinel: one of two is no majority.
		hang.Store(true)
		master.Close()
		start := time.Now()
		c2, err := pool.GetContext(ctx)
		el := time.Since(start)
		if err == nil {
			c2.Close()
			t.Fatalf("Get with the master gone succeeded")
		}
		if !strings.Contains(err.Error(), master.Addr()) {
			t.Errorf("Get = %v; want the dial error naming the master %s", err, master.Addr())
		}
		if el > borrowTimeout+1500*time.Millisecond {
			t.Errorf("Get gave up after %v; want about BorrowTimeout %v (the Sentinel Timeout is 5s)", el, borrowTimeout)
		}
	})
}

func splitHostPort(t testing.TB, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// TestAttackSentinelGarbageAnswers: a Sentinel that answers with the
// wrong type, the wrong length, an address that is none, a huge bulk,
// bytes that are not RESP, or hangs up mid-reply is an error that names
// it, alone; beside an honest Sentinel it is outvoted and the master is
// found. An address with an empty host is not dialed as the local host.
func TestAttackSentinelGarbageAnswers(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	srv := redistest.StartServer(t)
	h, p := splitHostPort(t, srv.Addr())
	for _, tt := range []struct {
		name  string
		reply string
		want  string // in the error, besides the Sentinel's address
	}{
		{"integer", ":1\r\n", "GET-MASTER-ADDR-BY-NAME"},
		{"one element", "*1\r\n" + bulkOf(h), "GET-MASTER-ADDR-BY-NAME"},
		{"three elements", "*3\r\n" + bulkOf(h) + bulkOf(p) + bulkOf(p), "GET-MASTER-ADDR-BY-NAME"},
		{"non-numeric port", addrReply(h, "redis"), "port"},
		{"port 0", addrReply(h, "0"), "port"},
		{"port 70000", addrReply(h, "70000"), "port"},
		{"negative port", addrReply(h, "-1"), "port"},
		{"empty host", addrReply("", p), "host"},
		{"host with a space", addrReply("a b", p), "host"},
		{"nested array", "*2\r\n*1\r\n" + bulkOf(h) + bulkOf(p), "GET-MASTER-ADDR-BY-NAME"},
		{"error reply", "-ERR boom\r\n", "boom"},
		{"not RESP", "?junk\r\n", "GET-MASTER-ADDR-BY-NAME"},
		{"hang-up mid-reply", "*2\r\n$9\r\n127.0", "GET-MASTER-ADDR-BY-NAME"},
		{"huge bulk", "*2\r\n$2147483647\r\nabc", "exceeds the limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reply := tt.reply
			hangUp := strings.Contains(tt.name, "hang-up")
			// Its config-epoch 9 outranks the honest one's.
			bad := redistest.NewFakeServer(t, sentinelHandler(9, func() (string, bool) { return reply, hangUp }))

			// Alone: an error naming it, no dial of a data node.
			alone := newTestPool(t, Config{
				ClientName: sentinelPoolName,
				Sentinel:   &SentinelConfig{MasterName: "m", Addrs: []string{bad.Addr()}, PollInterval: -1, Timeout: 5 * time.Second},
			})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			err := alone.Ping(ctx)
			el := time.Since(start)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("Ping through a Sentinel answering %q succeeded, on %s", tt.reply, alone.Addr())
			}
			if !errors.Is(err, ErrNoSentinel) || !strings.Contains(err.Error(), bad.Addr()) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Ping = %v; want ErrNoSentinel naming the Sentinel %s and %q", err, bad.Addr(), tt.want)
			}
			if el > 2500*time.Millisecond {
				t.Errorf("Ping took %v; want the garbage refused at once, not at the Sentinel Timeout", el)
			}
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
				t.Errorf("allocated %d MiB for a Sentinel's answer", grown>>20)
			}
			if n := srv.CountClients(t, isPoolConn); n != 0 {
				t.Errorf("the data node has %d pool connections; want 0: no Sentinel named it", n)
			}

			// Listed first beside an honest Sentinel: the honest answer wins.
			honest := hostileSentinel(t, func() string { return addrReply(h, p) })
			both := newTestPool(t, Config{
				Sentinel: &SentinelConfig{MasterName: "m", Addrs: []string{bad.Addr(), honest.Addr()}, PollInterval: -1, Timeout: time.Second},
			})
			if _, err := both.Do(ctx, "SET", "k", "v"); err != nil {
				t.Fatalf("SET beside an honest Sentinel: %v", err)
			}
			if both.Addr() != srv.Addr() {
				t.Errorf("Addr = %s; want %s", both.Addr(), srv.Addr())
			}
		})
	}
}

func bulkOf(s string) string { return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n" }

// TestAttackSentinelMalformedSwitchMaster: a +switch-master whose new
// address is none (a port out of range, not a number) is ignored: the
// pool does not leave its master for it.
func TestAttackSentinelMalformedSwitchMaster(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	srv := redistest.StartServer(t)
	fake := redistest.NewFakeSentinel(t, "m", srv.Addr(), 1)
	pool := newTestPool(t, Config{
		Sentinel: &SentinelConfig{MasterName: "m", Addrs: []string{fake.Addr()}, PollInterval: -1},
	})
	if _, err := pool.Do(ctx, "SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	waitFor(t, func() bool { return fake.Subscribers() == 1 })
	h, _ := splitHostPort(t, srv.Addr())
	for _, port := range []string{"0", "70000", "x", "-5"} {
		if n := fake.Announce(srv.Addr(), h+":"+port); n != 1 {
			t.Fatalf("Announce reached %d subscribers; want 1", n)
		}
	}
	// A well-formed one after them, which the Sentinel then confirms,
	// shows they were all read.
	other := closedPort(t)
	fake.SetMaster(other, 2)
	fake.Announce(srv.Addr(), other)
	waitFor(t, func() bool { return pool.Addr() == other })
	time.Sleep(3 * requeryCooldown) // the queries the announcements asked for
	if st := pool.Stats(); st.MasterChanges != 1 || pool.Addr() != other {
		t.Errorf("MasterChanges = %d, Addr %s; want 1 and %s: the malformed announcements were followed",
			st.MasterChanges, pool.Addr(), other)
	}
}

// TestAttackSentinelCloseWhileResolving: Close while the resolver waits
// on a hung Sentinel, or on a hung node it asks for its ROLE, returns at
// once, and so does the borrow that waited for the resolver; nothing is
// left running. Every timeout is 20s: only Close can end the wait.
func TestAttackSentinelCloseWhileResolving(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	srv := redistest.StartServer(t)
	h, p := splitHostPort(t, srv.Addr())
	naming := func(addr string) string {
		hh, hp := splitHostPort(t, addr)
		return hostileSentinel(t, func() string { return addrReply(hh, hp) }).Addr()
	}
	for _, tt := range []struct {
		name string
		// setup returns the Sentinels, and the fake that hangs once it
		// accepted conns connections.
		setup func() (addrs []string, hung *redistest.FakeServer, conns int)
		// minIdle: no borrow; New's MinIdle fill is what waits.
		minIdle bool
	}{
		{"on a hung Sentinel", func() ([]string, *redistest.FakeServer, int) {
			hung := redistest.NewFakeServer(t, redistest.Silent())
			return []string{hung.Addr()}, hung, 2 // the query's and the subscription's
		}, false},
		{"on the ROLE of a hung node that a Sentinel named", func() ([]string, *redistest.FakeServer, int) {
			hung := redistest.NewFakeServer(t, redistest.Silent())
			return []string{naming(hung.Addr()), naming(net.JoinHostPort(h, p))}, hung, 1
		}, false},
		{"on the dial's ROLE check of a hung node", func() ([]string, *redistest.FakeServer, int) {
			hung := redistest.NewFakeServer(t, redistest.Silent())
			return []string{naming(hung.Addr())}, hung, 1
		}, false},
		{"with New's MinIdle fill on a hung Sentinel", func() ([]string, *redistest.FakeServer, int) {
			hung := redistest.NewFakeServer(t, redistest.Silent())
			return []string{hung.Addr()}, hung, 2
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addrs, hung, conns := tt.setup()
			minIdle := 0
			if tt.minIdle {
				minIdle = 1
			}
			start := time.Now()
			pool, err := New(context.Background(), Config{
				MinIdle:      minIdle,
				CheckTimeout: 20 * time.Second,
				DialTimeout:  20 * time.Second,
				Sentinel:     &SentinelConfig{MasterName: "m", Addrs: addrs, Timeout: 20 * time.Second, PollInterval: -1},
			})
			if err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el > time.Second {
				t.Errorf("New took %v; want it to return at once", el)
			}
			got := make(chan error, 1)
			if tt.minIdle {
				got <- errors.New("no borrow")
			} else {
				go func() {
					c, err := pool.GetContext(context.Background())
					if err == nil {
						c.Close()
					}
					got <- err
				}()
			}
			waitFor(t, func() bool { return hung.Accepted() >= conns })
			time.Sleep(50 * time.Millisecond) // most likely in the read by now; either way Close must end it
			start = time.Now()
			closed := make(chan struct{})
			go func() {
				pool.Close()
				close(closed)
			}()
			select {
			case <-closed:
			case <-time.After(3 * time.Second):
				t.Fatalf("Close still blocked after 3s")
			}
			if el := time.Since(start); el > time.Second {
				t.Errorf("Close took %v; want it prompt", el)
			}
			select {
			case err := <-got:
				if err == nil {
					t.Errorf("Get succeeded; want an error once the pool closed")
				}
			case <-time.After(3 * time.Second):
				t.Fatalf("Get still blocked 3s after Close")
			}
		})
	}
}

// TestAttackSentinelNamesNonRedis: a Sentinel that names a server that
// is not Redis (one that answers garbage, one that hangs up at once, one
// that announces a 2 GiB bulk) makes the borrow fail by BorrowTimeout
// with an error naming that server, and leaves no connection open to it.
func TestAttackSentinelNamesNonRedis(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	for _, tt := range []struct {
		name    string
		handler func(net.Conn)
	}{
		{"garbage", redistest.Garbage()},
		{"hang-up on accept", func(net.Conn) {}},
		{"hang-up on the first command", redistest.Hangup()},
		{"huge bulk", redistest.HugeBulk()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var live atomic.Int32
			node := redistest.NewFakeServer(t, func(c net.Conn) {
				live.Add(1)
				defer live.Add(-1)
				tt.handler(c)
			})
			h, p := splitHostPort(t, node.Addr())
			sentinel := hostileSentinel(t, func() string { return addrReply(h, p) })
			const borrowTimeout = 300 * time.Millisecond
			pool := newTestPool(t, Config{
				BorrowTimeout: borrowTimeout,
				CheckTimeout:  200 * time.Millisecond,
				Sentinel:      &SentinelConfig{MasterName: "m", Addrs: []string{sentinel.Addr()}, PollInterval: -1},
			})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := pool.Do(context.Background(), "SET", "k", "v")
			el := time.Since(start)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), node.Addr()) {
				t.Fatalf("SET = %v; want an error naming %s", err, node.Addr())
			}
			if el > borrowTimeout+2*time.Second {
				t.Errorf("SET failed after %v; want about BorrowTimeout %v", el, borrowTimeout)
			}
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
				t.Errorf("allocated %d MiB for a node's reply", grown>>20)
			}
			if st := pool.Stats(); st.Active != 0 || st.Idle != 0 || st.Shared != 0 || st.Created != 0 {
				t.Errorf("Stats %+v; want no connection made or kept", st)
			}
			waitFor(t, func() bool { return live.Load() == 0 })
			t.Logf("%v after %v, %d connections to the node", err, el, node.Accepted())
		})
	}
}

// TestAttackSentinelFlapping: a Sentinel whose answer alternates
// between the master and its replica on every query, and which sends a
// storm of +switch-master alternating between the two, must not make the
// pool write to the replica, nor grow its goroutines, its connections
// or its queries of the Sentinels without bound. Beside two honest
// Sentinels it must not stop the writes either: an address a query
// has refuted is not followed again at once. Once the storm ends the
// pool settles on the master.
func TestAttackSentinelFlapping(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	t.Run("alone", func(t *testing.T) { testFlapping(t, 0) })
	t.Run("beside two honest Sentinels", func(t *testing.T) { testFlapping(t, 2) })
}

func testFlapping(t *testing.T, honest int) {
	a, b := redistest.StartServer(t), redistest.StartServer(t)
	b.Do(t, "REPLICAOF", "127.0.0.1", a.Port())
	t.Cleanup(func() { b.Exec("REPLICAOF", "NO", "ONE") }) // or a's shutdown waits for b
	waitForWithin(t, 10*time.Second, func() bool { return redistest.Role(b) == "slave" })

	var queries atomic.Int64
	var settled atomic.Bool // the storm is over: the Sentinel names a
	var mu sync.Mutex
	subs := map[*redistest.FakeConn]bool{}
	flapper := redistest.NewFakeServer(t, redistest.Dispatch(func(c *redistest.FakeConn, cmd []string) (string, bool) {
		if len(cmd) == 0 {
			return "", true
		}
		switch strings.ToUpper(cmd[0]) {
		case "SENTINEL":
			if len(cmd) > 1 && strings.EqualFold(cmd[1], "MASTER") {
				return "*2\r\n$12\r\nconfig-epoch\r\n$1\r\n0\r\n", false
			}
			addr := a.Addr()
			if queries.Add(1)%2 == 0 && !settled.Load() {
				addr = b.Addr()
			}
			h, p, _ := net.SplitHostPort(addr)
			return addrReply(h, p), false
		case "SUBSCRIBE":
			mu.Lock()
			subs[c] = true
			mu.Unlock()
			return fmt.Sprintf("*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n", len(cmd[1]), cmd[1]), false
		case "PING":
			return "*2\r\n$4\r\npong\r\n$0\r\n\r\n", false
		}
		return "+OK\r\n", false
	}))
	// The storm: +switch-master a to b and back, every millisecond.
	stop := make(chan struct{})
	var storm sync.WaitGroup
	var announced atomic.Int64
	storm.Add(1)
	go func() {
		defer storm.Done()
		ah, ap, _ := net.SplitHostPort(a.Addr())
		bh, bp, _ := net.SplitHostPort(b.Addr())
		toB := "m " + ah + " " + ap + " " + bh + " " + bp
		toA := "m " + bh + " " + bp + " " + ah + " " + ap
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			payload := toB
			if i%2 == 1 {
				payload = toA
			}
			msg := "*3\r\n" + bulkOf("message") + bulkOf("+switch-master") + bulkOf(payload)
			mu.Lock()
			for c := range subs {
				if _, err := c.Write([]byte(msg)); err != nil {
					delete(subs, c)
				}
			}
			mu.Unlock()
			announced.Add(1)
		}
	}()
	endStorm := func() {
		select {
		case <-stop:
		default:
			close(stop)
			storm.Wait()
		}
	}
	t.Cleanup(endStorm)

	addrs := []string{flapper.Addr()}
	for range honest {
		ah, ap := splitHostPort(t, a.Addr())
		addrs = append(addrs, hostileSentinel(t, func() string { return addrReply(ah, ap) }).Addr())
	}
	const maxTotal = 8
	pool := newTestPool(t, Config{
		ClientName:    sentinelPoolName,
		MaxTotal:      maxTotal,
		BorrowTimeout: 2 * time.Second,
		Sentinel:      &SentinelConfig{MasterName: "m", Addrs: addrs, Timeout: time.Second, PollInterval: -1},
	})
	ctx := context.Background()
	baseGoroutines := runtime.NumGoroutine()

	var readOnly, failed, acked, slowest atomic.Int64
	var writers sync.WaitGroup
	deadline := time.Now().Add(time.Second)
	for w := range maxTotal {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				began := time.Now()
				var err error
				if w%2 == 0 {
					_, err = pool.Do(ctx, "INCR", "flap") // auto-pipelined
				} else {
					var c interface{ Close() error }
					rc, gerr := pool.GetContext(ctx)
					if err = gerr; err == nil {
						c = rc
						_, err = rc.Do("INCR", "flap")
						c.Close()
					}
				}
				cancel()
				if took := time.Since(began); took > time.Duration(slowest.Load()) {
					slowest.Store(int64(took)) // racy max, good enough for a bound
				}
				switch {
				case err == nil:
					acked.Add(1)
				case strings.Contains(err.Error(), "READONLY"):
					readOnly.Add(1)
				default:
					failed.Add(1)
				}
			}
		}()
	}
	// Sample what the pool holds while the storm blows.
	maxGoroutines, maxOnA, maxOnB := 0, 0, 0
	for time.Now().Before(deadline) {
		maxGoroutines = max(maxGoroutines, runtime.NumGoroutine())
		maxOnA = max(maxOnA, a.CountClients(t, isPoolConn))
		maxOnB = max(maxOnB, b.CountClients(t, isPoolConn))
		time.Sleep(20 * time.Millisecond)
	}
	writers.Wait()
	queriesInStorm := queries.Load()
	st := pool.Stats()
	t.Logf("storm: %d announcements, %d queries; writes: %d acked, %d failed, %d READONLY, slowest %v; peak: %d goroutines (base %d), %d pool connections on the master, %d on the replica; Created %d, MasterChanges %d",
		announced.Load(), queriesInStorm, acked.Load(), failed.Load(), readOnly.Load(), time.Duration(slowest.Load()), maxGoroutines, baseGoroutines, maxOnA, maxOnB, st.Created, st.MasterChanges)

	if n := readOnly.Load(); n != 0 {
		t.Errorf("%d writes answered READONLY: the pool wrote to the replica", n)
	}
	if info, _ := b.Do(t, "INFO", "commandstats").(string); strings.Contains(info, "rejected_calls=") {
		for _, line := range strings.Split(info, "\n") {
			if strings.HasPrefix(line, "cmdstat_incr:") && !strings.Contains(line, "rejected_calls=0") {
				t.Errorf("the replica rejected writes: %s", strings.TrimSpace(line))
			}
		}
	}
	// Bounds, generous for a loaded machine, that a thrashing pool
	// would blow through: MaxTotal connections and the ROLE probes of
	// one query (single-flight) on each node; a handful of goroutines
	// per writer; queries paced by the cooldown and the dial backoff.
	if limit := 2*maxTotal + 4; maxOnA > limit || maxOnB > limit {
		t.Errorf("peak pool connections: %d on the master, %d on the replica; want at most %d", maxOnA, maxOnB, limit)
	}
	if limit := baseGoroutines + 8*maxTotal + 20; maxGoroutines > limit {
		t.Errorf("peak goroutines %d; want at most %d (base %d)", maxGoroutines, limit, baseGoroutines)
	}
	if n := announced.Load(); st.MasterChanges > n/2 { // one per message without the rule
		t.Errorf("MasterChanges = %d for %d announcements; want the refuted replica not followed again and again", st.MasterChanges, n)
	}
	if honest > 0 && failed.Load() > 0 {
		t.Errorf("%d of %d writes failed; want none: two honest Sentinels of three name the master", failed.Load(), failed.Load()+acked.Load())
	}

	// The storm ends and the Sentinel settles on a: so does the pool.
	endStorm()
	settled.Store(true)
	waitForWithin(t, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := pool.Do(ctx, "INCR", "flap")
		return err == nil && pool.Addr() == a.Addr()
	})
	pool.Close()
	a.WaitClients(t, 0, isPoolConn)
	b.WaitClients(t, 0, isPoolConn)
}

// TestAttackSentinelQueriesPacedInOutage: while the master is down,
// every borrow retries its dial and asks the Sentinels again between
// tries. Borrows that keep coming must not turn that into a query, and a
// new connection to every Sentinel, per borrow and per retry: the
// queries are single-flight and at most one per requeryCooldown.
func TestAttackSentinelQueriesPacedInOutage(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	h, p := splitHostPort(t, closedPort(t))
	var queries atomic.Int64
	sentinel := hostileSentinel(t, func() string {
		queries.Add(1)
		return addrReply(h, p)
	})
	pool := newTestPool(t, Config{
		MaxTotal:      32,
		BorrowTimeout: 150 * time.Millisecond, // borrows end and new ones start all along
		Sentinel:      &SentinelConfig{MasterName: "m", Addrs: []string{sentinel.Addr()}, PollInterval: -1},
	})
	const outage = time.Second
	start := time.Now()
	var borrowers sync.WaitGroup
	var borrows atomic.Int64
	for range 32 {
		borrowers.Add(1)
		go func() {
			defer borrowers.Done()
			for time.Since(start) < outage {
				c, err := pool.GetContext(context.Background())
				if err == nil {
					c.Close()
					t.Errorf("Get succeeded with the master down")
					return
				}
				borrows.Add(1)
				time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
			}
		}()
	}
	borrowers.Wait()
	el := time.Since(start)
	n := queries.Load()
	t.Logf("%d queries in %v for %d failed borrows", n, el, borrows.Load())
	if limit := int64(el/requeryCooldown) + 5; n > limit {
		t.Errorf("%d queries of the Sentinel in %v; want at most %d, one per %v", n, el, limit, requeryCooldown)
	}
}

// TestAttackSentinelGarbageSubscription: a Sentinel that answers queries
// but breaks its +switch-master subscription at once, with bytes that
// are not RESP or with a 2 GiB bulk, is redialed with backoff, not in a
// loop, costs no allocation of what it announces, and leaves the pool
// on its master.
func TestAttackSentinelGarbageSubscription(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	srv := redistest.StartServer(t)
	h, p := splitHostPort(t, srv.Addr())
	for _, tt := range []struct{ name, reply string }{
		{"not RESP", "?junk\r\n"},
		{"huge bulk", "*3\r\n$2147483647\r\nabc"},
		{"hang-up", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var subscribes atomic.Int32
			sentinel := redistest.NewFakeServer(t, redistest.Dispatch(func(_ *redistest.FakeConn, cmd []string) (string, bool) {
				if len(cmd) == 0 {
					return "", true
				}
				switch strings.ToUpper(cmd[0]) {
				case "SENTINEL":
					if len(cmd) > 1 && strings.EqualFold(cmd[1], "MASTER") {
						return "*2\r\n$12\r\nconfig-epoch\r\n$1\r\n0\r\n", false
					}
					return addrReply(h, p), false
				case "SUBSCRIBE":
					subscribes.Add(1)
					return tt.reply, true
				}
				return "+OK\r\n", false
			}))
			pool := newTestPool(t, Config{
				Sentinel: &SentinelConfig{MasterName: "m", Addrs: []string{sentinel.Addr()}, PollInterval: -1},
			})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			deadline := start.Add(500 * time.Millisecond)
			for time.Now().Before(deadline) {
				if _, err := pool.Do(context.Background(), "INCR", "k"); err != nil {
					t.Fatalf("INCR: %v", err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			el := time.Since(start)
			runtime.ReadMemStats(&after)
			// Backoff from 50ms, doubling: 4 in the first 750ms.
			if n := subscribes.Load(); n > 6 {
				t.Errorf("%d subscriptions in %v; want the redials backed off", n, el)
			}
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
				t.Errorf("allocated %d MiB for a Sentinel's subscription", grown>>20)
			}
			if st := pool.Stats(); st.MasterChanges != 0 || pool.Addr() != srv.Addr() {
				t.Errorf("MasterChanges %d, Addr %s; want 0 and %s", st.MasterChanges, pool.Addr(), srv.Addr())
			}
		})
	}
}

// TestSentinelRefutedAnnouncementIsCheckedFirst: an address a query
// refuted is not followed again at once when announced: the
// announcement asks for a query, which follows it if the failover is
// genuine; once a query has named it, its announcements are news again.
func TestSentinelRefutedAnnouncementIsCheckedFirst(t *testing.T) {
	roles := map[string]string{"a:1": "master", "r:1": "slave"}
	s := &sentinelClient{
		cfg:      SentinelConfig{MasterName: "m"},
		stats:    new(counters),
		onChange: func() {},
		wake:     make(chan struct{}, 1),
		roleOf:   func(_ context.Context, addr string) (string, error) { return roles[addr], nil },
	}
	s.cur.Store(&master{addr: "a:1", gen: 1, epoch: 3, known: 3})
	s.order = []string{"s1"}
	woken := func() bool {
		select {
		case <-s.wake:
			return true
		default:
			return false
		}
	}
	query := func(named string, epoch int64) {
		t.Helper()
		if err := s.settle(context.Background(), s.cur.Load(), s.order, []answer{{sentinel: "s1", addr: named, epoch: epoch}}); err != nil {
			t.Fatalf("settle: %v", err)
		}
	}

	s.announce("r:1", "test")
	if s.addr() != "r:1" || !woken() {
		t.Fatalf("first announcement: master %s; want r:1 followed at once, and a query asked", s.addr())
	}
	query("a:1", 3) // ROLE: r:1 is a slave
	if s.addr() != "a:1" {
		t.Fatalf("after the query: master %s; want a:1", s.addr())
	}
	s.announce("r:1", "test")
	if s.addr() != "a:1" || !woken() || s.stats.masterChanges.Load() != 2 {
		t.Fatalf("refuted address announced again: master %s, %d changes; want a:1 kept (2 changes) and a query asked",
			s.addr(), s.stats.masterChanges.Load())
	}
	// A genuine failover to r:1: the query the announcement asked for finds it.
	roles = map[string]string{"a:1": "slave", "r:1": "master"}
	query("r:1", 4)
	if s.addr() != "r:1" {
		t.Fatalf("after the genuine failover's query: master %s; want r:1", s.addr())
	}
	if _, ok := s.refuted["r:1"]; ok {
		t.Errorf("r:1 still refuted after a query named it")
	}
}
