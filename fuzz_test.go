package redispool

// Fuzz targets of issue 3, scenario 10. Their seed corpora are in
// testdata/fuzz/<FuzzName>/ and run with every go test; a short fuzzing
// run for CI is
//
//	go test -run '^$' -fuzz '^FuzzTracker$' -fuzztime 30s .
//
// and likewise for FuzzParseURL and FuzzConfigValidate.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// FuzzParseURL checks that ParseURL never panics, that its errors start
// with "redispool: ", and that neither its errors nor the String of the
// Config it returns show the URL's password, or any part of it.
//
// An error shows the password when it depends on it: the password's
// letters and digits are rotated in place (which keeps the URL's
// structure), and the error must come out the same. Text of the message
// that merely looks like the password, say a password "redis", is no
// false alarm.
func FuzzParseURL(f *testing.F) {
	f.Add("redis://app:s3cr3t@localhost:6379/2?max_total=8")
	f.Fuzz(func(t *testing.T, raw string) {
		cfg, err := ParseURL(raw)
		if err == nil {
			if cfg.Password != "" {
				shown := cfg.String() + cfg.GoString() + fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)
				blank := cfg
				blank.Password = ""
				others := blank.String()
				if strings.Contains(shown, cfg.Password) && !strings.Contains(others, cfg.Password) {
					t.Errorf("ParseURL(%q): the Config prints its password: %s", raw, shown)
				}
			}
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "redispool: ") {
			t.Errorf("ParseURL(%q) = %q; want an error starting with \"redispool: \"", raw, msg)
		}
		start, end, ok := urlPasswordSpan(raw)
		if !ok {
			// No userinfo as net/url reads it; but a password with an
			// unescaped '/', '?' or '#' moves the '@' out of the
			// authority, and the user's password is still in the URL.
			start, end, ok = intendedPasswordSpan(raw)
		}
		if !ok || !errorShowsSpan(raw, start, end, msg) {
			return
		}
		t.Errorf("ParseURL(%q) = %q: the error shows the password %q, or part of it", raw, msg, raw[start:end])
	})
}

// errorShowsSpan reports whether msg, ParseURL's error for raw, depends on
// the letters and digits of raw[start:end]: rotating them changes the
// error while keeping its shape. An error that varies from call to call
// (ParseURL reports the first bad query parameter in map order) is not
// judged.
func errorShowsSpan(raw string, start, end int, msg string) bool {
	rotated, changed := rotateAlnum(raw[start:end])
	if !changed {
		return false
	}
	msg2, ok := stableError(raw[:start] + rotated + raw[end:])
	if !ok {
		return false // no error, or not the same twice
	}
	if again, ok := stableError(raw); !ok || again != msg {
		return false
	}
	return msg != msg2 && maskAlnum(msg) == maskAlnum(msg2)
}

// stableError returns ParseURL's error message for raw if it has one and
// it is the same in 16 calls.
func stableError(raw string) (string, bool) {
	var first string
	for i := range 16 {
		_, err := ParseURL(raw)
		if err == nil {
			return "", false
		}
		if i == 0 {
			first = err.Error()
		} else if err.Error() != first {
			return "", false
		}
	}
	return first, true
}

// maskAlnum replaces every letter and digit of s with '#'.
func maskAlnum(s string) string {
	b := []byte(s)
	for i, c := range b {
		if '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
			b[i] = '#'
		}
	}
	return string(b)
}

// intendedPasswordSpan finds the password a user meant in a URL whose
// password has an unescaped '/', '?' or '#': after the scheme and "//",
// the userinfo runs to the last '@' of the URL.
func intendedPasswordSpan(raw string) (start, end int, ok bool) {
	off := 0
	if i := strings.IndexByte(raw, ':'); i > 0 && validScheme(raw[:i]) {
		off = i + 1
	}
	if !strings.HasPrefix(raw[off:], "//") {
		return 0, 0, false
	}
	off += 2
	at := strings.LastIndexByte(raw[off:], '@')
	if at < 0 {
		return 0, 0, false
	}
	colon := strings.IndexByte(raw[off:off+at], ':')
	if colon < 0 || colon+1 == at {
		return 0, 0, false
	}
	return off + colon + 1, off + at, true
}

