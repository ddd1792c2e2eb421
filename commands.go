package redispool

// The command table: what the pool must know about each Redis command,
// in one place. Per command it says
//
//   - where its keys are, for routing in a Cluster (keys.go has the
//     rules), and whether a replica may answer it;
//   - whether it blocks on the server, and where its timeout is
//     (blocking.go);
//   - which session state it creates or ends, which the tracker follows
//     so that the next borrower gets a clean connection (state.go);
//   - whether it may go down a shared connection, auto-pipelined with
//     other callers' commands (pipeline.go).
//
// It lists every command of redis-server 7.0 and a few of later
// versions; TestServerCommandTableIsClassified fails for a command the
// server lists that the table does not place, so a new Redis version
// cannot slip a command past these decisions. A command not in the
// table — a module command (JSON.GET), one newer than the table — has
// its first argument as its key, blocks nothing, leaves no session state
// the tracker can undo (as before: such commands are called plain) and
// is never pipelined, since nothing says that would be safe.
//
// It is a file of its own, not part of keys.go, because keys are now
// one of four things it says; keys.go keeps the key rules.
//
// Which commands are pipelined: a command that neither blocks, nor reads
// or changes session state, nor depends on which connection it runs on,
// sends exactly one reply and runs in time bounded by the values it
// names. That is every command of the data groups (strings, lists, sets,
// sorted sets, hashes, streams, geo, HyperLogLog, bitmaps, generic keys)
// except the blocking ones, KEYS (it walks the whole keyspace, and a
// reply later than ReadTimeout fails every command in flight with it),
// MIGRATE (it waits on another server, with a timeout of its own), WAIT
// (it counts the writes of its own connection) and the admin-flagged
// PFDEBUG and PFSELFTEST; and outside them PING, ECHO, TIME, DBSIZE,
// PUBLISH and SPUBLISH. Scripts and functions are not: one may run for
// longer than ReadTimeout, and on a shared connection that would fail
// every command behind it. Unknown and module commands are not.

// cmdInfo is what the table knows about one command.
type cmdInfo struct {
	rule keyRule

	// For keyRange: the index of the first and last key and the step
	// between keys. A negative last counts from the end: -1 is the last
	// argument, -2 the one before it (BLPOP's keys come before a timeout).
	// For keyNumkeys: first is the index of numkeys, and last is 0, or 1
	// when args[0] is a key too (ZUNIONSTORE's destination).
	first, last, step int8

	// readOnly marks a keyed command that only reads, and that a replica
	// of its key's slot may answer (ClusterConfig.ReadFromReplicas).
	readOnly bool

	// block is whether the command blocks on the server, and where it
	// gives how long; Pool.Do and Cluster.Do wait that long for its reply
	// (blocking.go).
	block blockArg

	// state is the session state the command creates or ends (kindPlain:
	// none); kindClient and kindScript depend on the subcommand, which
	// classify looks at.
	state cmdKind

	// pipelined marks a command that may go down a shared connection
	// (see the top of this file).
	pipelined bool
}

// blockArg says whether a command blocks on the server and where it gives
// its timeout, and in which unit.
type blockArg uint8

const (
	blockNever    blockArg = iota // not a blocking command
	blockLastSec                  // the last argument, in seconds: BLPOP k... timeout
	blockFirstSec                 // the first argument, in seconds: BLMPOP timeout numkeys k...
	blockOptionMs                 // the value after BLOCK, in milliseconds, if given: XREAD
	// blockOwnWrites is WAIT and WAITAOF: they block until the writes of
	// their own connection have reached replicas or disk, so they only
	// mean something on the connection that made the writes, a borrowed
	// one, whose reads keep their ReadTimeout. The one-shot Do does not
	// lengthen their wait.
	blockOwnWrites
)

// piped returns info marked as pipelined.
func (info cmdInfo) piped() cmdInfo {
	info.pipelined = true
	return info
}

// with returns info with the session state kind k.
func (info cmdInfo) with(k cmdKind) cmdInfo {
	info.state = k
	return info
}

// blocking returns info marked as blocking in the way b says.
func (info cmdInfo) blocking(b blockArg) cmdInfo {
	info.block = b
	return info
}

