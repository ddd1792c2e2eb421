package redispool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Defaults applied by New to zero-valued SentinelConfig fields.
const (
	DefaultSentinelPort         = "26379"
	DefaultSentinelTimeout      = 500 * time.Millisecond
	DefaultSentinelPollInterval = time.Second
)

// ErrNoSentinel is returned when none of the Sentinels could be reached
// or queried. The error also wraps each Sentinel's own error.
var ErrNoSentinel = errors.New("redispool: no Sentinel reachable")

// SentinelConfig makes a Pool find its master through Redis Sentinel and
// follow it across failovers. With it, Config.Addr must be empty; the
// Config's Username, Password, DB, ClientName and TLSConfig apply to the
// data nodes.
//
// The pool asks the Sentinels for the master's address when it first
// dials, checks with ROLE that every node it connects to is the master,
// and listens for +switch-master on every Sentinel. When the master
// changes it closes its idle connections at once and closes borrowed
// ones when they are returned: no command is started on a connection to
// the old master once the pool knows of the switch.
type SentinelConfig struct {
	// MasterName is the name the Sentinels monitor the master under, as
	// in "sentinel monitor <name> ...". Required.
	MasterName string

	// Addrs are the Sentinels' addresses, host:port; a missing port
	// means 26379. At least one is required. They are asked in order,
	// and the last one to answer is asked first next time.
	Addrs []string

	// Username and Password authenticate to the Sentinels themselves
	// (requirepass or an ACL user in sentinel.conf). Zero means no AUTH.
	// The password never appears in errors, logs or String forms.
	Username, Password string

	// TLSConfig, when non-nil, makes connections to the Sentinels use
	// TLS; an empty ServerName is filled in from each Sentinel's host.
	// Nil means plaintext.
	TLSConfig *tls.Config

	// Timeout bounds connecting to one Sentinel and each query of it.
	// Zero means 500ms: a Sentinel that does not answer promptly is
	// passed over for the next.
	Timeout time.Duration

	// PollInterval is how often the Sentinels are asked for the master
	// while no +switch-master subscription is alive (every Sentinel is
	// down or unreachable, or the connections to them broke). Zero
	// means 1 second; negative means never.
	PollInterval time.Duration
}

// String formats the SentinelConfig with the password redacted.
func (sc SentinelConfig) String() string {
	pass := ""
	if sc.Password != "" {
		pass = redacted
	}
	return fmt.Sprintf("redispool.SentinelConfig{MasterName:%s Addrs:%v Username:%s Password:%s TLS:%t Timeout:%v PollInterval:%v}",
		sc.MasterName, sc.Addrs, sc.Username, pass, sc.TLSConfig != nil, sc.Timeout, sc.PollInterval)
}

// GoString makes %#v as safe as %v.
func (sc SentinelConfig) GoString() string { return sc.String() }

// LogValue makes a SentinelConfig as safe to log with slog as String.
func (sc SentinelConfig) LogValue() slog.Value {
	pass := ""
	if sc.Password != "" {
		pass = redacted
	}
	return slog.GroupValue(
		slog.String("MasterName", sc.MasterName),
		slog.Any("Addrs", sc.Addrs),
		slog.String("Username", sc.Username),
		slog.String("Password", pass),
		slog.Bool("TLS", sc.TLSConfig != nil),
		slog.Duration("Timeout", sc.Timeout),
		slog.Duration("PollInterval", sc.PollInterval),
	)
}

