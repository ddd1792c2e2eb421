package redispool

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want Config
		tls  bool
	}{
		{"redis://", Config{Network: "tcp", Addr: "localhost:6379"}, false},
		{"redis://example.com", Config{Network: "tcp", Addr: "example.com:6379"}, false},
		{"redis://:pw@10.0.0.1:6380/3", Config{Network: "tcp", Addr: "10.0.0.1:6380", Password: "pw", DB: 3}, false},
		{"redis://app:pw@[::1]:7000/0", Config{Network: "tcp", Addr: "[::1]:7000", Username: "app", Password: "pw"}, false},
		{"rediss://cache.internal:6380", Config{Network: "tcp", Addr: "cache.internal:6380"}, true},
		{"unix:///run/redis.sock?db=2", Config{Network: "unix", Addr: "/run/redis.sock", DB: 2}, false},
		{"unix://:pw@/run/redis.sock", Config{Network: "unix", Addr: "/run/redis.sock", Password: "pw"}, false},
		{
			"redis://h:1/1?dial_timeout=250ms&read_timeout=2&write_timeout=-1s&borrow_timeout=1s&check_timeout=100ms" +
				"&max_conn_lifetime=1h&max_conn_idle_time=5m&ping_after_idle=30s&eviction_interval=10s" +
				"&max_total=32&max_idle=16&min_idle=4&fail_fast=true&fifo=1&client_name=svc&abandoned_timeout=2m",
			Config{
				Network: "tcp", Addr: "h:1", DB: 1, ClientName: "svc",
				DialTimeout: 250 * time.Millisecond, ReadTimeout: 2 * time.Second, WriteTimeout: -time.Second,
				BorrowTimeout: time.Second, CheckTimeout: 100 * time.Millisecond,
				MaxConnLifetime: time.Hour, MaxConnIdleTime: 5 * time.Minute, PingAfterIdle: 30 * time.Second,
				EvictionInterval: 10 * time.Second, MaxTotal: 32, MaxIdle: 16, MinIdle: 4, FailFast: true, FIFO: true,
				AbandonedTimeout: 2 * time.Minute,
			},
			false,
		},
	} {
		got, err := ParseURL(tt.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.url, err)
			continue
		}
		if (got.TLSConfig != nil) != tt.tls {
			t.Errorf("ParseURL(%q): TLS %v; want %v", tt.url, got.TLSConfig != nil, tt.tls)
		}
		got.TLSConfig = nil
		if got.String() != tt.want.String() || got.Password != tt.want.Password {
			t.Errorf("ParseURL(%q)\n got %v\nwant %v", tt.url, got, tt.want)
		}
	}
}

func TestParseURLTLSServerName(t *testing.T) {
	cfg, err := ParseURL("rediss://cache.internal:6380")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLSConfig.ServerName != "cache.internal" || cfg.TLSConfig.InsecureSkipVerify {
		t.Fatalf("TLSConfig = {ServerName %q, InsecureSkipVerify %v}; want verification of cache.internal",
			cfg.TLSConfig.ServerName, cfg.TLSConfig.InsecureSkipVerify)
	}
}

func TestParseURLErrors(t *testing.T) {
	const password = "s3cr3t-pw"
	for _, tt := range []struct {
		url     string
		mention string
	}{
		{"http://localhost", "scheme"},
		{"localhost:6379", "scheme"},
		{"redis://h/abc", "database"},
		{"redis://h/-1", "database"},
		{"redis://h?max_total=many", "max_total"},
		{"redis://h?read_timeout=soon", "read_timeout"},
		{"redis://h?fail_fast=perhaps", "fail_fast"},
		{"redis://h?bogus=1", "bogus"},
		{"redis://h?max_total=1&max_total=2", "max_total"},
		{"redis://h?db=2", "path"},
		{"unix://", "socket path"},
		{"redis://app@h", "without a password"},
		{"redis://app:" + password + "@h:bad", "invalid URL"},
		{"redis://app:" + password + "@h/x", "database"},
		{"redis://app:" + password + "@h?nope=1", "nope"},
		{"redis://:" + password + "@[::1", "invalid URL"},
		{"redis://app:" + password + "@h\x7f", "invalid URL"},
		{"redis://app:" + password + "%zz@h", "invalid URL"},
	} {
		_, err := ParseURL(tt.url)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded; want an error", tt.url)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.mention) || !strings.HasPrefix(msg, "redispool: ") {
			t.Errorf("ParseURL(%q) = %q; want an error mentioning %q", tt.url, msg, tt.mention)
		}
		if strings.Contains(msg, password) {
			t.Errorf("ParseURL error %q contains the password", msg)
		}
	}
}

