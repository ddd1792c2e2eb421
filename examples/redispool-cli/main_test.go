package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redispool/redispool/redistest"
	"go.uber.org/goleak"
)

var binDir string // holds the binary the exec tests build

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "redispool-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// result is what one run of the CLI printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit status %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI calls run with args, as main does.
func runCLI(t testing.TB, args ...string) result {
	t.Helper()
	return runCLIContext(t, context.Background(), args...)
}

func runCLIContext(t testing.TB, ctx context.Context, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return result{stdout.String(), stderr.String(), code}
}

// wantCode fails the test unless r exited with code.
func wantCode(t testing.TB, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("got exit status %d; want %d\n%v", r.code, code, r)
	}
}

// miniURL starts a miniredis for the test and returns its URL.
func miniURL(t testing.TB) (string, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	return "redis://" + m.Addr(), m
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// redisServer is a redis-server started for one test, listening on a
// free loopback port and on a unix socket.
type redisServer struct {
	addr   string // host:port
	socket string // unix socket path
}

// startRedis starts it with redistest, which skips the test
// when redis-server is not on $PATH unless REDISPOOL_REQUIRE_SERVER=1.
func startRedis(t testing.TB, args ...string) *redisServer {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "redis.sock")
	s := redistest.StartServer(t, append([]string{"--unixsocket", sock, "--unixsocketperm", "700"}, args...)...)
	return &redisServer{addr: s.Addr(), socket: sock}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func contains(t testing.TB, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}
