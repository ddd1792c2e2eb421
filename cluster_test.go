package redispool

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

// Integration tests of Cluster on real redis-server processes. The
// read-only tests share one cluster (TestClusterShared); every scenario
// that changes the topology starts its own and runs in parallel with the
// others.

// clusterSlotsCalls counts the CLUSTER SLOTS calls n has served since its
// last CONFIG RESETSTAT.
func clusterSlotsCalls(t testing.TB, n *redistest.ClusterNode) int64 {
	t.Helper()
	info, _ := n.Do(t, "INFO", "commandstats").(string)
	m := regexp.MustCompile(`cmdstat_cluster\|slots:calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	return v
}

func TestClusterShared(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{})
	c := newTestCluster(t, rc, ClusterConfig{Node: Config{ClientName: "shared"}})
	ctx := context.Background()
	masters := rc.Masters(t)

	t.Run("DoRoutesEachKeyToItsMaster", func(t *testing.T) {
		before := c.Stats()
		for i := 0; i < 300; i++ {
			k := "route:" + strconv.Itoa(i)
			if _, err := c.Do(ctx, "SET", k, i); err != nil {
				t.Fatalf("SET %s: %v", k, err)
			}
			if got, err := redis.Int(c.Do(ctx, "GET", k)); err != nil || got != i {
				t.Fatalf("GET %s = %d, %v; want %d", k, got, err, i)
			}
		}
		for _, k := range keysOn(t, rc, "route:") {
			m := rc.MasterOf(t, Slot(k))
			if got := m.Do(t, "EXISTS", k); got != int64(1) {
				t.Errorf("%s (slot %d) not on its master %s", k, Slot(k), m)
			}
		}
		if after := c.Stats(); after.Moved != before.Moved || after.Ask != before.Ask {
			t.Errorf("redirects while routing on a stable cluster: %+v", after)
		}
	})

	t.Run("EvalShaRoutedByItsKeyNotItsFirstArgument", func(t *testing.T) {
		// What redsync sends. The SHA, the first argument, hashes
		// elsewhere than the key.
		script := redis.NewScript(1, `return redis.call("INCR", KEYS[1])`)
		before := c.Stats().Moved
		for _, k := range keysOn(t, rc, "lock:") {
			conn := c.Get()
			for want := 1; want <= 2; want++ { // EVALSHA, NOSCRIPT, EVAL; then EVALSHA
				if got, err := redis.Int(script.Do(conn, k)); err != nil || got != want {
					t.Errorf("script on %s: %d, %v; want %d", k, got, err, want)
				}
			}
			conn.Close()
			if got, err := redis.Int(c.Do(ctx, "EVALSHA", script.Hash(), 1, k)); err != nil || got != 3 {
				t.Errorf("Do EVALSHA on %s: %d, %v; want 3", k, got, err)
			}
		}
		if moved := c.Stats().Moved - before; moved != 0 {
			t.Errorf("%d MOVED replies: scripts were routed by their SHA", moved)
		}
	})

	t.Run("GetForKeysTransaction", func(t *testing.T) {
		conn, err := c.GetForKeys(ctx, "{acct}.a", "{acct}.b")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Do("SET", "{acct}.a", 10)
		if _, err := conn.Do("WATCH", "{acct}.a", "{acct}.b"); err != nil {
			t.Fatal(err)
		}
		conn.Send("MULTI")
		conn.Send("DECRBY", "{acct}.a", 3)
		conn.Send("INCRBY", "{acct}.b", 3)
		reply, err := redis.Values(conn.Do("EXEC"))
		if err != nil || len(reply) != 2 || reply[0] != int64(7) || reply[1] != int64(3) {
			t.Fatalf("EXEC = %v, %v; want [7 3]", reply, err)
		}
		if _, err := c.GetForKeys(ctx, "{acct}.a", "other"); !errors.Is(err, ErrCrossSlot) {
			t.Errorf("GetForKeys over two slots = %v; want ErrCrossSlot", err)
		}
	})

	t.Run("CrossSlot", func(t *testing.T) {
		keys := keysOn(t, rc, "x:")
		a, b := keys[0], keys[1]
		check := func(name string, err error) {
			t.Helper()
			var rerr redis.Error
			if !errors.Is(err, ErrCrossSlot) || !errors.As(err, &rerr) || !strings.HasPrefix(string(rerr), "CROSSSLOT") {
				t.Errorf("%s = %v; want the server's CROSSSLOT, as ErrCrossSlot and redis.Error", name, err)
			}
		}
		_, err := c.Do(ctx, "MGET", a, b)
		check("Do MGET", err)
		conn := c.Get()
		_, err = conn.Do("MSET", a, 1, b, 2)
		check("conn.Do MSET", err)
		conn.Send("MGET", a, b)
		conn.Flush()
		_, err = conn.Receive()
		check("conn.Receive of MGET", err)
		// Bound to a's node by a pipeline whose reply is unread: a key
		// served elsewhere fails before I/O, so with our error, not the
		// server's.
		conn.Send("GET", a)
		for name, err := range map[string]error{
			"Do":   func() error { _, err := conn.Do("GET", b); return err }(),
			"Send": conn.Send("GET", b),
		} {
			var rerr redis.Error
			if !errors.Is(err, ErrCrossSlot) || errors.As(err, &rerr) {
				t.Errorf("%s GET of another node's key on a bound connection = %v; want ErrCrossSlot before I/O", name, err)
			}
		}
		conn.Flush()
		if _, err := conn.Receive(); err != nil {
			t.Errorf("the pipeline's reply after the refusals: %v", err)
		}
		conn.Close()
	})

	t.Run("LazyConnHeldCommandsGoOutWithTheFirstKey", func(t *testing.T) {
		for _, k := range keysOn(t, rc, "lazy:") {
			conn := c.Get()
			conn.Send("MULTI")
			conn.Send("SET", k, "v")
			conn.Send("TIME")
			reply, err := redis.Values(conn.Do("EXEC"))
			if err != nil || len(reply) != 2 || reply[0] != "OK" {
				t.Errorf("MULTI; SET %s; TIME; EXEC = %v, %v", k, reply, err)
			}
			// MULTI by Do, before any key.
			if r, err := conn.Do("MULTI"); err != nil || r != "OK" {
				t.Errorf("Do MULTI = %v, %v", r, err)
			}
			if r, err := conn.Do("GET", k); err != nil || r != "QUEUED" {
				t.Errorf("GET in MULTI = %v, %v; want QUEUED", r, err)
			}
			if r, err := redis.Strings(conn.Do("EXEC")); err != nil || len(r) != 1 || r[0] != "v" {
				t.Errorf("EXEC = %v, %v; want [v]", r, err)
			}
			conn.Close()
		}
	})

	t.Run("LazyConnPipelineOfHeldAndKeyed", func(t *testing.T) {
		k := keysOn(t, rc, "pipe:")[2]
		conn := c.Get()
		defer conn.Close()
		conn.Send("PING")
		conn.Send("SET", k, "1")
		conn.Send("INCR", k)
		if err := conn.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, want := range []any{"PONG", "OK", int64(2)} {
			if got, err := conn.Receive(); err != nil || got != want {
				t.Errorf("Receive = %v, %v; want %v", got, err, want)
			}
		}
	})

	t.Run("KeylessDoOnUnboundConnDoesNotBind", func(t *testing.T) {
		// throttled's redigostore: SELECT 0, then its keyed commands.
		for _, k := range keysOn(t, rc, "thr:") {
			conn := c.Get()
			for _, cmd := range []string{"SELECT", "PING", "TIME"} {
				var args []any
				if cmd == "SELECT" {
					args = []any{0}
				}
				if _, err := conn.Do(cmd, args...); err != nil {
					t.Errorf("%s: %v", cmd, err)
				}
			}
			if _, err := conn.Do("SET", k, 1); err != nil {
				t.Errorf("SET %s after keyless commands: %v", k, err)
			}
			conn.Close()
		}
		if r, err := c.Do(ctx, "PING"); err != nil || r != "PONG" {
			t.Errorf("Cluster.Do PING = %v, %v", r, err)
		}
	})

	t.Run("PubSubOnLazyConn", func(t *testing.T) {
		psc := redis.PubSubConn{Conn: c.Get()}
		defer psc.Close()
		if err := psc.Subscribe("news"); err != nil {
			t.Fatal(err)
		}
		if m, ok := psc.Receive().(redis.Subscription); !ok || m.Kind != "subscribe" {
			t.Fatalf("Receive = %#v; want the subscription", m)
		}
		if _, err := c.Do(ctx, "PUBLISH", "news", "hi"); err != nil {
			t.Fatal(err)
		}
		if m, ok := psc.ReceiveWithTimeout(5 * time.Second).(redis.Message); !ok || string(m.Data) != "hi" {
			t.Fatalf("Receive = %#v; want the message", m)
		}
	})

	t.Run("ReadFromReplicas", func(t *testing.T) {
		rr := newTestCluster(t, rc, ClusterConfig{ReadFromReplicas: true, Node: Config{ClientName: "reader"}})
		k := keysOn(t, rc, "rep:")[0]
		conn, err := rr.GetForKeys(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		conn.Do("SET", k, "v")
		if n, err := redis.Int(conn.Do("WAIT", 1, 5000)); err != nil || n != 1 {
			t.Fatalf("WAIT = %d, %v", n, err)
		}
		conn.Close()
		replica := rc.Replicas(t, rc.MasterOf(t, Slot(k)))[0]
		before := infoField(t, replica, "commandstats", "cmdstat_get")
		for i := 0; i < 20; i++ {
			if v, err := redis.String(rr.Do(ctx, "GET", k)); err != nil || v != "v" {
				t.Fatalf("GET from replica = %q, %v", v, err)
			}
		}
		if _, err := rr.Do(ctx, "SET", k, "w"); err != nil {
			t.Fatalf("SET with ReadFromReplicas: %v", err)
		}
		info, _ := replica.Do(t, "INFO", "commandstats").(string)
		m := regexp.MustCompile(`cmdstat_get:calls=(\d+)`).FindStringSubmatch(info)
		if m == nil {
			t.Fatalf("replica %s served no GET; before %d", replica, before)
		}
		if n, _ := strconv.Atoi(m[1]); n < 20 {
			t.Errorf("replica %s served %d GETs; want 20", replica, n)
		}
		if s := rr.Stats(); s.Moved != 0 {
			t.Errorf("%d MOVED with ReadFromReplicas", s.Moved)
		}
	})

	t.Run("PeriodicRefresh", func(t *testing.T) {
		pr := newTestCluster(t, rc, ClusterConfig{RefreshInterval: 100 * time.Millisecond})
		before := pr.Stats().Refreshes
		time.Sleep(700 * time.Millisecond)
		if got := pr.Stats().Refreshes - before; got < 3 {
			t.Errorf("%d reloads in 700ms with RefreshInterval 100ms; want several", got)
		}
	})

	t.Run("CloseUnderLoad", func(t *testing.T) {
		cl := newTestCluster(t, rc, ClusterConfig{Node: Config{ClientName: "closing"}})
		var wg sync.WaitGroup
		var ok, closedErrs, other atomic.Int64
		for g := 0; g < 32; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					var err error
					if i%2 == 0 {
						_, err = cl.Do(ctx, "INCR", fmt.Sprintf("close:%d", g))
					} else {
						conn := cl.Get()
						_, err = conn.Do("INCR", fmt.Sprintf("close:%d", g))
						conn.Close()
					}
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, ErrPoolClosed):
						closedErrs.Add(1)
						return
					default:
						other.Add(1)
						return
					}
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		cl.Close()
		wg.Wait()
		if ok.Load() == 0 || closedErrs.Load() == 0 {
			t.Errorf("%d commands ran, %d got ErrPoolClosed; want both", ok.Load(), closedErrs.Load())
		}
		if other.Load() > 0 {
			t.Errorf("%d goroutines ended with another error than ErrPoolClosed", other.Load())
		}
		for _, m := range masters {
			m.WaitClients(t, 0, func(ci redistest.ClientInfo) bool { return ci.Name == "closing" })
		}
	})
}

// clusterLoad writes sequence numbers with RPUSH from n goroutines, each
// to keys of its own, and counts what was acknowledged, so that lost
// writes (acknowledged, absent) and errors can be told apart: SET would
// hide a lost write under a later one.
type clusterLoad struct {
	c    *Cluster
	stop atomic.Bool
	wg   sync.WaitGroup
	ok   atomic.Int64

	mu    sync.Mutex // protects following fields
	errs  []loadErr
	acked map[string]int64
}

type loadErr struct {
	at     time.Time
	writer int
	err    error
}

// startLoad starts n writers; keyOf(g, i) is the key of writer g's i-th
// write.
func startLoad(t testing.TB, c *Cluster, n int, keyOf func(g, i int) string) *clusterLoad {
	l := &clusterLoad{c: c, acked: make(map[string]int64)}
	for g := 0; g < n; g++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			acked := make(map[string]int64)
			defer func() {
				l.mu.Lock()
				for k, v := range acked {
					l.acked[k] += v
				}
				l.mu.Unlock()
			}()
			for i := 0; !l.stop.Load(); i++ {
				k := keyOf(g, i)
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				_, err := c.Do(ctx, "RPUSH", k, i)
				cancel()
				if err != nil {
					l.mu.Lock()
					l.errs = append(l.errs, loadErr{time.Now(), g, err})
					l.mu.Unlock()
					continue
				}
				acked[k]++
				l.ok.Add(1)
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *clusterLoad) halt() {
	l.stop.Store(true)
	l.wg.Wait()
}

// finish stops the load and returns its errors and the number of
// acknowledged writes missing from the lists.
func (l *clusterLoad) finish(t testing.TB) (errs []loadErr, lost int64) {
	t.Helper()
	l.halt()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for k, n := range l.acked {
		got, err := redis.Int64(l.c.Do(ctx, "LLEN", k))
		if err != nil {
			t.Fatalf("LLEN %s: %v", k, err)
		}
		if got < n {
			lost += n - got
		}
	}
	return l.errs, lost
}

func reportErrs(t testing.TB, errs []loadErr) {
	t.Helper()
	for i, e := range errs {
		if i == 5 {
			t.Logf("... %d more", len(errs)-5)
			break
		}
		t.Logf("load error at %s: %v", e.at.Format("15:04:05.000"), e.err)
	}
}

func spreadKeys(run string) func(g, i int) string {
	return func(g, i int) string { return fmt.Sprintf("%s:%d:%d", run, g, i%64) }
}

func TestClusterReshardUnderLoad(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	c := newTestCluster(t, rc, ClusterConfig{RetryTimeout: 10 * time.Second})
	m := rc.Masters(t)
	l := startLoad(t, c, 32, spreadKeys("reshard"))
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	rc.Reshard(t, m[0], m[1], 1000)
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	errs, lost := l.finish(t)
	s := c.Stats()
	t.Logf("reshard of 1000 slots in %v: %d writes, %d errors, %d lost; Moved %d, Ask %d, TryAgain %d, Refreshes %d",
		took.Round(time.Millisecond), l.ok.Load(), len(errs), lost, s.Moved, s.Ask, s.TryAgain, s.Refreshes)
	reportErrs(t, errs)
	if len(errs) != 0 || lost != 0 {
		t.Errorf("got %d errors, %d lost writes; want 0, 0", len(errs), lost)
	}
	if s.Moved == 0 {
		t.Errorf("no MOVED during a reshard under load")
	}
	if got := s.Slots[m[1].Addr()]; got < 1000 {
		t.Errorf("slot map gives %s %d slots; want its share plus 1000", m[1], got)
	}
}

func TestClusterHotSlotMigrationUnderLoad(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	const maxTotal = 16
	c := newTestCluster(t, rc, ClusterConfig{RetryTimeout: 10 * time.Second, Node: Config{MaxTotal: maxTotal}})
	ctx := context.Background()
	slot := Slot("{hot}")
	from := rc.MasterOf(t, slot)
	var to *redistest.ClusterNode
	for _, m := range rc.Masters(t) {
		if m != from {
			to = m
			break
		}
	}
	// Prime the lists so the migration has keys to move.
	for g := 0; g < 32; g++ {
		for i := 0; i < 8; i++ {
			c.Do(ctx, "RPUSH", fmt.Sprintf("{hot}:%d:%d", g, i), -1)
		}
	}
	l := startLoad(t, c, 32, func(g, i int) string { return fmt.Sprintf("{hot}:%d:%d", g, i%8) })

	// MGET across keys of the slot: during the migration some are moved
	// and some not, and the source answers TRYAGAIN.
	var mgetErrs, mgets atomic.Int64
	mgetDone := make(chan struct{})
	go func() {
		defer close(mgetDone)
		for !l.stop.Load() {
			if _, err := c.Do(ctx, "MGET", "{hot}:0:0", "{hot}:1:0", "{hot}:2:0", "{hot}:3:0"); err != nil {
				mgetErrs.Add(1)
				t.Logf("MGET: %v", err)
			}
			mgets.Add(1)
		}
	}()

	time.Sleep(200 * time.Millisecond)
	connsBefore := infoField(t, to, "stats", "total_connections_received")
	start := time.Now()
	m := rc.BeginMigration(t, slot, to)
	// Keys move in small batches for 500ms (the MGETs meet TRYAGAIN
	// while some of their keys have moved and some not), then the rest
	// at once; from then on every write to the slot is answered with
	// ASK until the migration ends, 2s in.
	for time.Since(start) < 500*time.Millisecond && m.MoveKeys(t, 8) > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	for m.MoveKeys(t, 64) > 0 {
	}
	time.Sleep(2*time.Second - time.Since(start))
	m.Finish(t)
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	errs, lost := l.finish(t)
	<-mgetDone
	connsAfter := infoField(t, to, "stats", "total_connections_received")
	s := c.Stats()
	t.Logf("hot slot %d migrated in %v: %d writes, %d errors, %d lost; Ask %d, Moved %d, TryAgain %d, %d MGETs (%d errors); "+
		"connections received by the importing node: %d",
		slot, took.Round(time.Millisecond), l.ok.Load(), len(errs), lost, s.Ask, s.Moved, s.TryAgain, mgets.Load(), mgetErrs.Load(),
		connsAfter-connsBefore)
	reportErrs(t, errs)
	if len(errs) != 0 || lost != 0 || mgetErrs.Load() != 0 {
		t.Errorf("got %d errors, %d lost writes, %d MGET errors; want 0, 0, 0", len(errs), lost, mgetErrs.Load())
	}
	if s.Ask < 1000 {
		t.Errorf("Stats().Ask = %d; want thousands", s.Ask)
	}
	// ASKING does not cost the connection: the importing node sees at
	// most about one pool's worth of new connections (plus the
	// launcher's own).
	if n := connsAfter - connsBefore; n > maxTotal+8 {
		t.Errorf("importing node received %d connections; want about MaxTotal (%d) at most", n, maxTotal)
	}

	t.Run("ManyGoroutinesOnAJustMovedSlotRefreshOnce", func(t *testing.T) {
		// A fresh client with the current map; then the slot moves back.
		c2 := newTestCluster(t, rc, ClusterConfig{})
		rc.MigrateSlot(t, slot, from)
		for _, n := range rc.Masters(t) {
			n.Do(t, "CONFIG", "RESETSTAT")
		}
		var wg sync.WaitGroup
		var errs atomic.Int64
		begin := make(chan struct{})
		for g := 0; g < 64; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-begin
				for i := 0; i < 20; i++ {
					if _, err := c2.Do(ctx, "LLEN", fmt.Sprintf("{hot}:%d:0", g%32)); err != nil {
						errs.Add(1)
					}
				}
			}()
		}
		close(begin)
		wg.Wait()
		time.Sleep(2 * refreshCooldown) // the reload the MOVEDs asked for
		var calls int64
		for _, n := range rc.Masters(t) {
			calls += clusterSlotsCalls(t, n)
		}
		s := c2.Stats()
		t.Logf("64 goroutines on a just-moved slot: %d MOVED, %d CLUSTER SLOTS calls, %d errors", s.Moved, calls, errs.Load())
		if errs.Load() != 0 || s.Moved == 0 {
			t.Errorf("%d errors, %d MOVED; want 0 errors and some MOVED", errs.Load(), s.Moved)
		}
		if calls > 5 {
			t.Errorf("%d CLUSTER SLOTS calls; want a handful", calls)
		}
	})

	t.Run("MGETDuringMigrationRetriesTryAgain", func(t *testing.T) {
		mc := newTestCluster(t, rc, ClusterConfig{RetryTimeout: 10 * time.Second})
		mslot := Slot("{mg}")
		mfrom := rc.MasterOf(t, mslot)
		var mto *redistest.ClusterNode
		for _, n := range rc.Masters(t) {
			if n != mfrom {
				mto = n
				break
			}
		}
		mc.Do(ctx, "MSET", "{mg}a", "1", "{mg}b", "2")
		mig := rc.BeginMigration(t, mslot, mto)
		// One key moved, one not: the source answers MGET with TRYAGAIN.
		if got := mfrom.Do(t, "MIGRATE", "127.0.0.1", mto.Port(), "{mg}a", 0, 5000); got != "OK" {
			t.Fatalf("MIGRATE {mg}a: %v", got)
		}
		done := make(chan error, 1)
		go func() {
			v, err := redis.Strings(mc.Do(ctx, "MGET", "{mg}a", "{mg}b"))
			if err == nil && (len(v) != 2 || v[0] != "1" || v[1] != "2") {
				err = fmt.Errorf("got %q; want [1 2]", v)
			}
			done <- err
		}()
		time.Sleep(300 * time.Millisecond)
		mig.Finish(t)
		if err := <-done; err != nil {
			t.Errorf("MGET across a migration: %v", err)
		}
		if s := mc.Stats(); s.TryAgain == 0 || s.Retries == 0 {
			t.Errorf("TryAgain %d, Retries %d; want both > 0", s.TryAgain, s.Retries)
		} else {
			t.Logf("MGET during migration: %d TRYAGAIN, %d retries, then served", s.TryAgain, s.Retries)
		}
	})

	t.Run("RedirectsNotFollowed", func(t *testing.T) {
		// Clients whose maps are current; then the slot moves again.
		none := newTestCluster(t, rc, ClusterConfig{MaxRedirects: -1})
		follows := newTestCluster(t, rc, ClusterConfig{})
		inTx := follows.Get()
		defer inTx.Close()
		rc.MigrateSlot(t, slot, to)

		_, err := none.Do(ctx, "LLEN", "{hot}:0:0")
		var rd *RedirectError
		if !errors.As(err, &rd) || rd.Ask || rd.Slot != slot || rd.Addr != to.Addr() {
			t.Errorf("Do with MaxRedirects -1 = %v; want *RedirectError MOVED %d %s", err, slot, to.Addr())
		}
		if got := none.Stats().Slots[to.Addr()]; got == 0 {
			t.Errorf("slot map not patched by the MOVED")
		}

		// A transaction is never split: the MOVED to a queued command
		// is returned, not followed.
		inTx.Send("MULTI")
		_, err = inTx.Do("LLEN", "{hot}:0:0")
		if !errors.As(err, &rd) || rd.Addr != to.Addr() {
			t.Errorf("MOVED inside MULTI = %v; want *RedirectError to %s", err, to.Addr())
		}
		if _, err := inTx.Do("EXEC"); err == nil {
			t.Errorf("EXEC after a redirected queued command succeeded")
		}

		// A clean bound connection follows it.
		clean := follows.Get()
		defer clean.Close()
		if _, err := clean.Do("LLEN", "{hot}:1:0"); err != nil {
			t.Errorf("LLEN on a clean lazily bound connection after the move: %v", err)
		}
	})
}

func TestClusterKillMasterUnderLoad(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{})
	c := newTestCluster(t, rc, ClusterConfig{RetryTimeout: 10 * time.Second})
	const writers = 32
	l := startLoad(t, c, writers, spreadKeys("kill"))
	time.Sleep(300 * time.Millisecond)
	victim := rc.Masters(t)[0]
	heir := rc.Replicas(t, victim)[0]
	killed := time.Now()
	rc.Kill(victim)
	rc.WaitMaster(t, heir)
	promoted := time.Now()
	time.Sleep(time.Second)
	errs, lost := l.finish(t)
	s := c.Stats()
	var after, repeated int
	perWriter := make(map[int]int)
	for _, e := range errs {
		if e.at.After(killed.Add(500 * time.Millisecond)) {
			after++
		}
		if perWriter[e.writer]++; perWriter[e.writer] == 2 {
			repeated++
		}
	}
	t.Logf("kill -9 of %s: %s promoted after %v; %d writes, %d errors (%d later than 500ms after the kill, %d writers with more than one), %d lost; "+
		"ClusterDown %d, Retries %d, Refreshes %d",
		victim, heir, promoted.Sub(killed).Round(time.Millisecond), l.ok.Load(), len(errs), after, repeated, lost,
		s.ClusterDown, s.Retries, s.Refreshes)
	reportErrs(t, errs)
	// Only the commands in flight at the kill may fail: at most one per
	// writer, and none once the retries take over.
	if len(errs) > writers || repeated != 0 || after != 0 {
		t.Errorf("got %d errors, %d writers with more than one, %d later than 500ms after the kill; want at most one per writer, all at the kill",
			len(errs), repeated, after)
	}
	if lost != 0 {
		t.Errorf("%d acknowledged writes lost", lost)
	}
}

func TestClusterFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{})
	c := newTestCluster(t, rc, ClusterConfig{RetryTimeout: 10 * time.Second})
	l := startLoad(t, c, 32, spreadKeys("failover"))
	time.Sleep(300 * time.Millisecond)
	old := rc.Masters(t)[0]
	heir := rc.Replicas(t, old)[0]
	start := time.Now()
	rc.Failover(t, heir)
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	errs, lost := l.finish(t)
	s := c.Stats()
	t.Logf("CLUSTER FAILOVER to %s: stable after %v; %d writes, %d errors, %d lost; Moved %d, Retries %d, Refreshes %d",
		heir, took.Round(time.Millisecond), l.ok.Load(), len(errs), lost, s.Moved, s.Retries, s.Refreshes)
	reportErrs(t, errs)
	if len(errs) != 0 || lost != 0 {
		t.Errorf("got %d errors, %d lost writes; want 0, 0", len(errs), lost)
	}
}

func TestClusterAddAndRemoveNodeUnderLoad(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	c := newTestCluster(t, rc, ClusterConfig{RetryTimeout: 10 * time.Second})
	l := startLoad(t, c, 32, spreadKeys("addremove"))
	time.Sleep(200 * time.Millisecond)
	src := rc.Masters(t)[0]
	n := rc.AddNode(t)
	rc.Reshard(t, src, n, 300)
	time.Sleep(300 * time.Millisecond)
	if st, ok := c.Stats().Nodes[n.Addr()]; !ok || st.Created == 0 {
		t.Errorf("no connections to the added node %s: %+v", n, c.Stats().Nodes)
	}
	// As an operator would: move the slots away, let clients learn it
	// (MOVED and a reload), then shut the node down. A command in flight
	// on a node as it shuts down fails, and may have run: it is never
	// retried, so a shutdown that races the last MOVED would show here.
	rc.Reshard(t, n, src, 300)
	time.Sleep(300 * time.Millisecond)
	rc.RemoveNode(t, n)
	time.Sleep(300 * time.Millisecond)
	errs, lost := l.finish(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	s := c.Stats()
	t.Logf("node %s added, given 300 slots, removed: %d writes, %d errors, %d lost; Moved %d, Ask %d, Refreshes %d",
		n, l.ok.Load(), len(errs), lost, s.Moved, s.Ask, s.Refreshes)
	reportErrs(t, errs)
	if len(errs) != 0 || lost != 0 {
		t.Errorf("got %d errors, %d lost writes; want 0, 0", len(errs), lost)
	}
	if _, ok := s.Nodes[n.Addr()]; ok {
		t.Errorf("the removed node's pool is still open: %v", s.Nodes)
	}
}

// TestClusterTopology covers what concerns the cluster as a whole, on one
// cluster of 3 masters with a replica each: multi-key commands across a
// migration, topology work while every data connection is borrowed,
// ForEachMaster and ForEachNode, and Ping on a cluster that gives no
// address to dial.
func TestClusterTopology(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{})
	ctx := context.Background()
	named := func(name string) func(redistest.ClientInfo) bool {
		return func(ci redistest.ClientInfo) bool { return ci.Name == name }
	}

	t.Run("MultiKeyCommandsOfAMigratingSlotSucceedOnceItEnds", func(t *testing.T) {
		// The MGET of a migrated key and a key that does not exist
		// goes round ASK at the source (no key there) and TRYAGAIN at
		// the target (not every key there) for as long as the slot
		// migrates; MSET and DEL alike. They used to fail with
		// ErrTooManyRedirects after ~256ms.
		c := newTestCluster(t, rc, ClusterConfig{RetryTimeout: 10 * time.Second})
		slot := Slot("{split}")
		from := rc.MasterOf(t, slot)
		to := rc.Masters(t)[0]
		if to == from {
			to = rc.Masters(t)[1]
		}
		for _, k := range []string{"{split}a", "{split}c", "{split}e"} {
			if _, err := c.Do(ctx, "SET", k, "v"); err != nil {
				t.Fatalf("SET %s: %v", k, err)
			}
		}
		mig := rc.BeginMigration(t, slot, to)
		for _, k := range []string{"{split}a", "{split}c", "{split}e"} {
			if got := from.Do(t, "MIGRATE", "127.0.0.1", to.Port(), k, 0, 5000); got != "OK" {
				mig.Finish(t)
				t.Fatalf("MIGRATE %s: %v", k, got)
			}
		}
		type result struct {
			what  string
			reply any
			err   error
		}
		done := make(chan result, 3)
		for _, cmd := range [][]any{
			{"MGET", "{split}a", "{split}b"},
			{"MSET", "{split}c", "w", "{split}d", "w"},
			{"DEL", "{split}e", "{split}f"},
		} {
			go func() {
				reply, err := c.Do(ctx, cmd[0].(string), cmd[1:]...)
				done <- result{cmd[0].(string), reply, err}
			}()
		}
		// Hold the migration open for 1.5s, unless a command returns
		// first: none can succeed before the migration ends.
		hold := time.NewTimer(1500 * time.Millisecond)
		var early []result
	holding:
		for len(early) < 3 {
			select {
			case r := <-done:
				early = append(early, r)
			case <-hold.C:
				break holding
			}
		}
		hold.Stop()
		mig.Finish(t)
		for _, r := range early {
			t.Errorf("%s returned while the slot was migrating: %v, %v; want it retried until the migration ends", r.what, r.reply, r.err)
		}
		for range 3 - len(early) {
			r := <-done // within RetryTimeout
			var want any
			switch r.what {
			case "MGET":
				want = []any{[]byte("v"), nil}
			case "MSET":
				want = "OK"
			case "DEL":
				want = int64(1)
			}
			if r.err != nil || fmt.Sprint(r.reply) != fmt.Sprint(want) {
				t.Errorf("%s after the migration = %v, %v; want %v", r.what, r.reply, r.err, want)
			}
		}
		if got := to.Do(t, "MGET", "{split}c", "{split}d", "{split}e"); fmt.Sprint(got) != "[w w <nil>]" {
			t.Errorf("on the new owner: MGET c d e = %v; want [w w <nil>]", got)
		}
		s := c.Stats()
		t.Logf("across the migration: Ask %d, TryAgain %d, Retries %d", s.Ask, s.TryAgain, s.Retries)
		if s.Ask == 0 || s.TryAgain == 0 {
			t.Errorf("Ask %d, TryAgain %d; want both: the commands went round ASK and TRYAGAIN", s.Ask, s.TryAgain)
		}
	})

	t.Run("RefreshAndPingWhileEveryDataConnectionIsBorrowed", func(t *testing.T) {
		const name = "topo-held"
		c := newTestCluster(t, rc, ClusterConfig{Node: Config{
			MaxTotal: 2, BorrowTimeout: 10 * time.Second, ClientName: name,
		}})
		masters := rc.Masters(t)
		keys := keysOn(t, rc, "held:")
		// Every connection of every master borrowed: one blocked in
		// BLPOP, one plainly held.
		var held []redis.Conn
		blpops := make(chan error, len(keys))
		for _, k := range keys {
			conn, err := c.GetForKeys(ctx, k)
			if err != nil {
				t.Fatalf("GetForKeys %s: %v", k, err)
			}
			held = append(held, conn)
			go func() {
				_, err := c.Do(ctx, "BLPOP", k, 0)
				blpops <- err
			}()
		}
		for _, m := range masters {
			m.WaitClients(t, 1, func(ci redistest.ClientInfo) bool { return ci.Name == name && ci.Cmd == "blpop" })
		}
		for addr, s := range c.Stats().Nodes {
			if s.Active != 2 {
				t.Fatalf("node %s: Active %d; want every connection (2) borrowed", addr, s.Active)
			}
		}

		// A pool's borrow would wait BorrowTimeout (10s); the deadline
		// is 3s.
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := c.Refresh(tctx); err != nil {
			t.Errorf("Refresh with every data connection borrowed: %v", err)
		}
		for i := range 10 {
			if err := c.Ping(tctx); err != nil {
				t.Fatalf("Ping %d with every data connection borrowed: %v", i, err)
			}
		}
		before := c.Stats().Refreshes
		c.requestRefresh() // the background refresher
		deadline := time.Now().Add(3 * time.Second)
		for c.Stats().Refreshes == before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if s := c.Stats(); s.Refreshes == before {
			t.Errorf("the background refresher did not reload within 3s (RefreshErrors %d)", s.RefreshErrors)
		}

		// One control connection per master at most, besides the pool's.
		for _, m := range masters {
			if n := m.CountClients(t, named(name)); n > 3 {
				t.Errorf("%s: %d connections named %s; want the pool's 2 and at most 1 control connection", m, n, name)
			}
		}
		for _, k := range keys {
			rc.MasterOf(t, Slot(k)).Do(t, "RPUSH", k, "x")
		}
		for range keys {
			if err := <-blpops; err != nil {
				t.Errorf("BLPOP: %v", err)
			}
		}
		for _, conn := range held {
			conn.Close()
		}
		// A control connection that died while idle (a restart, the
		// server's timeout) is replaced, not reported.
		for _, m := range masters {
			m.KillClients(t, named(name))
		}
		if err := c.Ping(ctx); err != nil {
			t.Errorf("Ping after the server closed the control connections: %v", err)
		}
		c.Close()
		for _, n := range rc.Nodes() {
			n.WaitClients(t, 0, named(name))
		}
	})

	t.Run("ForEachMasterAndForEachNode", func(t *testing.T) {
		const name = "foreach"
		c := newTestCluster(t, rc, ClusterConfig{Node: Config{ClientName: name}})
		for i := range 100 {
			if _, err := c.Do(ctx, "SET", "fe:"+strconv.Itoa(i), i); err != nil {
				t.Fatal(err)
			}
		}
		var want int64
		for _, m := range rc.Masters(t) {
			want += m.Do(t, "DBSIZE").(int64)
		}
		var total atomic.Int64
		var mu sync.Mutex
		var visited []string
		err := c.ForEachMaster(ctx, func(ctx context.Context, p *Pool) error {
			n, err := redis.Int64(p.Do(ctx, "DBSIZE"))
			total.Add(n)
			mu.Lock()
			visited = append(visited, p.Addr())
			mu.Unlock()
			return err
		})
		if err != nil || total.Load() != want || len(visited) != 3 {
			t.Errorf("ForEachMaster DBSIZE: %d over %v, %v; want %d over the 3 masters", total.Load(), visited, err, want)
		}

		// Errors are joined, each naming its node.
		errBoom := errors.New("boom")
		failing := rc.Masters(t)[1].Addr()
		err = c.ForEachMaster(ctx, func(ctx context.Context, p *Pool) error {
			if p.Addr() == failing {
				return errBoom
			}
			return nil
		})
		if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), failing) || strings.Count(err.Error(), "boom") != 1 {
			t.Errorf("ForEachMaster = %v; want errBoom once, naming %s", err, failing)
		}

		// Every node, replicas with READONLY.
		visited = nil
		replicas := make(map[string]bool)
		for _, r := range rc.Replicas(t) {
			replicas[r.Addr()] = true
		}
		err = c.ForEachNode(ctx, func(ctx context.Context, p *Pool) error {
			info, err := redis.String(p.Do(ctx, "CLIENT", "INFO"))
			if err != nil {
				return err
			}
			readonly := regexp.MustCompile(`flags=\S*r`).MatchString(info)
			if replicas[p.Addr()] != readonly {
				return fmt.Errorf("READONLY %v on a connection to a node that is a replica: %v (%s)", readonly, replicas[p.Addr()], info)
			}
			mu.Lock()
			visited = append(visited, p.Addr())
			mu.Unlock()
			return nil
		})
		slices.Sort(visited)
		all := rc.Addrs()
		slices.Sort(all)
		if err != nil || !slices.Equal(visited, all) {
			t.Errorf("ForEachNode visited %v, %v; want every node %v", visited, err, all)
		}

		// FLUSHALL everywhere.
		if err := c.ForEachMaster(ctx, func(ctx context.Context, p *Pool) error {
			_, err := p.Do(ctx, "FLUSHALL")
			return err
		}); err != nil {
			t.Errorf("ForEachMaster FLUSHALL: %v", err)
		}
		for _, m := range rc.Masters(t) {
			if n := m.Do(t, "DBSIZE"); n != int64(0) {
				t.Errorf("%s: DBSIZE %v after FLUSHALL on every master; want 0", m, n)
			}
		}
		c.Close()
		for _, n := range rc.Nodes() {
			n.WaitClients(t, 0, named(name))
		}
	})

	t.Run("PingReportsMastersWithoutAnAddressToDial", func(t *testing.T) {
		// With cluster-preferred-endpoint-type hostname and no hostname
		// announced, CLUSTER SLOTS gives "?" for every node.
		c := newTestCluster(t, rc, ClusterConfig{})
		for _, n := range rc.Nodes() {
			n.Do(t, "CONFIG", "SET", "cluster-preferred-endpoint-type", "hostname")
		}
		defer func() {
			for _, n := range rc.Nodes() {
				n.Do(t, "CONFIG", "SET", "cluster-preferred-endpoint-type", "ip")
			}
		}()
		err := c.Ping(ctx)
		if err == nil || !strings.Contains(err.Error(), "cluster-preferred-endpoint-type") || !strings.Contains(err.Error(), `"?:`) ||
			strings.Count(err.Error(), "slots ") != 3 {
			t.Errorf("Ping = %v; want an error per master naming its slots, \"?\" and cluster-preferred-endpoint-type", err)
		}
		start := time.Now()
		_, err = c.Do(ctx, "GET", "k")
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("slot %d: ", Slot("k"))) || !strings.Contains(err.Error(), "cluster-preferred-endpoint-type") {
			t.Errorf("GET k = %v; want an error naming slot %d and cluster-preferred-endpoint-type", err, Slot("k"))
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("GET k failed after %v; want at once", took)
		}
		if err := c.ForEachMaster(ctx, func(context.Context, *Pool) error { return nil }); err == nil || !strings.Contains(err.Error(), "cluster-preferred-endpoint-type") {
			t.Errorf("ForEachMaster = %v; want the masters it cannot reach reported", err)
		}
		if s := c.Stats(); len(s.Slots) != 0 {
			t.Errorf("Stats().Slots = %v; want no master serving a slot", s.Slots)
		}
	})
}