// commandTable lists the commands by their names in upper case. Within
// each group, by the group COMMAND DOCS gives: the pipelined commands,
// then the others.
var commandTable = map[string]cmdInfo{
	// Strings.
	"APPEND": keysFirst.piped(), "DECR": keysFirst.piped(), "DECRBY": keysFirst.piped(),
	"GET": keysFirstRO.piped(), "GETDEL": keysFirst.piped(), "GETEX": keysFirst.piped(),
	"GETRANGE": keysFirstRO.piped(), "GETSET": keysFirst.piped(), "INCR": keysFirst.piped(),
	"INCRBY": keysFirst.piped(), "INCRBYFLOAT": keysFirst.piped(), "LCS": keysTwoRO.piped(),
	"MGET": keysAllRO.piped(), "MSET": keysPairs.piped(), "MSETNX": keysPairs.piped(),
	"PSETEX": keysFirst.piped(), "SET": keysFirst.piped(), "SETEX": keysFirst.piped(),
	"SETNX": keysFirst.piped(), "SETRANGE": keysFirst.piped(), "STRLEN": keysFirstRO.piped(),
	"SUBSTR": keysFirstRO.piped(),

	// Bitmaps.
	"BITCOUNT": keysFirstRO.piped(), "BITFIELD": keysFirst.piped(), "BITFIELD_RO": keysFirstRO.piped(),
	"BITOP": keysAfterOp.piped(), "BITPOS": keysFirstRO.piped(), "GETBIT": keysFirstRO.piped(),
	"SETBIT": keysFirst.piped(),

	// Lists.
	"LINDEX": keysFirstRO.piped(), "LINSERT": keysFirst.piped(), "LLEN": keysFirstRO.piped(),
	"LMOVE": keysTwo.piped(), "LMPOP": keysNumkeys0.piped(), "LPOP": keysFirst.piped(),
	"LPOS": keysFirstRO.piped(), "LPUSH": keysFirst.piped(), "LPUSHX": keysFirst.piped(),
	"LRANGE": keysFirstRO.piped(), "LREM": keysFirst.piped(), "LSET": keysFirst.piped(),
	"LTRIM": keysFirst.piped(), "RPOP": keysFirst.piped(), "RPOPLPUSH": keysTwo.piped(),
	"RPUSH": keysFirst.piped(), "RPUSHX": keysFirst.piped(),
	"BLMOVE":     keysTwo.blocking(blockLastSec),
	"BLMPOP":     keysNumkeys1.blocking(blockFirstSec),
	"BLPOP":      keysAllButLast.blocking(blockLastSec),
	"BRPOP":      keysAllButLast.blocking(blockLastSec),
	"BRPOPLPUSH": keysTwo.blocking(blockLastSec),

	// Sets.
	"SADD": keysFirst.piped(), "SCARD": keysFirstRO.piped(), "SDIFF": keysAllRO.piped(),
	"SDIFFSTORE": keysAll.piped(), "SINTER": keysAllRO.piped(), "SINTERCARD": keysNumkeys0R.piped(),
	"SINTERSTORE": keysAll.piped(), "SISMEMBER": keysFirstRO.piped(), "SMEMBERS": keysFirstRO.piped(),
	"SMISMEMBER": keysFirstRO.piped(), "SMOVE": keysTwo.piped(), "SPOP": keysFirst.piped(),
	"SRANDMEMBER": keysFirstRO.piped(), "SREM": keysFirst.piped(), "SSCAN": keysFirstRO.piped(),
	"SUNION": keysAllRO.piped(), "SUNIONSTORE": keysAll.piped(),

	// Sorted sets.
	"ZADD": keysFirst.piped(), "ZCARD": keysFirstRO.piped(), "ZCOUNT": keysFirstRO.piped(),
	"ZDIFF": keysNumkeys0R.piped(), "ZDIFFSTORE": keysDestNum.piped(), "ZINCRBY": keysFirst.piped(),
	"ZINTER": keysNumkeys0R.piped(), "ZINTERCARD": keysNumkeys0R.piped(), "ZINTERSTORE": keysDestNum.piped(),
	"ZLEXCOUNT": keysFirstRO.piped(), "ZMPOP": keysNumkeys0.piped(), "ZMSCORE": keysFirstRO.piped(),
	"ZPOPMAX": keysFirst.piped(), "ZPOPMIN": keysFirst.piped(), "ZRANDMEMBER": keysFirstRO.piped(),
	"ZRANGE": keysFirstRO.piped(), "ZRANGEBYLEX": keysFirstRO.piped(), "ZRANGEBYSCORE": keysFirstRO.piped(),
	"ZRANGESTORE": keysTwo.piped(), "ZRANK": keysFirstRO.piped(), "ZREM": keysFirst.piped(),
	"ZREMRANGEBYLEX": keysFirst.piped(), "ZREMRANGEBYRANK": keysFirst.piped(),
	"ZREMRANGEBYSCORE": keysFirst.piped(), "ZREVRANGE": keysFirstRO.piped(),
	"ZREVRANGEBYLEX": keysFirstRO.piped(), "ZREVRANGEBYSCORE": keysFirstRO.piped(),
	"ZREVRANK": keysFirstRO.piped(), "ZSCAN": keysFirstRO.piped(), "ZSCORE": keysFirstRO.piped(),
	"ZUNION": keysNumkeys0R.piped(), "ZUNIONSTORE": keysDestNum.piped(),
	"BZMPOP":   keysNumkeys1.blocking(blockFirstSec),
	"BZPOPMAX": keysAllButLast.blocking(blockLastSec),
	"BZPOPMIN": keysAllButLast.blocking(blockLastSec),

	// Hashes.
	"HDEL": keysFirst.piped(), "HEXISTS": keysFirstRO.piped(), "HGET": keysFirstRO.piped(),
	"HGETALL": keysFirstRO.piped(), "HINCRBY": keysFirst.piped(), "HINCRBYFLOAT": keysFirst.piped(),
	"HKEYS": keysFirstRO.piped(), "HLEN": keysFirstRO.piped(), "HMGET": keysFirstRO.piped(),
	"HMSET": keysFirst.piped(), "HRANDFIELD": keysFirstRO.piped(), "HSCAN": keysFirstRO.piped(),
	"HSET": keysFirst.piped(), "HSETNX": keysFirst.piped(), "HSTRLEN": keysFirstRO.piped(),
	"HVALS": keysFirstRO.piped(),

	// Streams. XREAD and XREADGROUP block only with BLOCK, but the
	// table places commands, not calls.
	"XACK": keysFirst.piped(), "XADD": keysFirst.piped(), "XAUTOCLAIM": keysFirst.piped(),
	"XCLAIM": keysFirst.piped(), "XDEL": keysFirst.piped(), "XGROUP": keysSecond.piped(),
	"XINFO": keysSecond.piped(), "XLEN": keysFirstRO.piped(), "XPENDING": keysFirstRO.piped(),
	"XRANGE": keysFirstRO.piped(), "XREVRANGE": keysFirstRO.piped(), "XSETID": keysFirst.piped(),
	"XTRIM":      keysFirst.piped(),
	"XREAD":      keysStreamsRO.blocking(blockOptionMs),
	"XREADGROUP": keysStreams.blocking(blockOptionMs),

	// Geo.
	"GEOADD": keysFirst.piped(), "GEODIST": keysFirstRO.piped(), "GEOHASH": keysFirstRO.piped(),
	"GEOPOS": keysFirstRO.piped(), "GEORADIUS": keysFirst.piped(), "GEORADIUSBYMEMBER": keysFirst.piped(),
	"GEORADIUSBYMEMBER_RO": keysFirstRO.piped(), "GEORADIUS_RO": keysFirstRO.piped(),
	"GEOSEARCH": keysFirstRO.piped(), "GEOSEARCHSTORE": keysTwo.piped(),

	// HyperLogLog.
	"PFADD": keysFirst.piped(), "PFCOUNT": keysAllRO.piped(), "PFMERGE": keysAll.piped(),
	"PFDEBUG": keysSecond, "PFSELFTEST": keysNone, // admin

	// Generic keys.
	"COPY": keysTwo.piped(), "DEL": keysAll.piped(), "DUMP": keysFirstRO.piped(),
	"EXISTS": keysAllRO.piped(), "EXPIRE": keysFirst.piped(), "EXPIREAT": keysFirst.piped(),
	"EXPIRETIME": keysFirstRO.piped(), "MOVE": keysFirst.piped(), "OBJECT": keysSecond.piped(),
	"PERSIST": keysFirst.piped(), "PEXPIRE": keysFirst.piped(), "PEXPIREAT": keysFirst.piped(),
	"PEXPIRETIME": keysFirstRO.piped(), "PTTL": keysFirstRO.piped(), "RANDOMKEY": keysNone.piped(),
	"RENAME": keysTwo.piped(), "RENAMENX": keysTwo.piped(), "RESTORE": keysFirst.piped(),
	"SCAN": keysNone.piped(), "SORT": keysFirst.piped(), "SORT_RO": keysFirstRO.piped(),
	"TOUCH": keysAll.piped(), "TTL": keysFirstRO.piped(), "TYPE": keysFirstRO.piped(),
	"UNLINK":  keysAll.piped(),
	"KEYS":    keysNone,
	"MIGRATE": keysMigrate,
	"WAIT":    keysNone.blocking(blockOwnWrites), "WAITAOF": keysNone.blocking(blockOwnWrites),

	// Connection. SELECT of the pool's own database leaves no state;
	// a PipelineGet connection sends that one pipelined (conn.go).
	"PING": keysNone.piped(), "ECHO": keysNone.piped(),
	"SELECT": keysNone.with(kindSelect),
	"CLIENT": keysNone.with(kindClient),
	"AUTH":   keysNone.with(kindUnresettable), "HELLO": keysNone.with(kindUnresettable),
	"QUIT": keysNone.with(kindUnresettable), "RESET": keysNone.with(kindUnresettable),

	// Cluster. READONLY lasts, READWRITE undoes it, and ASKING flags the
	// next command, whoever sends it.
	"ASKING": keysNone.with(kindUnresettable), "READONLY": keysNone.with(kindUnresettable),
	"READWRITE": keysNone, "CLUSTER": keysNone,

	// Transactions.
	"MULTI": keysNone.with(kindMulti), "EXEC": keysNone.with(kindEndMulti),
	"DISCARD": keysNone.with(kindEndMulti), "WATCH": keysAll.with(kindWatch),
	"UNWATCH": keysNone.with(kindUnwatch),

	// Scripting: scripts run with the session's state but leave none,
	// except the debugger (SCRIPT DEBUG).
	"EVAL": keysNumkeys1, "EVALSHA": keysNumkeys1, "FCALL": keysNumkeys1,
	"EVAL_RO": keysNumkeys1R, "EVALSHA_RO": keysNumkeys1R, "FCALL_RO": keysNumkeys1R,
	"FUNCTION": keysNone, "SCRIPT": keysNone.with(kindScript),

	// Pub/sub. Classic pub/sub is keyless, since a cluster propagates it
	// to every node; sharded pub/sub is routed by its shard channel,
	// which Redis hashes like a key.
	"PUBLISH": keysNone.piped(), "SPUBLISH": keysFirst.piped(),
	"SUBSCRIBE": keysNone.with(kindSubscribe), "PSUBSCRIBE": keysNone.with(kindSubscribe),
	"SSUBSCRIBE":  keysAll.with(kindSSubscribe),
	"UNSUBSCRIBE": keysNone, "PUNSUBSCRIBE": keysNone, "SUNSUBSCRIBE": keysAll,
	"PUBSUB": keysNone,

	// Server: commands that act on the node they reach.
	"TIME": keysNone.piped(), "DBSIZE": keysNone.piped(),
	"ACL": keysNone, "BGREWRITEAOF": keysNone, "BGSAVE": keysNone, "COMMAND": keysNone,
	"CONFIG": keysNone, "DEBUG": keysNone, "FAILOVER": keysNone, "FLUSHALL": keysNone,
	"FLUSHDB": keysNone, "INFO": keysNone, "LASTSAVE": keysNone, "LATENCY": keysNone,
	"LOLWUT": keysNone, "MEMORY": keysSecond, "MODULE": keysNone, "REPLICAOF": keysNone,
	"RESTORE-ASKING": keysFirst, "ROLE": keysNone, "SAVE": keysNone, "SHUTDOWN": keysNone,
	"SLAVEOF": keysNone, "SLOWLOG": keysNone, "SWAPDB": keysNone,
	"MONITOR": keysNone.with(kindUnresettable), "PSYNC": keysNone.with(kindUnresettable),
	"REPLCONF": keysNone.with(kindUnresettable), "SYNC": keysNone.with(kindUnresettable),
}

