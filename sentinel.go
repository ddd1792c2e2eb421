package redispool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
// The pool asks every Sentinel for the master's address when it first
// dials, checks with ROLE that every node it connects to is the master,
// and listens for +switch-master on every Sentinel. When the Sentinels
// disagree, or the node they name is no master, it asks ROLE of each
// address named and trusts, in this order, a node that says it is the
// master, the highest config-epoch, and the most Sentinels. When the
// master changes it closes its idle connections at once and closes
// borrowed ones when they are returned: no command is started on a
// connection to the old master once the pool knows of the switch.
//
// The Sentinel user needs +sentinel|get-master-addr-by-name, +subscribe,
// +ping and the channel &+switch-master; +sentinel|master is optional
// (it gives the config-epoch, which settles disagreements between
// Sentinels that can all reach a master).
type SentinelConfig struct {
	// MasterName is the name the Sentinels monitor the master under, as
	// in "sentinel monitor <name> ...". Required.
	MasterName string

	// Addrs are the Sentinels' addresses, host:port; a missing port
	// means 26379. At least one is required. All are asked at once; the
	// order breaks ties between answers, and a Sentinel whose answer was
	// refuted moves to the end.
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
	// Zero means 500ms: a Sentinel that does not answer promptly is left
	// out of that query.
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
	addr string
	gen  uint64

	// epoch is the highest config-epoch a Sentinel reported for addr
	// when the pool chose it, or -1 if none did: an announcement carries
	// none, and a Sentinel user without +sentinel|master cannot read it.
	epoch int64

	// known is the highest config-epoch the pool had accepted for any
	// master when it chose addr, or -1.
	known int64

	// announced marks a master taken from a +switch-master that no
	// Sentinel has named since.
	announced bool
}

// sentinelClient finds the master through the Sentinels and follows it:
// it is the pool's target (target.go) when Config.Sentinel is set. It
// owns one goroutine per Sentinel, subscribed to +switch-master, and one
// that polls while no subscription is alive and re-queries on request.
type sentinelClient struct {
	cfg      SentinelConfig // defaults applied, ports filled in
	stats    *counters
	log      *slog.Logger
	nodes    dataNodes
	onChange func() // the target's on-move callback: called, outside any lock, after the master changed

	// roleOf dials a data node as the pool does and returns its ROLE
	// ("master", "slave"...). Nil in unit tests: roles are then unknown.
	roleOf func(ctx context.Context, addr string) (string, error)

	cur atomic.Pointer[master] // nil until the Sentinels first answer

	ctx    context.Context // ended by close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine
	wake   chan struct{}  // asks the poller for a query now; buffered 1
	alive  atomic.Int32   // +switch-master subscriptions confirmed now

	mu     sync.Mutex // protects following fields
	order  []string   // Sentinels, for ties and messages; refuted ones last
	query  *queryCall // the query in flight, if any
	last   *queryCall // the last query that ended, if any
	closed bool

	// refuted holds, with when, the addresses a query took the master
	// away from (as no master, or as an announcement it did not
	// confirm) and those that said they are no master when dialed: an
	// announcement of one of them within refutedFor is checked by a
	// query before the pool follows it.
	refuted map[string]time.Time
}

// queryCall is a query of the Sentinels that concurrent callers share.
type queryCall struct {
	done  chan struct{}
	err   error     // set, with ended, before done is closed
	ended time.Time // when it ended
}

// dataNodes is how the Sentinel target reaches the data nodes: through
// the pool's own dial, under the pool's timeouts.
type dataNodes struct {
	dial          dialFunc      // dials a node as the pool dials every connection
	checkTimeout  time.Duration // bounds each ROLE (Config.CheckTimeout)
	borrowTimeout time.Duration // how long dial retries while the master is away (Config.BorrowTimeout); 0: until ctx ends
}