// urlPasswordSpan finds the password in raw as net/url would: after a
// scheme and "//", the authority runs to the first '/', '?' or '#'; its
// userinfo is what precedes the last '@'; the password follows the
// userinfo's first ':'. It is lenient: it also finds the password of a
// URL that net/url rejects.
func urlPasswordSpan(raw string) (start, end int, ok bool) {
	rest, off := raw, 0
	if i := strings.IndexByte(raw, ':'); i > 0 && validScheme(raw[:i]) {
		rest, off = raw[i+1:], i+1
	}
	if !strings.HasPrefix(rest, "//") {
		return 0, 0, false
	}
	auth := rest[2:]
	off += 2
	if i := strings.IndexAny(auth, "/?#"); i >= 0 {
		auth = auth[:i]
	}
	at := strings.LastIndexByte(auth, '@')
	if at < 0 {
		return 0, 0, false
	}
	colon := strings.IndexByte(auth[:at], ':')
	if colon < 0 || colon+1 == at {
		return 0, 0, false
	}
	return off + colon + 1, off + at, true
}

func validScheme(s string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// rotateAlnum replaces each letter and digit of s by the next one of its
// class (0-9, a-f, g-z, A-F, G-Z), which keeps percent-escapes valid.
func rotateAlnum(s string) (string, bool) {
	b := []byte(s)
	changed := false
	rot := func(c, lo, hi byte) byte {
		changed = true
		if c == hi {
			return lo
		}
		return c + 1
	}
	for i, c := range b {
		switch {
		case '0' <= c && c <= '9':
			b[i] = rot(c, '0', '9')
		case 'a' <= c && c <= 'f':
			b[i] = rot(c, 'a', 'f')
		case 'g' <= c && c <= 'z':
			b[i] = rot(c, 'g', 'z')
		case 'A' <= c && c <= 'F':
			b[i] = rot(c, 'A', 'F')
		case 'G' <= c && c <= 'Z':
			b[i] = rot(c, 'G', 'Z')
		}
	}
	return string(b), changed
}

// TestParseURLErrorsHideMistypedPasswords: a password with an unescaped
// '/', '?' or '#', or a bad %-escape, makes the URL invalid; the error
// must still show no part of it.
func TestParseURLErrorsHideMistypedPasswords(t *testing.T) {
	for _, tt := range []struct{ url, password string }{
		{"redis://app:pa/ss@cache:6379/0", "pa/ss"},
		{"rediss://default:se#cret@cache:6380", "se#cret"},
		{"redis://app:pa?ss@cache", "pa?ss"},
		{"redis://app:12/ss@cache", "12/ss"},
		{"unix://app:pa#ss@/run/redis.sock", "pa#ss"},
		{"redis://app:s3cr3t%zz@cache", "s3cr3t%zz"},
	} {
		_, err := ParseURL(tt.url)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded; want an error", tt.url)
			continue
		}
		start := strings.Index(tt.url, tt.password)
		if errorShowsSpan(tt.url, start, start+len(tt.password), err.Error()) {
			t.Errorf("ParseURL(%q) = %q: the error shows the password, or part of it", tt.url, err)
		}
	}
}

// TestParseURLRejectsURLWithoutAuthority: "redis:host:6380" (the "//"
// forgotten) is an opaque URL to net/url, with no host; ParseURL must not
// read it as the default localhost:6379.
func TestParseURLRejectsURLWithoutAuthority(t *testing.T) {
	for _, raw := range []string{"redis:cache.internal:6380", "rediss:cache.internal", "redis:app:pw@cache.internal"} {
		if cfg, err := ParseURL(raw); err == nil {
			t.Errorf("ParseURL(%q) = %v; want an error: the URL has no //host", raw, cfg)
		}
	}
}

