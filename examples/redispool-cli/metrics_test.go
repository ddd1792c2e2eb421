package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/redispool/redispool/redistest"
)

// TestBenchServesClusterMetrics runs bench on a real 3-master cluster
// with --metrics-addr: /metrics gives each master's pool, labelled by
// node, with its share of the slots, and the cluster's counters.
func TestBenchServesClusterMetrics(t *testing.T) {
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	url := "redis+cluster://" + rc.Addrs()[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr redistest.LockedBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--url", url, "--max-total", "5", "bench", "-d", "30s", "-c", "3",
			"--metrics-addr", "127.0.0.1:0"}, &stdout, &stderr)
	}()
	re := regexp.MustCompile(`serving metrics at (http://127\.0\.0\.1:\d+/metrics)`)
	var m []string
	waitFor(t, "the metrics address on stderr", func() bool {
		m = re.FindStringSubmatch(stderr.String())
		return m != nil
	})

	masters := rc.Masters(t)
	var body string
	waitFor(t, "borrows on every master in the metrics", func() bool {
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		for _, n := range masters {
			re := regexp.MustCompile(`(?m)^redispool_cluster_node_borrows_total\{node="` + regexp.QuoteMeta(n.Addr()) + `"\} [1-9]`)
			if !re.MatchString(body) {
				return false
			}
		}
		return true
	})
	slots := 0
	for _, n := range masters {
		node := `node="` + n.Addr() + `"`
		contains(t, "metrics", body,
			`redispool_cluster_node_max_connections{`+node+`} 5`,
			`redispool_cluster_node_connections{`+node+`,state="active"}`,
			`redispool_cluster_node_connections_destroyed_total{`+node+`,reason="surplus"} 0`)
		sm := regexp.MustCompile(`(?m)^redispool_cluster_slots\{` + regexp.QuoteMeta(node) + `\} (\d+)$`).FindStringSubmatch(body)
		if sm == nil {
			t.Errorf("no redispool_cluster_slots{%s} in\n%s", node, body)
			continue
		}
		k, _ := strconv.Atoi(sm[1])
		slots += k
	}
	if slots != 16384 {
		t.Errorf("redispool_cluster_slots sum to %d; want 16384", slots)
	}
	contains(t, "metrics", body,
		"# TYPE redispool_cluster_moved_total counter",
		"redispool_cluster_ask_total 0",
		"redispool_cluster_refreshes_total")

	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("bench exited with status %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
}
