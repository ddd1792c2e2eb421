package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redispool/redispool/redistest"
)

func TestUsageErrorsExitWithStatus2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no command", nil, "Usage:"},
		{"unknown global flag", []string{"--bogus", "ping"}, "flag provided but not defined: -bogus"},
		{"unknown command flag", []string{"ping", "--bogus"}, "flag provided but not defined: -bogus"},
		{"bad flag value", []string{"--max-total", "many", "ping"}, `invalid value "many" for flag -max-total`},
		{"unknown command", []string{"frob"}, `unknown command "frob"`},
		{"help for unknown command", []string{"help", "frob"}, `unknown command "frob"`},
		{"no clients", []string{"bench", "-c", "0"}, "-c 0: want at least 1"},
		{"negative count", []string{"bench", "-n", "-5"}, "-n -5"},
		{"mix without weight", []string{"bench", "--mix", "get"}, "want NAME=WEIGHT"},
		{"mix with unknown op", []string{"bench", "--mix", "get=1,flush=1"}, `unknown operation "flush"`},
		{"mix of zeros", []string{"bench", "--mix", "get=0"}, "add up to zero"},
		{"mix with repeated op", []string{"stats", "--mix", "get=1,get=2"}, "get appears twice"},
		{"url without scheme", []string{"--url", "localhost:6379", "ping"}, "invalid URL"},
		{"url with unknown parameter", []string{"--url", "redis://localhost/?max_totl=3", "ping"}, "unknown parameter"},
		{"url with a host list", []string{"--url", "redis://:pw@h1:6379,h2:6380", "ping"}, "use redis+cluster://h1:6379,h2:6380"},
		{"invalid config", []string{"--min-idle", "5", "--max-idle", "2", "ping"}, "MinIdle 5 exceeds MaxIdle 2"},
		{"negative max-total", []string{"--max-total", "-1", "ping"}, "MaxTotal -1 is negative"},
		{"do without command", []string{"do"}, "missing COMMAND"},
		{"ping with arguments", []string{"ping", "extra"}, "unexpected arguments: extra"},
		{"bad log level", []string{"--log-level", "loud", "ping"}, `--log-level "loud"`},
		{"cacert without TLS", []string{"--cacert", "ca.pem", "ping"}, "need a rediss:// URL"},
		{"zero interval", []string{"stats", "--watch", "--interval", "0s"}, "--interval 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.args...)
			wantCode(t, r, exitUsage)
			contains(t, "stderr", r.stderr, tt.want)
			if r.stdout != "" {
				t.Errorf("stdout = %q; want nothing", r.stdout)
			}
			if strings.Contains(r.stderr, "using an embedded miniredis") {
				t.Errorf("a server was started for a usage error:\n%s", r.stderr)
			}
		})
	}
}

func TestHelpExitsWith0(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"-h"}, []string{"Commands:", "bench", "stats", "--url URL", "--max-total"}},
		{[]string{"help"}, []string{"Commands:", "Exit status"}},
		{[]string{"help", "bench"}, []string{"Usage: redispool-cli [global flags] bench [flags]", "--mix mix", "--metrics-addr addr", "-c clients"}},
		{[]string{"bench", "-h"}, []string{"--mix mix"}},
		{[]string{"--url", "redis://x", "do", "--help"}, []string{"COMMAND [ARG...]", "(integer) 1"}},
		{[]string{"help", "stats"}, []string{"--watch", "--interval"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, tt.args...)
			wantCode(t, r, exitOK)
			contains(t, "stdout", r.stdout, tt.want...)
		})
	}
}

