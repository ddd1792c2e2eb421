// Package redispoolotel exports a redispool Pool's or Cluster's
// statistics as OpenTelemetry metrics, and traces its commands: what
// go-redis's redisotel and rueidis's rueidisotel give their users.
//
// It lives in its own module so that the redispool library does not
// depend on OpenTelemetry. Import it under its package name:
//
//	import redispoolotel "github.com/redispool/redispool/otel"
//
// # Metrics
//
//	p, err := redispool.New(ctx, cfg)
//	...
//	reg, err := redispoolotel.RegisterMetrics(p,
//		redispoolotel.WithAttributes(attribute.String("db.client.connection.pool.name", "sessions")))
//	...
//	defer reg.Unregister()
//
// RegisterMetrics registers observable instruments whose one callback
// reads Stats at each collection; it keeps no state of its own and
// starts no goroutine. The instruments mirror the prometheus module's
// metrics (Prometheus exporters add the _total suffix to counters):
//
//	redispool.connections.max                 gauge    MaxTotal
//	redispool.connections{state}              gauge    Active, Idle, Shared (state active, idle, shared)
//	redispool.waiting                         gauge    Waiting
//	redispool.dialing                         gauge    Dialing
//	redispool.borrows                         counter  Borrows
//	redispool.waits                           counter  WaitCount
//	redispool.wait.duration                   counter  WaitDuration, in seconds
//	redispool.timeouts                        counter  Timeouts
//	redispool.connections.created             counter  Created
//	redispool.dial_errors                     counter  DialErrors
//	redispool.connections.destroyed{reason}   counter  Destroyed*
//	redispool.master_changes                  counter  MasterChanges (Sentinel)
//	redispool.pipeline.commands               counter  PipelinedCommands
//	redispool.pipeline.batches{batch.size}    counter  PipelineBatchSizes
//
// Shared connections are those Pool.Do's auto-pipelining holds
// (Config.PipelineConns). redispool.pipeline.batches counts the writes
// on them by the number of commands in each: batch.size is 1, 2, 3-4,
// 5-8 ... 129-256 or 257+. The OTel API has no observable histogram,
// so the distribution is a counter split by that attribute; summed over
// it, it is the number of batches (Stats.PipelineBatches), and
// commands / batches is the mean batch.
//
// For a Cluster, each of these is reported per node pool, with the
// node's host:port as server.address, and the cluster adds:
//
//	redispool.cluster.slots{server.address}   gauge    the slots each master serves
//	redispool.cluster.redirects{kind}         counter  Moved, Ask (kind moved, ask)
//	redispool.cluster.try_again               counter  TryAgain
//	redispool.cluster.cluster_down            counter  ClusterDown
//	redispool.cluster.retries                 counter  Retries
//	redispool.cluster.refreshes               counter  Refreshes
//	redispool.cluster.refresh_errors          counter  RefreshErrors
//
// The reason attribute of redispool.connections.destroyed is one of
// broken, unhealthy, dirty, idle, lifetime, surplus, closed, failover
// and abandoned, as in the prometheus module.
//
// # Tracing
//
// CommandHook returns a redispool.CommandHook that makes a client span
// of each command, named after it, with db.system and db.system.name
// "redis", db.operation.name (the command), db.namespace (the
// database), server.address, server.port and network.transport — never
// the command's arguments. Set it on the Config before New (on
// ClusterConfig.Node for a Cluster):
//
//	cfg, err := redispool.ParseURL(url)
//	...
//	cfg.CommandHook = redispoolotel.CommandHook()
//	p, err := redispool.New(ctx, cfg)
//
// A span is a child of the span in the command's context (DoContext,
// Pool.Do, Cluster.Do); commands run with Do take no context and start
// a trace of their own. An error reply sets the span's status to Error
// with the reply's prefix (WRONGTYPE, ERR ...) as its description and
// db.response.status_code, since Redis may quote a command's arguments
// in the rest of the message; other errors (I/O, timeouts) are recorded
// in full. redispool.CommandHook says which commands are seen.
package redispoolotel