// newSentinel starts following the master sc names. nodes, nil in unit
// tests, is how the data nodes are dialed; onChange is called after the
// master changed.
func newSentinel(sc SentinelConfig, stats *counters, log *slog.Logger, nodes *dataNodes, onChange func()) *sentinelClient {
	// One Sentinel listed twice ("h" and "h:26379") would get two votes
	// and two subscriptions: each address is kept once, in first place.
	addrs := make([]string, 0, len(sc.Addrs))
	for _, a := range sc.Addrs {
		a, _ = listedAddr("Sentinel address", a, DefaultSentinelPort) // validated already
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	sc.Addrs = addrs
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
	if nodes != nil {
		s.nodes = *nodes
		s.roleOf = s.role
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

// refutedFor is how long an address a query refuted is not followed at
// once when announced again.
const refutedFor = 5 * time.Second

// announce makes addr, named by a +switch-master, the master. An
// announcement is news of a failover that queries may not show yet (the
// other Sentinels learn of it within seconds), so the pool follows it at
// once, and asks every Sentinel to check it: a target that is no master
// is undone by that query (see resolve). An announcement carries no
// config-epoch and none is made up for it: an invented one would make
// every honest answer look older and keep the pool on a bogus target.
//
// An address a query refuted within refutedFor is only checked: a
// Sentinel that keeps announcing a replica would otherwise make the
// pool leave its master, and close its connections, at every message.
// If the failover is genuine that query finds it.
func (s *sentinelClient) announce(addr, why string) {
	s.mu.Lock()
	old := s.cur.Load()
	if old != nil && old.addr == addr {
		s.mu.Unlock()
		return
	}
	if at, ok := s.refuted[addr]; ok && time.Since(at) < refutedFor {
		s.mu.Unlock()
		s.requery()
		return
	}
	next := &master{addr: addr, gen: 1, epoch: -1, known: -1, announced: true}
	if old != nil {
		next.gen = old.gen + 1
		next.known = max(old.known, old.epoch)
	}
	s.cur.Store(next)
	s.mu.Unlock()
	s.changed(old, addr, why)
	s.requery()
}

// changed reports a switch from old (nil for none) to addr.
func (s *sentinelClient) changed(old *master, addr, why string) {
	if old == nil {
		if s.log != nil {
			s.log.LogAttrs(context.Background(), slog.LevelInfo, "redispool: master found",
				slog.String("master", s.cfg.MasterName), slog.String("addr", addr), slog.String("by", why))
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
func (s *sentinelClient) refresh(ctx context.Context) error { return s.ask(ctx, false) }

// refreshPaced is refresh for the dials: within requeryCooldown of the
// end of a query it returns that query's outcome instead of asking
// again. Every borrow that finds the master down retries its dial and
// asks between tries; borrows that keep coming would otherwise query
// the Sentinels, a new connection to each, hundreds of times a second,
// at the moment they are busiest. The poller, which checks
// announcements, always asks.
func (s *sentinelClient) refreshPaced(ctx context.Context) error { return s.ask(ctx, true) }

func (s *sentinelClient) ask(ctx context.Context, paced bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrPoolClosed
	}
	call := s.query
	if call == nil && paced && s.last != nil && time.Since(s.last.ended) < requeryCooldown {
		err := s.last.err
		s.mu.Unlock()
		return err
	}
	if call == nil {
		call = &queryCall{done: make(chan struct{})}
		s.query = call
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := s.resolve(s.ctx)
			s.mu.Lock()
			s.query = nil
			call.err, call.ended = err, time.Now()
			s.last = call
			s.mu.Unlock()
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

// The target: addr and gen (above), and what follows.

// String describes the target for Pool.String.
func (s *sentinelClient) String() string {
	return fmt.Sprintf("Sentinel master %q at %s", s.cfg.MasterName, s.addr())
}

// dial dials the master: it resolves the master through the Sentinels
// if it is not known yet, dials it, and checks with ROLE that it is the
// master. A refused dial or a node that is not the master makes it ask
// every Sentinel again (which checks the ROLE of each address they name
// when they disagree) and retry, with backoff, until BorrowTimeout or
// ctx ends: nothing was sent, so a retry is safe, and during a failover
// it carries the borrow over the gap.
func (s *sentinelClient) dial(ctx context.Context) (*conn, uint64, error) {
	var deadline time.Time
	if s.nodes.borrowTimeout > 0 {
		deadline = time.Now().Add(s.nodes.borrowTimeout)
	}
	pause := 10 * time.Millisecond
	for {
		m := s.cur.Load()
		if m == nil {
			// The first dial: no Sentinel, or an unknown master, fails it.
			if err := s.refreshPaced(ctx); err != nil {
				return nil, 0, err
			}
			continue
		}
		c, err := s.nodes.dial(ctx, m.addr, false) // checkRole proves it
		if err == nil {
			err = s.checkRole(ctx, c, m.addr)
			if err == nil && s.cur.Load() != m {
				err = fmt.Errorf("redispool: master %q moved from %s during the dial", s.cfg.MasterName, m.addr)
			}
			if err == nil {
				return c, m.gen, nil
			}
			c.rc.Close()
		}
		if isAuthError(errorText(err)) || ctx.Err() != nil {
			return nil, 0, err
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return nil, 0, err
		}
		if !sleepCtx(ctx, pause) || !sleepCtx(s.ctx, 0) {
			return nil, 0, err
		}
		pause = min(2*pause, 200*time.Millisecond)
		s.refreshUntil(ctx, deadline) // a failure is this loop's next dial error
	}
}

// refreshUntil is refresh that stops waiting at deadline, if not zero:
// a query held up by a hung Sentinel, which waits out Timeout, must
// not keep a retrying dial past BorrowTimeout.
func (s *sentinelClient) refreshUntil(ctx context.Context, deadline time.Time) {
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	s.refreshPaced(ctx)
}

func errorText(err error) string {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return string(rerr)
	}
	return ""
}

// checkRole asks a newly dialed node for its ROLE, under CheckTimeout
// and ctx, and until close. Sentinel names the master it believes in;
// the node may have been demoted since, or restarted empty.
func (s *sentinelClient) checkRole(ctx context.Context, c *conn, addr string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	role, err := askRole(ctx, c, s.nodes.checkTimeout)
	switch {
	case err != nil:
		return fmt.Errorf("redispool: ROLE of %s, master %q: %w", addr, s.cfg.MasterName, err)
	case role != "master":
		s.mu.Lock()
		s.refute(addr)
		s.mu.Unlock()
		return fmt.Errorf("redispool: %s is a %s, not the master %q", addr, role, s.cfg.MasterName)
	}
	return nil
}

// role dials addr as the pool dials its master and returns its ROLE:
// how the Sentinels' answers are checked when they disagree.
func (s *sentinelClient) role(ctx context.Context, addr string) (string, error) {
	c, err := s.nodes.dial(ctx, addr, false)
	if err != nil {
		return "", err
	}
	defer c.rc.Close()
	return askRole(ctx, c, s.nodes.checkTimeout)
}

// askRole returns the first element of c's ROLE reply, asked within
// timeout and ctx. ctx's end closes c: a hung node must not hold Close,
// or a borrow whose ctx ended, for a whole CheckTimeout.
func askRole(ctx context.Context, c *conn, timeout time.Duration) (string, error) {
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	stop := context.AfterFunc(ctx, func() { c.nc.Close() })
	reply, err := redis.Values(c.rc.DoWithTimeout(timeout, "ROLE"))
	if !stop() {
		return "", ctx.Err() // c is closed, whatever the reply was
	}
	if err != nil {
		return "", err
	}
	if len(reply) == 0 {
		return "", errors.New("empty reply")
	}
	role, err := redis.String(reply[0], nil)
	if err != nil {
		return "", fmt.Errorf("reply %v: %w", reply, err)
	}
	return role, nil
}

// noteError looks at an error a command on a master connection returned.
// READONLY and MASTERDOWN replies say the node is no longer a usable
// master: the connection is to be closed when it is returned (as if of an
// old generation), and the Sentinels are asked again. An I/O error may
// mean the master died: the connection is closed anyway, and the
// Sentinels are asked again.
func (s *sentinelClient) noteError(err error) (retire bool) {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		if !strings.HasPrefix(string(rerr), "READONLY ") && !strings.HasPrefix(string(rerr), "MASTERDOWN ") {
			return false
		}
		retire = true
	}
	s.requery()
	return retire
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
