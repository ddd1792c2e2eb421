// Package bench is redispool's benchmark suite. It is a module of its
// own so that go-redis and the other contenders stay out of the
// library's go.mod.
//
// # Go benchmarks
//
// BenchmarkBorrowReturn borrows and returns a connection with fake
// dialers and no network: redispool against bare go-commons-pool (the
// engine under it) and redigo's redis.Pool, from 1 to 64 goroutines.
// BenchmarkEndToEnd runs each workload (GET, SET, MULTI/INCR/EXEC, a
// pipeline of 10) through each contender (redispool borrowing and
// through Pool.Do, redigo.Pool, go-redis, the auto-pipelining rueidis,
// and dedicated connections) against a redis-server that
// the benchmark starts on a free loopback port; it skips when
// redis-server is not in $PATH, unless REDISPOOL_REQUIRE_SERVER=1.
//
//	go test -run '^$' -bench BorrowReturn -benchtime 1s
//	make microbench   # conc 1, 16 and 64, five runs each
//	go test -run '^$' -bench 'EndToEnd/Workload=GET/Conc=64'
//
// BenchmarkCluster GETs 1,024 keys spread over the slots of a 3-master
// Redis Cluster that it starts on loopback ports (redis-server and
// redis-cli --cluster create; it skips when either is missing): through
// redispool's Cluster.Do, through a connection from Cluster.GetContext
// bound by its GET, through go-redis's ClusterClient, all with 16
// connections per node, and through rueidis's cluster client.
//
//	go test -run '^$' -bench 'Cluster/Workload=GET/Conc=16'
//
// Sub-benchmarks are named by parameter (Conc=16/Pool=redispool), so
// benchstat can compare them across runs.
//
// # The harness
//
// cmd/poolbench is the full comparison behind docs/BENCHMARKS.md:
// interleaved rounds of fixed duration, medians, latency percentiles,
// allocations, the liveness-check cost, recovery after a server restart,
// the cluster comparison, and the targets of issue 4 checked as PASS or
// FAIL. Run it with
// make bench (or make bench-quick for CI).
package bench