func TestPingEmbeddedMiniredis(t *testing.T) {
	r := runCLI(t, "ping")
	wantCode(t, r, exitOK)
	if r.stdout != "PONG\n" {
		t.Errorf("stdout = %q; want PONG", r.stdout)
	}
	contains(t, "stderr", r.stderr, "using an embedded miniredis at 127.0.0.1:")

	r = runCLI(t, "ping", "--json")
	wantCode(t, r, exitOK)
	var got struct {
		Reply     string  `json:"reply"`
		LatencyMs float64 `json:"latency_ms"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Reply != "PONG" {
		t.Errorf("ping --json printed %q (%v); want reply PONG", r.stdout, err)
	}
}

func TestUnreachableServerExitsWith1(t *testing.T) {
	url := "redis://:hunter2@" + closedAddr(t)
	for _, args := range [][]string{
		{"ping"},
		{"do", "GET", "k"},
		{"bench", "-d", "200ms"},
		{"stats", "-d", "200ms"},
	} {
		t.Run(args[0], func(t *testing.T) {
			r := runCLI(t, append([]string{"--url", url, "--dial-timeout", "1s"}, args...)...)
			wantCode(t, r, exitError)
			contains(t, "stderr", r.stderr, "redispool-cli "+args[0]+":", "connection refused", "redis://:xxxxx@127.0.0.1:")
			if strings.Contains(r.stderr+r.stdout, "hunter2") {
				t.Errorf("the password was printed:\n%v", r)
			}
		})
	}
}

// As redis-cli does on a terminal: --no-raw asks for that format when
// stdout is not one.
func TestDoPrintsRepliesLikeRedisCLI(t *testing.T) {
	url, m := miniURL(t)
	m.Set("s", "hello world")
	m.RPush("list", "a", "b\n\"c\"")
	m.Set("bin", "\x00\xff")

	tests := []struct {
		args []string
		want string
		code int
	}{
		{[]string{"SET", "k", "v"}, "OK\n", exitOK},
		{[]string{"GET", "k"}, "\"v\"\n", exitOK},
		{[]string{"GET", "s"}, "\"hello world\"\n", exitOK},
		{[]string{"GET", "bin"}, "\"\\x00\\xff\"\n", exitOK},
		{[]string{"GET", "missing"}, "(nil)\n", exitOK},
		{[]string{"INCR", "n"}, "(integer) 1\n", exitOK},
		{[]string{"INCRBY", "n", "-5"}, "(integer) -4\n", exitOK},
		{[]string{"LRANGE", "list", "0", "-1"}, "1) \"a\"\n2) \"b\\n\\\"c\\\"\"\n", exitOK},
		{[]string{"LRANGE", "nothing", "0", "-1"}, "(empty array)\n", exitOK},
		{[]string{"PING"}, "PONG\n", exitOK},
		{[]string{"INCR", "s"}, "(error) ERR value is not an integer or out of range\n", exitError},
		{[]string{"NOSUCHCMD"}, "(error) ERR unknown command", exitError},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, append([]string{"--url", url, "--no-raw", "do"}, tt.args...)...)
			wantCode(t, r, tt.code)
			if !strings.HasPrefix(r.stdout, tt.want) {
				t.Errorf("stdout = %q; want %q", r.stdout, tt.want)
			}
			if r.stderr != "" {
				t.Errorf("stderr = %q; want nothing", r.stderr)
			}
		})
	}
}

func TestDoJSON(t *testing.T) {
	url, m := miniURL(t)
	m.RPush("list", "a", "b")
	tests := []struct {
		args []string
		want string
		code int
	}{
		{[]string{"SET", "k", "v"}, `{"reply":"OK"}`, exitOK},
		{[]string{"GET", "k"}, `{"reply":"v"}`, exitOK},
		{[]string{"GET", "missing"}, `{"reply":null}`, exitOK},
		{[]string{"INCR", "n"}, `{"reply":1}`, exitOK},
		{[]string{"LRANGE", "list", "0", "-1"}, `{"reply":["a","b"]}`, exitOK},
		{[]string{"INCR", "k"}, `{"error":"ERR value is not an integer or out of range"}`, exitError},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, append([]string{"--url", url, "--json", "do"}, tt.args...)...)
			wantCode(t, r, tt.code)
			if got := strings.TrimSpace(r.stdout); got != tt.want {
				t.Errorf("stdout = %s; want %s", got, tt.want)
			}
		})
	}
}

func TestGlobalFlagsGoBeforeOrAfterTheCommand(t *testing.T) {
	url, _ := miniURL(t)
	for _, args := range [][]string{
		{"--url", url, "--json", "--max-total", "3", "stats", "-c", "2", "-n", "50"},
		{"stats", "--url", url, "--json", "--max-total", "3", "-c", "2", "-n", "50"},
		{"--url", url, "stats", "--json", "-c", "2", "--max-total", "3", "-n", "50"},
		// Flags override the URL's parameters, wherever they are.
		{"--url", url + "/?max_total=7&borrow_timeout=1s", "--max-total", "3", "stats", "--json", "-c", "2", "-n", "50"},
		{"--max-total", "9", "--url", url + "/?max_total=7", "stats", "--max-total", "3", "--json", "-c", "2", "-n", "50"},
	} {
		r := runCLI(t, args...)
		wantCode(t, r, exitOK)
		var got statsReport
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v: %v\n%v", args, err, r)
		}
		if got.Pool.MaxTotal != 3 || got.Ops != 50 || got.Clients != 2 {
			t.Errorf("%v: got max_total %d, ops %d, clients %d; want 3, 50, 2", args, got.Pool.MaxTotal, got.Ops, got.Clients)
		}
	}

	// Without a flag, the URL's parameter holds.
	r := runCLI(t, "--url", url+"/?max_total=7", "stats", "--json", "-n", "10")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, `"max_total": 7`) {
		t.Errorf("max_total from the URL not applied:\n%s", r.stdout)
	}
}

func TestBenchOnEmbeddedMiniredis(t *testing.T) {
	r := runCLI(t, "bench", "-d", "200ms", "-c", "4")
	wantCode(t, r, exitOK)
	contains(t, "stdout", r.stdout,
		"embedded miniredis at 127.0.0.1:", "4 clients", "mix get=80,set=20", "64-byte values",
		"Throughput", " ops/s, 0 errors", "p50", "p90", "p99", "p99.9", "max", "█",
		"Pool", "connections", "borrows", "waits", "timeouts", "created", "destroyed")
	if strings.Contains(r.stdout, "\x1b") || strings.Contains(r.stdout, "%|") {
		t.Errorf("progress output on a non-terminal:\n%q", r.stdout)
	}
}

func TestBenchRequestCountAndJSON(t *testing.T) {
	url, m := miniURL(t)
	r := runCLI(t, "--url", url, "--json", "--max-total", "2",
		"bench", "-n", "300", "-c", "6", "--mix", "get=2,set=2,incr=1,ping=1,multi=1,pipeline=1",
		"--size", "10", "--keys", "5", "--depth", "3", "--pipeline", "off", "--key-prefix", "t:")
	wantCode(t, r, exitOK)
	var got benchReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%v", err, r)
	}
	if got.Ops != 300 || got.Errors != 0 || got.Clients != 6 || got.ValueSize != 10 {
		t.Errorf("ops %d, errors %d, clients %d, value_size %d; want 300, 0, 6, 10", got.Ops, got.Errors, got.Clients, got.ValueSize)
	}
	var n int64
	for _, b := range got.Latency.Histogram {
		n += b.Count
	}
	if n != 300 {
		t.Errorf("histogram counts add up to %d; want 300", n)
	}
	l := got.Latency
	if !(l.MinMs <= l.P50Ms && l.P50Ms <= l.P90Ms && l.P90Ms <= l.P99Ms && l.P99Ms <= l.P999Ms && l.P999Ms <= l.MaxMs) || l.MaxMs <= 0 {
		t.Errorf("latencies out of order: %+v", l)
	}
	p := got.Pool
	// One borrow more than operations: the PING that checks the server.
	if got.Pipelining != "off" || p.PipelinedCommands != 0 {
		t.Errorf("pipelining %q, %d commands pipelined; want off, 0", got.Pipelining, p.PipelinedCommands)
	}
	if p.Borrows != 301 || p.MaxTotal != 2 || p.Created > 2 || p.Waits == 0 || p.Timeouts != 0 {
		t.Errorf("pool = %+v; want 301 borrows, max 2, at most 2 created, some waits, no timeouts", p)
	}
	for _, k := range m.Keys() {
		if !strings.HasPrefix(k, "t:key:") && !strings.HasPrefix(k, "t:counter:") {
			t.Errorf("bench wrote key %q outside its prefix", k)
		}
	}
	if len(m.Keys()) == 0 {
		t.Error("bench wrote no keys")
	}
}

func TestBenchFailFastCountsTimeoutsAndExits1(t *testing.T) {
	url, _ := miniURL(t)
	r := runCLI(t, "--url", url, "--max-total", "1", "--fail-fast", "bench", "-c", "4", "-d", "200ms", "--mix", "pipeline=1")
	wantCode(t, r, exitError)
	contains(t, "stdout", r.stdout, "Errors", "connection pool exhausted: all 1 connections are borrowed (FailFast)")
	contains(t, "stderr", r.stderr, "operations failed")
	if regexp.MustCompile(`timeouts +0\n`).MatchString(r.stdout) {
		t.Errorf("no timeouts reported:\n%s", r.stdout)
	}
}

func TestBenchEndsEarlyWhenInterrupted(t *testing.T) {
	url, _ := miniURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := runCLIContext(t, ctx, "--url", url, "bench", "-d", "1m", "-c", "4")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("bench took %v after its context ended", d)
	}
	wantCode(t, r, exitOK)
	contains(t, "stdout", r.stdout, "(interrupted)", "Throughput", "Pool")
}

func TestBenchServesMetrics(t *testing.T) {
	url, _ := miniURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr redistest.LockedBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--url", url, "bench", "-d", "30s", "-c", "2", "--metrics-addr", "127.0.0.1:0"}, &stdout, &stderr)
	}()
	re := regexp.MustCompile(`serving metrics at (http://127\.0\.0\.1:\d+/metrics)`)
	var m []string
	waitFor(t, "the metrics address on stderr", func() bool {
		m = re.FindStringSubmatch(stderr.String())
		return m != nil
	})

	var body string
	waitFor(t, "borrows in the metrics", func() bool {
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return regexp.MustCompile(`(?m)^redispool_borrows_total [1-9]`).MatchString(body)
	})
	contains(t, "metrics", body,
		"# TYPE redispool_connections gauge",
		`redispool_connections{state="active"}`,
		"redispool_max_connections 20",
		`redispool_connections_destroyed_total{reason="surplus"} 0`,
		"redispool_wait_seconds_total")

	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("bench exited with status %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	// The server is gone with the command.
	if resp, err := http.Get(m[1]); err == nil {
		resp.Body.Close()
		t.Error("metrics still served after bench returned")
	}
}

func TestBenchMetricsAddrInUseExits1(t *testing.T) {
	url, m := miniURL(t)
	r := runCLI(t, "--url", url, "bench", "-d", "100ms", "--metrics-addr", m.Addr())
	wantCode(t, r, exitError)
	contains(t, "stderr", r.stderr, "--metrics-addr", "address already in use")
}

func TestStatsPrintsPoolStatistics(t *testing.T) {
	// The --interval of --watch does not matter without it.
	r := runCLI(t, "stats", "-d", "200ms", "-c", "3", "--interval", "10ms")
	wantCode(t, r, exitOK)
	contains(t, "stdout", r.stdout, "3 clients", " ops in ", "Pool\n", "borrows", "waits        0\n", "timeouts     0\n",
		"destroyed    0\n", "pipelined    ", " commands in ", "batch sizes  1: ")
	// Do pipelines the clients' commands over one shared connection,
	// which goes back to the pool after a short idle time; the three
	// clients' transactions and pipelines (none in this mix) would
	// borrow more. Every connection created is idle or shared.
	m := regexp.MustCompile(`connections  0 active, (\d) idle, (\d) shared, max 20\n(?s:.*)created      (\d), 0 dial errors`).FindStringSubmatch(r.stdout)
	if m == nil || m[1]+m[2] == "00" || atoi(t, m[1])+atoi(t, m[2]) != atoi(t, m[3]) {
		t.Errorf("want 0 active, and every connection created idle or shared:\n%s", r.stdout)
	}

	r = runCLI(t, "--json", "stats", "-n", "100", "-c", "2")
	wantCode(t, r, exitOK)
	var got statsReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%v", err, r)
	}
	p := got.Pool
	// The 100 commands and the PING that checks the server, all through
	// the shared connection (one, or another after an idle return).
	if got.Ops != 100 || p.PipelinedCommands != 101 || p.PipelineBatches < 1 || p.Idle+p.Shared < 1 || int64(p.Idle+p.Shared) != p.Created || p.Destroyed != 0 {
		t.Errorf("got %+v; want 100 ops, 101 commands pipelined, every connection created idle or shared, none destroyed", got)
	}
	var batches int64
	for _, b := range p.BatchSizes {
		batches += b.Count
	}
	if batches != p.PipelineBatches || len(p.BatchSizes) != 10 || p.BatchSizes[0].Size != "1" || p.BatchSizes[9].Size != "257+" {
		t.Errorf("pipeline_batch_sizes %+v; want 10 buckets, 1 to 257+, adding up to the %d batches", p.BatchSizes, p.PipelineBatches)
	}

	// With --pipeline off, every command borrows: the counts are exact.
	r = runCLI(t, "--json", "stats", "-n", "100", "-c", "2", "--pipeline", "off")
	wantCode(t, r, exitOK)
	got = statsReport{}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%v", err, r)
	}
	p = got.Pool
	if got.Ops != 100 || p.Borrows != 101 || p.PipelinedCommands != 0 || p.Shared != 0 || p.Idle < 1 || p.Idle > 2 || int64(p.Idle) != p.Created || p.Destroyed != 0 {
		t.Errorf("got %+v; want 100 ops, 101 borrows, nothing pipelined, every connection created (1 or 2) idle, none destroyed", got)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBenchComparesPipeliningOffAndOn runs bench --pipeline both: the
// load twice, each on a pool of its own, and a table of the two.
func TestBenchComparesPipeliningOffAndOn(t *testing.T) {
	r := runCLI(t, "bench", "-n", "400", "-c", "8", "--pipeline", "both")
	wantCode(t, r, exitOK)
	contains(t, "stdout", r.stdout, "=== --pipeline off\n", "auto-pipelining off\n", "=== --pipeline on\n", "auto-pipelining on\n",
		"=== Auto-pipelining off and on (8 clients, mix get=80,set=20)", "mean batch", "on ÷ off: ")
	if i, j := strings.Index(r.stdout, "=== --pipeline off"), strings.Index(r.stdout, "=== --pipeline on"); i < 0 || j < i {
		t.Errorf("want the run with pipelining off first:\n%s", r.stdout)
	}

	r = runCLI(t, "--json", "bench", "-n", "400", "-c", "8", "--pipeline", "both")
	wantCode(t, r, exitOK)
	var got benchComparison
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%v", err, r)
	}
	if got.Off == nil || got.On == nil || got.Off.Ops != 400 || got.On.Ops != 400 || got.Speedup <= 0 {
		t.Fatalf("got %+v; want 400 ops off and on, and a speedup", got)
	}
	if got.Off.Pipelining != "off" || got.Off.Pool.PipelinedCommands != 0 || got.On.Pipelining != "on" || got.On.Pool.PipelinedCommands != 401 {
		t.Errorf("off: %q, %d pipelined; on: %q, %d pipelined; want off with none, on with the 400 ops and the PING",
			got.Off.Pipelining, got.Off.Pool.PipelinedCommands, got.On.Pipelining, got.On.Pool.PipelinedCommands)
	}
}

func TestPipelineFlag(t *testing.T) {
	r := runCLI(t, "bench", "-n", "10", "--pipeline", "3")
	wantCode(t, r, exitUsage)
	contains(t, "stderr", r.stderr, "want on, off or both", "--depth 3")
	r = runCLI(t, "stats", "-n", "10", "--pipeline", "both")
	wantCode(t, r, exitUsage)
	contains(t, "stderr", r.stderr, "only bench compares")
}

func TestStatsWatchPrintsARowPerInterval(t *testing.T) {
	r := runCLI(t, "--max-total", "2", "stats", "--watch", "--interval", "50ms", "-d", "300ms", "-c", "4")
	wantCode(t, r, exitOK)
	lines := strings.Split(r.stdout, "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], "pool max-total 2") || !strings.Contains(lines[1], "elapsed") || !strings.Contains(lines[1], "waits/s") {
		t.Fatalf("no max-total on the first line or no header on the second:\n%s", r.stdout)
	}
	rows := 0
	for _, l := range lines[2:] {
		if regexp.MustCompile(`^ +\d+\.\ds +\d+ +\d+ +[\d,]+ `).MatchString(l) {
			rows++
		}
		if l == "" {
			break // the totals follow
		}
		if n := utf8.RuneCountInString(l); n >= 80 {
			t.Errorf("a row of %d columns wraps on an 80-column terminal:\n%s", n, l)
		}
	}
	if rows < 2 || rows > 7 { // a busy machine can make the ticker skip
		t.Errorf("got %d rows for 300ms at 50ms intervals; want about 6:\n%s", rows, r.stdout)
	}
	contains(t, "stdout", r.stdout, "\nPool\n", "waits")

	r = runCLI(t, "--json", "stats", "--watch", "--interval", "50ms", "-d", "200ms", "-c", "2")
	wantCode(t, r, exitOK)
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var row watchRow
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("row %q: %v", l, err)
		}
		if row.Pool.MaxTotal != 20 || row.ElapsedSeconds <= 0 {
			t.Errorf("row %+v: want max_total 20, elapsed > 0", row)
		}
		n++
	}
	if n < 2 {
		t.Errorf("got %d JSON rows; want about 4", n)
	}
}

