// Package contender defines what the end-to-end benchmarks compare:
// redispool and the pools a user would pick instead, each set up against
// a Redis address, and the workloads they run.
package contender

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redispool/redispool"
)

// PoolSize is the number of connections every pooled contender may
// hold.
const PoolSize = 16

// The timeouts every contender is given, redispool's defaults, so that
// all of them pay for socket deadlines alike.
const (
	dialTimeout  = redispool.DefaultDialTimeout
	readTimeout  = redispool.DefaultReadTimeout
	writeTimeout = redispool.DefaultWriteTimeout
)

// A Contender is one way to talk to Redis.
type Contender struct {
	Name     string // short, for tables and sub-benchmark names
	Describe string // its configuration, for the report

	// New sets the contender up against addr for the given number of
	// worker goroutines. It need not connect.
	New func(ctx context.Context, addr string, workers int) (Client, error)
}

// A Client is a contender set up for one run.
type Client interface {
	// Op returns one worker's operation for w: borrow, run w, return.
	// Each worker calls its operation from one goroutine at a time.
	Op(w Workload, worker int) func(context.Context) error
	Close() error
}

// The contenders of the end-to-end comparison, in report order.
var (
	Redispool = RedispoolWith("redispool",
		fmt.Sprintf("redispool, defaults (socket peek on every borrow, PING after %v idle), MaxTotal %d", redispool.DefaultPingAfterIdle, PoolSize),
		func(*redispool.Config) {})
	RedispoolDo = Contender{
		Name:     "redispool.Do",
		Describe: fmt.Sprintf("redispool Pool.Do(ctx, cmd, args...), defaults, MaxTotal %d; MULTI and PIPELINE, which Do cannot send, borrow as redispool does", PoolSize),
		New: func(ctx context.Context, addr string, _ int) (Client, error) {
			p, err := redispool.New(ctx, redispool.Config{Addr: addr, MaxTotal: PoolSize})
			if err != nil {
				return nil, err
			}
			return poolDo{p: p, borrowing: &borrowing{get: p.GetContext, close: p.Close}}, nil
		},
	}
	RedispoolPing = RedispoolWith("redispool+PING",
		"redispool with PingAfterIdle 1ns: a PING on every borrow, as JedisPool with testOnBorrow",
		func(c *redispool.Config) { c.PingAfterIdle = time.Nanosecond })
	Redigo = Contender{
		Name:     "redigo",
		Describe: fmt.Sprintf("redigo redis.Pool, Wait, MaxActive %d, MaxIdle %d, no TestOnBorrow", PoolSize, PoolSize),
		New: func(ctx context.Context, addr string, _ int) (Client, error) {
			return newRedigo(addr, nil), nil
		},
	}
	RedigoTestOnBorrow = Contender{
		Name:     "redigo+TOB",
		Describe: "redigo redis.Pool as above, with the TestOnBorrow idiom of its docs (PING if idle over a minute)",
		New: func(ctx context.Context, addr string, _ int) (Client, error) {
			return newRedigo(addr, func(c redis.Conn, t time.Time) error {
				if time.Since(t) < time.Minute {
					return nil
				}
				_, err := c.Do("PING")
				return err
			}), nil
		},
	}
	GoRedis = Contender{
		Name:     "go-redis",
		Describe: fmt.Sprintf("go-redis v9 Client, Protocol 2 (RESP2), PoolSize %d, pipelines on the same pool (PipelinePoolSize -1)", PoolSize),
		New: func(ctx context.Context, addr string, _ int) (Client, error) {
			return newGoRedis(addr), nil
		},
	}
	Raw = Contender{
		Name:     "raw",
		Describe: "one dedicated redigo connection per goroutine, no pool: the ceiling",
		New:      newRaw,
	}
)

// All are the contenders of the end-to-end comparison, in report order.
var All = []Contender{Redispool, RedispoolDo, RedispoolPing, Redigo, RedigoTestOnBorrow, GoRedis, Rueidis, Raw}

// Baseline is the contender ratios are taken against.
var Baseline = Redigo

// The redispool variants of the liveness measurement.
var (
	RedispoolNoPeek = RedispoolWith("redispool-nopeek",
		"redispool, defaults, but dialled through a net.Conn wrapper that hides syscall.Conn: no socket peek",
		func(c *redispool.Config) { c.Dial = dialNoPeek })
	RedispoolNoPing = RedispoolWith("redispool-noping",
		"redispool, defaults, but PingAfterIdle -1 (never PING)",
		func(c *redispool.Config) { c.PingAfterIdle = -1 })
	RedispoolNoCheck = RedispoolWith("redispool-nocheck",
		"redispool with neither check: no socket peek, PingAfterIdle -1",
		func(c *redispool.Config) { c.Dial = dialNoPeek; c.PingAfterIdle = -1 })
)

// Liveness are the contenders of the liveness-check measurement: the
// default first, the one with no check at all last.
var Liveness = []Contender{Redispool, RedispoolNoPeek, RedispoolNoPing, RedispoolNoCheck}

