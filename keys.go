package redispool

// Which arguments of a command are keys, for routing in a Redis Cluster.
//
// The rule for a command not in the table below is the common one: its
// first argument is its key, and it has no other. That covers GET, SET,
// HSET, LPUSH, ZADD, EXPIRE, module commands such as JSON.GET, and every
// command Redis adds whose key comes first. The table lists the exceptions:
//
//   - Keyless commands, which go to any master. Connection and session
//     commands (PING, ECHO, SELECT, AUTH, HELLO, QUIT, RESET, CLIENT,
//     READONLY, READWRITE, ASKING); transactions (MULTI, EXEC, DISCARD,
//     UNWATCH; WATCH is keyed); server commands that act on the node they
//     reach (INFO, TIME, DBSIZE, RANDOMKEY, SCAN, KEYS, FLUSHALL, FLUSHDB,
//     CONFIG, COMMAND, ACL, CLUSTER, LATENCY, SLOWLOG, MODULE, MONITOR,
//     ROLE, LASTSAVE, SAVE, BGSAVE, BGREWRITEAOF, SHUTDOWN, SWAPDB,
//     FAILOVER, REPLICAOF, SLAVEOF, SYNC, PSYNC, REPLCONF, DEBUG, LOLWUT,
//     WAIT, WAITAOF, PFSELFTEST) — SCAN, KEYS, DBSIZE and FLUSHALL see that one
//     node only, so whoever needs the whole keyspace must ask each master;
//     scripting and functions management (SCRIPT, FUNCTION); and classic
//     pub/sub (PUBLISH, PUBSUB, SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE,
//     PUNSUBSCRIBE), which a cluster propagates to every node, so any node
//     serves it.
//   - Sharded pub/sub (SPUBLISH, SSUBSCRIBE, SUNSUBSCRIBE) is routed by its
//     shard channel, which Redis hashes like a key.
//   - Commands whose keys follow a count: EVAL, EVALSHA, EVAL_RO,
//     EVALSHA_RO, FCALL, FCALL_RO (script or function, numkeys, keys...)
//     and SINTERCARD, ZUNION, ZINTER, ZDIFF, ZINTERCARD, LMPOP, ZMPOP,
//     BLMPOP, BZMPOP. The key is the first after numkeys; numkeys 0 means
//     no key, as does a numkeys that is not a number or exceeds the
//     arguments (the server replies with the error). ZUNIONSTORE,
//     ZINTERSTORE and ZDIFFSTORE are routed by their destination, the
//     first argument, and have the counted keys besides.
//   - XREAD and XREADGROUP: the keys follow STREAMS, found as Redis finds
//     it (skipping COUNT, BLOCK, GROUP and NOACK with their values, so a
//     group named "streams" is not taken for the keyword).
//   - Commands with several keys in a row: MGET, MSET, MSETNX, DEL,
//     UNLINK, EXISTS, TOUCH, WATCH, the set and list moves, BLPOP and the
//     other blocking pops (all arguments but the timeout), PFCOUNT,
//     PFMERGE, RENAME, COPY, LCS, SINTERSTORE and the like. The first is
//     the routing key; commandSlot checks that all share its slot.
//   - Commands with a subcommand before the key: OBJECT, MEMORY (USAGE),
//     XINFO, XGROUP, PFDEBUG, and BITOP (operation, destination, keys).
//   - MIGRATE, whose key is its third argument, or the keys after KEYS
//     when that argument is empty.
//
// A key hidden among options — SORT ... STORE dest, GEORADIUS ... STORE
// dest — is not seen: such a command is routed by its first key, and if
// the other lives elsewhere the server answers CROSSSLOT, which is the
// right outcome, only one round trip later.
//
// The lists are checked against redis-server: every case of the table test
// against COMMAND GETKEYS (TestCommandKeysMatchServer), and the table
// against the key positions and flags COMMAND gives for every command the
// server knows (TestCommandTableMatchesServer), so a command a new Redis
// adds with its key elsewhere than first fails that test.

// keyRule says where a command's keys are.
type keyRule uint8

const (
	keyFirst   keyRule = iota // args[0], the default
	keyNone                   // no key
	keyRange                  // args[first], args[first+step], ... args[last]
	keyNumkeys                // args[first] is a count of keys that follow it
	keyStreams                // keys follow the STREAMS keyword
	keyMigrate                // MIGRATE's own rule
)