func TestStatsWatchWithoutWorkloadRunsUntilInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	r := runCLIContext(t, ctx, "--min-idle", "2", "stats", "--watch", "-c", "0", "--interval", "50ms")
	wantCode(t, r, exitOK)
	contains(t, "stdout", r.stdout, "0 clients", "elapsed", "(interrupted)")
}

func TestLogLevelLogsConnectionEventsToStderr(t *testing.T) {
	url, _ := miniURL(t)
	r := runCLI(t, "--url", url, "--log-level", "debug", "ping")
	wantCode(t, r, exitOK)
	contains(t, "stderr", r.stderr,
		"level=DEBUG", `msg="redispool-cli: pool config"`,
		`msg="redispool: connection created"`,
		`msg="redispool: connection closed"`, `reason=closed`)
	if r.stdout != "PONG\n" {
		t.Errorf("stdout = %q; want PONG alone", r.stdout)
	}

	r = runCLI(t, "--url", url, "--log-level", "warn", "ping")
	wantCode(t, r, exitOK)
	if r.stderr != "" {
		t.Errorf("--log-level warn logged routine events:\n%s", r.stderr)
	}

	r = runCLI(t, "--url", "redis://"+closedAddr(t), "--log-level", "warn", "ping")
	wantCode(t, r, exitError)
	contains(t, "stderr", r.stderr, "level=WARN", `msg="redispool: dial failed"`)
}

