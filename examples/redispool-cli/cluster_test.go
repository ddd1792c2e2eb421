package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/redispool/redispool/redistest"
)

// TestCluster runs every command against a real 3-master cluster through
// a redis+cluster:// URL: commands are routed by key, bench spreads its
// keys over every master and reports each node's share, stats shows each
// node's pool and the slot map, and a slot migrated during a run shows up
// as redirects, not errors.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	url := "redis+cluster://" + c.Addrs()[0]

	r := runCLI(t, "--url", url, "ping")
	wantCode(t, r, exitOK)
	if r.stdout != "PONG\n" {
		t.Errorf("ping: %v", r)
	}

	// do is routed by the key: each lands on the master of its slot.
	for _, key := range []string{"foo", "bar", "{user1000}.following"} {
		wantCode(t, runCLI(t, "--url", url, "do", "SET", key, "v:"+key), exitOK)
		owner := c.MasterOf(t, redistest.KeySlot(key))
		if got := owner.Do(t, "GET", key); got != "v:"+key {
			t.Errorf("GET %s on its master %s: got %#v; want %q", key, owner, got, "v:"+key)
		}
		r := runCLI(t, "--url", url, "do", "GET", key)
		if r.stdout != "v:"+key+"\n" { // raw, as redis-cli prints to a pipe
			t.Errorf("do GET %s: %v", key, r)
		}
	}

	// bench: every operation kind, spread over the three masters.
	r = runCLI(t, "--url", url, "--json", "--max-total", "4", "bench", "-n", "600", "-c", "6",
		"--mix", "get=2,set=2,incr=1,ping=1,multi=1,pipeline=1", "--key-prefix", "t:")
	wantCode(t, r, exitOK)
	var got benchReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%v", err, r)
	}
	if got.Ops != 600 || got.Errors != 0 || got.Cluster == nil {
		t.Fatalf("ops %d, errors %d, cluster %v; want 600, 0, per-node statistics", got.Ops, got.Errors, got.Cluster)
	}
	cl := got.Cluster
	if cl.Masters != 3 || cl.SlotsServed != 16384 || len(cl.Nodes) != 3 || cl.Moved != 0 {
		t.Errorf("cluster = %+v; want 3 masters serving 16384 slots, 3 nodes, no MOVED", cl)
	}
	var ops int64
	for _, n := range cl.Nodes {
		ops += n.Ops
		if n.Ops < 50 || n.Slots < 5000 || n.Pool.MaxTotal != 4 {
			t.Errorf("node %+v; want a third of the slots and of the operations, max-total 4", n)
		}
	}
	if ops != 600 {
		t.Errorf("the nodes' operations add up to %d; want 600", ops)
	}
	if got.Pool.MaxTotal != 12 {
		t.Errorf("pool max_total %d; want 12, the sum over 3 nodes", got.Pool.MaxTotal)
	}

	r = runCLI(t, "--url", url, "bench", "-n", "300", "-c", "4")
	wantCode(t, r, exitOK)
	contains(t, "bench", r.stdout, "redis+cluster://"+c.Addrs()[0], "4 clients, max-total", "per node", "300 ops in", "Pools (all nodes)",
		"Cluster", "slot map: 3 masters serve 16,384 of 16,384 slots", "share", "redirects: moved 0, ask 0")
	for _, addr := range c.Addrs() {
		contains(t, "bench", r.stdout, addr)
	}

	// stats: the nodes' pools and the slot map.
	r = runCLI(t, "--url", url, "stats", "-n", "100", "-c", "2")
	wantCode(t, r, exitOK)
	contains(t, "stats", r.stdout, "Pools (all nodes)", "slot map: 3 masters", "borrows", "redirects:")
	for _, addr := range c.Addrs() {
		contains(t, "stats", r.stdout, addr)
	}

	// A slot migrated while bench runs on its only key: MOVED or ASK
	// followed, no error.
	const prefix = "mv:"
	slot := redistest.KeySlot(prefix + "key:0")
	to := c.Masters(t)[0]
	if to == c.MasterOf(t, slot) {
		to = c.Masters(t)[1]
	}
	done := make(chan result, 1)
	go func() {
		// runCLI's t is used only for t.Helper: safe from this goroutine.
		done <- runCLI(t, "--url", url, "--json", "bench", "-d", "1500ms", "-c", "4",
			"--keys", "1", "--key-prefix", prefix, "--mix", "get=1,set=1")
	}()
	waitFor(t, "bench to write its key", func() bool {
		n, _ := c.MasterOf(t, slot).Exec("EXISTS", prefix+"key:0")
		return n == int64(1)
	})
	c.MigrateSlot(t, slot, to)
	r = <-done
	wantCode(t, r, exitOK)
	got = benchReport{}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%v", err, r)
	}
	if got.Errors != 0 || got.Cluster.Moved+got.Cluster.Ask == 0 {
		t.Errorf("errors %d, moved %d, ask %d; want no error and some redirects", got.Errors, got.Cluster.Moved, got.Cluster.Ask)
	}

	// A keyless keyspace command runs on one master, and says so;
	// --all-masters runs it on every master.
	var keys int64
	for _, m := range c.Masters(t) {
		keys += m.Do(t, "DBSIZE").(int64)
	}
	r = runCLI(t, "--url", url, "do", "DBSIZE")
	wantCode(t, r, exitOK)
	contains(t, "do DBSIZE: stderr", r.stderr, "DBSIZE ran on one master only", `"do --all-masters DBSIZE"`)
	r = runCLI(t, "--url", url, "do", "--all-masters", "DBSIZE")
	wantCode(t, r, exitOK)
	if want := strconv.FormatInt(keys, 10) + "\n"; r.stdout != want || r.stderr != "" {
		t.Errorf("do --all-masters DBSIZE: %v; want %q, the keys of every master, and no note", r, want)
	}
	r = runCLI(t, "--url", url, "do", "--all-masters", "KEYS", "*")
	wantCode(t, r, exitOK)
	if n := strings.Count(r.stdout, "\n"); int64(n) != keys {
		t.Errorf("do --all-masters KEYS *: %d keys; want %d", n, keys)
	}
	r = runCLI(t, "--url", url, "do", "--all-masters", "SCAN", "0", "COUNT", "7")
	wantCode(t, r, exitOK)
	if lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n"); lines[0] != "0" || int64(len(lines)-1) != keys {
		t.Errorf("do --all-masters SCAN 0: cursor %q and %d keys; want 0 and %d", lines[0], len(lines)-1, keys)
	}
	wantCode(t, runCLI(t, "--url", url, "do", "--all-masters", "SCAN", "17"), exitUsage)
	r = runCLI(t, "--url", url, "do", "--all-masters", "FLUSHALL")
	wantCode(t, r, exitOK)
	if r.stdout != "OK\n" {
		t.Errorf("do --all-masters FLUSHALL: %v; want OK", r)
	}
	for _, m := range c.Masters(t) {
		if n := m.Do(t, "DBSIZE"); n != int64(0) {
			t.Errorf("%s: DBSIZE %v after do --all-masters FLUSHALL; want 0", m, n)
		}
	}
}

func TestClusterUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--url", "redis+cluster://127.0.0.1:1/2", "ping"}, "database"},
		{[]string{"--url", "redis+cluster://127.0.0.1:1", "--db", "1", "ping"}, "--db 1: a cluster has only database 0"},
		{[]string{"--url", "redis+cluster://127.0.0.1:1", "--max-idle", "1", "--min-idle", "2", "ping"}, "MinIdle"},
		{[]string{"--url", "redis://127.0.0.1:1", "do", "--all-masters", "DBSIZE"}, "--all-masters needs a cluster"},
	}
	for _, tc := range tests {
		r := runCLI(t, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: got status %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, exitUsage, tc.want)
		}
	}
}