// The shapes of commands' keys, for commandTable (commands.go).
var (
	keysNone       = cmdInfo{rule: keyNone}
	keysFirst      = cmdInfo{rule: keyFirst}
	keysFirstRO    = cmdInfo{rule: keyFirst, readOnly: true}
	keysAll        = cmdInfo{rule: keyRange, first: 0, last: -1, step: 1}
	keysAllRO      = cmdInfo{rule: keyRange, first: 0, last: -1, step: 1, readOnly: true}
	keysAllButLast = cmdInfo{rule: keyRange, first: 0, last: -2, step: 1} // BLPOP k... timeout
	keysPairs      = cmdInfo{rule: keyRange, first: 0, last: -1, step: 2} // MSET k v k v
	keysTwo        = cmdInfo{rule: keyRange, first: 0, last: 1, step: 1}  // RENAME src dst
	keysTwoRO      = cmdInfo{rule: keyRange, first: 0, last: 1, step: 1, readOnly: true}
	keysSecond     = cmdInfo{rule: keyRange, first: 1, last: 1, step: 1}  // OBJECT ENCODING key
	keysAfterOp    = cmdInfo{rule: keyRange, first: 1, last: -1, step: 1} // BITOP op dst k...
	keysNumkeys0   = cmdInfo{rule: keyNumkeys, first: 0}                  // ZUNION numkeys k...
	keysNumkeys0R  = cmdInfo{rule: keyNumkeys, first: 0, readOnly: true}
	keysNumkeys1   = cmdInfo{rule: keyNumkeys, first: 1} // EVAL script numkeys k...
	keysNumkeys1R  = cmdInfo{rule: keyNumkeys, first: 1, readOnly: true}
	keysDestNum    = cmdInfo{rule: keyNumkeys, first: 1, last: 1} // ZUNIONSTORE dst numkeys k...
	keysStreams    = cmdInfo{rule: keyStreams}                    // XREADGROUP ... STREAMS k... id...
	keysStreamsRO  = cmdInfo{rule: keyStreams, readOnly: true}    // XREAD ... STREAMS k... id...
	keysMigrate    = cmdInfo{rule: keyMigrate}                    // MIGRATE
)

// isReadOnlyCommand reports whether cmd only reads the key it names, so
// that with ClusterConfig.ReadFromReplicas a replica of the key's slot may
// answer it. The table is deliberate and conservative: the commands Redis
// flags read-only that name a key — GET, MGET, HGET, LRANGE, SMEMBERS,
// ZRANGE, XRANGE, XREAD, GEOSEARCH, EVAL_RO, FCALL_RO, SORT_RO and the like
// — and not keyless ones (SCAN, KEYS, DBSIZE, RANDOMKEY), which go to any
// master anyway, nor TOUCH, whose point is to update the master's access
// times. A command not listed, including every module command, is treated
// as a write. TestCommandTableMatchesServer checks the list against the
// flags COMMAND gives.
func isReadOnlyCommand(cmd string) bool { return lookupCommand(cmd).readOnly }

// keyIter walks the keys of one command, as indexes into its arguments.
// It is a value type so that walking does not allocate.
type keyIter struct {
	args []any
	next int // index of the next key; -1 when done
	last int // index of the last key
	step int
	pre  int // for keyNumkeys with a destination: args[0] not yet given (1), or given (0)
}

// commandKeyIter returns an iterator over the keys in args of a command
// whose table entry is info.
func commandKeyIter(info cmdInfo, args []any) keyIter {
	it := keyIter{args: args, next: -1, step: 1}
	switch info.rule {
	case keyFirst:
		if len(args) > 0 {
			it.next, it.last = 0, 0
		}
	case keyRange:
		first, last := int(info.first), int(info.last)
		if last < 0 {
			last += len(args)
		}
		if last >= len(args) {
			last = len(args) - 1
		}
		if first <= last {
			it.next, it.last, it.step = first, last, int(info.step)
		}
	case keyNumkeys:
		at := int(info.first)
		if at >= len(args) {
			break
		}
		n, ok := argInt(args[at])
		if !ok || n < 0 || n > len(args)-at-1 {
			break // the server rejects the command; route it anywhere
		}
		if n > 0 {
			it.next, it.last = at+1, at+n
		}
		if info.last == 1 {
			it.pre = 1
		}
	case keyStreams:
		pos := streamsIndex(args)
		if pos < 0 {
			break
		}
		n := len(args) - pos - 1 // keys and as many IDs
		if n > 0 && n%2 == 0 {
			it.next, it.last = pos+1, pos+n/2
		}
	case keyMigrate:
		// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
		// [AUTH password | AUTH2 username password] [KEYS key...]
		if len(args) < 5 {
			break
		}
		if !argEmpty(args[2]) {
			it.next, it.last = 2, 2
			break
		}
		for i := 5; i < len(args); i++ {
			switch {
			case argIs(args[i], "KEYS"):
				if i+1 < len(args) {
					it.next, it.last = i+1, len(args)-1
				}
				return it
			case argIs(args[i], "AUTH"):
				i++
			case argIs(args[i], "AUTH2"):
				i += 2
			}
		}
	}
	return it
}

