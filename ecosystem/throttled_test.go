package ecosystem_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redispool/redispool"
	"github.com/throttled/throttled/v2"
	"github.com/throttled/throttled/v2/store/redigostore"
)

// TestThrottledOnPipelineGet runs throttled's GCRA rate limiter on its
// redigo store, on a pool with Config.PipelineGet, from many goroutines:
// for each key exactly the burst is allowed and the rest limited. The
// store sends SELECT of the pool's database on every borrow, which is
// pipelined; its TIME and GET go together with Send, and its
// compare-and-swap is a script, both on a connection of their own.
func TestThrottledOnPipelineGet(t *testing.T) {
	const db = 5
	pools, servers := pipeGetPools(t, 1, redispool.Config{DB: db})
	p := pools[0]
	rateLimitFromMany(t, p, db)
	if n, _ := servers[0].Do(t, "EVAL", "redis.call('SELECT', ARGV[1]); return redis.call('DBSIZE')", 0, db).(int64); n != throttledKeys {
		t.Errorf("database %d holds %d keys; want %d", db, n, throttledKeys)
	}
	if st := p.Stats(); st.PipelinedCommands == 0 {
		t.Error("no command was pipelined: PipelineGet is not in use")
	}
	checkConnections(t, pools, servers)
}

// TestThrottledOnClusterPipelineGet is TestThrottledOnPipelineGet on a
// Cluster of three masters with ClusterConfig.Node.PipelineGet: the
// store's SELECT 0 goes down a node's pipe, its TIME and GET bind the
// connection to the key's node, its script runs there.
func TestThrottledOnClusterPipelineGet(t *testing.T) {
	pipeGetCluster(t, func(c *redispool.Cluster) { rateLimitFromMany(t, c, 0) })
}

const throttledKeys = 3

// rateLimitFromMany runs throttled's GCRA rate limiter on its redigo
// store on pool, in database db, from many goroutines: for each key
// exactly the burst must be allowed and the rest limited.
func rateLimitFromMany(t *testing.T, pool redigostore.RedigoPool, db int) {
	t.Helper()
	store, err := redigostore.NewCtx(pool, "throttled:", db)
	if err != nil {
		t.Fatal(err)
	}
	const burst = 9 // burst+1 requests allowed at once
	limiter, err := throttled.NewGCRARateLimiterCtx(store, throttled.RateQuota{MaxRate: throttled.PerHour(1), MaxBurst: burst})
	if err != nil {
		t.Fatal(err)
	}
	// Contention makes the store's compare-and-swap retry; the decisions
	// must stay right however often it does.
	limiter.SetMaxCASAttemptsLimit(1 << 20)

	const keys, workers, perWorker = throttledKeys, 24, 5
	allowed := make([]atomic.Int32, keys)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				k := (w + i) % keys
				limited, _, err := limiter.RateLimitCtx(context.Background(), "key"+strconv.Itoa(k), 1)
				if err != nil {
					errs <- err
					return
				}
				if !limited {
					allowed[k].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for k := range allowed {
		if got := allowed[k].Load(); got != burst+1 {
			t.Errorf("key%d: %d requests allowed; want exactly %d", k, got, burst+1)
		}
	}
}
