// Package ecosystem holds no code: its tests run libraries that take
// redigo's concrete *redis.Pool — boj/redistore, gin-contrib/sessions'
// redis store and alexedwards/scs's redisstore — on the *redis.Pool that
// Pool.RedigoPool and Cluster.RedigoPool return, against real
// redis-server processes. It is a module of its own so that those
// libraries and their dependencies stay out of the library's go.mod.
package ecosystem
