package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redispool/redispool/bench/internal/contender"
	"github.com/redispool/redispool/bench/internal/rediscluster"
)

// clusterMasters is the size of the benchmark cluster.
const clusterMasters = 3

var clusterServer struct {
	once sync.Once
	c    *rediscluster.Cluster
	err  error
}

// clusterSeeds starts the shared 3-master cluster on first use, stores
// the workload's keys, and returns the masters' addresses as one
// comma-separated string (the cluster contenders' addr), or skips tb when
// redis-server or redis-cli is not installed.
func clusterSeeds(tb testing.TB) string {
	tb.Helper()
	clusterServer.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		clusterServer.c, clusterServer.err = rediscluster.Start(ctx, clusterMasters)
		if clusterServer.err == nil {
			clusterServer.err = contender.PrepareCluster(ctx, strings.Join(clusterServer.c.Addrs, ","))
		}
	})
	if errors.Is(clusterServer.err, rediscluster.ErrNotFound) && os.Getenv(requireServerEnv) != "1" {
		tb.Skip(clusterServer.err)
	}
	if clusterServer.err != nil {
		tb.Fatal(clusterServer.err)
	}
	return strings.Join(clusterServer.c.Addrs, ",")
}

// BenchmarkCluster GETs keys spread over every slot of a 3-master cluster
// through redispool's Cluster — Do, and a connection from GetContext bound
// by its GET — and through go-redis's ClusterClient. One op is one GET
// (with, for Cluster.Get, its borrow and return).
//
//	go test -run '^$' -bench 'Cluster/Workload=GET/Conc=16' -benchtime 2s
func BenchmarkCluster(b *testing.B) {
	seeds := clusterSeeds(b)
	for _, conc := range []int{1, 16, 64} {
		for _, c := range contender.ClusterContenders {
			b.Run(fmt.Sprintf("Workload=GET/Conc=%d/Client=%s", conc, c.Name), func(b *testing.B) {
				benchEndToEnd(b, seeds, c, contender.Get, conc)
			})
		}
	}
}

// TestClusterContenders GETs every key of the cluster workload once
// through every cluster contender.
func TestClusterContenders(t *testing.T) {
	seeds := clusterSeeds(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range contender.ClusterContenders {
		t.Run(c.Name, func(t *testing.T) {
			cl, err := c.New(ctx, seeds, 1)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer cl.Close()
			op := cl.Op(contender.Get, 0)
			for range contender.ClusterKeys {
				if err := op(ctx); err != nil {
					t.Fatalf("GET: %v", err)
				}
			}
			if err := cl.Op(contender.Set, 0)(ctx); err == nil {
				t.Errorf("SET: got no error; want the cluster workloads to be GET only")
			}
		})
	}
}