// maxCommandLen is the length of the longest name in commandTable; a
// longer name cannot be in the table.
const maxCommandLen = len("GEORADIUSBYMEMBER_RO")

// The table is looked up for every command, by the tracker, the
// pipeline and the cluster's routing, so the lookup neither allocates
// nor upper-cases: commandIndex is an open-addressing hash table over
// the names, hashed as if upper case, and a probe compares the name
// ignoring case.
const commandIndexSize = 1 << 10 // a power of 2, several times the commands

var (
	commandIndex   [commandIndexSize]uint16 // 1 + an index into commandEntries; 0 for an empty slot
	commandEntries []commandEntry
)

type commandEntry struct {
	name string // upper case
	info cmdInfo
}

func init() {
	for name, info := range commandTable {
		if len(name) > maxCommandLen {
			panic("redispool: command table: " + name + " is longer than maxCommandLen")
		}
		commandEntries = append(commandEntries, commandEntry{name, info})
		i := commandHash(name) & (commandIndexSize - 1)
		for commandIndex[i] != 0 {
			i = (i + 1) & (commandIndexSize - 1)
		}
		commandIndex[i] = uint16(len(commandEntries))
	}
}

// commandHash is FNV-1a over the name in upper case.
func commandHash(cmd string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// lookupCommand returns the table entry of cmd, whatever its case, or
// the entry of a command not in the table: first argument the key, no
// blocking, plain, not pipelined. It does not allocate.
func lookupCommand(cmd string) cmdInfo {
	if len(cmd) > maxCommandLen {
		return keysFirst
	}
	for i := commandHash(cmd) & (commandIndexSize - 1); ; i = (i + 1) & (commandIndexSize - 1) {
		e := commandIndex[i]
		if e == 0 {
			return keysFirst
		}
		if entry := &commandEntries[e-1]; equalFoldUpper(cmd, entry.name) {
			return entry.info
		}
	}
}

// mayPipeline reports whether cmd may go down a shared connection (see
// the top of this file).
func mayPipeline(cmd string) bool { return lookupCommand(cmd).pipelined }