// Find returns the contenders named in the comma-separated list names.
func Find(names string) ([]Contender, error) {
	known := append(append([]Contender(nil), All...), Liveness[1:]...)
	var out []Contender
	for _, name := range strings.Split(names, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, c := range known {
			if strings.EqualFold(c.Name, name) {
				out = append(out, c)
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown contender %q", name)
		}
	}
	return out, nil
}

// RedispoolWith returns a redispool contender whose Config is the
// default for PoolSize connections, changed by edit.
func RedispoolWith(name, describe string, edit func(*redispool.Config)) Contender {
	return Contender{
		Name:     name,
		Describe: describe,
		New: func(ctx context.Context, addr string, _ int) (Client, error) {
			cfg := redispool.Config{Addr: addr, MaxTotal: PoolSize}
			edit(&cfg)
			p, err := redispool.New(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return &borrowing{get: p.GetContext, close: p.Close}, nil
		},
	}
}

// noPeekConn hides the socket's syscall.Conn, the interface redispool
// needs to peek at it: with it, the borrow check is the socket peek;
// without it, the check has nothing to look at.
type noPeekConn struct{ net.Conn }

func dialNoPeek(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{KeepAlive: 5 * time.Minute}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return noPeekConn{c}, nil
}

// borrowing is a pool with redigo's interface: borrow, use, Close.
type borrowing struct {
	get   func(context.Context) (redis.Conn, error)
	close func() error
}

func (b *borrowing) Op(w Workload, worker int) func(context.Context) error {
	run := redigoOp(w, worker)
	get := b.get
	return func(ctx context.Context) error {
		c, err := get(ctx)
		if err != nil {
			return err
		}
		err = run(c)
		if cerr := c.Close(); err == nil {
			err = cerr
		}
		return err
	}
}

func (b *borrowing) Close() error { return b.close() }

// poolDo sends the one-command workloads through Pool.Do, which
// borrows, sends and returns in one call.
type poolDo struct {
	p *redispool.Pool
	*borrowing
}

func (d poolDo) Op(w Workload, worker int) func(context.Context) error {
	k := newKeys(worker)
	p := d.p
	switch w {
	case Get:
		return func(ctx context.Context) error {
			v, err := redis.Bytes(p.Do(ctx, "GET", k.get...))
			if err == nil && len(v) != ValueSize {
				err = errShortValue
			}
			return err
		}
	case Set:
		return func(ctx context.Context) error {
			_, err := p.Do(ctx, "SET", k.set...)
			return err
		}
	case Ping:
		return func(ctx context.Context) error {
			_, err := p.Do(ctx, "PING")
			return err
		}
	}
	return d.borrowing.Op(w, worker)
}

func dialRedigo(ctx context.Context, addr string) (redis.Conn, error) {
	return redis.DialContext(ctx, "tcp", addr,
		redis.DialConnectTimeout(dialTimeout),
		redis.DialReadTimeout(readTimeout),
		redis.DialWriteTimeout(writeTimeout),
	)
}

func newRedigo(addr string, testOnBorrow func(redis.Conn, time.Time) error) Client {
	p := &redis.Pool{
		MaxActive:    PoolSize,
		MaxIdle:      PoolSize,
		Wait:         true,
		TestOnBorrow: testOnBorrow,
		DialContext:  func(ctx context.Context) (redis.Conn, error) { return dialRedigo(ctx, addr) },
	}
	return &borrowing{get: p.GetContext, close: p.Close}
}

type goRedis struct{ rdb *goredis.Client }

func newGoRedis(addr string) Client {
	return goRedis{goredis.NewClient(&goredis.Options{
		Addr:             addr,
		Protocol:         2,
		PoolSize:         PoolSize,
		PipelinePoolSize: -1,
		DialTimeout:      dialTimeout,
		ReadTimeout:      readTimeout,
		WriteTimeout:     writeTimeout,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})}
}

func (g goRedis) Op(w Workload, worker int) func(context.Context) error {
	return goredisOp(g.rdb, w, worker)
}

func (g goRedis) Close() error { return g.rdb.Close() }

// raw gives each worker a connection of its own.
type raw struct {
	addr  string
	conns []redis.Conn
}

func newRaw(ctx context.Context, addr string, workers int) (Client, error) {
	r := &raw{addr: addr, conns: make([]redis.Conn, workers)}
	for i := range r.conns {
		c, err := dialRedigo(ctx, addr)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.conns[i] = c
	}
	return r, nil
}

func (r *raw) Op(w Workload, worker int) func(context.Context) error {
	run := redigoOp(w, worker)
	return func(ctx context.Context) error {
		c := r.conns[worker]
		if c.Err() != nil {
			// Broken by an earlier error: dial a replacement.
			c.Close()
			nc, err := dialRedigo(ctx, r.addr)
			if err != nil {
				return err
			}
			r.conns[worker], c = nc, nc
		}
		return run(c)
	}
}

func (r *raw) Close() error {
	for _, c := range r.conns {
		if c != nil {
			c.Close()
		}
	}
	return nil
}
