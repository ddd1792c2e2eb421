package contender

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/redis/rueidis"

	"github.com/redispool/redispool"
)

// The cluster comparison: one workload, GET of a 100-byte value, over
// ClusterKeys keys spread over every slot of a Redis Cluster. A cluster
// contender's New takes the seeds as one comma-separated addr.

// ClusterKeys is how many keys the cluster workload spreads its GETs
// over: every master holds hundreds of them.
const ClusterKeys = 1024

// clusterArgs[i] is GET's argument list for key i, made once so that an
// operation allocates nothing of the harness's.
var clusterArgs = func() [][]any {
	args := make([][]any, ClusterKeys)
	for i := range args {
		args[i] = []any{ClusterKey(i)}
	}
	return args
}()

// ClusterKey returns the i-th key of the cluster workload.
func ClusterKey(i int) string { return "poolbench:cluster:" + strconv.Itoa(i%ClusterKeys) }

// The contenders of the cluster comparison, in report order.
var (
	ClusterDo = Contender{
		Name:     "Cluster.Do",
		Describe: fmt.Sprintf("redispool Cluster.Do(ctx, \"GET\", key): routed by the key's slot, MaxTotal %d per node", PoolSize),
		New: func(ctx context.Context, addr string, _ int) (Client, error) {
			c, err := newCluster(ctx, addr)
			if err != nil {
				return nil, err
			}
			return clusterDo{c}, nil
		},
	}
	ClusterGet = Contender{
		Name:     "Cluster.Get",
		Describe: "redispool Cluster.GetContext, then GET on the connection, which binds it to the key's node, then Close: redigo's pattern, as redsync and throttled use it",
		New: func(ctx context.Context, addr string, _ int) (Client, error) {
			c, err := newCluster(ctx, addr)
			if err != nil {
				return nil, err
			}
			return clusterGet{c}, nil
		},
	}
	GoRedisCluster = Contender{
		Name:     "go-redis",
		Describe: fmt.Sprintf("go-redis v9 ClusterClient, Protocol 2 (RESP2), PoolSize %d per node", PoolSize),
		New: func(ctx context.Context, addr string, _ int) (Client, error) {
			return goRedisCluster{NewGoRedisCluster(strings.Split(addr, ","))}, nil
		},
	}
)

// RueidisCluster is rueidis's cluster client, set up as the
// single-server rueidis contender is.
var RueidisCluster = Contender{
	Name:     "rueidis",
	Describe: "rueidis v1.0.80 cluster client, defaults (auto-pipelining, one shared connection per node), DisableCache, GET commands built once per key and pinned",
	New: func(ctx context.Context, addr string, _ int) (Client, error) {
		c, err := NewRueidis(strings.Split(addr, ","))
		if err != nil {
			return nil, err
		}
		gets := make([]rueidis.Completed, ClusterKeys)
		for i := range gets {
			gets[i] = c.B().Get().Key(ClusterKey(i)).Build().Pin()
		}
		return rueidisCluster{c, gets}, nil
	},
}

// ClusterContenders are the contenders of the cluster comparison, and
// ClusterBaseline the one ratios are taken against.
var (
	ClusterContenders = []Contender{ClusterDo, ClusterGet, GoRedisCluster, RueidisCluster}
	ClusterBaseline   = GoRedisCluster
)

func newCluster(ctx context.Context, addr string) (*redispool.Cluster, error) {
	return redispool.NewCluster(ctx, redispool.ClusterConfig{
		Addrs: strings.Split(addr, ","),
		Node:  redispool.Config{MaxTotal: PoolSize},
	})
}

// NewGoRedisCluster returns go-redis's ClusterClient set up as the
// single-server go-redis contender is.
func NewGoRedisCluster(addrs []string) *goredis.ClusterClient {
	return goredis.NewClusterClient(&goredis.ClusterOptions{
		Addrs:            addrs,
		Protocol:         2,
		PoolSize:         PoolSize,
		PipelinePoolSize: -1,
		DialTimeout:      dialTimeout,
		ReadTimeout:      readTimeout,
		WriteTimeout:     writeTimeout,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
}

// PrepareCluster stores the value of every key of the cluster workload.
// addr is the seeds, comma-separated.
func PrepareCluster(ctx context.Context, addr string) error {
	rdb := NewGoRedisCluster(strings.Split(addr, ","))
	defer rdb.Close()
	for i := range ClusterKeys {
		if err := rdb.Set(ctx, ClusterKey(i), Value, 0).Err(); err != nil {
			return fmt.Errorf("prepare cluster: %w", err)
		}
	}
	return nil
}

// clusterOp returns a worker's operation for w, which must be Get: it
// GETs the next key, starting at a point of its own.
func clusterOp(w Workload, worker int, get func(ctx context.Context, args []any) ([]byte, error)) func(context.Context) error {
	if w != Get {
		return func(context.Context) error { return fmt.Errorf("the cluster comparison runs GET only, not %s", w) }
	}
	i := worker * 7919
	return func(ctx context.Context) error {
		i++
		v, err := get(ctx, clusterArgs[i%ClusterKeys])
		if err == nil && len(v) != ValueSize {
			err = errShortValue
		}
		return err
	}
}

type clusterDo struct{ c *redispool.Cluster }

func (c clusterDo) Op(w Workload, worker int) func(context.Context) error {
	return clusterOp(w, worker, func(ctx context.Context, args []any) ([]byte, error) {
		return redis.Bytes(c.c.Do(ctx, "GET", args...))
	})
}

func (c clusterDo) Close() error { return c.c.Close() }

type clusterGet struct{ c *redispool.Cluster }

func (c clusterGet) Op(w Workload, worker int) func(context.Context) error {
	return clusterOp(w, worker, func(ctx context.Context, args []any) ([]byte, error) {
		conn, err := c.c.GetContext(ctx)
		if err != nil {
			return nil, err
		}
		v, err := redis.Bytes(conn.Do("GET", args...))
		if cerr := conn.Close(); err == nil {
			err = cerr
		}
		return v, err
	})
}

func (c clusterGet) Close() error { return c.c.Close() }

type goRedisCluster struct{ rdb *goredis.ClusterClient }

func (g goRedisCluster) Op(w Workload, worker int) func(context.Context) error {
	return clusterOp(w, worker, func(ctx context.Context, args []any) ([]byte, error) {
		return g.rdb.Get(ctx, args[0].(string)).Bytes()
	})
}

func (g goRedisCluster) Close() error { return g.rdb.Close() }

type rueidisCluster struct {
	c    rueidis.Client
	gets []rueidis.Completed // gets[i] is GET of ClusterKey(i)
}

func (r rueidisCluster) Op(w Workload, worker int) func(context.Context) error {
	if w != Get {
		return clusterOp(w, worker, nil)
	}
	i := worker * 7919
	return func(ctx context.Context) error {
		i++
		v, err := r.c.Do(ctx, r.gets[i%ClusterKeys]).ToString()
		if err == nil && len(v) != ValueSize {
			err = errShortValue
		}
		return err
	}
}

func (r rueidisCluster) Close() error { r.c.Close(); return nil }
