package redispoolprom_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redispool/redispool"
	redispoolprom "github.com/redispool/redispool/prometheus"
)

// Register a collector for a pool and serve it at /metrics. The pool here
// runs against an in-process miniredis; in a service, use ParseURL.
func ExampleNewCollector() {
	srv, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx := context.Background()
	// PipelineConns -1: each Do borrows a connection of its own, so the
	// counts below do not depend on when a shared connection goes back.
	p, err := redispool.New(ctx, redispool.Config{Addr: srv.Addr(), MaxTotal: 8, PipelineConns: -1})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(redispoolprom.NewCollector(p,
		redispoolprom.WithConstLabels(prometheus.Labels{"pool": "cache"})))
	handler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	// In a service: http.Handle("/metrics", handler)

	for range 3 {
		if _, err := p.Do(ctx, "INCR", "hits"); err != nil {
			log.Fatal(err)
		}
	}

	// Scrape the handler, as Prometheus would, and show a few series.
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "redispool_borrows_total") ||
			strings.HasPrefix(line, "redispool_connections{") ||
			strings.HasPrefix(line, "redispool_max_connections") {
			fmt.Println(line)
		}
	}
	// Output:
	// redispool_borrows_total{pool="cache"} 3
	// redispool_connections{pool="cache",state="active"} 0
	// redispool_connections{pool="cache",state="idle"} 1
	// redispool_connections{pool="cache",state="shared"} 0
	// redispool_max_connections{pool="cache"} 8
}