// validate checks the Sentinel fields of a Config.
func (sc *SentinelConfig) validate(c Config) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: Sentinel (master %q, Sentinels %v): "+format,
			append([]any{ErrInvalidConfig, sc.MasterName, sc.Addrs}, args...)...)
	}
	switch {
	case c.Addr != "":
		return bad("Addr %q must be empty: the Sentinels name the master", c.Addr)
	case c.Network != "" && c.Network != "tcp" && c.Network != "tcp4" && c.Network != "tcp6":
		return bad("Network %q: Sentinel masters are reached over TCP", c.Network)
	case sc.MasterName == "":
		return bad("MasterName is required")
	case strings.ContainsAny(sc.MasterName, " \r\n"):
		return bad("MasterName %q contains a space or newline", sc.MasterName)
	case len(sc.Addrs) == 0:
		return bad("Addrs: at least one Sentinel address is required")
	case sc.Timeout < 0:
		return bad("Timeout %v is negative", sc.Timeout)
	case sc.Username != "" && sc.Password == "":
		return bad("Username %q needs a Password", sc.Username)
	}
	for _, a := range sc.Addrs {
		if _, err := listedAddr("Sentinel address", a, DefaultSentinelPort); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// master is where the pool's connections go: the master's address as
// the Sentinels reported it, and the generation the pool's connections
// to it carry. A master change swaps in a new value with gen+1, so the
// address and the generation change together.
type master struct {
	addr  string
	gen   uint64
	epoch int64 // the Sentinels' config-epoch for addr; see update
}

// sentinelClient finds the master through the Sentinels and follows it. It owns
// one goroutine per Sentinel, subscribed to +switch-master, and one that
// polls while no subscription is alive and re-queries on request.
type sentinelClient struct {
	cfg      SentinelConfig // defaults applied, ports filled in
	stats    *counters
	log      *slog.Logger
	onChange func() // called, outside any lock, after the master changed

	cur atomic.Pointer[master] // nil until the Sentinels first answer

	ctx    context.Context // ended by close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine
	wake   chan struct{}  // asks the poller for a query now; buffered 1
	alive  atomic.Int32   // +switch-master subscriptions confirmed now

	mu     sync.Mutex // protects following fields
	order  []string   // Sentinels, the last to answer first
	query  *queryCall // the query in flight, if any
	closed bool
}

// queryCall is a query of the Sentinels that concurrent callers share.
type queryCall struct {
	done chan struct{}
	err  error
}

func newSentinel(sc SentinelConfig, stats *counters, log *slog.Logger, onChange func()) *sentinelClient {
	sc.Addrs = append([]string(nil), sc.Addrs...)
	for i, a := range sc.Addrs {
		sc.Addrs[i], _ = listedAddr("Sentinel address", a, DefaultSentinelPort) // validated already
	}
	if sc.Timeout == 0 {
		sc.Timeout = DefaultSentinelTimeout
	}
	if sc.PollInterval == 0 {
		sc.PollInterval = DefaultSentinelPollInterval
	}
	if sc.TLSConfig != nil {
		sc.TLSConfig = sc.TLSConfig.Clone()
	}
	s := &sentinelClient{
		cfg:      sc,
		stats:    stats,
		log:      log,
		onChange: onChange,
		wake:     make(chan struct{}, 1),
		order:    append([]string(nil), sc.Addrs...),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1 + len(sc.Addrs))
	go s.poll()
	for _, a := range sc.Addrs {
		go s.listen(a)
	}
	return s
}

// close stops every goroutine and waits for them; their connections to
// the Sentinels are closed by then.
func (s *sentinelClient) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// gen is the generation of connections to the current master.
func (s *sentinelClient) gen() uint64 {
	if m := s.cur.Load(); m != nil {
		return m.gen
	}
	return 0
}

// addr is the current master's address, or "" before the Sentinels
// first answered.
func (s *sentinelClient) addr() string {
	if m := s.cur.Load(); m != nil {
		return m.addr
	}
	return ""
}

// update makes addr the master. A query's answer carries the Sentinel's
// config-epoch, which grows with every failover: an answer older than
// what the pool knows (a Sentinel that has not yet learnt of a failover)
// is ignored, so the pool never goes back to a demoted master. An
// announcement carries no epoch (epoch < 0): it is always news, and
// counts as one epoch past the current one.
func (s *sentinelClient) update(addr string, epoch int64, why string) {
	s.mu.Lock()
	old := s.cur.Load()
	switch {
	case old != nil && epoch >= 0 && epoch < old.epoch:
		s.mu.Unlock()
		return
	case old != nil && old.addr == addr:
		if epoch > old.epoch {
			s.cur.Store(&master{addr: addr, gen: old.gen, epoch: epoch})
		}
		s.mu.Unlock()
		return
	}
	next := &master{addr: addr, gen: 1, epoch: epoch}
	if old != nil {
		next.gen = old.gen + 1
		if epoch < 0 {
			next.epoch = old.epoch + 1
		}
	}
	s.cur.Store(next)
	s.mu.Unlock()

	if old == nil {
		if s.log != nil {
			s.log.LogAttrs(context.Background(), slog.LevelInfo, "redispool: master found",
				slog.String("master", s.cfg.MasterName), slog.String("addr", addr))
		}
		return
	}
	s.stats.masterChanges.Add(1)
	if s.log != nil {
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "redispool: master changed",
			slog.String("master", s.cfg.MasterName), slog.String("from", old.addr),
			slog.String("to", addr), slog.String("by", why))
	}
	s.onChange()
}

