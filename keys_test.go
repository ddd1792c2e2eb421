package redispool

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redispool/redispool/redistest"
)

// keyCases are commands with the indexes of their keys in args, the first
// being the routing key. Unless notKey is set, TestCommandKeysMatchServer
// checks each against COMMAND GETKEYS.
var keyCases = []struct {
	cmd    string
	args   []any
	keys   []int
	notKey bool // Redis routes by these arguments but COMMAND GETKEYS omits them
}{
	// The default: the first argument.
	{"GET", []any{"k"}, []int{0}, false},
	{"SET", []any{"k", "v", "EX", 10}, []int{0}, false},
	{"HSET", []any{"h", "f", "v"}, []int{0}, false},
	{"ZADD", []any{"z", 1, "m"}, []int{0}, false},
	{"EXPIRE", []any{"k", 10}, []int{0}, false},
	{"SORT", []any{"k", "LIMIT", 0, 1}, []int{0}, false},
	{"GET", nil, nil, true}, // no argument, no key (the server rejects it)

	// Keyless.
	{"PING", nil, nil, false},
	{"PING", []any{"hello"}, nil, false},
	{"ECHO", []any{"k"}, nil, false},
	{"SELECT", []any{0}, nil, false},
	{"TIME", nil, nil, false},
	{"MULTI", nil, nil, false},
	{"EXEC", nil, nil, false},
	{"DISCARD", nil, nil, false},
	{"INFO", []any{"server"}, nil, false},
	{"CLIENT", []any{"SETNAME", "k"}, nil, false},
	{"CLUSTER", []any{"KEYSLOT", "k"}, nil, false},
	{"SCRIPT", []any{"LOAD", "return 1"}, nil, false},
	{"FUNCTION", []any{"LIST"}, nil, false},
	{"CONFIG", []any{"GET", "k"}, nil, false},
	{"DBSIZE", nil, nil, false},
	{"RANDOMKEY", nil, nil, false},
	{"SCAN", []any{0, "MATCH", "k*"}, nil, false},
	{"KEYS", []any{"k*"}, nil, false},
	{"FLUSHALL", nil, nil, false},
	{"WAIT", []any{1, 0}, nil, false},
	{"COMMAND", []any{"INFO", "GET"}, nil, false},
	{"PUBLISH", []any{"ch", "msg"}, nil, false},
	{"SUBSCRIBE", []any{"ch"}, nil, false},
	{"PSUBSCRIBE", []any{"ch*"}, nil, false},
	{"UNSUBSCRIBE", nil, nil, false},
	{"PUBSUB", []any{"CHANNELS"}, nil, false},

	// Sharded pub/sub is routed by its shard channel.
	{"SPUBLISH", []any{"ch", "msg"}, []int{0}, true},
	{"SSUBSCRIBE", []any{"a", "b"}, []int{0, 1}, true},
	{"SUNSUBSCRIBE", []any{"a"}, []int{0}, true},
	{"SUNSUBSCRIBE", nil, nil, false},

	// Scripts and functions: the keys after numkeys.
	{"EVAL", []any{"return 1", 0}, nil, false},
	{"EVAL", []any{"return 1", 1, "k"}, []int{2}, false},
	{"EVAL", []any{"return 1", "2", "a", "b", "arg"}, []int{2, 3}, false},
	{"EVALSHA", []any{"0123456789abcdef0123456789abcdef01234567", 1, "k", "arg"}, []int{2}, false},
	{"EVALSHA", []any{"0123456789abcdef0123456789abcdef01234567", []byte("1"), []byte("k")}, []int{2}, false},
	{"EVAL_RO", []any{"return 1", 1, "k"}, []int{2}, false},
	{"EVALSHA_RO", []any{"0123456789abcdef0123456789abcdef01234567", 2, "a", "b"}, []int{2, 3}, false},
	{"FCALL", []any{"f", 1, "k", "arg"}, []int{2}, false},
	{"FCALL_RO", []any{"f", 0, "arg"}, nil, false},
	{"EVAL", []any{"return 1", 3, "k"}, nil, true},   // numkeys too large
	{"EVAL", []any{"return 1", -1, "k"}, nil, true},  // negative
	{"EVAL", []any{"return 1", "x", "k"}, nil, true}, // not a number
	{"EVAL", []any{"return 1"}, nil, true},           // no numkeys
	{"ZUNION", []any{2, "a", "b", "WITHSCORES"}, []int{1, 2}, false},
	{"ZINTER", []any{1, "a"}, []int{1}, false},
	{"ZDIFF", []any{2, "a", "b"}, []int{1, 2}, false},
	{"ZINTERCARD", []any{2, "a", "b", "LIMIT", 1}, []int{1, 2}, false},
	{"SINTERCARD", []any{2, "a", "b"}, []int{1, 2}, false},
	{"LMPOP", []any{2, "a", "b", "LEFT"}, []int{1, 2}, false},
	{"ZMPOP", []any{1, "a", "MIN"}, []int{1}, false},
	{"BLMPOP", []any{0, 2, "a", "b", "LEFT"}, []int{2, 3}, false},
	{"BZMPOP", []any{0, 1, "a", "MAX"}, []int{2}, false},
	{"ZUNIONSTORE", []any{"d", 2, "a", "b"}, []int{0, 2, 3}, false},
	{"ZINTERSTORE", []any{"d", 1, "a", "WEIGHTS", 2}, []int{0, 2}, false},
	{"ZDIFFSTORE", []any{"d", 2, "a", "b"}, []int{0, 2, 3}, false},

	// Streams: the keys after STREAMS.
	{"XREAD", []any{"STREAMS", "s", "0"}, []int{1}, false},
	{"XREAD", []any{"COUNT", 10, "BLOCK", 0, "streams", "s1", "s2", "0", "0"}, []int{5, 6}, false},
	{"XREADGROUP", []any{"GROUP", "g", "c", "STREAMS", "s", ">"}, []int{4}, false},
	{"XREADGROUP", []any{"GROUP", "streams", "streams", "COUNT", 1, "NOACK", "STREAMS", "streams", ">"}, []int{7}, false},
	{"XREAD", []any{"STREAMS", "s"}, nil, true}, // a key without its ID
	{"XREAD", []any{"BOGUS", "STREAMS", "s", "0"}, nil, true},
	{"XADD", []any{"s", "*", "f", "v"}, []int{0}, false},

	// Several keys in a row.
	{"MGET", []any{"a", "b", "c"}, []int{0, 1, 2}, false},
	{"MSET", []any{"a", 1, "b", 2}, []int{0, 2}, false},
	{"MSETNX", []any{"a", 1, "b", 2}, []int{0, 2}, false},
	{"DEL", []any{"a", "b"}, []int{0, 1}, false},
	{"UNLINK", []any{"a"}, []int{0}, false},
	{"EXISTS", []any{"a", "b"}, []int{0, 1}, false},
	{"TOUCH", []any{"a", "b"}, []int{0, 1}, false},
	{"WATCH", []any{"a", "b"}, []int{0, 1}, false},
	{"SINTER", []any{"a", "b"}, []int{0, 1}, false},
	{"SUNIONSTORE", []any{"d", "a", "b"}, []int{0, 1, 2}, false},
	{"PFCOUNT", []any{"a", "b"}, []int{0, 1}, false},
	{"PFMERGE", []any{"d", "a"}, []int{0, 1}, false},
	{"RENAME", []any{"a", "b"}, []int{0, 1}, false},
	{"COPY", []any{"a", "b", "REPLACE"}, []int{0, 1}, false},
	{"SMOVE", []any{"a", "b", "m"}, []int{0, 1}, false},
	{"LMOVE", []any{"a", "b", "LEFT", "RIGHT"}, []int{0, 1}, false},
	{"BLMOVE", []any{"a", "b", "LEFT", "RIGHT", 0}, []int{0, 1}, false},
	{"RPOPLPUSH", []any{"a", "b"}, []int{0, 1}, false},
	{"BRPOPLPUSH", []any{"a", "b", 0}, []int{0, 1}, false},
	{"ZRANGESTORE", []any{"d", "a", 0, -1}, []int{0, 1}, false},
	{"GEOSEARCHSTORE", []any{"d", "a", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "km"}, []int{0, 1}, false},
	{"LCS", []any{"a", "b"}, []int{0, 1}, false},
	{"BLPOP", []any{"a", "b", 0}, []int{0, 1}, false},
	{"BRPOP", []any{"a", 1.5}, []int{0}, false},
	{"BZPOPMIN", []any{"a", "b", 0}, []int{0, 1}, false},
	{"BZPOPMAX", []any{"a", 0}, []int{0}, false},

	// A subcommand or an operation first.
	{"OBJECT", []any{"ENCODING", "k"}, []int{1}, false},
	{"OBJECT", []any{"HELP"}, nil, false},
	{"MEMORY", []any{"USAGE", "k", "SAMPLES", 5}, []int{1}, false},
	{"MEMORY", []any{"STATS"}, nil, false},
	{"XINFO", []any{"STREAM", "s"}, []int{1}, false},
	{"XINFO", []any{"CONSUMERS", "s", "g"}, []int{1}, false},
	{"XGROUP", []any{"CREATE", "s", "g", "$", "MKSTREAM"}, []int{1}, false},
	{"PFDEBUG", []any{"GETREG", "k"}, []int{1}, false},
	{"BITOP", []any{"AND", "d", "a", "b"}, []int{1, 2, 3}, false},

	// MIGRATE.
	{"MIGRATE", []any{"127.0.0.1", 1, "k", 0, 5000}, []int{2}, false},
	{"MIGRATE", []any{"127.0.0.1", 1, "", 0, 5000, "COPY", "AUTH", "keys", "KEYS", "a", "b"}, []int{9, 10}, false},
	{"MIGRATE", []any{"127.0.0.1", 1, "", 0, 5000, "AUTH2", "u", "KEYS", "KEYS", "a"}, []int{9}, false},
}