func TestParseSentinelURL(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want Config
		tls  bool
	}{
		{
			"redis+sentinel://s1,s2:26380,10.0.0.3/mymaster",
			Config{Network: "tcp", Sentinel: &SentinelConfig{MasterName: "mymaster", Addrs: []string{"s1:26379", "s2:26380", "10.0.0.3:26379"}}},
			false,
		},
		{
			"redis+sentinel://[::1]:7000/m",
			Config{Network: "tcp", Sentinel: &SentinelConfig{MasterName: "m", Addrs: []string{"[::1]:7000"}}},
			false,
		},
		{
			"redis+sentinel://app:pw@s1/cache/2?sentinel_username=sen&sentinel_password=spw&client_name=svc&max_total=8",
			Config{Network: "tcp", Username: "app", Password: "pw", DB: 2, ClientName: "svc", MaxTotal: 8,
				Sentinel: &SentinelConfig{MasterName: "cache", Addrs: []string{"s1:26379"}, Username: "sen", Password: "spw"}},
			false,
		},
		{
			"rediss+sentinel://s1:1/m",
			Config{Network: "tcp", Sentinel: &SentinelConfig{MasterName: "m", Addrs: []string{"s1:1"}}},
			true,
		},
	} {
		got, err := ParseURL(tt.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.url, err)
			continue
		}
		if got.Sentinel == nil {
			t.Errorf("ParseURL(%q): no Sentinel config", tt.url)
			continue
		}
		if (got.TLSConfig != nil) != tt.tls || (got.Sentinel.TLSConfig != nil) != tt.tls {
			t.Errorf("ParseURL(%q): TLS %v, Sentinel TLS %v; want %v", tt.url, got.TLSConfig != nil, got.Sentinel.TLSConfig != nil, tt.tls)
		}
		got.TLSConfig, got.Sentinel.TLSConfig = nil, nil
		if got.String() != tt.want.String() || got.Password != tt.want.Password || got.Sentinel.Password != tt.want.Sentinel.Password {
			t.Errorf("ParseURL(%q)\n got %v\nwant %v", tt.url, got, tt.want)
		}
		if err := got.validate(); err != nil {
			t.Errorf("ParseURL(%q) gives an invalid Config: %v", tt.url, err)
		}
	}
}

func TestParseSentinelURLErrorsAndRedaction(t *testing.T) {
	const password = "sentinel-s3cr3t"
	for _, tt := range []struct {
		url     string
		mention string
	}{
		{"redis+sentinel://s1", "no master name"},
		{"redis+sentinel://s1/m/x", "database"},
		{"redis+sentinel://s1/m/1/2", "path"},
		{"redis+sentinel://s1,,s2/m", "empty Sentinel address"},
		{"redis+sentinel://s1:99999/m", "port"},
		{"redis+sentinel://s1/m?sentinel_password=" + password + "&bogus=1", "bogus"},
		{"redis+sentinel://s1/m?sentinel_username=u", "without a sentinel_password"},
		{"redis+sentinel://s1/m?sentinel_password=" + password + "@x#y", "invalid URL"},
		{"redis://h?sentinel_password=" + password, "sentinel_password"},
	} {
		_, err := ParseURL(tt.url)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded; want an error", tt.url)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.mention) || !strings.HasPrefix(msg, "redispool: ") {
			t.Errorf("ParseURL(%q) = %q; want an error mentioning %q", tt.url, msg, tt.mention)
		}
		if strings.Contains(msg, password) {
			t.Errorf("ParseURL error %q contains the Sentinel password", msg)
		}
	}

	cfg, err := ParseURL("redis+sentinel://:data-pw@s1/m?sentinel_password=" + password)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{cfg.String(), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(*cfg.Sentinel)} {
		if strings.Contains(text, password) || strings.Contains(text, "data-pw") {
			t.Errorf("printed Config shows a password: %s", text)
		}
		if !strings.Contains(text, "MasterName:m") {
			t.Errorf("printed Config does not show the Sentinel config: %s", text)
		}
	}
}

// TestParseURLRejectsHostList checks that a redis:// URL listing several
// hosts, a cluster's or Sentinels' URL with the wrong scheme, fails at
// once and names the schemes to use, rather than failing at dial with a
// DNS error for "h1:6379,h2".
func TestParseURLRejectsHostList(t *testing.T) {
	const password = "s3cr3t-pw"
	for _, tt := range []struct {
		url, cluster string
	}{
		{"redis://h1:6379,h2:6380", "redis+cluster://h1:6379,h2:6380"},
		{"redis://h1,h2", "redis+cluster://h1,h2"},
		{"redis://h1:6379,h2", "redis+cluster://h1:6379,h2"},
		{"redis://app:" + password + "@h1:6379,h2:6380/0?max_total=4", "redis+cluster://h1:6379,h2:6380"},
		{"redis://:" + password + "@[::1]:7000,[::1]:7001", "redis+cluster://[::1]:7000,[::1]:7001"},
		{"rediss://app:" + password + "@h1:6379,h2:6380", "rediss+cluster://h1:6379,h2:6380"},
		{"REDIS://h1,h2", "redis+cluster://h1,h2"},
	} {
		_, err := ParseURL(tt.url)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded; want an error", tt.url)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "redispool: ") || !strings.Contains(msg, tt.cluster) || !strings.Contains(msg, "+sentinel://") {
			t.Errorf("ParseURL(%q) = %q; want an error naming %s and +sentinel://", tt.url, msg, tt.cluster)
		}
		if strings.Contains(msg, password) {
			t.Errorf("ParseURL(%q) = %q: the error shows the password", tt.url, msg)
		}
	}
	// A comma before an unescaped '@' beyond the host may be part of a
	// password: the URL is malformed, and said so without it.
	const raw = "redis://app:pa,ss/wd@h1,h2"
	_, err := ParseURL(raw)
	if err == nil || strings.Contains(err.Error(), "pa,ss") || strings.Contains(err.Error(), "wd") {
		t.Errorf("ParseURL(%q) = %v; want an error that does not show the password", raw, err)
	}
}
