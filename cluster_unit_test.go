package redispool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

func TestClusterSatisfiesRedigoPoolInterface(t *testing.T) {
	var _ interface {
		Get() redis.Conn
		GetContext(context.Context) (redis.Conn, error)
	} = (*Cluster)(nil)
}

func TestParseRedirect(t *testing.T) {
	for _, tt := range []struct {
		reply, from string
		want        RedirectError
	}{
		{"MOVED 3999 127.0.0.1:6381", "127.0.0.1:6379", RedirectError{Slot: 3999, Addr: "127.0.0.1:6381"}},
		{"ASK 0 10.0.0.2:7000", "10.0.0.1:7000", RedirectError{Ask: true, Slot: 0, Addr: "10.0.0.2:7000"}},
		{"MOVED 16383 :7002", "10.0.0.1:7000", RedirectError{Slot: 16383, Addr: "10.0.0.1:7002"}},
		{"MOVED 12 [::1]:7002", "[::1]:7000", RedirectError{Slot: 12, Addr: "[::1]:7002"}},
	} {
		got, err := parseRedirect(redis.Error(tt.reply), tt.from)
		if err != nil || *got != tt.want {
			t.Errorf("parseRedirect(%q) = %+v, %v; want %+v", tt.reply, got, err, tt.want)
		}
	}
	for _, bad := range []string{"MOVED", "MOVED x 1.2.3.4:5", "MOVED 16384 h:1", "ASK 1 nohostport", "MOVED 1 h:1 extra"} {
		if _, err := parseRedirect(redis.Error(bad), "h:1"); err == nil {
			t.Errorf("parseRedirect(%q): no error", bad)
		}
	}
}

func TestClassifyReply(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want replyKind
	}{
		{nil, replyOther},
		{errors.New("MOVED 1 h:1"), replyOther}, // not a server reply
		{redis.Error("MOVED 1 h:1"), replyMoved},
		{redis.Error("ASK 1 h:1"), replyAsk},
		{redis.Error("TRYAGAIN Multiple keys request during rehashing of slot"), replyTryAgain},
		{redis.Error("CLUSTERDOWN The cluster is down"), replyClusterDown},
		{redis.Error("CLUSTERDOWN Hash slot not served"), replyClusterDown},
		{redis.Error("LOADING Redis is loading the dataset in memory"), replyLoading},
		{redis.Error("READONLY You can't write against a read only replica."), replyReadOnly},
		{redis.Error("CROSSSLOT Keys in request don't hash to the same slot"), replyCrossSlot},
		{redis.Error("ERR wrong number of arguments"), replyOther},
		{redis.Error("MOVEDX"), replyOther},
	} {
		if got, _ := classifyReply(tt.err); got != tt.want {
			t.Errorf("classifyReply(%v) = %d; want %d", tt.err, got, tt.want)
		}
	}
}

func TestCrossSlotErrorIsBothRedisErrorAndErrCrossSlot(t *testing.T) {
	const text = "CROSSSLOT Keys in request don't hash to the same slot"
	err := clusterReplyError(redis.Error(text))
	if !errors.Is(err, ErrCrossSlot) {
		t.Errorf("errors.Is(%v, ErrCrossSlot) = false", err)
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) || string(rerr) != text {
		t.Errorf("errors.As(%v, *redis.Error) = %q; want %q", err, rerr, text)
	}
	if err.Error() != text {
		t.Errorf("Error() = %q; want the server's text %q", err.Error(), text)
	}
	wrapped := fmt.Errorf("pipeline: %w", err)
	if !errors.Is(wrapped, ErrCrossSlot) || !errors.As(wrapped, &rerr) {
		t.Errorf("wrapped CROSSSLOT error lost ErrCrossSlot or redis.Error")
	}
	if other := clusterReplyError(redis.Error("ERR x")); errors.Is(other, ErrCrossSlot) {
		t.Errorf("ERR x is ErrCrossSlot")
	}
}

