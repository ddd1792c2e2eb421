package redispool_test

import (
	"context"
	"log"
	"sync/atomic"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
)

// A Cluster routes each command to the node serving its key's slot.
// Connections from GetForKeys are bound to one node, for transactions on
// keys that share a {hash tag}.
func ExampleNewCluster() {
	ctx := context.Background()
	cfg, err := redispool.ParseClusterURL("redis+cluster://10.0.0.1:7000,10.0.0.2:7000?max_total=16&retry_timeout=10s")
	if err != nil {
		log.Fatal(err)
	}
	cluster, err := redispool.NewCluster(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	// Routed by the key; MOVED and ASK followed; commands the cluster
	// did not run (TRYAGAIN, CLUSTERDOWN, a refused dial) retried.
	if _, err := cluster.Do(ctx, "INCR", "visits"); err != nil {
		log.Fatal(err)
	}

	conn, err := cluster.GetForKeys(ctx, "{user:42}.balance", "{user:42}.log")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	conn.Send("MULTI")
	conn.Send("DECRBY", "{user:42}.balance", 10)
	conn.Send("RPUSH", "{user:42}.log", "-10")
	if _, err := redis.Values(conn.Do("EXEC")); err != nil {
		log.Fatal(err)
	}
}

// DBSIZE, SCAN, KEYS and FLUSHALL act on one node's keys: on a cluster,
// run them on every master.
func ExampleCluster_ForEachMaster() {
	ctx := context.Background()
	cluster, err := redispool.NewCluster(ctx, redispool.ClusterConfig{Addrs: []string{"10.0.0.1:7000"}})
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	var total atomic.Int64
	err = cluster.ForEachMaster(ctx, func(ctx context.Context, p *redispool.Pool) error {
		n, err := redis.Int64(p.Do(ctx, "DBSIZE"))
		total.Add(n)
		return err // joined with the others', naming the node
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("%d keys in the cluster", total.Load())
}