func TestPasswordsAreNeverPrinted(t *testing.T) {
	const secret = "s3cr3t-pa55"
	srv := startRedis(t, "--requirepass", secret)
	good := "redis://:" + secret + "@" + srv.addr
	bad := "redis://default:" + secret + "-wrong@" + srv.addr
	for _, args := range [][]string{
		{"--url", good, "--log-level", "debug", "ping"},
		{"--url", good, "--log-level", "debug", "--json", "bench", "-d", "100ms", "-c", "2"},
		{"--url", good, "stats", "-d", "100ms"},
		{"--url", good, "do", "CONFIG", "GET", "maxclients"},
		{"--url", bad, "--log-level", "debug", "ping"},
		{"--url", bad, "bench", "-d", "100ms"},
		{"--url", good + "/?nope=1", "ping"},
		{"--url", good + "/x", "ping"},
		{"--url", "unix://:" + secret + "@" + srv.socket + "?db=x", "ping"},
		{"--url", good, "--max-idle", "1", "--min-idle", "2", "ping"},
	} {
		r := runCLI(t, args...)
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("%v printed the password:\n%v", args, r)
		}
	}
	r := runCLI(t, "--url", bad, "ping")
	wantCode(t, r, exitError)
	contains(t, "stderr", r.stderr, "WRONGPASS", "redis://default:xxxxx@")
}

