package redispool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
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

// An answer is one Sentinel's reply to a query.
type answer struct {
	sentinel string
	pos      int    // the Sentinel's position in the order asked
	addr     string // the master it names; "" with err
	epoch    int64  // its config-epoch for the master, or -1
	err      error  // redis.ErrNil: the Sentinel does not know the master
}

// A candidate is an address for the master: one some Sentinel named,
// or the current master.
type candidate struct {
	addr    string
	votes   int    // Sentinels naming it
	first   int    // position of the first Sentinel naming it
	epoch   int64  // the highest config-epoch reported with it, or -1
	score   int64  // rank by config-epoch; see candidates
	role    rank   // what ROLE said, when asked
	checked string // what ROLE said, or why it could not, for logs
}

// rank orders what ROLE says of a candidate: a node that says it is no
// master cannot be one, but a node that could not be asked might be.
type rank int8

const (
	roleNotMaster rank = iota
	roleUnknown
	roleMaster
)

// better reports whether a is a better master than b: ROLE first, then
// the config-epoch, then the number of Sentinels naming it, then the
// order of the Sentinels.
func (a *candidate) better(b *candidate) bool {
	switch {
	case a.role != b.role:
		return a.role > b.role
	case a.score != b.score:
		return a.score > b.score
	case a.votes != b.votes:
		return a.votes > b.votes
	}
	return a.first < b.first
}

// resolve asks every Sentinel for the master and makes the best answer
// the master. When the answers, with the current master, name a single
// address, it is taken as it is: the dial's ROLE check verifies it.
// Otherwise the addresses are asked for their ROLE, the best by
// candidate.better wins, and the Sentinels that named another one move
// to the end of the order. The result is dropped if the master changed
// meanwhile (an announcement, which asks for a query of its own).
func (s *sentinelClient) resolve(ctx context.Context) error {
	s.mu.Lock()
	order := append([]string(nil), s.order...)
	s.mu.Unlock()
	m0 := s.cur.Load()

	return s.settle(ctx, m0, order, s.askAll(ctx, order))
}

// settle is resolve once the Sentinels have answered.
func (s *sentinelClient) settle(ctx context.Context, m0 *master, order []string, answers []answer) error {
	cands, err := s.candidates(m0, order, answers)
	if err != nil {
		return err
	}
	// Ranked with every role unknown yet; the first that ROLE confirms
	// as a master wins, as none below it can beat it. Only when it is
	// not are the others asked: after a genuine +switch-master the old
	// master, which a Sentinel that has not caught up may still name,
	// gets no dial.
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].better(cands[j]) })
	checked := len(cands) > 1
	if checked {
		s.checkRoles(ctx, cands[:1])
		if cands[0].role == roleUnknown && ctx.Err() == nil {
			// A ROLE that could not be asked proves nothing, and right
			// after a failover the best-ranked address is the new
			// master, busy with its promotion, while the old one still
			// says master until the Sentinels demote it: one slow
			// answer must not send the pool back to it. Ask again.
			s.checkRoles(ctx, cands[:1])
		}
		if cands[0].role != roleMaster {
			s.checkRoles(ctx, cands[1:])
		}
	}
	best := cands[0]
	for _, c := range cands[1:] {
		if c.better(best) {
			best = c
		}
	}

	// Those that named best first, in their order; refuted ones last.
	named := make([]string, len(order))
	for _, a := range answers {
		if a.err == nil {
			named[a.pos] = a.addr
		}
	}
	var front, middle, back []string
	for i, a := range order {
		switch {
		case named[i] == best.addr:
			front = append(front, a)
		case named[i] != "" && checked:
			back = append(back, a)
			if s.log != nil {
				role := ""
				for _, c := range cands {
					if c.addr == named[i] {
						role = c.checked
					}
				}
				s.log.LogAttrs(ctx, slog.LevelWarn, "redispool: Sentinel answer refuted",
					slog.String("master", s.cfg.MasterName), slog.String("sentinel", a),
					slog.String("named", named[i]), slog.String("role", role),
					slog.String("chosen", best.addr), slog.String("chosen_role", best.checked))
			}
		default:
			middle = append(middle, a)
		}
	}
	s.mu.Lock()
	s.order = append(append(front, middle...), back...)
	if m0 != nil && best.addr != m0.addr {
		for _, c := range cands {
			if c.addr == m0.addr && (m0.announced || c.role == roleNotMaster) {
				s.refute(m0.addr)
			}
		}
	}
	s.mu.Unlock()

	s.choose(m0, best)
	return nil
}

