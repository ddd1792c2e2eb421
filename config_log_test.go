package redispool

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigLogValueIsValidJSONWithoutPassword(t *testing.T) {
	const password = "slog-json-secret"
	cfg := Config{
		Addr:        "cache.internal:6380",
		Username:    "app",
		Password:    password,
		TLSConfig:   &tls.Config{},
		Dial:        func(context.Context, string, string) (net.Conn, error) { return nil, nil },
		DialTimeout: 2 * time.Second,
		MaxTotal:    32,
		Logger:      slog.Default(),
		Sentinel: &SentinelConfig{MasterName: "mymaster", Addrs: []string{"s1:26379"},
			Password: password, TLSConfig: &tls.Config{}},
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("pool", "config", cfg)
	out := buf.String()

	if strings.Contains(out, "!ERROR") || !json.Valid(buf.Bytes()) {
		t.Fatalf("JSON handler output is not valid JSON: %s", out)
	}
	if strings.Contains(out, password) {
		t.Errorf("JSON handler output contains the password: %s", out)
	}
	var rec struct{ Config map[string]any }
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"Addr":        "cache.internal:6380",
		"Username":    "app",
		"Password":    redacted,
		"TLS":         true,
		"Dial":        true,
		"DialTimeout": float64(2 * time.Second), // slog's JSON handler writes nanoseconds
		"MaxTotal":    float64(32),
	} {
		if got := rec.Config[key]; got != want {
			t.Errorf("config.%s = %v; want %v", key, got, want)
		}
	}

	buf.Reset()
	slog.New(slog.NewTextHandler(&buf, nil)).Info("pool", "config", cfg)
	if out := buf.String(); strings.Contains(out, password) || !strings.Contains(out, "config.DialTimeout=2s") {
		t.Errorf("text handler output = %s; want no password and config.DialTimeout=2s", out)
	}
}

// Every Config field is in LogValue, so a field added later is not
// silently left out of logs.
func TestConfigLogValueListsEveryField(t *testing.T) {
	logged := map[string]bool{}
	for _, a := range (Config{}).LogValue().Group() {
		logged[a.Key] = true
	}
	renamed := map[string]string{
		"TLSConfig": "TLS", // only whether it is set
		"Logger":    "",    // the logger is where the Config goes
	}
	typ := reflect.TypeOf(Config{})
	for i := range typ.NumField() {
		if !typ.Field(i).IsExported() {
			continue // set by the package itself, as the cluster's dial command
		}
		name := typ.Field(i).Name
		key, ok := renamed[name]
		if !ok {
			key = name
		}
		if key != "" && !logged[key] {
			t.Errorf("Config.%s is missing from LogValue", name)
		}
	}
}
