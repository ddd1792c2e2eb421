package redispool

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/redispool/redispool/redistest"
)

// sessionCommands classifies, deliberately, every command and subcommand
// of Redis's connection, pubsub, transactions and scripting groups, and
// the commands of other groups that change a connection's session.
// TestServerCommandTableIsClassified checks it against the command table
// of the redis-server it runs, so a new Redis version cannot add session
// state the tracker does not know about, and checks that classify agrees
// with every line.
var sessionCommands = []struct {
	call string // the command as sent: its first word, and for a container command its second, name it
	kind cmdKind
}{
	// connection
	{"AUTH user pw", kindUnresettable},
	{"CLIENT CACHING YES", kindUnresettable},
	{"CLIENT GETNAME", kindPlain},
	{"CLIENT GETREDIR", kindPlain},
	{"CLIENT HELP", kindPlain},
	{"CLIENT ID", kindPlain},
	{"CLIENT INFO", kindPlain},
	{"CLIENT KILL ID 1", kindPlain}, // kills another client; killing itself breaks the connection
	{"CLIENT LIST", kindPlain},
	{"CLIENT NO-EVICT ON", kindUnresettable},
	{"CLIENT NO-TOUCH ON", kindUnresettable},
	{"CLIENT PAUSE 10", kindPlain}, // the server's state, not the session's
	{"CLIENT REPLY OFF", kindUnresettable},
	{"CLIENT SETINFO LIB-NAME x", kindUnresettable},
	{"CLIENT SETNAME x", kindSetName},
	{"CLIENT TRACKING ON", kindUnresettable},
	{"CLIENT TRACKINGINFO", kindPlain},
	{"CLIENT UNBLOCK 1", kindPlain},
	{"CLIENT UNPAUSE", kindPlain},
	{"ECHO x", kindPlain},
	{"HELLO 3", kindUnresettable},
	{"PING", kindPlain},
	{"QUIT", kindUnresettable},
	{"RESET", kindUnresettable},
	{"SELECT 1", kindSelect},

	// pubsub
	{"PSUBSCRIBE p*", kindSubscribe},
	{"PUBLISH ch m", kindPlain},
	{"PUBSUB CHANNELS", kindPlain},
	{"PUBSUB HELP", kindPlain},
	{"PUBSUB NUMPAT", kindPlain},
	{"PUBSUB NUMSUB", kindPlain},
	{"PUBSUB SHARDCHANNELS", kindPlain},
	{"PUBSUB SHARDNUMSUB", kindPlain},
	{"PUNSUBSCRIBE", kindPlain}, // leaves only what the subscribe set, which reset undoes
	{"SPUBLISH ch m", kindPlain},
	{"SSUBSCRIBE ch", kindSSubscribe},
	{"SUBSCRIBE ch", kindSubscribe},
	{"SUNSUBSCRIBE", kindPlain},
	{"UNSUBSCRIBE", kindPlain},

	// transactions
	{"DISCARD", kindEndMulti},
	{"EXEC", kindEndMulti},
	{"MULTI", kindMulti},
	{"UNWATCH", kindUnwatch},
	{"WATCH k", kindWatch},

	// scripting: scripts and functions run with the session's state but
	// leave none, except the debugger
	{"EVAL s 0", kindPlain},
	{"EVAL_RO s 0", kindPlain},
	{"EVALSHA h 0", kindPlain},
	{"EVALSHA_RO h 0", kindPlain},
	{"FCALL f 0", kindPlain},
	{"FCALL_RO f 0", kindPlain},
	{"FUNCTION DELETE lib", kindPlain},
	{"FUNCTION DUMP", kindPlain},
	{"FUNCTION FLUSH", kindPlain},
	{"FUNCTION HELP", kindPlain},
	{"FUNCTION KILL", kindPlain},
	{"FUNCTION LIST", kindPlain},
	{"FUNCTION LOAD code", kindPlain},
	{"FUNCTION RESTORE data", kindPlain},
	{"FUNCTION STATS", kindPlain},
	{"SCRIPT DEBUG YES", kindUnresettable}, // the next EVAL starts a debugging session
	{"SCRIPT DEBUG SYNC", kindUnresettable},
	{"SCRIPT DEBUG no", kindPlain},
	{"SCRIPT EXISTS h", kindPlain},
	{"SCRIPT FLUSH", kindPlain},
	{"SCRIPT HELP", kindPlain},
	{"SCRIPT KILL", kindPlain},
	{"SCRIPT LOAD s", kindPlain},

	// other groups
	{"ASKING", kindUnresettable}, // flags the next command, whoever sends it
	{"MONITOR", kindUnresettable},
	{"PSYNC id 0", kindUnresettable},
	{"READONLY", kindUnresettable},
	{"READWRITE", kindPlain}, // undoes READONLY
	{"REPLCONF listening-port 1", kindUnresettable},
	{"SYNC", kindUnresettable},
}

