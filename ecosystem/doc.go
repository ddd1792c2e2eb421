// Package ecosystem holds no code: its tests run libraries that take
// redigo's concrete *redis.Pool — boj/redistore, gin-contrib/sessions'
// redis store and alexedwards/scs's redisstore — on the *redis.Pool that
// Pool.RedigoPool and Cluster.RedigoPool return, against real
// redis-server processes; and libraries that take an interface of
// redigo's Get — redsync's Redlock across three pools, throttled's GCRA
// store — on Pools with Config.PipelineGet, whose borrowed connections
// send their one-shot commands down the shared pipelines, and on a
// Cluster with ClusterConfig.Node.PipelineGet. It is a module of its own so that those
// libraries and their dependencies stay out of the library's go.mod.
package ecosystem