// FuzzConfigValidate checks that New never panics, that every error it
// returns wraps ErrInvalidConfig and never contains the password, that
// the configurations the documentation rules out are rejected, and that
// an accepted configuration yields a pool whose limits are consistent,
// which borrows (failing, with no network) and closes.
func FuzzConfigValidate(f *testing.F) {
	f.Add("tcp", "localhost:6379", "", "", "", 0, 0, 0, 0,
		int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), false, false)
	f.Fuzz(func(t *testing.T, network, addr, username, password, clientName string, db, maxTotal, maxIdle, minIdle int,
		dialTimeout, readTimeout, writeTimeout, borrowTimeout, checkTimeout, lifetime, idleTime, pingAfterIdle, evictionInterval int64,
		failFast, fifo bool) {
		cfg := Config{
			Network: network, Addr: addr, Username: username, Password: password, DB: db, ClientName: clientName,
			Dial:        noNetwork,
			DialTimeout: time.Duration(dialTimeout), ReadTimeout: time.Duration(readTimeout), WriteTimeout: time.Duration(writeTimeout),
			MaxTotal: maxTotal, MaxIdle: maxIdle, MinIdle: minIdle,
			BorrowTimeout: time.Duration(borrowTimeout), FailFast: failFast, FIFO: fifo,
			MaxConnLifetime: time.Duration(lifetime), MaxConnIdleTime: time.Duration(idleTime),
			PingAfterIdle: time.Duration(pingAfterIdle), EvictionInterval: time.Duration(evictionInterval),
			CheckTimeout: time.Duration(checkTimeout),
		}
		p, err := New(context.Background(), cfg)
		if err != nil {
			msg := err.Error()
			if !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(msg, "redispool: ") {
				t.Errorf("New(%v) = %q; want a \"redispool: \" error wrapping ErrInvalidConfig", cfg, msg)
			}
			if rotated, ok := rotateAlnum(password); ok {
				other := cfg
				other.Password = rotated
				if _, err2 := New(context.Background(), other); err2 != nil &&
					strings.Contains(msg, password) && !strings.Contains(err2.Error(), password) {
					t.Errorf("New(%v) = %q: the error contains the password", cfg, msg)
				}
			}
			return
		}
		defer p.Close()
		if why := documentedInvalid(cfg); why != "" {
			t.Errorf("New(%v) succeeded; want ErrInvalidConfig: %s", cfg, why)
		}
		c := p.cfg
		if c.MaxTotal < 1 || c.MaxIdle < 0 || c.MaxIdle > c.MaxTotal || c.MinIdle < 0 || c.MinIdle > c.MaxIdle {
			t.Errorf("New(%v): limits after defaults MaxTotal %d, MaxIdle %d, MinIdle %d; want 0 <= MinIdle <= MaxIdle <= MaxTotal, MaxTotal >= 1",
				cfg, c.MaxTotal, c.MaxIdle, c.MinIdle)
		}
		if c.DialTimeout <= 0 || c.CheckTimeout <= 0 || c.Network == "" || c.Addr == "" {
			t.Errorf("New(%v): DialTimeout %v, CheckTimeout %v, Network %q, Addr %q after defaults; want them set",
				cfg, c.DialTimeout, c.CheckTimeout, c.Network, c.Addr)
		}
		for name, d := range map[string]time.Duration{"ReadTimeout": c.ReadTimeout, "WriteTimeout": c.WriteTimeout,
			"BorrowTimeout": c.BorrowTimeout, "MaxConnIdleTime": c.MaxConnIdleTime, "PingAfterIdle": c.PingAfterIdle,
			"EvictionInterval": c.EvictionInterval} {
			if d < 0 {
				t.Errorf("New(%v): %s %v after defaults; want >= 0 (0 meaning none)", cfg, name, d)
			}
		}
		if st := p.Stats(); st.MaxTotal != c.MaxTotal {
			t.Errorf("Stats().MaxTotal = %d; want %d", st.MaxTotal, c.MaxTotal)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if conn, err := p.GetContext(ctx); err == nil {
			conn.Close()
			t.Errorf("New(%v): GetContext succeeded with no network", cfg)
		}
	})
}

var errNoNetwork = errors.New("fuzz: no network")

// noNetwork is the Dial of fuzzed configurations: they must never reach a
// real server.
func noNetwork(context.Context, string, string) (net.Conn, error) { return nil, errNoNetwork }