// sessionGroups are the command groups whose every command and
// subcommand sessionCommands must list.
var sessionGroups = map[string]bool{"connection": true, "pubsub": true, "transactions": true, "scripting": true}

// otherSessionCommands change a connection's session from other groups.
var otherSessionCommands = []string{"asking", "monitor", "psync", "readonly", "readwrite", "replconf", "sync"}

func TestClassifyAgreesWithSessionCommands(t *testing.T) {
	for _, sc := range sessionCommands {
		words := strings.Fields(sc.call)
		args := make([]any, len(words)-1)
		for i, w := range words[1:] {
			args[i] = w
		}
		if got := classify(words[0], args); got != sc.kind {
			t.Errorf("classify(%s) = %d; want %d", sc.call, got, sc.kind)
		}
		if got := classify(strings.ToLower(words[0]), args); got != sc.kind {
			t.Errorf("classify(%s) in lower case = %d; want %d", sc.call, got, sc.kind)
		}
	}
}

// dataGroups are the command groups of COMMAND DOCS whose commands
// act on keys' values: the pipelined ones, but for the exceptions
// below.
var dataGroups = map[string]bool{
	"string": true, "bitmap": true, "list": true, "set": true, "sorted-set": true, "hash": true,
	"stream": true, "geo": true, "hyperloglog": true, "generic": true,
}

// notPipelinedData are the commands of the data groups that are not
// pipelined though the server does not flag them blocking or admin.
var notPipelinedData = map[string]string{
	"KEYS":    "walks the whole keyspace: a reply later than ReadTimeout fails every command in flight with it",
	"MIGRATE": "waits on another server, with a timeout of its own",
	"WAIT":    "counts the writes of its own connection",
	"WAITAOF": "as WAIT",
}

// pipelinedOther are the commands outside the data groups that are
// pipelined.
var pipelinedOther = map[string]string{
	"PING":     "one reply, no state",
	"ECHO":     "one reply, no state",
	"TIME":     "one reply, no state; throttled's store asks it",
	"DBSIZE":   "one reply, no state; the shared connection is on the pool's database",
	"PUBLISH":  "one reply, no state",
	"SPUBLISH": "as PUBLISH",
}