func TestRealServer(t *testing.T) {
	srv := startRedis(t)
	url := "redis://" + srv.addr

	r := runCLI(t, "--url", url, "ping")
	wantCode(t, r, exitOK)
	if r.stdout != "PONG\n" || r.stderr != "" {
		t.Errorf("ping: %v", r)
	}

	// The database comes from the URL's path or from --db, which wins.
	wantCode(t, runCLI(t, "--url", url+"/2", "do", "SET", "where", "db2"), exitOK)
	wantCode(t, runCLI(t, "--url", url+"/2", "--db", "3", "do", "SET", "where", "db3"), exitOK)
	for db, want := range map[int]string{2: "db2", 3: "db3"} {
		r := runCLI(t, "--url", url, "--db", strconv.Itoa(db), "do", "GET", "where")
		if r.stdout != want+"\n" {
			t.Errorf("GET where in db %d = %q; want %q", db, r.stdout, want)
		}
	}

	r = runCLI(t, "--url", url, "--client-name", "cli-test", "do", "CLIENT", "GETNAME")
	if r.stdout != "cli-test\n" {
		t.Errorf("CLIENT GETNAME = %q; want cli-test", r.stdout)
	}

	r = runCLI(t, "--url", url, "--no-raw", "do", "EVAL", "return {1,{2,'x'},redis.error_reply('no'),false}", "0")
	wantCode(t, r, exitOK)
	// Redis 7 prefixes the script's error with ERR; older servers do not.
	if want := `^1\) \(integer\) 1\n2\) 1\) \(integer\) 2\n   2\) "x"\n3\) \(error\) (ERR )?no\n4\) \(nil\)\n$`; !regexp.MustCompile(want).MatchString(r.stdout) {
		t.Errorf("nested reply:\n%s\nwant it to match:\n%s", r.stdout, want)
	}

	r = runCLI(t, "--url", url, "--max-total", "4", "bench", "-d", "200ms", "-c", "8",
		"--mix", "get=3,set=3,incr=1,ping=1,multi=1,pipeline=1")
	wantCode(t, r, exitOK)
	contains(t, "stdout", r.stdout, "redis://127.0.0.1:", "8 clients, pool max-total 4", ", 0 errors", "p99.9")
	if !regexp.MustCompile(`connections  0 active, [0-4] idle, [01] shared, max 4\n`).MatchString(r.stdout) {
		t.Errorf("want 0 active, at most 4 idle, at most 1 shared:\n%s", r.stdout)
	}

	// Over the unix socket.
	r = runCLI(t, "--url", "unix://"+srv.socket+"?db=5", "do", "CLIENT", "INFO")
	wantCode(t, r, exitOK)
	contains(t, "CLIENT INFO", r.stdout, "db=5", "flags=U")
	r = runCLI(t, "--url", "unix://"+srv.socket, "bench", "-n", "200", "-c", "4")
	wantCode(t, r, exitOK)
	contains(t, "stdout", r.stdout, "unix://", "200 ops in")
}