// documentedInvalid returns why the Config documentation rules cfg out,
// or "".
func documentedInvalid(cfg Config) string {
	switch {
	case cfg.MaxTotal < 0 || cfg.MaxIdle < 0 || cfg.MinIdle < 0:
		return "a negative connection count"
	case cfg.DB < 0:
		return "a negative DB"
	case cfg.Username != "" && cfg.Password == "":
		return "Username requires Password"
	case cfg.Network == "unix" && cfg.Addr == "":
		return "a unix socket needs a path"
	case cfg.Network != "" && cfg.Network != "tcp" && cfg.Network != "tcp4" && cfg.Network != "tcp6" && cfg.Network != "unix":
		return "Network is tcp or unix"
	}
	maxTotal := cfg.MaxTotal
	if maxTotal == 0 {
		maxTotal = 10 * runtime.GOMAXPROCS(0)
	}
	maxIdle := cfg.MaxIdle
	if maxIdle == 0 {
		maxIdle = maxTotal
	}
	switch {
	case maxIdle > maxTotal:
		return "MaxIdle above MaxTotal"
	case cfg.MinIdle > maxIdle:
		return "MinIdle above MaxIdle"
	}
	return ""
}

// FuzzTracker drives the connection-state tracker with arbitrary
// sequences of Send, Flush, Receive, Do and Do("") against a model of a
// Redis server and of redigo's connection, and checks the property the
// pool relies on: whenever the tracker reports the connection clean, it
// is: no transaction, no watched key, the configured database and name,
// no subscription, none of the state the pool cannot undo, and no command
// or reply in flight. A sequence that breaks the connection (a read that
// would time out) ends the run: such a connection is destroyed.
//
// The input is read two bytes per step: the first picks the action (and,
// for some values, makes the server reject the command as an ACL would),
// the second the command.
func FuzzTracker(f *testing.F) {
	f.Add([]byte{4, 4, 4, 6, 0, 0})
	f.Add([]byte{0, 23, 2, 0, 3, 0, 0, 26, 2, 0, 3, 0, 0, 2, 2, 0}) // SUBSCRIBE, UNSUBSCRIBE, both confirmed; ECHO in flight
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxSteps = 64
		var (
			tr    tracker
			m     = newRedisModel()
			trace []string
		)
		for step := 0; step+1 < len(data) && step < 2*maxSteps; step += 2 {
			action, which := data[step], data[step+1]
			cmd := trackerCmds[int(which)%len(trackerCmds)]
			rejected := action&0xc0 == 0xc0
			var ok bool
			var what string
			switch action % 8 {
			case 0, 1:
				what = "Send " + cmd.String()
				tr.onSend(cmd.name, cmd.args)
				m.send(cmd, rejected)
				ok = true
			case 2:
				what = "Flush"
				m.flush()
				ok = true
			case 3:
				var reply any
				var err error
				reply, err, ok = m.receive()
				what = "Receive -> " + formatModelReply(reply, err, ok)
				if ok {
					tr.onReceive(reply, err)
				}
			case 4, 5:
				kind := tr.beforeDo(cmd.name, cmd.args)
				var reply any
				reply, ok = m.do(cmd, rejected)
				what = "Do " + cmd.String() + " -> " + formatModelReply(reply, nil, ok)
				tr.afterDo(cmd.name, kind, reply)
			case 6:
				kind := tr.beforeDo("", nil)
				var reply any
				reply, ok = m.doFlush()
				what = "Do(\"\") -> " + formatModelReply(reply, nil, ok)
				tr.afterDo("", kind, reply)
			case 7:
				if which%2 == 0 {
					what = "another client touches the watched key"
					m.touch()
				} else {
					what = "another client publishes"
					m.publish()
				}
				ok = true
			}
			if rejected && (action%8 <= 1 || action%8 == 4 || action%8 == 5) {
				what += " (rejected: NOPERM)"
			}
			trace = append(trace, what)
			if !ok {
				return // the read would time out: the connection is destroyed
			}
			if tr.clean() {
				if dirty := m.dirty(); dirty != "" {
					t.Fatalf("tracker reports clean, but %s after:\n\t%s", dirty, strings.Join(trace, "\n\t"))
				}
			}
			if tr.flags()&stateSubscribed != 0 && tr.unsubscribed() {
				if n := m.channels + m.patterns + m.shards; n > 0 || len(m.unflushed) > 0 || len(m.replies) > 0 {
					t.Fatalf("tracker reports the subscription over with nothing in flight, but %d subscriptions, %d commands unflushed, %d replies unread after:\n\t%s",
						n, len(m.unflushed), len(m.replies), strings.Join(trace, "\n\t"))
				}
			}
		}
	})
}