func TestNewClusterRejectsInvalidConfig(t *testing.T) {
	for _, tt := range []struct {
		cfg  ClusterConfig
		want string // in the error
	}{
		{ClusterConfig{}, "Addrs"},
		{ClusterConfig{Addrs: []string{"nohostport"}}, `"nohostport"`},
		{ClusterConfig{Addrs: []string{"h:99999"}}, `"h:99999"`},
		{ClusterConfig{Addrs: []string{"h:1"}, Node: Config{Addr: "h:2"}}, "Node.Addr"},
		{ClusterConfig{Addrs: []string{"h:1"}, Node: Config{DB: 1}}, "Node.DB"},
		{ClusterConfig{Addrs: []string{"h:1"}, Node: Config{Sentinel: &SentinelConfig{MasterName: "m", Addrs: []string{"s:26379"}}}}, "Node.Sentinel"},
		{ClusterConfig{Addrs: []string{"h:1"}, Node: Config{Network: "unix"}}, "Node.Network"},
		{ClusterConfig{Addrs: []string{"h:1"}, Node: Config{MaxTotal: -1}}, "MaxTotal"},
		{ClusterConfig{Addrs: []string{"h:1"}, Node: Config{Username: "u"}}, "Username"},
	} {
		c, err := NewCluster(context.Background(), tt.cfg)
		if err == nil {
			c.Close()
			t.Errorf("NewCluster(%+v): no error", tt.cfg)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewCluster(%+v) = %v; want ErrInvalidConfig naming %s", tt.cfg, err, tt.want)
		}
	}
}

func TestClusterErrorsNeverShowThePassword(t *testing.T) {
	_, err := NewCluster(context.Background(), ClusterConfig{
		Addrs: []string{"127.0.0.1:1"},
		Node:  Config{Password: "hunter2", DB: 3},
	})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("NewCluster: %v", err)
	}
	c, err := NewCluster(context.Background(), ClusterConfig{Addrs: []string{"127.0.0.1:1"}, Node: Config{Password: "hunter2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := ClusterConfig{Addrs: []string{"h:1"}, Node: Config{Password: "hunter2"}}
	for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v", c, c, c), fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("printed cluster shows the password: %s", s)
		}
	}
}

func TestClusterNoSeedReachableNamesTheSeeds(t *testing.T) {
	// Two ports that refuse connections: listeners opened and closed.
	a, b := closedPort(t), closedPort(t)
	c, err := NewCluster(context.Background(), ClusterConfig{Addrs: []string{a, b}, RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, f := range map[string]func() error{
		"Ping":    func() error { return c.Ping(ctx) },
		"Do":      func() error { _, err := c.Do(ctx, "GET", "k"); return err },
		"Refresh": func() error { return c.Refresh(ctx) },
		"conn.Do": func() error {
			conn := c.Get()
			defer conn.Close()
			_, err := conn.Do("GET", "k")
			return err
		},
	} {
		err := f()
		if err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
			t.Errorf("%s = %v; want an error naming both seeds %s and %s", name, err, a, b)
		}
	}
	if s := c.Stats(); s.RefreshErrors == 0 {
		t.Errorf("Stats().RefreshErrors = 0 after failed loads")
	}
}

func TestClusterClosed(t *testing.T) {
	c, err := NewCluster(context.Background(), ClusterConfig{Addrs: []string{closedPort(t)}})
	if err != nil {
		t.Fatal(err)
	}
	unbound := c.Get()
	c.Close()
	c.Close() // idempotent
	ctx := context.Background()
	if _, err := c.Do(ctx, "GET", "k"); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("Do after Close = %v; want ErrPoolClosed", err)
	}
	if _, err := c.GetContext(ctx); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("GetContext after Close = %v; want ErrPoolClosed", err)
	}
	if _, err := c.GetForKeys(ctx, "k"); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("GetForKeys after Close = %v; want ErrPoolClosed", err)
	}
	for name, conn := range map[string]redis.Conn{"Get after Close": c.Get(), "Get before Close": unbound} {
		if _, err := conn.Do("GET", "k"); !errors.Is(err, ErrPoolClosed) {
			t.Errorf("%s: Do = %v; want ErrPoolClosed", name, err)
		}
		if err := conn.Send("GET", "k"); !errors.Is(err, ErrPoolClosed) {
			t.Errorf("%s: Send = %v; want ErrPoolClosed", name, err)
		}
		if err := conn.Err(); !errors.Is(err, ErrPoolClosed) {
			t.Errorf("%s: Err = %v; want ErrPoolClosed", name, err)
		}
		conn.Close()
	}
	if err := c.Ping(ctx); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("Ping after Close = %v; want ErrPoolClosed", err)
	}
}