// stallingServer is a TCP server that answers PING and never answers
// anything else, so that every other command times out.
func stallingServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					for range bytes.Count(buf[:n], []byte("PING")) {
						c.Write([]byte("+PONG\r\n"))
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// Twelve timeouts on twelve connections differ only in their local
// ports: the report counts them as one kind of error, and says that the
// latency percentiles leave them out.
func TestBenchGroupsErrorsThatDifferOnlyInThePort(t *testing.T) {
	url := "redis://" + stallingServer(t)
	r := runCLI(t, "--url", url, "--read-timeout", "100ms", "--max-total", "12",
		"bench", "-n", "12", "-c", "12", "--mix", "get=1", "--pipeline", "off")
	wantCode(t, r, exitError)
	errs := regexp.MustCompile(`(?m)^ +(\d+)  (.*)$`).FindAllStringSubmatch(
		r.stdout[strings.Index(r.stdout, "\nErrors\n"):strings.Index(r.stdout, "\nLatency")], -1)
	if len(errs) != 1 || errs[0][1] != "12" || !strings.Contains(errs[0][2], "i/o timeout") || !strings.Contains(errs[0][2], "127.0.0.1:*->") {
		t.Errorf("error groups = %q; want one group of 12 timeouts with the local port as *\n%s", errs, r.stdout)
	}
	contains(t, "stdout", r.stdout, "no successful operations",
		"The 12 failed operations are not counted above. They took:\n  p50 1")

	r = runCLI(t, "--url", url, "--read-timeout", "100ms", "--max-total", "12", "--json",
		"bench", "-n", "12", "-c", "12", "--mix", "get=1", "--pipeline", "off")
	wantCode(t, r, exitError)
	var got benchReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%v", err, r)
	}
	if len(got.ErrorMessages) != 1 || got.Errors != 12 || got.FailedLatency == nil || got.FailedLatency.MinMs < 100 {
		t.Errorf("errors %d, error_messages %v, failed_latency %+v; want 12 in one group, each at least 100ms",
			got.Errors, got.ErrorMessages, got.FailedLatency)
	}

	// Pipelined, the timeouts fail the shared connection's commands in
	// flight, as many at a time as were in flight: still one kind.
	r = runCLI(t, "--url", url, "--read-timeout", "100ms", "--max-total", "12", "--json",
		"bench", "-n", "12", "-c", "12", "--mix", "get=1", "--pipeline", "on")
	wantCode(t, r, exitError)
	got = benchReport{}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%v", err, r)
	}
	if len(got.ErrorMessages) != 1 || got.Errors != 12 {
		t.Errorf("errors %d, error_messages %v; want 12 in one group", got.Errors, got.ErrorMessages)
	}
	for msg := range got.ErrorMessages {
		if !strings.Contains(msg, "failing the commands in flight") {
			t.Errorf("error message %q; want the count of commands in flight left out", msg)
		}
	}
}

