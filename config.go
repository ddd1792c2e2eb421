package redispool

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultAddr             = "localhost:6379"
	DefaultDialTimeout      = 5 * time.Second
	DefaultReadTimeout      = 3 * time.Second
	DefaultWriteTimeout     = 3 * time.Second
	DefaultBorrowTimeout    = 5 * time.Second
	DefaultMaxConnIdleTime  = 30 * time.Minute
	DefaultPingAfterIdle    = time.Minute
	DefaultEvictionInterval = 30 * time.Second
	DefaultCheckTimeout     = time.Second
)

// Config describes how to reach Redis and how to size the pool.
//
// The zero value of every field is usable: it selects the default written
// in the field's comment. For the durations whose zero means a default,
// a negative value means "none" where the comment says so.
//
// A Config is copied by New; changing it afterwards has no effect on the
// pool.
type Config struct {
	// Network is "tcp" or "unix". Zero means "tcp".
	Network string

	// Addr is host:port for "tcp" or the socket path for "unix".
	// Zero means "localhost:6379", or with Sentinel, the master the
	// Sentinels name; it must then be empty.
	Addr string

	// Sentinel, when non-nil, makes the pool find its master through
	// Redis Sentinel and follow it across failovers; see SentinelConfig.
	// Username, Password, DB, ClientName and TLSConfig then apply to the
	// data nodes. Nil means a fixed Addr.
	Sentinel *SentinelConfig

	// Username selects an ACL user; it requires Password. Zero means the
	// default user.
	Username string

	// Password authenticates each new connection with AUTH. Zero means
	// no AUTH. It never appears in errors, logs or the String form of
	// the Config.
	Password string

	// DB is the database each connection SELECTs, and the one a
	// connection is brought back to when a borrower SELECTs another.
	// Zero means database 0.
	DB int

	// ClientName is set with CLIENT SETNAME on every connection, so the
	// pool's connections can be told apart in CLIENT LIST. Zero means no
	// name.
	ClientName string

	// dialCmd, if set, is sent on every new connection after AUTH and
	// SELECT: a Cluster's READONLY, for reads from replicas.
	dialCmd string

	// TLSConfig, when non-nil, makes every connection use TLS with this
	// configuration. An empty ServerName is filled in from Addr. Nil
	// means plaintext.
	TLSConfig *tls.Config

	// Dial, if non-nil, opens the raw connection in place of a
	// net.Dialer; TLS, AUTH and SELECT still follow. Use it for custom
	// transports or tests. A connection that implements syscall.Conn
	// (as *net.TCPConn and *net.UnixConn do) gets the no-round-trip
	// health check on borrow. Nil means a net.Dialer with TCP
	// keep-alive.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// DialTimeout bounds connecting, including the TLS handshake and the
	// AUTH, CLIENT SETNAME and SELECT that follow; when none of those is
	// configured, a PING follows instead, so that a server refusing the
	// connection (at maxclients) fails the dial rather than the first
	// command. Zero means 5 seconds.
	DialTimeout time.Duration

	// ReadTimeout and WriteTimeout bound each read and write of a
	// command. Zero means 3 seconds; negative means no timeout. A
	// context deadline shorter than ReadTimeout takes precedence, and
	// DoWithTimeout and ReceiveWithTimeout override ReadTimeout for one
	// call: use them for blocking commands such as BLPOP on a borrowed
	// connection, and for pub/sub receivers
	// (redis.PubSubConn.ReceiveWithTimeout(0) waits for messages without
	// a limit). Pool.Do and Cluster.Do wait for a blocking command's own
	// timeout plus ReadTimeout.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration

	// MaxTotal is the most connections the pool holds at once, borrowed
	// and idle together. Zero means 10 per GOMAXPROCS.
	MaxTotal int

	// MaxIdle is the most idle connections kept; a connection returned
	// while MaxIdle are idle is closed. Zero means MaxTotal.
	MaxIdle int

	// MinIdle is the number of idle connections the pool tries to keep
	// ready, filled in the background after New and after evictions.
	// Zero means none. It must not exceed MaxIdle.
	MinIdle int

	// BorrowTimeout is the longest a borrow waits for a connection while
	// MaxTotal connections are borrowed; the context deadline, if
	// earlier, wins. Zero means 5 seconds; negative means wait until the
	// context is done.
	BorrowTimeout time.Duration

	// FailFast makes a borrow return ErrPoolExhausted at once, instead
	// of waiting, when MaxTotal connections are borrowed. A connection
	// the pipeline of Do holds with no command queued is not borrowed:
	// the borrow takes it, once the replies in flight on it are read.
	FailFast bool

	// FIFO hands out the least recently used idle connection first. The
	// default (false) is LIFO: the most recently used connection is
	// reused, which keeps the working set small and lets surplus
	// connections age out through MaxConnIdleTime. Either order holds
	// among the connections returned in the last 100-200ms, which a busy
	// pool reuses first, and among those idle for longer.
	FIFO bool

	// MaxConnLifetime closes connections older than this when they are
	// returned, borrowed or found idle by the evictor. Zero means no
	// limit.
	MaxConnLifetime time.Duration

	// MaxConnIdleTime closes connections idle for longer than this.
	// Zero means 30 minutes; negative means no limit.
	MaxConnIdleTime time.Duration

	// PingAfterIdle makes a borrow PING a connection that has been idle
	// at least this long before handing it out. Every borrow already
	// checks, without a round trip, that the server has not closed the
	// connection; the PING also catches connections a network device
	// dropped silently. Zero means 1 minute; negative means never PING.
	PingAfterIdle time.Duration

	// EvictionInterval is how often a background goroutine closes
	// expired idle connections and those the server has closed (found
	// by a peek at the socket, without a round trip), and refills
	// MinIdle. Zero means 30 seconds; negative disables it (expired and
	// dead connections are then only found when borrowed).
	EvictionInterval time.Duration

	// CheckTimeout bounds each round trip the pool makes on its own
	// behalf: the PING of a long-idle connection on borrow, and the
	// commands that undo session state (MULTI, WATCH, SELECT,
	// subscriptions, unread replies) when a connection is returned. A
	// connection that does not answer in time is closed. Zero means 1
	// second.
	CheckTimeout time.Duration

	// AbandonedTimeout, when positive, reclaims a connection borrowed
	// for longer than this: its socket is closed, so the holder's next
	// call fails; its slot goes to the next borrower; and a Warn record
	// on Logger carries the stack of the borrow that took it (captured
	// at every borrow, only while this is set). It bounds the damage of
	// a borrower that never returns its connection — a panic without a
	// deferred Close, a forgotten Close — which otherwise holds a slot
	// for the life of the process, as HikariCP's leak detection and
	// Commons Pool's removeAbandoned do for JDBC. Subscribers and
	// blocking commands (BLPOP, XREAD BLOCK, WAIT) legitimately hold a
	// connection for long, which is why it is off by default: set it
	// well above the longest such hold. Connections are checked every
	// 100ms. Zero means off.
	AbandonedTimeout time.Duration

	// PipelineConns is how many shared connections Pool.Do sends its
	// commands down, auto-pipelined: concurrent callers' commands are
	// written together and their replies matched to them in order (see
	// commands.go for which commands qualify; the rest, and every
	// command on a connection from Get unless PipelineGet, take a
	// connection of their own). Shared connections come from the pool and count toward
	// MaxTotal; one with nothing in flight goes back after a few
	// milliseconds, or at once when a borrower waits. Zero means 1 (one
	// connection batches better than two); negative turns pipelining
	// off, so that Do borrows a connection for every command. At most
	// MaxTotal are used.
	PipelineConns int

	// PipelineGet makes the connections from Get and GetContext share
	// the pipelines too: their Do and DoContext calls go down the shared
	// connections while they hold no session state, and they borrow a
	// connection of their own only when a call needs one (a command
	// that blocks or touches session state, DoWithTimeout, Send,
	// Receive), keeping it until Close. Every command gives the result
	// it would on a connection of its own; see pipeConn (conn.go) for
	// the cases that take care, such as WAIT after pipelined writes.
	// Get then never waits for a connection: a borrow that fails, fails
	// the call that needed it. False means off; it has no effect with
	// PipelineConns negative. In ClusterConfig.Node, it does the same for
	// the connections from Cluster.Get (see clusterConn.pipeGet).
	PipelineGet bool

	// Logger, if non-nil, receives connection lifecycle events:
	// connections created and closed (Debug; Info when closed as broken
	// or unhealthy), failed health checks and state resets (Info), and
	// failed dials and reclaimed connections (Warn). Every record names
	// the address and, for a close, the reason. Nil means no logging.
	Logger *slog.Logger

	// CommandHook, if non-nil, observes each command the pool's
	// connections run for their users, for tracing: see CommandHook
	// (hook.go) and the otel module. Nil means none, at the cost of one
	// nil check per command.
	CommandHook CommandHook
}

