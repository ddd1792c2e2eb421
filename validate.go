package redispool

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"
)

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

// peekAfterIdle is how long a connection must have sat idle before a
// borrow peeks at its socket. Under load connections come back and go
// out again within microseconds, and the peek's system call then cost
// 5-7% of end-to-end throughput (the bench harness's liveness table
// before this threshold: 0.8-1.1µs of client CPU per GET). A close that
// lands in so short a window is no likelier to be caught than one that
// lands just after the peek: either way the command fails cleanly and
// the connection is closed.
const peekAfterIdle = 100 * time.Microsecond

// check decides whether an idle connection may be borrowed, cheapest
// test first: its age, then a peek at the socket after peekAfterIdle,
// and a PING round trip only after PingAfterIdle. (Its redigo Err() was
// nil when it was returned, and nothing uses an idle connection.) It
// returns reasonNone for a healthy connection, and for an unhealthy one
// the error that shows it (nil when a limit, not a fault, disqualifies
// it).
func (f *factory) check(ctx context.Context, c *conn, now, idleSince time.Time) (destroyReason, error) {
	if reason := f.expired(c, now, idleSince); reason != reasonNone {
		return reason, nil
	}
	idle := now.Sub(idleSince)
	if idle >= peekAfterIdle {
		if err := c.peek.check(); err != nil {
			return reasonUnhealthy, err
		}
	}
	if f.cfg.PingAfterIdle > 0 && idle >= f.cfg.PingAfterIdle {
		// The PING is a round trip on the borrower's behalf: it ends by
		// the borrower's deadline, and when its context is cancelled.
		if ctx == nil {
			ctx = context.Background()
		}
		timeout := f.cfg.CheckTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(dl))
		}
		if err := ctx.Err(); err != nil {
			return reasonBroken, fmt.Errorf("PING after %v idle: %w", idle.Round(time.Millisecond), err)
		}
		if timeout <= 0 {
			return reasonBroken, fmt.Errorf("PING after %v idle: %w", idle.Round(time.Millisecond), context.DeadlineExceeded)
		}
		stop := context.AfterFunc(ctx, c.interrupt)
		_, err := c.rc.DoWithTimeout(timeout, "PING")
		if !stop() {
			// Interrupted: a late PONG may still come; never reuse it.
			return reasonBroken, fmt.Errorf("PING after %v idle: %w", idle.Round(time.Millisecond), ctx.Err())
		}
		if err != nil {
			return reasonUnhealthy, fmt.Errorf("PING after %v idle: %w", idle.Round(time.Millisecond), err)
		}
	}
	return reasonNone, nil
}

// expired reports whether c has outlived MaxConnLifetime or sat idle
// past MaxConnIdleTime, or belongs to an old master.
func (f *factory) expired(c *conn, now, idleSince time.Time) destroyReason {
	switch {
	case f.sentinel != nil && c.gen != f.sentinel.gen():
		// Dialed to a master the pool has since left: never handed out.
		return reasonFailover
	case f.cfg.MaxConnLifetime > 0 && now.Sub(c.created) >= f.cfg.MaxConnLifetime:
		return reasonLifetime
	case f.cfg.MaxConnIdleTime > 0 && now.Sub(idleSince) >= f.cfg.MaxConnIdleTime:
		return reasonIdle
	}
	return reasonNone
}
