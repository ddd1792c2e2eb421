package redispool

// The query of the Sentinels: every Sentinel is asked at once for the
// master (askAll), the answers are ranked — by the named node's own
// ROLE, then config-epoch, then how many Sentinels agree (candidate) —
// and the best becomes the master (settle, choose). The Sentinel
// client, its target and its polling are in sentinel.go; the
// +switch-master subscriptions in sentinelwatch.go.

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
	"time"

	"github.com/gomodule/redigo/redis"
)

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