// refute records that a query refuted addr, and forgets those refuted
// longer than refutedFor ago. s.mu is held.
func (s *sentinelClient) refute(addr string) {
	now := time.Now()
	for a, at := range s.refuted {
		if now.Sub(at) >= refutedFor {
			delete(s.refuted, a)
		}
	}
	if s.refuted == nil {
		s.refuted = make(map[string]time.Time)
	}
	s.refuted[addr] = now
}

// candidates gathers the addresses the answers name, with the current
// master m0 (if any) among them, each scored by config-epoch. An
// announced master scores at least just above the highest epoch the
// pool knew when it heard the announcement: a Sentinel that has not yet
// heard of that failover ranks below it, one that knows of a later
// failover above. A config-epoch nobody reported scores lowest. It fails
// when no Sentinel named a master.
func (s *sentinelClient) candidates(m0 *master, order []string, answers []answer) ([]*candidate, error) {
	var cands []*candidate
	find := func(addr string) *candidate {
		for _, c := range cands {
			if c.addr == addr {
				return c
			}
		}
		c := &candidate{addr: addr, first: len(order), epoch: -1, role: roleUnknown, checked: "not asked"}
		cands = append(cands, c)
		return c
	}
	var unknown []string
	var errs []error
	for _, a := range answers {
		switch {
		case a.err == nil:
			c := find(a.addr)
			c.votes++
			c.first = min(c.first, a.pos)
			c.epoch = max(c.epoch, a.epoch)
		case errors.Is(a.err, redis.ErrNil):
			unknown = append(unknown, a.sentinel)
		default:
			errs = append(errs, a.err)
		}
	}
	switch {
	case len(cands) == 0 && len(unknown) > 0:
		return nil, fmt.Errorf("redispool: master %q is unknown to Sentinels %s (asked %s)",
			s.cfg.MasterName, strings.Join(unknown, ", "), strings.Join(order, ", "))
	case len(cands) == 0:
		return nil, fmt.Errorf("%w for master %q (asked %s): %w",
			ErrNoSentinel, s.cfg.MasterName, strings.Join(order, ", "), errors.Join(errs...))
	}
	for _, c := range cands {
		c.score = 2 * (c.epoch + 1)
	}
	if m0 != nil {
		c := find(m0.addr)
		own := 2 * (m0.epoch + 1)
		if m0.announced {
			own = 2*(m0.known+1) + 1
		}
		c.score = max(c.score, own)
	}
	return cands, nil
}

// checkRoles asks each candidate for its ROLE, all at once.
func (s *sentinelClient) checkRoles(ctx context.Context, cands []*candidate) {
	if s.roleOf == nil {
		return
	}
	var wg sync.WaitGroup
	for _, c := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			role, err := s.roleOf(ctx, c.addr)
			switch {
			case err != nil:
				c.role, c.checked = roleUnknown, err.Error()
			case role == "master":
				c.role, c.checked = roleMaster, role
			default:
				c.role, c.checked = roleNotMaster, role
			}
		}()
	}
	wg.Wait()
}

// choose makes c the master, unless the master is no longer m0.
func (s *sentinelClient) choose(m0 *master, c *candidate) {
	s.mu.Lock()
	if s.cur.Load() != m0 {
		s.mu.Unlock()
		return
	}
	delete(s.refuted, c.addr) // a query names it: the next announcement of it is news again
	next := &master{addr: c.addr, gen: 1, epoch: c.epoch, known: c.epoch}
	if m0 != nil {
		next.known = max(m0.known, m0.epoch, c.epoch)
		switch {
		case m0.addr != c.addr:
			next.gen = m0.gen + 1
		case c.votes == 0:
			s.mu.Unlock()
			return // the current master, which no Sentinel named: as it was
		default:
			next.gen = m0.gen
			next.epoch = max(m0.epoch, c.epoch)
		}
	}
	s.cur.Store(next)
	s.mu.Unlock()
	if m0 == nil || m0.addr != c.addr {
		s.changed(m0, c.addr, "query")
	}
}