// TestServerCommandTableIsClassified asks redis-server for its command
// table and fails for any command it lists that the command table
// (commands.go) does not place, for any command of the session groups
// that sessionCommands does not classify, and for any pipelining
// decision that breaks the rule at the top of commands.go.
func TestServerCommandTableIsClassified(t *testing.T) {
	s := redistest.StartServer(t)
	reply, err := s.Exec("COMMAND", "DOCS")
	if err != nil {
		t.Skipf("COMMAND DOCS (Redis 7.0 or later): %v", err)
	}
	groups := map[string]string{}    // leaf (sub)command name -> group
	topGroups := map[string]string{} // command name, upper case -> group
	var walk func(docs []any, top bool)
	walk = func(docs []any, top bool) {
		for i := 0; i+1 < len(docs); i += 2 {
			name, _ := docs[i].(string)
			doc := docMap(docs[i+1])
			group, _ := doc["group"].(string)
			if top {
				topGroups[strings.ToUpper(name)] = group
			}
			if subs, ok := doc["subcommands"].([]any); ok && len(subs) > 0 {
				walk(subs, false)
				continue
			}
			groups[strings.ToLower(name)] = group
		}
	}
	docs, _ := reply.([]any)
	walk(docs, true)
	if len(groups) < 100 {
		t.Fatalf("COMMAND DOCS listed %d commands; want the full table", len(groups))
	}

	listed := map[string]bool{}
	for _, sc := range sessionCommands {
		words := strings.Fields(strings.ToLower(sc.call))
		if len(words) > 1 {
			if _, ok := groups[words[0]+"|"+words[1]]; ok {
				listed[words[0]+"|"+words[1]] = true
				continue
			}
		}
		listed[words[0]] = true
	}
	var missing []string
	for name, group := range groups {
		if sessionGroups[group] && !listed[name] {
			missing = append(missing, name+" ("+group+")")
		}
	}
	for _, name := range otherSessionCommands {
		if _, ok := groups[name]; ok && !listed[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		t.Errorf("redis-server has %s, which sessionCommands does not classify: decide what state it leaves, make classify handle it, and list it", name)
	}

	// Every command is in the table, and pipelined by the rule.
	flags := map[string][]string{}
	for _, c := range s.Do(t, "COMMAND").([]any) {
		info := c.([]any)
		name := strings.ToUpper(info[0].(string))
		for _, f := range info[2].([]any) {
			flags[name] = append(flags[name], f.(string))
		}
		flags[name] = append(flags[name], "listed")
	}
	for name, group := range topGroups {
		if _, ok := flags[name]; !ok {
			t.Errorf("COMMAND DOCS has %s, COMMAND does not", name)
		}
		info, ok := commandTable[name]
		if !ok {
			t.Errorf("redis-server has %s (%s), which the command table does not place: decide where its keys are, whether it blocks, which session state it touches and whether it may be pipelined, and add it", name, group)
			continue
		}
		blocking := slices.Contains(flags[name], "blocking")
		admin := slices.Contains(flags[name], "admin")
		_, notPiped := notPipelinedData[name]
		_, otherPiped := pipelinedOther[name]
		want := dataGroups[group] && !blocking && !admin && !notPiped || otherPiped
		if info.pipelined != want {
			t.Errorf("%s (%s, flags %v): pipelined %v; the rule says %v", name, group, flags[name], info.pipelined, want)
		}
		if !info.pipelined {
			continue
		}
		for _, f := range []string{"blocking", "admin", "noscript", "no_multi", "no_auth"} {
			if slices.Contains(flags[name], f) {
				t.Errorf("%s: pipelined, but the server flags it %s", name, f)
			}
		}
	}
	if len(topGroups) < 200 {
		t.Fatalf("COMMAND DOCS listed %d commands; want 200 or more", len(topGroups))
	}
}

// TestCommandTableIsConsistent checks what the server cannot: a
// pipelined command touches no session state and does not block.
func TestCommandTableIsConsistent(t *testing.T) {
	for name, info := range commandTable {
		if name != strings.ToUpper(name) {
			t.Errorf("%s: not upper case", name)
		}
		if info.pipelined && (info.state != kindPlain || info.blocks()) {
			t.Errorf("%s: pipelined, with state kind %d and block %d", name, info.state, info.block)
		}
		if info.state != kindPlain && (!mayHaveState(name) || !mayHaveState(strings.ToLower(name))) {
			t.Errorf("%s: state kind %d, but mayHaveState is false", name, info.state)
		}
		if got := lookupCommand(strings.ToLower(name)); got != info {
			t.Errorf("lookupCommand(%q) = %+v; want %+v", strings.ToLower(name), got, info)
		}
	}
	for _, name := range []string{"", "JSON.GET", "NOSUCH", "GETX", "GE", strings.Repeat("G", 100)} {
		if got := lookupCommand(name); got != keysFirst {
			t.Errorf("lookupCommand(%q) = %+v; want the default %+v", name, got, keysFirst)
		}
	}
}

// docMap turns a RESP2 map (a flat array of keys and values) into a map.
func docMap(v any) map[string]any {
	m := map[string]any{}
	a, _ := v.([]any)
	for i := 0; i+1 < len(a); i += 2 {
		if k, ok := a[i].(string); ok {
			m[k] = a[i+1]
		}
	}
	return m
}
