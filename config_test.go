package redispool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cfg   Config
		field string // the error must name it
	}{
		{"negative MaxTotal", Config{MaxTotal: -1}, "MaxTotal"},
		{"negative MaxIdle", Config{MaxIdle: -1}, "MaxIdle"},
		{"negative MinIdle", Config{MinIdle: -1}, "MinIdle"},
		{"MaxIdle above MaxTotal", Config{MaxTotal: 4, MaxIdle: 5}, "MaxIdle"},
		{"MaxIdle above default MaxTotal", Config{MaxIdle: 10*runtime.GOMAXPROCS(0) + 1}, "MaxIdle"},
		{"MinIdle above MaxIdle", Config{MaxTotal: 8, MaxIdle: 2, MinIdle: 3}, "MinIdle"},
		{"MinIdle above MaxTotal", Config{MaxTotal: 2, MinIdle: 3}, "MinIdle"},
		{"negative DB", Config{DB: -1}, "DB"},
		{"unknown network", Config{Network: "udp"}, "Network"},
		{"unix without path", Config{Network: "unix"}, "Addr"},
		{"addr without port", Config{Addr: "localhost"}, "Addr"},
		{"addr with bad port", Config{Addr: "localhost:http"}, "Addr"},
		{"addr with port out of range", Config{Addr: "localhost:70000"}, "Addr"},
		{"username without password", Config{Username: "app"}, "Username"},
		{"client name with space", Config{ClientName: "my app"}, "ClientName"},
		{"negative DialTimeout", Config{DialTimeout: -time.Second}, "DialTimeout"},
		{"negative CheckTimeout", Config{CheckTimeout: -time.Second}, "CheckTimeout"},
		{"negative MaxConnLifetime", Config{MaxConnLifetime: -time.Second}, "MaxConnLifetime"},
		{"negative AbandonedTimeout", Config{AbandonedTimeout: -time.Second}, "AbandonedTimeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(context.Background(), tt.cfg)
			if err == nil {
				p.Close()
				t.Fatalf("New(%v) succeeded; want an error naming %s", tt.cfg, tt.field)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %q does not wrap ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.field) || !strings.HasPrefix(err.Error(), "redispool: ") {
				t.Errorf("error %q; want it to start with \"redispool: \" and name %s", err, tt.field)
			}
		})
	}
}

func TestNewAcceptsValidConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Network: "unix", Addr: "/tmp/redis.sock"},
		{Addr: "[::1]:6380", MaxTotal: 1},
		{MaxTotal: 8, MaxIdle: 8, MinIdle: 8, EvictionInterval: -1},
		{ReadTimeout: -1, WriteTimeout: -1, BorrowTimeout: -1, MaxConnIdleTime: -1, PingAfterIdle: -1},
		{Username: "app", Password: "secret", DB: 15, ClientName: "svc"},
	} {
		p, err := New(context.Background(), cfg)
		if err != nil {
			t.Errorf("New(%v): %v", cfg, err)
			continue
		}
		p.Close()
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := Config{
		Network: "tcp", Addr: "localhost:6379",
		DialTimeout: 5 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second,
		MaxTotal: 10 * runtime.GOMAXPROCS(0), MaxIdle: 10 * runtime.GOMAXPROCS(0),
		BorrowTimeout: 5 * time.Second, MaxConnIdleTime: 30 * time.Minute, PingAfterIdle: time.Minute,
		EvictionInterval: 30 * time.Second, CheckTimeout: time.Second,
	}
	if got.String() != want.String() {
		t.Fatalf("defaults:\n got %v\nwant %v", got, want)
	}
	neg := Config{ReadTimeout: -1, BorrowTimeout: -1, PingAfterIdle: -1}.withDefaults()
	if neg.ReadTimeout != 0 || neg.BorrowTimeout != 0 || neg.PingAfterIdle != 0 {
		t.Fatalf("negative durations should mean none (0 internally): %v", neg)
	}
}

func TestConfigNeverPrintsPassword(t *testing.T) {
	const password = "hunter2-very-secret"
	cfg := Config{Username: "app", Password: password, Addr: "localhost:6379"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, cfg)
		if strings.Contains(out, password) {
			t.Errorf("Sprintf(%q, cfg) = %s: contains the password", format, out)
		}
		if !strings.Contains(out, "xxxxx") {
			t.Errorf("Sprintf(%q, cfg) = %s: want the password shown as xxxxx", format, out)
		}
	}
	if out := fmt.Sprintf("%v", &cfg); strings.Contains(out, password) {
		t.Errorf("Sprintf(%%v, &cfg) contains the password: %s", out)
	}
}

func TestPoolNeverPrintsPassword(t *testing.T) {
	const password = "pool-print-secret"
	p, err := New(context.Background(), Config{Addr: "localhost:6380", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, p)
		if strings.Contains(out, password) {
			t.Errorf("Sprintf(%q, pool) = %s: contains the password", format, out)
		}
		if !strings.Contains(out, "localhost:6380") {
			t.Errorf("Sprintf(%q, pool) = %s: want the address", format, out)
		}
	}
}