// askAll asks every Sentinel at once, each under Timeout, and
// returns their answers. It stops waiting once every Sentinel answered,
// or once more than half of them named one address and none another:
// one hung Sentinel then costs nothing.
func (s *sentinelClient) askAll(ctx context.Context, order []string) []answer {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan answer, len(order))
	for i, a := range order {
		go func() {
			addr, epoch, err := s.askOne(ctx, a)
			ch <- answer{sentinel: a, pos: i, addr: addr, epoch: epoch, err: err}
		}()
	}
	answers := make([]answer, 0, len(order))
	votes := make(map[string]int)
	settled := false
	for range order {
		a := <-ch
		answers = append(answers, a)
		if settled || a.err != nil {
			continue
		}
		votes[a.addr]++
		if len(votes) == 1 && 2*votes[a.addr] > len(order) {
			settled = true
			cancel() // the others end at once: ctx closes their connections
		}
	}
	return answers
}

// askOne asks one Sentinel, under Timeout, with GET-MASTER-ADDR-BY-NAME
// and, pipelined with it, SENTINEL MASTER for the config-epoch. An
// unknown master is redis.ErrNil. A Sentinel that refuses SENTINEL
// MASTER (an ACL user without +sentinel|master) answers with the
// address alone, and epoch -1.
func (s *sentinelClient) askOne(ctx context.Context, a string) (string, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	c, err := s.dialSentinel(ctx, a)
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
		err = fmt.Errorf("replied %q; want host and port", hp)
	}
	var addr string
	if err == nil {
		addr, err = nodeAddr(hp[0], hp[1])
	}
	if err != nil {
		return "", 0, s.sentinelError(ctx, a, fmt.Errorf("GET-MASTER-ADDR-BY-NAME %s: %w", s.cfg.MasterName, err))
	}
	info, err := redis.StringMap(c.Receive())
	var refused redis.Error
	switch {
	case errors.As(err, &refused):
		return addr, -1, nil
	case err != nil:
		return "", 0, s.sentinelError(ctx, a, err)
	}
	epoch, err := strconv.ParseInt(info["config-epoch"], 10, 64)
	if err != nil || epoch < 0 {
		epoch = -1
	}
	return addr, epoch, nil
}

// nodeAddr is host:port for a data node's address as a Sentinel gives
// it, in an answer or a +switch-master, or an error if it is none: a
// port out of range would fail every dial until BorrowTimeout, and an
// empty host would dial the local host, which no Sentinel named.
func nodeAddr(host, port string) (string, error) {
	return listedAddr("master address", net.JoinHostPort(host, port), "")
}

// dialSentinel connects to a Sentinel and authenticates. ctx bounds the connect
// and the AUTH, and every later read until the caller stops it: ctx
// closes the connection when it ends, so that a timeout reads as ctx's
// error. Writes are bounded by Timeout.
func (s *sentinelClient) dialSentinel(ctx context.Context, a string) (redis.Conn, error) {
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
	// A Sentinel's replies pass the data nodes' reply guard: a hostile
	// or broken one must not make redigo allocate gigabytes either.
	nc = &guardConn{Conn: nc, addr: a}
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
	c, err := s.dialSentinel(dialCtx, a)
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
			if len(f) != 5 || f[0] != s.cfg.MasterName {
				continue
			}
			addr, err := nodeAddr(f[3], f[4])
			if err != nil {
				if s.log != nil {
					s.log.LogAttrs(s.ctx, slog.LevelWarn, "redispool: malformed +switch-master ignored",
						slog.String("master", s.cfg.MasterName), slog.String("sentinel", a), slog.String("error", err.Error()))
				}
				continue
			}
			s.announce(addr, "+switch-master from "+a)
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