// Next returns the index in args of the next key, or false when there is
// none left.
func (it *keyIter) Next() (int, bool) {
	if it.pre == 1 {
		it.pre = 0
		if len(it.args) > 0 {
			return 0, true
		}
	}
	if it.next < 0 || it.next > it.last {
		return 0, false
	}
	i := it.next
	it.next += it.step
	return i, true
}

// streamsIndex returns the index of XREAD's or XREADGROUP's STREAMS
// keyword, or -1. Like Redis it skips the options before it with their
// values, so that a group, consumer or count that reads "streams" is not
// taken for the keyword, and stops at anything else.
func streamsIndex(args []any) int {
	for i := 0; i < len(args); i++ {
		switch {
		case argIs(args[i], "STREAMS"):
			return i
		case argIs(args[i], "COUNT"), argIs(args[i], "BLOCK"):
			i++
		case argIs(args[i], "GROUP"):
			i += 2
		case argIs(args[i], "NOACK"):
		default:
			return -1
		}
	}
	return -1
}

// commandKeyIndex returns the index in args of the key that routes cmd:
// its first key by the rules at the top of this file. ok is false for a
// keyless command, or one whose arguments hold no key (GET with none,
// EVAL with numkeys 0). It does not allocate.
func commandKeyIndex(cmd string, args []any) (i int, ok bool) {
	info := lookupCommand(cmd)
	if info.rule == keyFirst { // most commands: no iterator
		return 0, len(args) > 0
	}
	it := commandKeyIter(info, args)
	return it.Next()
}

// commandKey returns the key that routes cmd (see commandKeyIndex) as
// redigo would send it, so that a key given as an int 42 is "42". It
// allocates for a key given as anything but a string; routing needs only
// the slot, which commandSlot computes without allocating.
func commandKey(cmd string, args []any) (key string, ok bool) {
	i, ok := commandKeyIndex(cmd, args)
	if !ok {
		return "", false
	}
	return argString(args[i]), true
}

// commandSlot returns the slot that routes cmd: the slot of its first key.
// keyed is false for a keyless command (any master serves it; slot is 0).
// crossSlot is true when the command has keys in more than one slot, which
// the cluster rejects with CROSSSLOT: the caller can fail it before any
// I/O. It does not allocate for keys given as strings, byte slices or
// numbers.
func commandSlot(cmd string, args []any) (slot int, keyed, crossSlot bool) {
	info := lookupCommand(cmd)
	if info.rule == keyFirst { // most commands: no iterator
		if len(args) == 0 {
			return 0, false, false
		}
		return argSlot(args[0]), true, false
	}
	it := commandKeyIter(info, args)
	i, ok := it.Next()
	if !ok {
		return 0, false, false
	}
	slot = argSlot(args[i])
	for i, ok = it.Next(); ok; i, ok = it.Next() {
		if argSlot(args[i]) != slot {
			return slot, true, true
		}
	}
	return slot, true, false
}

// argIs reports whether arg is the keyword word, whatever its case. word
// is upper case. Only strings and byte slices can be keywords.
func argIs(arg any, word string) bool {
	switch a := arg.(type) {
	case string:
		return equalFoldUpper(a, word)
	case []byte:
		return equalFoldUpper(a, word)
	}
	return false
}

// equalFoldUpper is strings.EqualFold for ASCII where upper is known to
// be upper case.
func equalFoldUpper[K string | []byte](s K, upper string) bool {
	if len(s) != len(upper) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// argEmpty reports whether arg is sent as an empty string.
func argEmpty(arg any) bool {
	switch a := arg.(type) {
	case string:
		return a == ""
	case []byte:
		return len(a) == 0
	case nil:
		return true
	}
	return false
}

// argInt parses a count argument (numkeys) given as an integer or as
// decimal text. It does not allocate.
func argInt(arg any) (int, bool) {
	switch a := arg.(type) {
	case int:
		return a, true
	case int64:
		return int(a), true
	case int32:
		return int(a), true
	case uint:
		return int(a), true
	case uint64:
		return int(a), true
	case uint32:
		return int(a), true
	case string:
		return atoi(a)
	case []byte:
		return atoi(a)
	}
	return 0, false
}

// atoi parses a non-negative decimal count of at most 9 digits, enough
// for any number of keys a command can carry.
func atoi[K string | []byte](s K) (int, bool) {
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