// With redis-cli as the oracle: do prints what redis-cli prints, raw when
// stdout is not a terminal (or with --raw) and formatted with --no-raw.
func TestDoPrintsWhatRedisCLIPrints(t *testing.T) {
	redisCLI, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not on $PATH")
	}
	srv := startRedis(t)
	host, port, _ := net.SplitHostPort(srv.addr)
	url := "redis://" + srv.addr
	wantCode(t, runCLI(t, "--url", url, "do", "RPUSH", "list", "a", "b c", "", "\x00\xff"), exitOK)
	wantCode(t, runCLI(t, "--url", url, "do", "SET", "quoted", `say "hi"`+"\n"), exitOK)

	for _, cmd := range [][]string{
		{"SET", "k", "v"},
		{"GET", "k"},
		{"GET", "quoted"},
		{"GET", "missing"},
		{"STRLEN", "quoted"},
		{"LRANGE", "list", "0", "-1"},
		{"LRANGE", "none", "0", "-1"},
		{"EVAL", "return {1,{2,'x'},redis.error_reply('no'),false}", "0"},
		{"INCR", "k"},
		{"NOSUCHCMD"},
		{"MEMORY", "DOCTOR"},
	} {
		for _, mode := range [][]string{nil, {"--raw"}, {"--no-raw"}} {
			name := strings.Join(append(append([]string{}, mode...), cmd...), " ")
			t.Run(name, func(t *testing.T) {
				var want bytes.Buffer
				c := exec.Command(redisCLI, append(append([]string{"-h", host, "-p", port}, mode...), cmd...)...)
				c.Stdout = &want
				c.Run() // exits 1 on an error reply
				r := runCLI(t, append(append([]string{"--url", url}, mode...), append([]string{"do"}, cmd...)...)...)
				if r.stdout != want.String() {
					t.Errorf("do %s printed\n%q\nredis-cli printed\n%q", name, r.stdout, want.String())
				}
			})
		}
	}

	// INFO and CLIENT LIST print their text as it is, on a terminal too.
	for _, mode := range []string{"--raw", "--no-raw"} {
		r := runCLI(t, "--url", url, mode, "do", "CLIENT", "LIST")
		wantCode(t, r, exitOK)
		if !strings.HasPrefix(r.stdout, "id=") || strings.Contains(r.stdout, `"`) || !strings.HasSuffix(r.stdout, "\n") {
			t.Errorf("%s do CLIENT LIST = %q; want the list as it is", mode, r.stdout)
		}
		r = runCLI(t, "--url", url, mode, "do", "INFO", "server")
		wantCode(t, r, exitOK)
		if !strings.HasPrefix(r.stdout, "# Server\r\nredis_version:") || !strings.HasSuffix(r.stdout, "\r\n") {
			t.Errorf("%s do INFO server = %q; want the text as it is", mode, r.stdout)
		}
	}
}