// trackerCmd is a command of FuzzTracker's vocabulary.
type trackerCmd struct {
	name string
	args []any
}

func (c trackerCmd) String() string {
	s := c.name
	for _, a := range c.args {
		if b, ok := a.([]byte); ok {
			a = string(b)
		}
		s += fmt.Sprintf(" %v", a)
	}
	return s
}

var trackerCmds = []trackerCmd{
	{"GET", []any{"k"}},
	{"set", []any{"k", "v"}},
	{"ECHO", []any{"x"}},
	{"NOSUCHCMD", nil},
	{"MULTI", nil},
	{"multi", nil},
	{"EXEC", nil},
	{"Exec", nil},
	{"DISCARD", nil},
	{"WATCH", []any{"k"}},
	{"UNWATCH", nil},
	{"SELECT", []any{1}},
	{"SELECT", []any{0}},
	{"select", []any{99}},
	{"CLIENT", []any{"SETNAME", "x"}},
	{"client", []any{[]byte("setname"), "pool"}},
	{"CLIENT", []any{"LIST"}},
	{"CLIENT", []any{"ID"}},
	{"CLIENT", nil},
	{"CLIENT", []any{"REPLY", "OFF"}},
	{"CLIENT", []any{"REPLY", "SKIP"}},
	{"CLIENT", []any{"TRACKING", "ON"}},
	{"CLIENT", []any{42}},
	{"SUBSCRIBE", []any{"ch"}},
	{"PSUBSCRIBE", []any{"p*"}},
	{"SSUBSCRIBE", []any{"s"}},
	{"UNSUBSCRIBE", nil},
	{"AUTH", []any{"pw"}},
	{"HELLO", []any{"3"}},
	{"RESET", nil},
	{"QUIT", nil},
	{"MONITOR", nil},
	{"READONLY", nil},
	{"PING", nil},
}

// redisModel is a Redis 7 session over RESP2 as far as session state
// goes, behind a model of redigo's connection: commands buffered until
// flushed, replies queued until read, and redigo's count of replies owed.
type redisModel struct {
	// The server's view of the session.
	inMulti, multiAborted bool // in a transaction; a queued command failed
	queued                []trackerCmd
	watching, watchFired  bool
	db                    int
	name                  string
	channels, patterns    int
	shards                int
	sticky                string // state the pool cannot undo, if any
	replyOff, skipNext    bool
	closed                bool // QUIT

	// The connection.
	unflushed []modelReq
	replies   []any // written by the server, not yet read
	pending   int   // redigo's count of replies owed
}

type modelReq struct {
	cmd      trackerCmd
	rejected bool
}

const modelClientName = "pool" // the pool's Config.ClientName

func newRedisModel() *redisModel { return &redisModel{name: modelClientName} }

// dirty describes the state that makes the session differ from a new
// pool connection's, or returns "".
func (m *redisModel) dirty() string {
	switch {
	case m.inMulti:
		return "the server is in a transaction"
	case m.watching:
		return "a key is watched"
	case m.db != 0:
		return fmt.Sprintf("database %d is selected", m.db)
	case m.name != modelClientName:
		return fmt.Sprintf("the client name is %q", m.name)
	case m.channels+m.patterns+m.shards > 0:
		return "the connection is subscribed"
	case m.sticky != "":
		return m.sticky
	case m.replyOff || m.skipNext:
		return "CLIENT REPLY is in effect"
	case m.closed:
		return "the server closed the connection (QUIT)"
	case len(m.unflushed) > 0:
		return fmt.Sprintf("%d commands are buffered, not flushed", len(m.unflushed))
	case len(m.replies) > 0:
		return fmt.Sprintf("%d replies are unread", len(m.replies))
	}
	return ""
}