// String formats the Config with the password redacted, so a Config can
// be logged or printed with %v and %+v safely.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("redispool.Config{")
	field := func(name string, v any) {
		if b.Len() > len("redispool.Config{") {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%v", name, v)
	}
	field("Network", c.Network)
	field("Addr", c.Addr)
	if c.Sentinel != nil {
		field("Sentinel", c.Sentinel.String())
	} else {
		field("Sentinel", nil)
	}
	field("Username", c.Username)
	if c.Password != "" {
		field("Password", redacted)
	} else {
		field("Password", "")
	}
	field("DB", c.DB)
	field("ClientName", c.ClientName)
	field("TLS", c.TLSConfig != nil)
	field("Dial", c.Dial != nil)
	field("DialTimeout", c.DialTimeout)
	field("ReadTimeout", c.ReadTimeout)
	field("WriteTimeout", c.WriteTimeout)
	field("MaxTotal", c.MaxTotal)
	field("MaxIdle", c.MaxIdle)
	field("MinIdle", c.MinIdle)
	field("BorrowTimeout", c.BorrowTimeout)
	field("FailFast", c.FailFast)
	field("FIFO", c.FIFO)
	field("MaxConnLifetime", c.MaxConnLifetime)
	field("MaxConnIdleTime", c.MaxConnIdleTime)
	field("PingAfterIdle", c.PingAfterIdle)
	field("EvictionInterval", c.EvictionInterval)
	field("CheckTimeout", c.CheckTimeout)
	field("AbandonedTimeout", c.AbandonedTimeout)
	field("PipelineConns", c.PipelineConns)
	field("PipelineGet", c.PipelineGet)
	field("CommandHook", c.CommandHook != nil)
	b.WriteString("}")
	return b.String()
}