func collectKeys(cmd string, args []any) []int {
	var got []int
	commandKeys(cmd, args, func(i int) bool {
		got = append(got, i)
		return true
	})
	return got
}

func TestCommandKeys(t *testing.T) {
	for _, tc := range keyCases {
		for _, cmd := range []string{tc.cmd, strings.ToLower(tc.cmd), mixedCase(tc.cmd)} {
			name := fmt.Sprintf("%s %v", cmd, tc.args)
			if got := collectKeys(cmd, tc.args); !reflect.DeepEqual(got, tc.keys) {
				t.Errorf("%s: commandKeys: got %v; want %v", name, got, tc.keys)
			}
			i, ok := commandKeyIndex(cmd, tc.args)
			key, kok := commandKey(cmd, tc.args)
			if len(tc.keys) == 0 {
				if ok || kok {
					t.Errorf("%s: commandKeyIndex: got %d, %v; commandKey: got %q, %v; want no key", name, i, ok, key, kok)
				}
				continue
			}
			if !ok || i != tc.keys[0] {
				t.Errorf("%s: commandKeyIndex: got %d, %v; want %d, true", name, i, ok, tc.keys[0])
			}
			if want := argString(tc.args[tc.keys[0]]); !kok || key != want {
				t.Errorf("%s: commandKey: got %q, %v; want %q, true", name, key, kok, want)
			}
		}
	}
}

