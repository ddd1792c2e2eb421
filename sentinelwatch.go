package redispool

// The +switch-master subscriptions: one per Sentinel, each redialed
// with backoff, each announcement followed at once (announce, in
// sentinel.go) and checked by the next query (sentinelquery.go).

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

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