var _ slog.LogValuer = Config{}

// GoString makes %#v as safe as %v.
func (c Config) GoString() string { return c.String() }

// LogValue makes a Config safe to log with slog, and loggable by the
// JSON handler, which cannot encode funcs: the password is redacted as
// in String, and TLSConfig and Dial say only whether they are set.
func (c Config) LogValue() slog.Value {
	password := ""
	if c.Password != "" {
		password = redacted
	}
	sentinel := slog.String("Sentinel", "")
	if c.Sentinel != nil {
		sentinel = slog.Any("Sentinel", *c.Sentinel)
	}
	return slog.GroupValue(
		slog.String("Network", c.Network),
		slog.String("Addr", c.Addr),
		sentinel,
		slog.String("Username", c.Username),
		slog.String("Password", password),
		slog.Int("DB", c.DB),
		slog.String("ClientName", c.ClientName),
		slog.Bool("TLS", c.TLSConfig != nil),
		slog.Bool("Dial", c.Dial != nil),
		slog.Duration("DialTimeout", c.DialTimeout),
		slog.Duration("ReadTimeout", c.ReadTimeout),
		slog.Duration("WriteTimeout", c.WriteTimeout),
		slog.Int("MaxTotal", c.MaxTotal),
		slog.Int("MaxIdle", c.MaxIdle),
		slog.Int("MinIdle", c.MinIdle),
		slog.Duration("BorrowTimeout", c.BorrowTimeout),
		slog.Bool("FailFast", c.FailFast),
		slog.Bool("FIFO", c.FIFO),
		slog.Duration("MaxConnLifetime", c.MaxConnLifetime),
		slog.Duration("MaxConnIdleTime", c.MaxConnIdleTime),
		slog.Duration("PingAfterIdle", c.PingAfterIdle),
		slog.Duration("EvictionInterval", c.EvictionInterval),
		slog.Duration("CheckTimeout", c.CheckTimeout),
		slog.Duration("AbandonedTimeout", c.AbandonedTimeout),
		slog.Int("PipelineConns", c.PipelineConns),
		slog.Bool("PipelineGet", c.PipelineGet),
		slog.Bool("CommandHook", c.CommandHook != nil),
	)
}

