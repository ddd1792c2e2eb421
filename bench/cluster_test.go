package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redispool/redispool"
	"github.com/redispool/redispool/bench/internal/contender"
	"github.com/redispool/redispool/bench/internal/parallel"
	"github.com/redispool/redispool/bench/internal/rediscluster"
)

// clusterMasters is the size of the benchmark cluster.
const clusterMasters = 3

// clusterKeys is how many keys the cluster workload spreads its GETs
// over: enough to cover every master many times over.
const clusterKeys = 1024

var clusterServer struct {
	once sync.Once
	c    *rediscluster.Cluster
	err  error
}

// clusterAddrs starts the shared 3-master cluster on first use, fills its
// keys, and returns the masters' addresses, or skips tb when redis-server
// or redis-cli is not installed.
func clusterAddrs(tb testing.TB) []string {
	tb.Helper()
	clusterServer.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		clusterServer.c, clusterServer.err = rediscluster.Start(ctx, clusterMasters)
		if clusterServer.err == nil {
			clusterServer.err = fillCluster(ctx, clusterServer.c.Addrs)
		}
	})
	if errors.Is(clusterServer.err, rediscluster.ErrNotFound) && os.Getenv(requireServerEnv) != "1" {
		tb.Skip(clusterServer.err)
	}
	if clusterServer.err != nil {
		tb.Fatal(clusterServer.err)
	}
	return clusterServer.c.Addrs
}

func clusterKey(i int) string { return "bench:cluster:" + strconv.Itoa(i%clusterKeys) }

// fillCluster writes the 100-byte value to every key of the workload.
func fillCluster(ctx context.Context, addrs []string) error {
	rdb := newGoRedisCluster(addrs)
	defer rdb.Close()
	value := strings.Repeat("v", contender.ValueSize)
	for i := range clusterKeys {
		if err := rdb.Set(ctx, clusterKey(i), value, 0).Err(); err != nil {
			return fmt.Errorf("fill the cluster: %w", err)
		}
	}
	return nil
}

func newGoRedisCluster(addrs []string) *goredis.ClusterClient {
	return goredis.NewClusterClient(&goredis.ClusterOptions{
		Addrs:            addrs,
		Protocol:         2,
		PoolSize:         contender.PoolSize,
		PipelinePoolSize: -1,
		DialTimeout:      redispool.DefaultDialTimeout,
		ReadTimeout:      redispool.DefaultReadTimeout,
		WriteTimeout:     redispool.DefaultWriteTimeout,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
}

func newRedispoolCluster(ctx context.Context, addrs []string) (*redispool.Cluster, error) {
	return redispool.NewCluster(ctx, redispool.ClusterConfig{
		Addrs: addrs,
		Node:  redispool.Config{MaxTotal: contender.PoolSize},
	})
}

// clusterClient is one way to GET a key from the cluster: op returns a
// worker's operation, which GETs the next of the workload's keys.
type clusterClient struct {
	name string
	open func(ctx context.Context, addrs []string) (op func(worker int) func(context.Context) error, closeFn func() error, err error)
}

// clusterClients are the contenders of BenchmarkCluster, in report
// order. All use 16 connections per node.
var clusterClients = []clusterClient{
	{"redispool.Do", func(ctx context.Context, addrs []string) (func(int) func(context.Context) error, func() error, error) {
		c, err := newRedispoolCluster(ctx, addrs)
		if err != nil {
			return nil, nil, err
		}
		return func(worker int) func(context.Context) error {
			i := worker * 7919
			return func(ctx context.Context) error {
				i++
				_, err := redis.Bytes(c.Do(ctx, "GET", clusterKey(i)))
				return err
			}
		}, c.Close, nil
	}},
	{"redispool.Get", func(ctx context.Context, addrs []string) (func(int) func(context.Context) error, func() error, error) {
		c, err := newRedispoolCluster(ctx, addrs)
		if err != nil {
			return nil, nil, err
		}
		return func(worker int) func(context.Context) error {
			i := worker * 7919
			return func(ctx context.Context) error {
				i++
				conn, err := c.GetContext(ctx)
				if err != nil {
					return err
				}
				_, err = redis.Bytes(conn.Do("GET", clusterKey(i)))
				if cerr := conn.Close(); err == nil {
					err = cerr
				}
				return err
			}
		}, c.Close, nil
	}},
	{"go-redis", func(ctx context.Context, addrs []string) (func(int) func(context.Context) error, func() error, error) {
		rdb := newGoRedisCluster(addrs)
		return func(worker int) func(context.Context) error {
			i := worker * 7919
			return func(ctx context.Context) error {
				i++
				return rdb.Get(ctx, clusterKey(i)).Err()
			}
		}, rdb.Close, nil
	}},
}

// BenchmarkCluster GETs keys spread over every slot of a 3-master cluster
// through redispool's Cluster — Do, and a connection from Get bound by its
// first command — and through go-redis's ClusterClient. One op is one GET
// (with, for Get, its borrow and return).
//
//	go test -run '^$' -bench 'Cluster/Workload=GET/Conc=16' -benchtime 2s
func BenchmarkCluster(b *testing.B) {
	addrs := clusterAddrs(b)
	for _, conc := range []int{1, 16, 64} {
		for _, cc := range clusterClients {
			b.Run(fmt.Sprintf("Workload=GET/Conc=%d/Client=%s", conc, cc.name), func(b *testing.B) {
				ctx := context.Background()
				newOp, closeFn, err := cc.open(ctx, addrs)
				if err != nil {
					b.Fatal(err)
				}
				defer closeFn()
				// Load the slot map and fill the pools, so that neither is
				// measured.
				var wg sync.WaitGroup
				for w := range parallel.Goroutines(conc) {
					wg.Add(1)
					go func() {
						defer wg.Done()
						op := newOp(w)
						for range 3 * clusterMasters {
							if err := op(ctx); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				parallel.Run(b, conc, func(worker int) func() error {
					op := newOp(worker)
					return func() error { return op(ctx) }
				})
			})
		}
	}
}

// TestClusterClients GETs every key once through every contender of
// BenchmarkCluster.
func TestClusterClients(t *testing.T) {
	addrs := clusterAddrs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cc := range clusterClients {
		t.Run(cc.name, func(t *testing.T) {
			newOp, closeFn, err := cc.open(ctx, addrs)
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			op := newOp(0)
			for range clusterKeys {
				if err := op(ctx); err != nil {
					t.Fatalf("GET: %v", err)
				}
			}
		})
	}
}