func (m *redisModel) send(cmd trackerCmd, rejected bool) {
	m.unflushed = append(m.unflushed, modelReq{cmd, rejected})
	m.pending++
}

func (m *redisModel) flush() {
	for _, req := range m.unflushed {
		m.execute(req)
	}
	m.unflushed = nil
}

// read pops the next reply; ok is false when the read would block (no
// reply is coming) and so time out.
func (m *redisModel) read() (reply any, ok bool) {
	if len(m.replies) == 0 {
		return nil, false
	}
	reply = m.replies[0]
	m.replies = m.replies[1:]
	return reply, true
}

// receive is redigo's Receive: it reads without flushing; an error reply
// comes back as the error.
func (m *redisModel) receive() (reply any, err error, ok bool) {
	reply, ok = m.read()
	if !ok {
		return nil, nil, false
	}
	if m.pending > 0 {
		m.pending--
	}
	if e, isErr := reply.(redis.Error); isErr {
		return nil, e, true
	}
	return reply, nil, true
}

// do is redigo's Do(cmd): write, flush, read the pending replies and the
// command's own, and return the last.
func (m *redisModel) do(cmd trackerCmd, rejected bool) (reply any, ok bool) {
	pending := m.pending
	m.pending = 0
	m.unflushed = append(m.unflushed, modelReq{cmd, rejected})
	m.flush()
	for i := 0; i <= pending; i++ {
		if reply, ok = m.read(); !ok {
			return nil, false
		}
	}
	return reply, true
}

// doFlush is redigo's Do(""): flush and read the pending replies, as a
// slice; with none pending it does nothing at all.
func (m *redisModel) doFlush() (reply any, ok bool) {
	pending := m.pending
	m.pending = 0
	if pending == 0 {
		return nil, true
	}
	m.flush()
	replies := make([]any, pending)
	for i := range replies {
		if replies[i], ok = m.read(); !ok {
			return nil, false
		}
	}
	return replies, true
}

func (m *redisModel) touch() {
	if m.watching {
		m.watchFired = true
	}
}

func (m *redisModel) publish() {
	if m.channels > 0 && !m.closed {
		m.reply([]any{[]byte("message"), []byte("ch"), []byte("hello")})
	}
}

func (m *redisModel) reply(v any) {
	switch {
	case m.closed || m.replyOff:
	case m.skipNext:
		m.skipNext = false
	default:
		m.replies = append(m.replies, v)
	}
}