// redacted stands in for a password wherever one would be shown.
const redacted = "xxxxx"

// withDefaults returns c with every zero field replaced by its default.
// It assumes c has been validated.
func (c Config) withDefaults() Config {
	if c.Network == "" {
		c.Network = "tcp"
	}
	if c.Addr == "" && c.Sentinel == nil {
		c.Addr = DefaultAddr
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	c.ReadTimeout = orDefault(c.ReadTimeout, DefaultReadTimeout)
	c.WriteTimeout = orDefault(c.WriteTimeout, DefaultWriteTimeout)
	c.BorrowTimeout = orDefault(c.BorrowTimeout, DefaultBorrowTimeout)
	c.MaxConnIdleTime = orDefault(c.MaxConnIdleTime, DefaultMaxConnIdleTime)
	c.PingAfterIdle = orDefault(c.PingAfterIdle, DefaultPingAfterIdle)
	c.EvictionInterval = orDefault(c.EvictionInterval, DefaultEvictionInterval)
	if c.CheckTimeout == 0 {
		c.CheckTimeout = DefaultCheckTimeout
	}
	if c.MaxTotal == 0 {
		c.MaxTotal = 10 * runtime.GOMAXPROCS(0)
	}
	if c.MaxIdle == 0 {
		c.MaxIdle = c.MaxTotal
	}
	return c
}

// orDefault maps zero to def and a negative duration to zero, the
// internal spelling of "none".
func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// validate checks c for values New cannot use. Each error names the
// field and wraps ErrInvalidConfig.
func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if c.Sentinel != nil {
		if err := c.Sentinel.validate(c); err != nil {
			return err
		}
	}
	switch c.Network {
	case "", "tcp", "tcp4", "tcp6":
		if c.Addr != "" {
			host, port, err := net.SplitHostPort(c.Addr)
			if err != nil {
				return bad("Addr %q: want host:port", c.Addr)
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return bad("Addr %q: port %q is not a number from 1 to 65535", c.Addr, port)
			}
			if strings.ContainsAny(host, " /") {
				return bad("Addr %q: invalid host %q", c.Addr, host)
			}
		}
	case "unix":
		if c.Addr == "" {
			return bad("Addr: a unix socket path is required with Network \"unix\"")
		}
	default:
		return bad("Network %q: want \"tcp\" or \"unix\"", c.Network)
	}
	if c.Username != "" && c.Password == "" {
		return bad("Username %q needs a Password (any password works for a nopass user)", c.Username)
	}
	if c.DB < 0 {
		return bad("DB %d is negative", c.DB)
	}
	if strings.ContainsAny(c.ClientName, " \r\n") {
		return bad("ClientName %q: Redis does not allow spaces or newlines in client names", c.ClientName)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DialTimeout", c.DialTimeout},
		{"CheckTimeout", c.CheckTimeout},
		{"MaxConnLifetime", c.MaxConnLifetime},
		{"AbandonedTimeout", c.AbandonedTimeout},
	} {
		if d.v < 0 {
			return bad("%s %v is negative", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"MaxTotal", c.MaxTotal},
		{"MaxIdle", c.MaxIdle},
		{"MinIdle", c.MinIdle},
	} {
		if n.v < 0 {
			return bad("%s %d is negative", n.name, n.v)
		}
	}
	maxTotal, maxIdle := c.MaxTotal, c.MaxIdle
	if maxTotal == 0 {
		maxTotal = 10 * runtime.GOMAXPROCS(0)
	}
	if maxIdle > maxTotal {
		return bad("MaxIdle %d exceeds MaxTotal %d", maxIdle, maxTotal)
	}
	if maxIdle == 0 {
		maxIdle = maxTotal
	}
	if c.MinIdle > maxIdle {
		return bad("MinIdle %d exceeds MaxIdle %d", c.MinIdle, maxIdle)
	}
	return nil
}