// refresh asks the Sentinels for the master and switches to it. Callers
// at the same time share one query, which Close interrupts; a caller
// stops waiting for it when ctx ends.
func (s *sentinelClient) refresh(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrPoolClosed
	}
	call := s.query
	if call == nil {
		call = &queryCall{done: make(chan struct{})}
		s.query = call
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			addr, epoch, err := s.ask(s.ctx)
			if err == nil {
				s.update(addr, epoch, "query")
			}
			s.mu.Lock()
			s.query = nil
			s.mu.Unlock()
			call.err = err
			close(call.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return fmt.Errorf("redispool: asking the Sentinels for master %q: %w", s.cfg.MasterName, ctx.Err())
	}
}

// requery asks the poller for a query without waiting for it. Requests
// made while one is pending are one request.
func (s *sentinelClient) requery() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// requeryCooldown spaces asynchronous queries: a burst of errors on
// master connections asks the Sentinels once, not once per connection.
const requeryCooldown = 100 * time.Millisecond

// poll queries the Sentinels every PollInterval while no subscription is
// alive, and whenever requery asks, at most once per requeryCooldown.
func (s *sentinelClient) poll() {
	defer s.wg.Done()
	var tick <-chan time.Time
	if s.cfg.PollInterval > 0 {
		t := time.NewTicker(s.cfg.PollInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-tick:
			if s.alive.Load() > 0 {
				continue
			}
		}
		if err := s.refresh(s.ctx); err != nil && s.ctx.Err() == nil && s.log != nil {
			s.log.LogAttrs(s.ctx, slog.LevelWarn, "redispool: Sentinel query failed",
				slog.String("master", s.cfg.MasterName), slog.String("error", err.Error()))
		}
		if !sleepCtx(s.ctx, requeryCooldown) {
			return
		}
	}
}

