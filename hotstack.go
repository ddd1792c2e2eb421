package redispool

import (
	"time"
)

const (
	// hotIdleLimit is how long a connection may sit on the hot stack
	// before the flusher gives it back to the engine. Under load
	// connections come back within microseconds and never reach it;
	// a connection idle this long is idle in earnest, and eviction,
	// MinIdle and MaxConnIdleTime are the engine's business.
	hotIdleLimit = 100 * time.Millisecond

	// flushInterval is how often the flusher runs. It also checks for
	// abandoned connections then.
	flushInterval = 100 * time.Millisecond
)

// hotStack holds idle connections, already reset, that the engine
// counts as borrowed. It is a ring: connections are pushed on top and
// popped from the top (LIFO) or from the bottom (FIFO); the oldest are
// at the bottom, where the flusher takes them. It grows as needed up to
// max (MaxTotal), which it never needs to exceed.
type hotStack struct {
	ring  []*conn
	first int // index of the bottom
	n     int
	max   int
}

// push reports false when the stack holds max connections.
func (s *hotStack) push(c *conn) bool {
	if s.n == len(s.ring) {
		if s.n >= s.max {
			return false
		}
		s.grow()
	}
	s.ring[s.index(s.n)] = c
	s.n++
	return true
}

func (s *hotStack) grow() {
	ring := make([]*conn, min(max(2*len(s.ring), 16), s.max))
	for i := range s.n {
		ring[i] = s.ring[s.index(i)]
	}
	s.ring, s.first = ring, 0
}

// pop takes the top connection, or with fifo the bottom one, or
// returns nil.
func (s *hotStack) pop(fifo bool) *conn {
	if fifo {
		return s.popBottom()
	}
	if s.n == 0 {
		return nil
	}
	s.n--
	i := s.index(s.n)
	c := s.ring[i]
	s.ring[i] = nil
	return c
}

// bottom returns the oldest connection without taking it, or nil.
func (s *hotStack) bottom() *conn {
	if s.n == 0 {
		return nil
	}
	return s.ring[s.first]
}

func (s *hotStack) popBottom() *conn {
	if s.n == 0 {
		return nil
	}
	c := s.ring[s.first]
	s.ring[s.first] = nil
	s.first = s.index(1)
	s.n--
	return c
}

// index is the ring index of the i-th connection from the bottom.
func (s *hotStack) index(i int) int {
	i += s.first
	if i >= len(s.ring) {
		i -= len(s.ring)
	}
	return i
}

// flusher runs flush, and the check for abandoned connections, every
// flushInterval until the pool closes.
func (p *Pool) flusher() {
	defer p.bg.Done()
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			p.flush(now.Add(-hotIdleLimit))
			if p.cfg.AbandonedTimeout > 0 {
				p.reclaimAbandoned(time.Now())
			}
		}
	}
}

// flush gives the connections on the hot stack that have been idle
// since before cutoff back to the engine. With MaxIdle below MaxTotal it
// first closes idle connections beyond MaxIdle, which the engine's
// MinIdle refill, unaware of the hot stack, may have made.
func (p *Pool) flush(cutoff time.Time) {
	p.maintMu.Lock()
	defer p.maintMu.Unlock()
	p.mu.Lock()
	if p.closed || p.hot.n == 0 {
		p.mu.Unlock()
		return
	}
	surplus := 0
	if p.cfg.MaxIdle < p.cfg.MaxTotal {
		surplus = int(min(p.stats.open.Load()-int64(p.active)-int64(p.cfg.MaxIdle), int64(p.hot.n)))
	}
	buf := p.flushBuf[:0]
	for c := p.hot.bottom(); c != nil && (len(buf) < surplus || c.idleSince.Before(cutoff)); c = p.hot.bottom() {
		buf = append(buf, p.hot.popBottom())
	}
	p.moving += len(buf)
	p.mu.Unlock()

	for i, c := range buf {
		if i < surplus {
			c.reason = reasonSurplus
			p.invalidate(c)
		} else {
			p.returnToEngine(c)
		}
		buf[i] = nil
	}
	p.flushBuf = buf[:0]

	p.moved(len(buf))
}

// closeIdle closes every idle connection, on the hot stack and in the
// engine, recording reason, as when the server behind the pool has
// changed. Connections lent out are not affected.
func (p *Pool) closeIdle(reason destroyReason) {
	p.maintMu.Lock()
	defer p.maintMu.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	buf := p.flushBuf[:0]
	for c := p.hot.popBottom(); c != nil; c = p.hot.popBottom() {
		buf = append(buf, c)
	}
	p.moving += len(buf)
	p.mu.Unlock()

	for i, c := range buf {
		c.reason = reason
		p.invalidate(c)
		buf[i] = nil
	}
	p.flushBuf = buf[:0]

	p.moved(len(buf))

	p.clearEngine(reason)
}

// moved ends the transit of n connections taken off the hot stack, now
// in the engine or closed: their slots are free again, and as many
// waiters are woken to take them.
func (p *Pool) moved(n int) {
	p.mu.Lock()
	p.moving -= n
	woken := p.wakeLocked(n)
	p.mu.Unlock()
	woken.send(grant{})
}