func TestDoJSONTellsBinaryFromText(t *testing.T) {
	url, m := miniURL(t)
	m.Set("text", `\x00 "quoted" é`)
	m.Set("bin", "\x00\xff")
	m.RPush("list", "a", "\xff")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"GET", "text"}, `{"reply":"\\x00 \"quoted\" é"}`},
		{[]string{"GET", "bin"}, `{"reply":{"base64":"AP8="}}`},
		{[]string{"LRANGE", "list", "0", "-1"}, `{"reply":["a",{"base64":"/w=="}]}`},
	} {
		r := runCLI(t, append([]string{"--url", url, "--json", "do"}, tt.args...)...)
		wantCode(t, r, exitOK)
		if got := strings.TrimSpace(r.stdout); got != tt.want {
			t.Errorf("do %v = %s; want %s", tt.args, got, tt.want)
		}
	}
}

func TestDoRefusesRESP3(t *testing.T) {
	for _, args := range [][]string{{"do", "HELLO", "3"}, {"do", "hello", "3", "AUTH", "u", "p"}} {
		r := runCLI(t, args...)
		wantCode(t, r, exitUsage)
		contains(t, "stderr", r.stderr, "RESP3 is not supported", "RESP2 only")
		if strings.Contains(r.stderr, "using an embedded miniredis") {
			t.Errorf("a server was started for a refused command:\n%s", r.stderr)
		}
	}
	srv := startRedis(t)
	r := runCLI(t, "--url", "redis://"+srv.addr, "--no-raw", "do", "HELLO", "2")
	wantCode(t, r, exitOK)
	contains(t, "stdout", r.stdout, `"proto"`, "(integer) 2")
}