// ask queries the Sentinels in order for the master's address and its
// config-epoch, and moves the first that answers to the front.
func (s *sentinelClient) ask(ctx context.Context) (addr string, epoch int64, err error) {
	s.mu.Lock()
	order := append([]string(nil), s.order...)
	s.mu.Unlock()

	var errs []error
	var unknown []string // Sentinels that do not know the master
	for _, a := range order {
		addr, epoch, err := s.askOne(ctx, a)
		switch {
		case err == nil:
			s.mu.Lock()
			if s.order[0] != a {
				s.order = append([]string{a}, deleteString(s.order, a)...)
			}
			s.mu.Unlock()
			return addr, epoch, nil
		case errors.Is(err, redis.ErrNil):
			unknown = append(unknown, a)
		default:
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(unknown) > 0 {
		return "", 0, fmt.Errorf("redispool: master %q is unknown to Sentinels %s (asked %s)",
			s.cfg.MasterName, strings.Join(unknown, ", "), strings.Join(order, ", "))
	}
	return "", 0, fmt.Errorf("%w for master %q (asked %s): %w",
		ErrNoSentinel, s.cfg.MasterName, strings.Join(order, ", "), errors.Join(errs...))
}

func deleteString(list []string, s string) []string {
	out := make([]string, 0, len(list))
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// askOne asks one Sentinel, under Timeout, with GET-MASTER-ADDR-BY-NAME
// and, pipelined with it, SENTINEL MASTER for the config-epoch. An
// unknown master is redis.ErrNil.
func (s *sentinelClient) askOne(ctx context.Context, a string) (string, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	c, err := s.dial(ctx, a)
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	c.Send("SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.cfg.MasterName)
	c.Send("SENTINEL", "MASTER", s.cfg.MasterName)
	if err := c.Flush(); err != nil {
		return "", 0, s.sentinelError(ctx, a, err)
	}
	hp, err := redis.Strings(c.Receive())
	if err == redis.ErrNil {
		return "", 0, err
	}
	if err == nil && len(hp) != 2 {
		err = fmt.Errorf("GET-MASTER-ADDR-BY-NAME replied %q; want host and port", hp)
	}
	if err != nil {
		return "", 0, s.sentinelError(ctx, a, err)
	}
	info, err := redis.StringMap(c.Receive())
	if err != nil {
		return "", 0, s.sentinelError(ctx, a, err)
	}
	epoch, _ := strconv.ParseInt(info["config-epoch"], 10, 64)
	return net.JoinHostPort(hp[0], hp[1]), epoch, nil
}

// dial connects to a Sentinel and authenticates. ctx bounds the connect
// and the AUTH, and every later read until the caller stops it: ctx
// closes the connection when it ends, so that a timeout reads as ctx's
// error. Writes are bounded by Timeout.
func (s *sentinelClient) dial(ctx context.Context, a string) (redis.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", a)
	if err != nil {
		return nil, fmt.Errorf("redispool: Sentinel %s: %w", a, err)
	}
	if s.cfg.TLSConfig != nil {
		tc := s.cfg.TLSConfig
		if tc.ServerName == "" {
			tc = tc.Clone()
			tc.ServerName, _, _ = net.SplitHostPort(a)
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("redispool: Sentinel %s: TLS handshake: %w", a, err)
		}
		nc = tlsConn
	}
	c := &closingConn{ConnWithTimeout: redis.NewConn(nc, 0, s.cfg.Timeout).(redis.ConnWithTimeout)}
	c.stop = context.AfterFunc(ctx, func() { c.ConnWithTimeout.Close() })
	if s.cfg.Password != "" {
		args := []any{s.cfg.Password}
		if s.cfg.Username != "" {
			args = []any{s.cfg.Username, s.cfg.Password}
		}
		if _, err := c.Do("AUTH", args...); err != nil {
			c.Close()
			user := s.cfg.Username
			if user == "" {
				user = "default"
			}
			return nil, fmt.Errorf("redispool: Sentinel %s: auth failed for user %q: %w", a, user, s.ctxErr(ctx, err))
		}
	}
	return c, nil
}

// closingConn is a connection to a Sentinel that a context closes.
type closingConn struct {
	redis.ConnWithTimeout
	stop func() bool
}

var _ redis.ConnWithTimeout = (*closingConn)(nil)

func (c *closingConn) Close() error {
	c.stop()
	return c.ConnWithTimeout.Close()
}

func (s *sentinelClient) sentinelError(ctx context.Context, a string, err error) error {
	return fmt.Errorf("redispool: Sentinel %s: %w", a, s.ctxErr(ctx, err))
}

// ctxErr prefers ctx's error to the I/O error its ending caused.
func (s *sentinelClient) ctxErr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return err
}

// Timing of the +switch-master subscriptions.
const (
	// heartbeat is how often a subscription PINGs its Sentinel. A
	// Sentinel that does not answer within heartbeat+Timeout (paused,
	// or cut off without a reset) is given up and redialed, and polling
	// takes over meanwhile.
	heartbeat = time.Second

	// Redials of a Sentinel back off from minRedial to maxRedial.
	minRedial = 50 * time.Millisecond
	maxRedial = 2 * time.Second
)

// listen keeps a +switch-master subscription to one Sentinel, redialing
// with backoff, until close.
func (s *sentinelClient) listen(a string) {
	defer s.wg.Done()
	backoff := minRedial
	for {
		start := time.Now()
		err := s.subscribe(a)
		if s.ctx.Err() != nil {
			return
		}
		if s.log != nil {
			s.log.LogAttrs(s.ctx, slog.LevelInfo, "redispool: Sentinel subscription lost",
				slog.String("master", s.cfg.MasterName), slog.String("sentinel", a), slog.String("error", err.Error()))
		}
		if time.Since(start) > maxRedial {
			backoff = minRedial // it was up for a while: a new outage
		}
		if !sleepCtx(s.ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxRedial)
	}
}

// subscribe subscribes to +switch-master on one Sentinel and handles
// messages until the connection fails or close.
func (s *sentinelClient) subscribe(a string) error {
	dialCtx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	c, err := s.dial(dialCtx, a)
	if err == nil {
		// The connection outlives dialCtx: close it when the pool closes.
		c.(*closingConn).stop()
	}
	cancel()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(s.ctx, func() { c.Close() })
	defer stop()
	defer c.Close()

	psc := redis.PubSubConn{Conn: c}
	if err := psc.Subscribe("+switch-master"); err != nil {
		return err
	}
	// Pings go out from a goroutine of their own while this one reads:
	// redigo allows one sender and one receiver at a time.
	pingDone := make(chan struct{})
	defer close(pingDone)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-pingDone:
				return
			case <-t.C:
				if psc.Ping("") != nil {
					return // the receiver sees the failure too
				}
			}
		}
	}()

	subscribed := false
	defer func() {
		if subscribed {
			s.alive.Add(-1)
		}
	}()
	for {
		switch m := psc.ReceiveWithTimeout(heartbeat + s.cfg.Timeout).(type) {
		case error:
			return s.sentinelError(s.ctx, a, m)
		case redis.Subscription:
			if !subscribed {
				subscribed = true
				s.alive.Add(1)
				// Announcements made while no subscription was alive are
				// lost: ask once now that one is.
				s.requery()
			}
		case redis.Message:
			// "<name> <old host> <old port> <new host> <new port>"
			f := strings.Fields(string(m.Data))
			if len(f) == 5 && f[0] == s.cfg.MasterName {
				s.update(net.JoinHostPort(f[3], f[4]), -1, "+switch-master from "+a)
			}
		}
	}
}

