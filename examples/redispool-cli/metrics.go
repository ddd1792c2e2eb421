package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	redispoolprom "github.com/redispool/redispool/prometheus"
)

// serveMetrics serves the Prometheus metrics of s at /metrics on addr
// until the returned function is called, which waits for the server to
// stop: a pool's, or for a cluster each node's pool, labelled by node,
// and the cluster's counters. It announces the address on stderr.
func serveMetrics(addr string, s *server, stderr io.Writer) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	reg := prometheus.NewRegistry()
	if s.cluster != nil {
		reg.MustRegister(redispoolprom.NewClusterCollector(s.cluster))
	} else {
		reg.MustRegister(redispoolprom.NewCollector(s.pool))
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(stderr, "%s: metrics server: %v\n", progName, err)
		}
	}()
	fmt.Fprintf(stderr, "%s: serving metrics at http://%s/metrics\n", progName, ln.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}, nil
}