// mixedCase turns "EVALSHA" into "eVaLsHa".
func mixedCase(s string) string {
	b := []byte(strings.ToUpper(s))
	for i := 1; i < len(b); i += 2 {
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

func TestCommandKeysStopsWhenToldTo(t *testing.T) {
	calls := 0
	commandKeys("MGET", []any{"a", "b", "c"}, func(int) bool {
		calls++
		return false
	})
	if calls != 1 {
		t.Errorf("got %d calls; want 1", calls)
	}
}

func TestCommandSlot(t *testing.T) {
	tests := []struct {
		cmd       string
		args      []any
		slot      int
		keyed     bool
		crossSlot bool
	}{
		{"GET", []any{"foo"}, 12182, true, false},
		{"get", []any{[]byte("foo")}, 12182, true, false},
		{"GET", []any{1000}, Slot("1000"), true, false},
		{"PING", nil, 0, false, false},
		{"EVAL", []any{"return 1", 0}, 0, false, false},
		{"EVALSHA", []any{"sha", 1, "foo", "bar"}, 12182, true, false}, // "bar" is an argument
		{"EVALSHA", []any{"sha", 2, "foo", "bar"}, 12182, true, true},
		{"MGET", []any{"{user1000}.a", "{user1000}.b"}, 3443, true, false},
		{"MGET", []any{"foo", "bar"}, 12182, true, true},
		{"MSET", []any{"{t}a", "foo", "{t}b", "bar"}, Slot("t"), true, false}, // values are not keys
		{"MSET", []any{"foo", 1, "bar", 2}, 12182, true, true},
		{"DEL", []any{"foo", "foo"}, 12182, true, false},
		{"BLPOP", []any{"foo", 0}, 12182, true, false}, // the timeout is not a key
		{"XREAD", []any{"STREAMS", "foo", "bar", "0", "0"}, 12182, true, true},
		{"XREAD", []any{"STREAMS", "{s}1", "{s}2", "0", "0"}, Slot("s"), true, false},
		{"ZUNIONSTORE", []any{"{z}d", 2, "{z}a", "{z}b"}, Slot("z"), true, false},
		{"ZUNIONSTORE", []any{"{z}d", 2, "{z}a", "b"}, Slot("z"), true, true},
	}
	for _, tc := range tests {
		slot, keyed, cross := commandSlot(tc.cmd, tc.args)
		if slot != tc.slot || keyed != tc.keyed || cross != tc.crossSlot {
			t.Errorf("commandSlot(%s %v): got %d, %v, %v; want %d, %v, %v",
				tc.cmd, tc.args, slot, keyed, cross, tc.slot, tc.keyed, tc.crossSlot)
		}
	}
}

func TestIsReadOnlyCommand(t *testing.T) {
	for _, cmd := range []string{"GET", "get", "MGET", "HGET", "hgetall", "LRANGE", "ZRANGE", "XREAD",
		"EVAL_RO", "evalsha_ro", "FCALL_RO", "SORT_RO", "GEORADIUSBYMEMBER_RO", "EXISTS"} {
		if !isReadOnlyCommand(cmd) {
			t.Errorf("isReadOnlyCommand(%q): got false; want true", cmd)
		}
	}
	for _, cmd := range []string{"SET", "set", "DEL", "EVAL", "EVALSHA", "FCALL", "XREADGROUP", "SORT",
		"GEORADIUS", "PING", "SCAN", "KEYS", "JSON.GET", "", "AVERYLONGCOMMANDNAMETHATISNOTINTHETABLE"} {
		if isReadOnlyCommand(cmd) {
			t.Errorf("isReadOnlyCommand(%q): got true; want false", cmd)
		}
	}
}

func TestRoutingDoesNotAllocate(t *testing.T) {
	// Boxed once here, as they are in a caller's args.
	tests := []struct {
		cmd  string
		args []any
	}{
		{"GET", []any{"user:1000"}},
		{"get", []any{"user:1000"}},
		{"SET", []any{[]byte("user:1000"), "v"}},
		{"INCR", []any{1000}},
		{"EVALSHA", []any{"0123456789abcdef0123456789abcdef01234567", 1, "{u}k", "arg"}},
		{"evalsha", []any{"0123456789abcdef0123456789abcdef01234567", "1", "{u}k", "arg"}},
		{"MGET", []any{"{u}a", "{u}b", "{u}c"}},
		{"MSET", []any{"{u}a", 1, "{u}b", 2}},
		{"XREADGROUP", []any{"GROUP", "g", "c", "COUNT", 10, "STREAMS", "{s}1", "{s}2", ">", ">"}},
		{"PING", nil},
	}
	var sink int
	for _, tc := range tests {
		n := testing.AllocsPerRun(100, func() {
			slot, _, _ := commandSlot(tc.cmd, tc.args)
			i, _ := commandKeyIndex(tc.cmd, tc.args)
			if isReadOnlyCommand(tc.cmd) {
				sink++
			}
			sink += slot + i
		})
		if n != 0 {
			t.Errorf("%s %v: got %v allocations; want 0", tc.cmd, tc.args, n)
		}
	}
	_ = sink
}

// TestCommandKeysMatchServer checks keyCases against the server's own key
// extraction, COMMAND GETKEYS.
func TestCommandKeysMatchServer(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	for _, tc := range keyCases {
		if tc.notKey {
			continue
		}
		var want []string
		for _, i := range tc.keys {
			want = append(want, argString(tc.args[i]))
		}
		got := serverKeys(t, srv, tc.cmd, tc.args)
		if !slices.Equal(got, want) {
			t.Errorf("COMMAND GETKEYS %s %v: got %q; commandKeys gives %q", tc.cmd, tc.args, got, want)
		}
	}
}

// serverKeys returns COMMAND GETKEYS for the command, or nil when the
// server says it has none.
func serverKeys(t *testing.T, srv *redistest.Server, cmd string, args []any) []string {
	t.Helper()
	reply, err := srv.Exec("COMMAND", append([]any{"GETKEYS", cmd}, args...)...)
	if err != nil {
		return nil // "no key arguments", or arguments it rejects
	}
	var keys []string
	for _, k := range reply.([]any) {
		keys = append(keys, k.(string))
	}
	return keys
}

// TestCommandTableMatchesServer walks every command the server knows, by
// COMMAND, and checks the table against its key positions and flags:
//   - a command keyed by its first argument (the rule too of one not in
//     the table) must have that as its only key (first key 1, last key 1,
//     no movable keys);
//   - a command in the table as keyless must have no key position;
//   - a command marked read-only must carry the server's "readonly" flag,
//     and a keyed command with that flag must be marked read-only, unless
//     it is one of the deliberate exceptions below.
func TestCommandTableMatchesServer(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)

	// Keyless or odd commands the server reports otherwise, and why the
	// table is right anyway.
	notDefault := map[string]string{
		"SPUBLISH":          "the shard channel is no key to COMMAND but routes like one",
		"SSUBSCRIBE":        "as SPUBLISH",
		"SUNSUBSCRIBE":      "as SPUBLISH",
		"SORT":              "STORE dest is hidden among the options; routed by the first key, and the server answers CROSSSLOT if dest lives elsewhere",
		"SORT_RO":           "the server calls its keys movable for the sake of BY and GET patterns, which read keys only outside a cluster; routed by its key",
		"GEORADIUS":         "as SORT",
		"GEORADIUSBYMEMBER": "as SORT",
	}
	// Read-only commands deliberately not sent to replicas.
	notReadOnly := map[string]string{
		"TOUCH": "it exists to update the keys' access time, which is the master's business",
	}

	reply := srv.Do(t, "COMMAND")
	seen := 0
	for _, c := range reply.([]any) {
		info := c.([]any)
		name := strings.ToUpper(info[0].(string))
		firstKey, lastKey, step := info[3].(int64), info[4].(int64), info[5].(int64)
		var flags []string
		for _, f := range info[2].([]any) {
			flags = append(flags, f.(string))
		}
		movable := slices.Contains(flags, "movablekeys")
		readOnly := slices.Contains(flags, "readonly")
		seen++

		entry, inTable := commandTable[strings.ToUpper(name)]
		if _, ok := notDefault[name]; ok {
			continue
		}
		switch {
		case entry.rule == keyFirst && (firstKey != 1 || lastKey != 1 || movable):
			t.Errorf("%s: keyed by its first argument in the table (or not in it), but the server's keys are first %d, last %d, step %d, movable %v",
				name, firstKey, lastKey, step, movable)
		case inTable && entry.rule == keyNone && (firstKey != 0 || movable):
			t.Errorf("%s: keyless in the table, but the server's keys are first %d, last %d, movable %v",
				name, firstKey, lastKey, movable)
		}
		if entry.readOnly && !readOnly {
			t.Errorf("%s: read-only in the table, but the server's flags are %v", name, flags)
		}
		if _, ok := notReadOnly[name]; !entry.readOnly && readOnly && (firstKey != 0 || movable) && !ok {
			t.Errorf("%s: the server flags it read-only with keys, but the table does not", name)
		}
	}
	if seen < 200 {
		t.Fatalf("COMMAND listed %d commands; want 200 or more", seen)
	}
}

// BenchmarkCommandKey measures what routing adds to a command: the table
// lookup, finding the key and hashing it (commandSlot), as a cluster does
// for each Do.
//
//	go test -run '^$' -bench 'Slot|CommandKey' -benchmem .
func BenchmarkCommandKey(b *testing.B) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	for _, bc := range []struct {
		name string
		cmd  string
		args []any
	}{
		{"Cmd=GET", "GET", []any{"user:1000:profile"}},
		{"Cmd=get", "get", []any{"user:1000:profile"}},
		{"Cmd=SET/bytes", "SET", []any{[]byte("user:1000:profile"), "v"}},
		{"Cmd=EVALSHA", "EVALSHA", []any{sha, 1, "{lock}:resource", "token", 30000}},
		{"Cmd=MGET/3", "MGET", []any{"{u}a", "{u}b", "{u}c"}},
		{"Cmd=XREADGROUP", "XREADGROUP", []any{"GROUP", "g", "c", "COUNT", 10, "STREAMS", "{s}1", ">"}},
		{"Cmd=PING", "PING", nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var sink int
			for range b.N {
				slot, _, _ := commandSlot(bc.cmd, bc.args)
				sink += slot
			}
			_ = sink
		})
	}
}