// dialMaster dials the master: it resolves the master through the
// Sentinels if it is not known yet, dials it, and checks with ROLE that
// it is the master. A refused dial or a node that is not the master
// makes it ask the Sentinels again and retry, with backoff, until
// BorrowTimeout or ctx ends: nothing was sent, so a retry is safe, and
// during a failover it carries the borrow over the gap.
func (s *sentinelClient) dialMaster(ctx context.Context, f *factory) (*conn, error) {
	var deadline time.Time
	if f.cfg.BorrowTimeout > 0 {
		deadline = time.Now().Add(f.cfg.BorrowTimeout)
	}
	pause := 10 * time.Millisecond
	for {
		m := s.cur.Load()
		if m == nil {
			// The first dial: no Sentinel, or an unknown master, fails it.
			if err := s.refresh(ctx); err != nil {
				return nil, err
			}
			continue
		}
		c, err := f.dial(ctx) // dials f.addr(), the master's address
		if err == nil {
			err = s.checkRole(ctx, c, m.addr)
			if err == nil && s.cur.Load() != m {
				err = fmt.Errorf("redispool: master %q moved from %s during the dial", s.cfg.MasterName, m.addr)
			}
			if err == nil {
				c.gen = m.gen
				return c, nil
			}
			c.rc.Close()
		}
		if isAuthError(errorText(err)) || ctx.Err() != nil {
			return nil, err
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return nil, err
		}
		if !sleepCtx(ctx, pause) || !sleepCtx(s.ctx, 0) {
			return nil, err
		}
		pause = min(2*pause, 200*time.Millisecond)
		s.refresh(ctx) // a failure is this loop's next dial error
	}
}

func errorText(err error) string {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return string(rerr)
	}
	return ""
}

// checkRole asks a newly dialed node for its ROLE, under CheckTimeout
// and ctx. Sentinel names the master it believes in; the node may have
// been demoted since, or restarted empty.
func (s *sentinelClient) checkRole(ctx context.Context, c *conn, addr string) error {
	timeout := c.f.cfg.CheckTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	reply, err := redis.Values(c.rc.DoWithTimeout(timeout, "ROLE"))
	if err != nil {
		return fmt.Errorf("redispool: ROLE of %s, master %q: %w", addr, s.cfg.MasterName, err)
	}
	if len(reply) == 0 {
		return fmt.Errorf("redispool: ROLE of %s, master %q: empty reply", addr, s.cfg.MasterName)
	}
	role, _ := redis.String(reply[0], nil)
	if role != "master" {
		return fmt.Errorf("redispool: %s is a %s, not the master %q", addr, role, s.cfg.MasterName)
	}
	return nil
}

// noteError looks at an error a command on a master connection returned.
// READONLY and MASTERDOWN replies say the node is no longer a usable
// master: the connection is closed when it is returned (as if of an old
// generation) and the Sentinels are asked again. An I/O error may mean
// the master died: the connection is closed anyway, and the Sentinels are
// asked again.
func (s *sentinelClient) noteError(c *conn, err error) {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		if !strings.HasPrefix(string(rerr), "READONLY ") && !strings.HasPrefix(string(rerr), "MASTERDOWN ") {
			return
		}
		c.gen = 0
	}
	s.requery()
}

// sleepCtx sleeps for d and reports whether ctx is still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