func TestGetForKeysCrossSlotBeforeIO(t *testing.T) {
	// No server: the error must come before any dial.
	c, err := NewCluster(context.Background(), ClusterConfig{Addrs: []string{closedPort(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.GetForKeys(context.Background(), "a", "b")
	if !errors.Is(err, ErrCrossSlot) {
		t.Fatalf("GetForKeys(a, b) = %v; want ErrCrossSlot", err)
	}
	if s := c.Stats(); s.Refreshes+s.RefreshErrors != 0 {
		t.Errorf("GetForKeys(a, b) loaded the slot map: %+v", s)
	}
}

func TestParseClusterURL(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want ClusterConfig
		tls  bool
	}{
		{"redis+cluster://h1:7000", ClusterConfig{Addrs: []string{"h1:7000"}}, false},
		{"redis+cluster://:pw@h1:7000,h2:7001,h3/0", ClusterConfig{
			Addrs: []string{"h1:7000", "h2:7001", "h3:6379"}, Node: Config{Password: "pw"},
		}, false},
		{"rediss+cluster://app:pw@[::1]:7000,10.0.0.2:7000", ClusterConfig{
			Addrs: []string{"[::1]:7000", "10.0.0.2:7000"}, Node: Config{Username: "app", Password: "pw"},
		}, true},
		{"redis+cluster://h:1?max_redirects=-1&retry_timeout=10s&refresh_interval=-1&read_from_replicas=true" +
			"&max_total=8&read_timeout=250ms&client_name=svc", ClusterConfig{
			Addrs: []string{"h:1"}, MaxRedirects: -1, RetryTimeout: 10 * time.Second, RefreshInterval: -time.Second,
			ReadFromReplicas: true, Node: Config{MaxTotal: 8, ReadTimeout: 250 * time.Millisecond, ClientName: "svc"},
		}, false},
	} {
		got, err := ParseClusterURL(tt.url)
		if err != nil {
			t.Errorf("ParseClusterURL(%q): %v", tt.url, err)
			continue
		}
		if (got.Node.TLSConfig != nil) != tt.tls {
			t.Errorf("ParseClusterURL(%q): TLS %v; want %v", tt.url, got.Node.TLSConfig != nil, tt.tls)
		}
		if got.Node.TLSConfig != nil && got.Node.TLSConfig.ServerName != "" {
			t.Errorf("ParseClusterURL(%q): ServerName %q; want empty (set per node)", tt.url, got.Node.TLSConfig.ServerName)
		}
		got.Node.TLSConfig = nil
		if fmt.Sprint(got.Addrs) != fmt.Sprint(tt.want.Addrs) || got.Node.String() != tt.want.Node.String() ||
			got.Node.Password != tt.want.Node.Password || got.MaxRedirects != tt.want.MaxRedirects ||
			got.RetryTimeout != tt.want.RetryTimeout || got.RefreshInterval != tt.want.RefreshInterval ||
			got.ReadFromReplicas != tt.want.ReadFromReplicas {
			t.Errorf("ParseClusterURL(%q)\n got %+v\nwant %+v", tt.url, got, tt.want)
		}
	}
	for _, tt := range []struct{ url, want string }{
		{"redis://h:1", "scheme"},
		{"redis+cluster://", "seed"},
		{"redis+cluster://h:1/2", "database"},
		{"redis+cluster://h:1?db=1", "database 0"},
		{"redis+cluster://h:1?max_redirects=x", "max_redirects"},
		{"redis+cluster://h:1?retry_timeout=x", "retry_timeout"},
		{"redis+cluster://h:1?bogus=1", "unknown parameter"},
		{"redis+cluster://u:secret@h:1/5", "database"},
		{"redis+cluster://u:sec/ret@h:1", "percent-encode"},
	} {
		_, err := ParseClusterURL(tt.url)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "ret@") {
			t.Errorf("ParseClusterURL(%q) = %v; want an error about %s, without the password", tt.url, err, tt.want)
		}
	}
}

// A slot the map gives no owner is retried within RetryTimeout, as the
// server's CLUSTERDOWN is (a node's CLUSTER SLOTS shows such a gap for a
// moment during a failover: TestClusterFailoverUnderLoad met it), then
// fails with an error naming the slot, long before ctx ends.
func TestClusterSlotWithoutOwnerFailsFast(t *testing.T) {
	c, err := NewCluster(context.Background(), ClusterConfig{Addrs: []string{closedPort(t)}, RetryTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A map in which no slot has an owner, as if CLUSTER SLOTS had
	// listed none of them.
	c.table.Store(&slotTable{shards: make([]shard, 1), from: "test"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.Do(ctx, "GET", "k")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("slot %d has no owner", Slot("k"))) {
		t.Errorf("Do GET k = %v; want an error saying slot %d has no owner", err, Slot("k"))
	}
	conn := c.Get()
	defer conn.Close()
	if _, err := conn.Do("GET", "k"); err == nil || !strings.Contains(err.Error(), "no owner") {
		t.Errorf("conn.Do GET k = %v; want an error saying the slot has no owner", err)
	}
	if ctx.Err() != nil {
		t.Errorf("the errors took until the deadline")
	}
	if c.Stats().Retries == 0 {
		t.Errorf("Retries = 0; want the unserved slot retried within RetryTimeout")
	}
}

// BenchmarkClusterRouting is what Cluster.Do adds before the node's pool
// is asked for a connection: finding the key, its slot and its node.
func BenchmarkClusterRouting(b *testing.B) {
	var next atomic.Uint32
	t := &slotTable{shards: make([]shard, 1), from: "bench"}
	for i := 0; i < 3; i++ {
		n := &clusterNode{addr: fmt.Sprintf("127.0.0.1:%d", 7000+i)}
		t.shards = append(t.shards, shard{master: n})
		t.masters = append(t.masters, n)
	}
	for s := range t.slots {
		t.slots[s] = uint16(1 + s*3/slotCount)
	}
	for _, bc := range []struct {
		name string
		cmd  string
		args []any
	}{
		{"GET", "GET", []any{"user:1000:profile"}},
		{"EVALSHA", "EVALSHA", []any{"e0e1f9fabfc9d4800c877a703b823ac0578ff831", 1, "{lock}:resource", "token", 30000}},
		{"PING", "PING", nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				slot, keyed, _ := commandSlot(bc.cmd, bc.args)
				if !keyed {
					slot = -1
				}
				if _, err := t.route(slot, false, &next); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestClusterTooManyRedirects(t *testing.T) {
	var addr atomic.Pointer[string]
	a, gets := fakeNode(t, func(_ int64, cmd []string) *string {
		return ptr(fmt.Sprintf("-MOVED %d %s\r\n", Slot(cmd[1]), *addr.Load()))
	})
	addr.Store(&a)
	c, err := NewCluster(context.Background(), ClusterConfig{Addrs: []string{a}, MaxRedirects: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Do(context.Background(), "GET", "k")
	var rd *RedirectError
	if !errors.Is(err, ErrTooManyRedirects) || !errors.As(err, &rd) || rd.Addr != a || rd.Slot != Slot("k") {
		t.Errorf("Do = %v; want ErrTooManyRedirects wrapping MOVED %d %s", err, Slot("k"), a)
	}
	if got := gets.Load(); got != 4 {
		t.Errorf("the node received %d GETs; want 4 (the command and 3 redirects)", got)
	}
}

func TestClusterRetriesOnlyWhatDidNotRun(t *testing.T) {
	ctx := context.Background()
	t.Run("ClusterDownThenServed", func(t *testing.T) {
		a, gets := fakeNode(t, func(n int64, _ []string) *string {
			if n <= 3 {
				return ptr("-CLUSTERDOWN The cluster is down\r\n")
			}
			return ptr("$1\r\nv\r\n")
		})
		c, err := NewCluster(ctx, ClusterConfig{Addrs: []string{a}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if v, err := redis.String(c.Do(ctx, "GET", "k")); err != nil || v != "v" {
			t.Errorf("Do = %q, %v; want v after 3 CLUSTERDOWN", v, err)
		}
		if s := c.Stats(); gets.Load() != 4 || s.ClusterDown != 3 || s.Retries != 3 {
			t.Errorf("%d GETs, ClusterDown %d, Retries %d; want 4, 3, 3", gets.Load(), s.ClusterDown, s.Retries)
		}
	})
	t.Run("ReadOnlyFromDemotedMasterThenServed", func(t *testing.T) {
		// A master demoted to replica answers writes with READONLY: the
		// write did not run, so the map is reloaded and it is retried.
		a, sets := fakeNode(t, func(n int64, _ []string) *string {
			if n <= 2 {
				return ptr("-READONLY You can't write against a read only replica.\r\n")
			}
			return ptr("+OK\r\n")
		})
		c, err := NewCluster(ctx, ClusterConfig{Addrs: []string{a}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if v, err := redis.String(c.Do(ctx, "SET", "k", "v")); err != nil || v != "OK" {
			t.Errorf("Do = %q, %v; want OK after 2 READONLY", v, err)
		}
		if s := c.Stats(); sets.Load() != 3 || s.Retries != 2 {
			t.Errorf("%d SETs, Retries %d; want 3, 2", sets.Load(), s.Retries)
		}
		// The reload READONLY asked for runs once the 200ms cooldown
		// after the first load has passed.
		deadline := time.Now().Add(5 * time.Second)
		for c.Stats().Refreshes < 2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if s := c.Stats(); s.Refreshes < 2 {
			t.Errorf("Refreshes %d; want a reload after READONLY besides the first load", s.Refreshes)
		}
	})
	t.Run("TryAgainUntilRetryTimeout", func(t *testing.T) {
		a, _ := fakeNode(t, func(int64, []string) *string {
			return ptr("-TRYAGAIN Multiple keys request during rehashing of slot\r\n")
		})
		c, err := NewCluster(ctx, ClusterConfig{Addrs: []string{a}, RetryTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		_, err = c.Do(ctx, "MGET", "{a}1", "{a}2")
		took := time.Since(start)
		var rerr redis.Error
		if !errors.As(err, &rerr) || !strings.HasPrefix(string(rerr), "TRYAGAIN") {
			t.Errorf("Do = %v; want the TRYAGAIN reply once RetryTimeout is spent", err)
		}
		if took < 250*time.Millisecond || took > 5*time.Second {
			t.Errorf("gave up after %v; want about RetryTimeout (300ms)", took)
		}
		if s := c.Stats(); s.TryAgain < 3 {
			t.Errorf("TryAgain %d; want several", s.TryAgain)
		}
	})
	t.Run("IOErrorAfterSendIsNotRetried", func(t *testing.T) {
		a, incrs := fakeNode(t, func(int64, []string) *string { return nil }) // hang up on INCR
		c, err := NewCluster(ctx, ClusterConfig{Addrs: []string{a}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Do(ctx, "INCR", "k"); err == nil {
			t.Fatal("Do INCR succeeded on a node that hangs up")
		}
		time.Sleep(50 * time.Millisecond)
		if got := incrs.Load(); got != 1 {
			t.Errorf("the node received INCR %d times; want 1: it may have run", got)
		}
	})
}

func FuzzParseClusterURL(f *testing.F) {
	f.Add("redis+cluster://app:s3cr3t@h1:7000,h2:7001/0?max_redirects=3&read_from_replicas=1")
	f.Add("rediss+cluster://:pw@[::1]:7000,10.0.0.2?max_total=8")
	f.Fuzz(func(t *testing.T, raw string) {
		cfg, err := ParseClusterURL(raw)
		if err == nil {
			if len(cfg.Addrs) == 0 {
				t.Errorf("ParseClusterURL(%q): no error and no seed", raw)
			}
			c, err := NewCluster(context.Background(), cfg)
			switch {
			case err == nil:
				c.Close()
			case cfg.Node.Password != "" && strings.Count(raw, cfg.Node.Password) == 1 && strings.Contains(err.Error(), cfg.Node.Password):
				t.Errorf("NewCluster of ParseClusterURL(%q) = %v: shows the password", raw, err)
			}
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "redispool: ") {
			t.Errorf("ParseClusterURL(%q) = %q; want an error starting with \"redispool: \"", raw, msg)
		}
		if start, end, ok := urlPasswordSpan(raw); ok && end-start >= 4 {
			// The error shows the password if it changes with it: the
			// same digits may also come from elsewhere in the URL, or
			// from how %q escapes it.
			pw := raw[start:end]
			rotated, changed := rotateAlnum(pw)
			if changed && strings.Contains(msg, pw) {
				if _, err2 := ParseClusterURL(raw[:start] + rotated + raw[end:]); err2 == nil || err2.Error() != msg {
					t.Errorf("ParseClusterURL(%q) = %q: shows the password %q", raw, msg, pw)
				}
			}
		}
	})
}

// A node pool with AbandonedTimeout records each loan, so returning the
// connections of Cluster.Do frees their slots: more commands than
// MaxTotal run one after another without waiting.
func TestClusterNodePoolsWithAbandonedTimeoutFreeTheirSlots(t *testing.T) {
	a, gets := fakeNode(t, func(int64, []string) *string { return ptr("$1\r\nv\r\n") })
	c, err := NewCluster(context.Background(), ClusterConfig{Addrs: []string{a}, Node: Config{
		MaxTotal: 2, BorrowTimeout: 500 * time.Millisecond, AbandonedTimeout: time.Minute,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 6 {
		if _, err := c.Do(context.Background(), "GET", "k"); err != nil {
			t.Fatalf("GET %d: %v (a node pool with MaxTotal 2 lost its slots)", i+1, err)
		}
		conn := c.Get()
		if _, err := conn.Do("GET", "k"); err != nil {
			t.Fatalf("bound GET %d: %v", i+1, err)
		}
		conn.Close()
	}
	if got := gets.Load(); got != 12 {
		t.Errorf("the node received %d GETs; want 12", got)
	}
	for addr, s := range c.Stats().Nodes {
		if s.Active != 0 || s.Abandoned != 0 {
			t.Errorf("node %s: Active %d, Abandoned %d; want 0, 0", addr, s.Active, s.Abandoned)
		}
	}
}

// A multi-key command during a migration goes round ASK at the source
// and TRYAGAIN at the target until the migration ends. Each retry starts
// a fresh redirect budget: only RetryTimeout and ctx bound the command.
func TestClusterAskThenTryAgainRetriesWithAFreshRedirectBudget(t *testing.T) {
	ctx := context.Background()
	// target answers TRYAGAIN to the first tryAgains MGETs, then both
	// values; source sends every MGET there with ASK.
	fakes := func(t *testing.T, tryAgains int64) (source string, sourceMGETs, targetMGETs *atomic.Int64) {
		target, targetMGETs := fakeNode(t, func(n int64, _ []string) *string {
			if tryAgains < 0 || n <= tryAgains {
				return ptr("-TRYAGAIN Multiple keys request during rehashing of slot\r\n")
			}
			return ptr("*2\r\n$1\r\nv\r\n$-1\r\n")
		})
		source, sourceMGETs = fakeNode(t, func(_ int64, cmd []string) *string {
			return ptr(fmt.Sprintf("-ASK %d %s\r\n", Slot(cmd[1]), target))
		})
		return source, sourceMGETs, targetMGETs
	}

	t.Run("ServedOnceTheMigrationEnds", func(t *testing.T) {
		source, sourceMGETs, targetMGETs := fakes(t, 12)
		c, err := NewCluster(ctx, ClusterConfig{Addrs: []string{source}, MaxRedirects: 2, RetryTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		v, err := redis.Values(c.Do(ctx, "MGET", "{m}moved", "{m}absent"))
		if err != nil || len(v) != 2 {
			t.Fatalf("MGET = %v, %v; want [v nil] after 12 rounds of ASK and TRYAGAIN", v, err)
		}
		if s := c.Stats(); sourceMGETs.Load() != 13 || targetMGETs.Load() != 13 || s.Ask != 13 || s.TryAgain != 12 || s.Retries != 12 {
			t.Errorf("source %d MGETs, target %d, Ask %d, TryAgain %d, Retries %d; want 13, 13, 13, 12, 12",
				sourceMGETs.Load(), targetMGETs.Load(), s.Ask, s.TryAgain, s.Retries)
		}
	})
	t.Run("BoundedByRetryTimeout", func(t *testing.T) {
		source, _, _ := fakes(t, -1) // a migration that never ends
		c, err := NewCluster(ctx, ClusterConfig{Addrs: []string{source}, RetryTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		_, err = c.Do(ctx, "MGET", "{m}moved", "{m}absent")
		took := time.Since(start)
		var rerr redis.Error
		if errors.Is(err, ErrTooManyRedirects) || !errors.As(err, &rerr) || !strings.HasPrefix(string(rerr), "TRYAGAIN") {
			t.Errorf("Do = %v; want the TRYAGAIN reply once RetryTimeout is spent, not ErrTooManyRedirects", err)
		}
		if took < 250*time.Millisecond || took > 5*time.Second {
			t.Errorf("gave up after %v; want about RetryTimeout (300ms)", took)
		}
	})
	t.Run("BoundedByTheContext", func(t *testing.T) {
		source, _, _ := fakes(t, -1)
		c, err := NewCluster(ctx, ClusterConfig{Addrs: []string{source}, RetryTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if _, err := c.Do(dctx, "MGET", "{m}moved", "{m}absent"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Do = %v; want context.DeadlineExceeded", err)
		}
	})
}

func TestParseSlotsEndpoints(t *testing.T) {
	node := func(host any, port int) []any { return []any{host, int64(port), []byte("id")} }
	rng := func(lo, hi int, nodes ...[]any) []any {
		r := []any{int64(lo), int64(hi)}
		for _, n := range nodes {
			r = append(r, n)
		}
		return r
	}
	tests := []struct {
		name     string
		reply    []any
		masters  []string // dialable masters
		bad      []string // what Ping reports, in order
		replicas []string // dialable replicas, for ForEachNode
	}{
		{"ip", []any{rng(0, 16383, node([]byte("10.0.0.1"), 7000), node([]byte("10.0.0.2"), 7000))},
			[]string{"10.0.0.1:7000"}, nil, []string{"10.0.0.2:7000"}},
		{"empty host is the node asked", []any{rng(0, 16383, node([]byte(""), 7001))},
			[]string{"10.9.9.9:7001"}, nil, nil},
		{"null host is the node asked (unknown-endpoint)", []any{rng(0, 16383, node(nil, 7002))},
			[]string{"10.9.9.9:7002"}, nil, nil},
		{"hostname", []any{rng(0, 16383, node([]byte("redis-0.example"), 6379))},
			[]string{"redis-0.example:6379"}, nil, nil},
		{"question mark", []any{
			rng(0, 100, node([]byte("?"), 7000), node([]byte("?"), 7003)),
			rng(101, 16000, node([]byte("10.0.0.2"), 7001)),
			rng(16001, 16383, node([]byte("?"), 7000)),
		}, []string{"10.0.0.2:7001"}, []string{`slots 0-100, 16001-16383: CLUSTER SLOTS from 10.9.9.9:7000 gives their master as "?:7000": ` +
			`the node has no hostname while cluster-preferred-endpoint-type is hostname`}, nil},
		{"port 0", []any{rng(5, 5, node([]byte("10.0.0.1"), 0)), rng(6, 16383, node([]byte("10.0.0.1"), 7000))},
			[]string{"10.0.0.1:7000"}, []string{`slot 5: CLUSTER SLOTS from 10.9.9.9:7000 gives their master as "10.0.0.1:0": the node announces no port`}, nil},
		{"every master undialable", []any{rng(0, 16383, node([]byte("?"), 7000))},
			nil, []string{`slots 0-16383:`}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCluster(context.Background(), ClusterConfig{Addrs: []string{"10.9.9.9:7000"}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tab, err := c.parseSlots(tc.reply, "10.9.9.9:7000")
			if err != nil {
				t.Fatalf("parseSlots: %v", err)
			}
			var masters, replicas []string
			for _, n := range tab.masters {
				masters = append(masters, n.addr)
			}
			for _, sh := range tab.shards[1:] {
				replicas = append(replicas, sh.replicaAddrs...)
			}
			if fmt.Sprint(masters) != fmt.Sprint(tc.masters) || fmt.Sprint(replicas) != fmt.Sprint(tc.replicas) {
				t.Errorf("masters %v, replicas %v; want %v, %v", masters, replicas, tc.masters, tc.replicas)
			}
			bad := tab.undialable()
			if len(bad) != len(tc.bad) {
				t.Fatalf("undialable = %v; want %d errors", bad, len(tc.bad))
			}
			for i, err := range bad {
				if msg := err.Error(); !strings.HasPrefix(msg, "redispool: cluster: ") || !strings.Contains(msg, tc.bad[i]) {
					t.Errorf("undialable[%d] = %q; want it to contain %q", i, msg, tc.bad[i])
				}
			}
			// A keyed command for a slot whose master cannot be dialed
			// says why, at once.
			for s := range slotCount {
				if tab.slots[s] == 0 || tab.shards[tab.slots[s]].master != nil {
					continue
				}
				_, err := tab.route(s, false, &c.next)
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("slot %d: ", s)) || !strings.Contains(err.Error(), tab.shards[tab.slots[s]].endpoint) {
					t.Errorf("route(%d) = %v; want an error naming the slot and the endpoint", s, err)
				}
				break
			}
		})
	}
}

// A node that answers MOVED to ever new addresses cannot make the
// cluster create a pool per address: redirects to nodes the slot map
// does not list are bounded, and each asks for a reload.
func TestClusterHostileRedirectsKeepNodePoolsBounded(t *testing.T) {
	var next atomic.Int64
	a, gets := fakeNode(t, func(_ int64, cmd []string) *string {
		// 127.0.0.0/8 is loopback: every address refuses at once.
		n := next.Add(1)
		return ptr(fmt.Sprintf("-MOVED %d 127.%d.%d.%d:1\r\n", Slot(cmd[1]), 1+n>>16&0xff, n>>8&0xff, n&0xff))
	})
	c, err := NewCluster(context.Background(), ClusterConfig{Addrs: []string{a}, RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	goroutines := runtime.NumGoroutine()
	refused := 0
	for i := range 2000 {
		_, err := c.Do(context.Background(), "GET", "k"+strconv.Itoa(i))
		var rd *RedirectError
		switch {
		case err == nil:
			t.Fatalf("GET %d succeeded", i)
		case errors.Is(err, errTooManyPending):
			refused++
			if !errors.As(err, &rd) {
				t.Fatalf("GET %d = %v; want it to wrap the *RedirectError not followed", i, err)
			}
		}
	}
	s := c.Stats()
	after := runtime.NumGoroutine()
	t.Logf("%d GETs reached the node, %d redirects refused; %d pools (%d pending), goroutines %d before, %d after; %d reloads",
		gets.Load(), refused, len(s.Nodes), s.PendingNodes, goroutines, after, s.Refreshes)
	if len(s.Nodes) > 1+maxPendingNodes || s.PendingNodes > maxPendingNodes {
		t.Errorf("%d node pools, %d pending; want at most %d and %d", len(s.Nodes), s.PendingNodes, 1+maxPendingNodes, maxPendingNodes)
	}
	if after > goroutines+4*maxPendingNodes {
		t.Errorf("%d goroutines after 2,000 redirects, %d before; want at most a few per pending pool", after, goroutines)
	}
	if refused < 1000 {
		t.Errorf("%d redirects refused; want most of 2,000", refused)
	}
}
