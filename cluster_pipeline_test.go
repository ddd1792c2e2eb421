package redispool

import (
	"context"
	"strings"
	"testing"

	"github.com/redispool/redispool/redistest"
)

// BenchmarkClusterDoGet is the allocation count of the whole
// c.Do(ctx, "GET", "k") with a constant key on a 3-master cluster, one
// goroutine, and at 64 (Parallel).
func BenchmarkClusterDoGet(b *testing.B) {
	rc := redistest.StartCluster(b, redistest.ClusterOptions{Replicas: -1})
	for _, bc := range []struct {
		name  string
		pipes int
	}{{"Pipelined", 0}, {"Exclusive", -1}} {
		c := newTestCluster(b, rc, ClusterConfig{Node: Config{PipelineConns: bc.pipes}})
		ctx := context.Background()
		if _, err := c.Do(ctx, "SET", "k", strings.Repeat("v", 100)); err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := c.Do(ctx, "GET", "k"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/Parallel64", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(32) // 64 goroutines on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Do(ctx, "GET", "k"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