// TestCommandKeysMatchServerOnRandomCommands builds random well-formed
// command lines for the commands whose keys are found by rule rather than
// by position — numkeys, STREAMS, MIGRATE's KEYS, BLPOP's timeout, MSET's
// pairs — with keys, groups and passwords that look like keywords, and
// checks each against COMMAND GETKEYS. (For malformed commands the two may
// differ: Redis 7 finds STREAMS from the end, for instance. It does not
// matter where a command the server rejects is sent.)
func TestCommandKeysMatchServerOnRandomCommands(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	rng := rand.New(rand.NewPCG(3, 4))
	words := []string{"k", "a", "{t}x", "STREAMS", "streams", "COUNT", "BLOCK", "GROUP", "NOACK",
		"KEYS", "keys", "AUTH", "AUTH2", "COPY", "REPLACE", "0", "1", "2", "LEFT", "MIN", "WITHSCORES"}
	word := func() any { return words[rng.IntN(len(words))] }
	some := func(min, max int) []any {
		out := make([]any, min+rng.IntN(max-min+1))
		for i := range out {
			out[i] = word()
		}
		return out
	}
	cat := func(parts ...[]any) []any { return slices.Concat(parts...) }
	one := func(v ...any) []any { return v }
	num := func(n int) any {
		if rng.IntN(2) == 0 {
			return n
		}
		return strconv.Itoa(n)
	}
	gens := map[string]func() []any{
		"EVAL": func() []any { k := some(0, 3); return cat(one("return 1", num(len(k))), k, some(0, 2)) },
		"EVALSHA": func() []any {
			k := some(0, 3)
			return cat(one("0123456789abcdef0123456789abcdef01234567", num(len(k))), k, some(0, 2))
		},
		"FCALL_RO":    func() []any { k := some(0, 3); return cat(one("f", num(len(k))), k, some(0, 2)) },
		"ZUNION":      func() []any { k := some(1, 3); return cat(one(num(len(k))), k, one("WITHSCORES")) },
		"SINTERCARD":  func() []any { k := some(1, 3); return cat(one(num(len(k))), k, one("LIMIT", 1)) },
		"LMPOP":       func() []any { k := some(1, 3); return cat(one(num(len(k))), k, one("LEFT")) },
		"BZMPOP":      func() []any { k := some(1, 3); return cat(one(0, num(len(k))), k, one("MIN")) },
		"ZUNIONSTORE": func() []any { k := some(1, 3); return cat(one(word(), num(len(k))), k) },
		"XREAD": func() []any {
			var opts []any
			if rng.IntN(2) == 0 {
				opts = append(opts, "COUNT", 10)
			}
			if rng.IntN(2) == 0 {
				opts = append(opts, "BLOCK", 100)
			}
			k := some(1, 3)
			return cat(opts, one("STREAMS"), k, slices.Repeat(one("0"), len(k)))
		},
		"XREADGROUP": func() []any {
			opts := one("GROUP", word(), word())
			if rng.IntN(2) == 0 {
				opts = append(opts, "COUNT", 10)
			}
			if rng.IntN(2) == 0 {
				opts = append(opts, "NOACK")
			}
			k := some(1, 3)
			return cat(opts, one("STREAMS"), k, slices.Repeat(one(">"), len(k)))
		},
		"MIGRATE": func() []any {
			var opts []any
			if rng.IntN(2) == 0 {
				opts = append(opts, "COPY")
			}
			switch rng.IntN(3) {
			case 1:
				opts = append(opts, "AUTH", word())
			case 2:
				opts = append(opts, "AUTH2", word(), word())
			}
			if rng.IntN(2) == 0 {
				return cat(one("127.0.0.1", 1, word(), 0, 100), opts)
			}
			return cat(one("127.0.0.1", 1, "", 0, 100), opts, one("KEYS"), some(1, 3))
		},
		"BLPOP": func() []any { return cat(some(1, 3), one(0)) },
		"MSET": func() []any {
			var kv []any
			for range 1 + rng.IntN(3) {
				kv = append(kv, word(), word())
			}
			return kv
		},
		"BITOP": func() []any { return cat(one("AND", word()), some(1, 3)) },
	}
	for cmd, gen := range gens {
		for range 100 {
			args := gen()
			want := serverKeys(t, srv, cmd, args)
			var got []string
			commandKeys(cmd, args, func(i int) bool {
				got = append(got, argString(args[i]))
				return true
			})
			if !slices.Equal(got, want) {
				t.Errorf("%s %q: commandKeys %q; COMMAND GETKEYS %q", cmd, args, got, want)
			}
		}
	}
}

