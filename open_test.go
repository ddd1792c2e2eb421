package redispool

import (
	"context"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"
)

func TestOpenReturnsPoolOrClusterByScheme(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		url     string
		cluster bool
		want    string // in the client's String
	}{
		{"redis://:pw@cache:6380/2", false, "tcp cache:6380"},
		{"rediss://cache", false, "tcp cache:6379"},
		{"unix:///run/redis.sock?db=1", false, "unix /run/redis.sock"},
		{"REDIS://cache", false, "tcp cache:6379"},
		{"redis+cluster://:pw@h1:7000,h2:7001", true, "h1:7000"},
		{"rediss+cluster://h1:7000", true, "h1:7000"},
		{"Redis+Cluster://h1:7000", true, "h1:7000"},
	} {
		c, err := Open(ctx, tt.url)
		if err != nil {
			t.Errorf("Open(%q): %v", tt.url, err)
			continue
		}
		_, isCluster := c.(*Cluster)
		_, isPool := c.(*Pool)
		if isCluster != tt.cluster || isPool == tt.cluster {
			t.Errorf("Open(%q) = %T; want a *Cluster: %v", tt.url, c, tt.cluster)
		}
		if s := c.(interface{ String() string }).String(); !strings.Contains(s, tt.want) || strings.Contains(s, "pw") {
			t.Errorf("Open(%q) = %s; want %q in it, and no password", tt.url, s, tt.want)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

// A Sentinel URL gives a *Pool that follows the master. Open does not
// ask the Sentinels (the first dial does), but the pool subscribes to
// them in the background: a miniredis stands in for the Sentinel and
// takes the subscription.
func TestOpenSentinelURLReturnsPool(t *testing.T) {
	addr := miniredis.RunT(t).Addr()
	for _, scheme := range []string{"redis+sentinel", "rediss+sentinel"} {
		c, err := Open(context.Background(), scheme+"://"+addr+"/mymaster?sentinel_password=hidden")
		if err != nil {
			t.Fatalf("Open(%s): %v", scheme, err)
		}
		p, ok := c.(*Pool)
		if !ok || p.cfg.Sentinel == nil || p.cfg.Sentinel.MasterName != "mymaster" {
			t.Errorf("Open(%s) = %T %v; want a *Pool following mymaster", scheme, c, c)
		}
		c.Close()
	}
}

func TestOpenServes(t *testing.T) {
	ctx := context.Background()
	s := miniredis.RunT(t)
	s.RequireAuth("s3cret")
	node, _ := fakeNode(t, func(int64, []string) *string { return ptr("$2\r\nok\r\n") })
	for _, raw := range []string{"redis://:s3cret@" + s.Addr(), "redis+cluster://" + node} {
		c, err := Open(ctx, raw)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := c.Ping(ctx); err != nil {
			t.Errorf("%T: Ping: %v", c, err)
		}
		if _, err := c.Do(ctx, "SET", "k", "ok"); err != nil {
			t.Errorf("%T: SET: %v", c, err)
		}
		if v, err := redis.String(c.Do(ctx, "GET", "k")); v != "ok" || err != nil {
			t.Errorf("%T: GET = %q, %v; want ok", c, v, err)
		}
		conn := c.RedigoPool().Get()
		if v, err := redis.String(conn.Do("GET", "k")); v != "ok" || err != nil {
			t.Errorf("%T: GET through RedigoPool = %q, %v; want ok", c, v, err)
		}
		conn.Close()
		if err := c.Close(); err != nil {
			t.Errorf("%T: Close: %v", c, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	for _, raw := range []string{
		"",
		"localhost:6379",
		"http://u:s3cr3tpw@cache",
		"redis://u:s3cr3tpw@cache/x",
		"redis://u:s3cr3tpw@cache?max_total=-5",
		"redis://u:s3cr3tpw@cache?nope=1",
		"redis://u:s3c/r3tpw@cache",
		"redis+cluster://u:s3cr3tpw@",
		"redis+cluster://u:s3cr3tpw@h1:7000/3",
		"rediss+cluster://u:s3cr3tpw@h1:7000?max_total=-1",
		"redis+sentinel://u:s3cr3tpw@s1,s2",
	} {
		c, err := Open(context.Background(), raw)
		if err == nil {
			c.Close()
			t.Errorf("Open(%q) succeeded; want an error", raw)
			continue
		}
		if c != nil {
			t.Errorf("Open(%q) = %#v, %v; want a nil Client with the error", raw, c, err)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "redispool: ") || strings.Contains(msg, "s3c") || strings.Contains(msg, "r3tpw") {
			t.Errorf("Open(%q) = %q; want a redispool error without the password", raw, msg)
		}
	}
}

// openNoDial is Open for URLs from the fuzzer: a URL that parses into a
// pool that would dial at once (MinIdle, a Sentinel subscription) is
// not opened, so that fuzzing sends nothing to the hosts it invents.
// ok is false when it did not run Open.
func openNoDial(raw string) (err error, ok bool) {
	if cfg, perr := ParseURL(raw); perr == nil && (cfg.MinIdle > 0 || cfg.Sentinel != nil) {
		return nil, false
	}
	c, err := Open(context.Background(), raw)
	if err == nil {
		c.Close()
	}
	return err, true
}

// FuzzOpen checks that Open never panics, returns a nil Client with
// every error, that its errors start with "redispool: " and do not show
// the password: an error that contains the password must not change
// when the password's letters and digits are rotated.
func FuzzOpen(f *testing.F) {
	f.Add("redis://app:s3cr3t@localhost:6379/2?max_total=8")
	f.Add("redis+cluster://app:s3cr3t@h1:7000,h2:7001/0?max_redirects=3")
	f.Add("rediss+sentinel://:s3cr3t@s1,s2:26380/mymaster/1?sentinel_password=x")
	f.Add("unix://:s3cr3t@/run/redis.sock?db=3&max_total=-1")
	f.Add("redis://:s3/cr3t@cache")
	f.Fuzz(func(t *testing.T, raw string) {
		err, ok := openNoDial(raw)
		if !ok || err == nil {
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "redispool: ") {
			t.Errorf("Open(%q) = %q; want an error starting with \"redispool: \"", raw, msg)
		}
		start, end, ok := urlPasswordSpan(raw)
		if !ok {
			start, end, ok = intendedPasswordSpan(raw)
		}
		if !ok || end-start < 4 {
			return
		}
		pw := raw[start:end]
		rotated, changed := rotateAlnum(pw)
		if !changed || !strings.Contains(msg, pw) {
			return
		}
		if err2, ran := openNoDial(raw[:start] + rotated + raw[end:]); ran && (err2 == nil || err2.Error() != msg) {
			t.Errorf("Open(%q) = %q: shows the password %q", raw, msg, pw)
		}
	})
}
