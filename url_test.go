package redispool

import (
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