// FuzzCommandKeys checks that key extraction never panics on any command
// line and that its functions agree: indexes in range and increasing,
// commandKeyIndex the first of commandKeys, commandSlot's slot that of
// the first key and crossSlot true exactly when another key's slot
// differs. Arguments are the fields of args split at '|'.
//
//	go test -run '^$' -fuzz '^FuzzCommandKeys$' -fuzztime 30s .
func FuzzCommandKeys(f *testing.F) {
	for _, tc := range keyCases {
		var parts []string
		for _, a := range tc.args {
			parts = append(parts, argString(a))
		}
		f.Add(tc.cmd, strings.Join(parts, "|"))
	}
	f.Fuzz(func(t *testing.T, cmd, joined string) {
		var args []any
		if joined != "" {
			for _, s := range strings.Split(joined, "|") {
				args = append(args, s)
			}
		}
		idx := collectKeys(cmd, args)
		for n, i := range idx {
			if i < 0 || i >= len(args) || (n > 0 && i <= idx[n-1]) {
				t.Fatalf("%s %q: key indexes %v out of range or order", cmd, args, idx)
			}
		}
		first, ok := commandKeyIndex(cmd, args)
		slot, keyed, cross := commandSlot(cmd, args)
		if len(idx) == 0 {
			if ok || keyed || cross {
				t.Fatalf("%s %q: no keys, but commandKeyIndex %d, %v and commandSlot %d, %v, %v", cmd, args, first, ok, slot, keyed, cross)
			}
			return
		}
		if !ok || first != idx[0] || !keyed || slot != argSlot(args[idx[0]]) {
			t.Fatalf("%s %q: keys %v, but commandKeyIndex %d, %v and commandSlot %d, %v", cmd, args, idx, first, ok, slot, keyed)
		}
		wantCross := false
		for _, i := range idx[1:] {
			wantCross = wantCross || argSlot(args[i]) != slot
		}
		if cross != wantCross {
			t.Fatalf("%s %q: crossSlot %v; want %v", cmd, args, cross, wantCross)
		}
	})
}

// commandKeys calls fn with the index in args of each of cmd's keys, in
// order, until fn returns false. A keyless command makes no call. The
// tests check it against COMMAND GETKEYS; production code needs only
// commandSlot.
func commandKeys(cmd string, args []any, fn func(i int) bool) {
	it := commandKeyIter(lookupCommand(cmd), args)
	for i, ok := it.Next(); ok; i, ok = it.Next() {
		if !fn(i) {
			return
		}
	}
}