func (m *redisModel) execute(req modelReq) {
	if m.closed {
		return
	}
	cmd := req.cmd
	name := strings.ToUpper(cmd.name)
	if req.rejected {
		if m.inMulti {
			m.multiAborted = true
		}
		m.reply(redis.Error("NOPERM this user has no permissions to run the '" + strings.ToLower(name) + "' command"))
		return
	}
	if m.channels+m.patterns+m.shards > 0 {
		switch name {
		case "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PING", "QUIT", "RESET":
		default:
			m.reply(redis.Error("ERR Can't execute '" + strings.ToLower(name) + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"))
			return
		}
	}
	if m.inMulti {
		switch name {
		case "EXEC", "DISCARD", "MULTI", "WATCH", "QUIT", "RESET":
		case "NOSUCHCMD":
			m.multiAborted = true
			m.reply(redis.Error("ERR unknown command 'NOSUCHCMD'"))
			return
		default:
			m.queued = append(m.queued, cmd)
			m.reply("QUEUED")
			return
		}
	}
	if r := m.apply(cmd); r != (noReply{}) {
		m.reply(r)
	}
}

// noReply is what apply returns for a command the server does not answer.
type noReply struct{}

// apply runs cmd outside a transaction (or inside EXEC) and returns its
// reply.
func (m *redisModel) apply(cmd trackerCmd) any {
	arg := func(i int) string {
		if i >= len(cmd.args) {
			return ""
		}
		switch a := cmd.args[i].(type) {
		case string:
			return a
		case []byte:
			return string(a)
		default:
			return fmt.Sprint(a)
		}
	}
	switch name := strings.ToUpper(cmd.name); name {
	case "GET":
		return nil
	case "SET":
		return "OK"
	case "ECHO":
		return []byte(arg(0))
	case "PING":
		if m.channels+m.patterns+m.shards > 0 {
			return []any{[]byte("pong"), []byte("")}
		}
		return "PONG"
	case "NOSUCHCMD":
		return redis.Error("ERR unknown command 'NOSUCHCMD'")
	case "MULTI":
		if m.inMulti {
			return redis.Error("ERR MULTI calls can not be nested")
		}
		m.inMulti, m.multiAborted, m.queued = true, false, nil
		return "OK"
	case "EXEC":
		switch {
		case !m.inMulti:
			return redis.Error("ERR EXEC without MULTI")
		case m.multiAborted:
			m.endTransaction()
			return redis.Error("EXECABORT Transaction discarded because of previous errors.")
		case m.watchFired:
			m.endTransaction()
			return nil
		}
		queued := m.queued
		m.endTransaction()
		results := make([]any, 0, len(queued))
		for _, q := range queued {
			if r := m.apply(q); r != (noReply{}) {
				results = append(results, r)
			}
		}
		return results
	case "DISCARD":
		if !m.inMulti {
			return redis.Error("ERR DISCARD without MULTI")
		}
		m.endTransaction()
		return "OK"
	case "WATCH":
		if m.inMulti {
			return redis.Error("ERR WATCH inside MULTI is not allowed")
		}
		m.watching = true
		return "OK"
	case "UNWATCH":
		m.watching, m.watchFired = false, false
		return "OK"
	case "SELECT":
		if arg(0) == "99" {
			return redis.Error("ERR DB index is out of range")
		}
		fmt.Sscan(arg(0), &m.db)
		return "OK"
	case "CLIENT":
		switch strings.ToUpper(arg(0)) {
		case "SETNAME":
			m.name = arg(1)
			return "OK"
		case "LIST":
			return []byte("id=7 name=" + m.name + "\n")
		case "ID":
			return int64(7)
		case "REPLY":
			m.sticky = "CLIENT REPLY was sent"
			switch strings.ToUpper(arg(1)) {
			case "OFF":
				m.replyOff = true
				return noReply{}
			case "SKIP":
				m.skipNext = true
				return noReply{}
			}
			return "OK"
		case "TRACKING":
			m.sticky = "client-side caching is on"
			return "OK"
		}
		return redis.Error("ERR unknown subcommand or wrong number of arguments for 'client' command")
	case "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE":
		switch name {
		case "SUBSCRIBE":
			m.channels = 1
		case "PSUBSCRIBE":
			m.patterns = 1
		default:
			m.shards = 1
		}
		return []any{[]byte(strings.ToLower(name)), []byte(arg(0)), int64(m.channels + m.patterns + m.shards)}
	case "UNSUBSCRIBE":
		m.channels = 0
		return []any{[]byte("unsubscribe"), nil, int64(m.patterns + m.shards)}
	case "AUTH":
		m.sticky = "the connection re-authenticated"
		return "OK"
	case "HELLO":
		m.sticky = "the protocol was switched"
		return []any{[]byte("server"), []byte("redis"), []byte("proto"), int64(3)}
	case "RESET":
		*m = redisModel{replies: m.replies, unflushed: m.unflushed, pending: m.pending, sticky: "RESET cleared the client name"}
		return "RESET"
	case "QUIT":
		m.reply("OK")
		m.closed = true
		return noReply{}
	case "MONITOR":
		m.sticky = "MONITOR is on"
		return "OK"
	case "READONLY":
		return redis.Error("ERR This instance has cluster support disabled")
	}
	panic("redisModel: unknown command " + cmd.name)
}

func (m *redisModel) endTransaction() {
	m.inMulti, m.multiAborted, m.queued = false, false, nil
	m.watching, m.watchFired = false, false
}

func formatModelReply(reply any, err error, ok bool) string {
	switch {
	case !ok:
		return "(read times out: connection broken)"
	case err != nil:
		return "error " + err.Error()
	}
	return formatReply(reply)
}
