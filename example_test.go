package redispool_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
)

// startRedis stands in for a real server in these examples.
func startRedis() (addr string, stop func()) {
	s, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	return s.Addr(), s.Close
}

func Example() {
	addr, stop := startRedis()
	defer stop()
	ctx := context.Background()

	cfg, err := redispool.ParseURL("redis://" + addr + "/0?max_total=16&client_name=example")
	if err != nil {
		log.Fatal(err)
	}
	p, err := redispool.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	if err := p.Ping(ctx); err != nil { // fail fast at startup
		log.Fatal(err)
	}

	conn, err := p.GetContext(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close() // returns the connection to the pool
	if _, err := conn.Do("SET", "greeting", "hello"); err != nil {
		log.Fatal(err)
	}
	greeting, err := redis.String(conn.Do("GET", "greeting"))
	fmt.Println(greeting, err)
	// Output: hello <nil>
}

// Code written for redigo's *redis.Pool keeps working: Get never returns
// nil, and Close returns the connection.
func ExamplePool_Get() {
	addr, stop := startRedis()
	defer stop()
	p, err := redispool.New(context.Background(), redispool.Config{Addr: addr})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	conn := p.Get()
	defer conn.Close()
	n, err := redis.Int(conn.Do("INCR", "visits"))
	fmt.Println(n, err)
	// Output: 1 <nil>
}

func ExamplePool_Do() {
	addr, stop := startRedis()
	defer stop()
	ctx := context.Background()
	p, err := redispool.New(ctx, redispool.Config{Addr: addr})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	p.Do(ctx, "RPUSH", "queue", "a", "b")
	items, err := redis.Strings(p.Do(ctx, "LRANGE", "queue", 0, -1))
	fmt.Println(items, err)
	// Output: [a b] <nil>
}

// Blocking commands (BLPOP, BRPOP, XREAD BLOCK ...) wait on the server
// for longer than ReadTimeout allows. The one-shot Pool.Do (and
// Cluster.Do) reads their reply for as long as the command blocks, plus
// ReadTimeout, within ctx. A borrowed connection keeps ReadTimeout for
// every read, which a context deadline can shorten but never lengthen:
// give a blocking command its own read timeout there with
// redis.DoWithTimeout, a little longer than the command blocks for (0
// means no limit). WAIT and WAITAOF belong there too, on the connection
// that made the writes.
func Example_blockingCommand() {
	addr, stop := startRedis()
	defer stop()
	ctx := context.Background()
	p, err := redispool.New(ctx, redispool.Config{Addr: addr, ReadTimeout: 500 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	ctx10s, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	// Pool.Do waits the 1s BLPOP blocks for, and ReadTimeout (500ms)
	// more: nothing came, so the reply is nil.
	_, err = redis.Strings(p.Do(ctx10s, "BLPOP", "jobs", 1))
	fmt.Println(err == redis.ErrNil)

	conn, err := p.GetContext(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// On a borrowed connection, ReadTimeout: an i/o timeout after
	// 500ms, though BLPOP may block for 1s and the context allows ten.
	// The connection is closed: its late reply must not reach the next
	// borrower.
	_, err = redis.DoContext(conn, ctx10s, "BLPOP", "jobs", 1)
	fmt.Println(errors.Is(err, os.ErrDeadlineExceeded))
	conn.Close()

	go func() {
		time.Sleep(200 * time.Millisecond)
		p.Do(ctx, "RPUSH", "jobs", "job-1")
	}()
	conn, err = p.GetContext(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	// BLPOP blocks for up to 2s on the server; the read waits 1s longer.
	job, err := redis.Strings(redis.DoWithTimeout(conn, 3*time.Second, "BLPOP", "jobs", 2))
	fmt.Println(job, err)
	// Output:
	// true
	// true
	// [jobs job-1] <nil>
}

// A borrower that waits too long for a connection gets ErrPoolExhausted;
// when its context ended the wait, the error wraps the context's error
// too.
func ExamplePool_GetContext_exhausted() {
	addr, stop := startRedis()
	defer stop()
	p, err := redispool.New(context.Background(), redispool.Config{Addr: addr, MaxTotal: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	held := p.Get()
	defer held.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = p.GetContext(ctx)
	fmt.Println(errors.Is(err, redispool.ErrPoolExhausted), errors.Is(err, context.DeadlineExceeded))
	// Output: true true
}

func ExamplePool_Stats() {
	addr, stop := startRedis()
	defer stop()
	p, err := redispool.New(context.Background(), redispool.Config{Addr: addr, MaxTotal: 8})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	conn := p.Get()
	conn.Do("SELECT", 1) // undone on return
	conn.Close()
	conn = p.Get()
	conn.Do("MONITOR") // cannot be undone: the connection is closed on return
	conn.Close()

	s := p.Stats()
	fmt.Printf("active=%d idle=%d created=%d destroyed=%d (dirty %d)\n",
		s.Active, s.Idle, s.Created, s.Destroyed, s.DestroyedDirty)
	// Output: active=0 idle=0 created=1 destroyed=1 (dirty 1)
}

func ExampleParseURL() {
	cfg, err := redispool.ParseURL("rediss://app:s3cret@cache.internal:6380/2?max_total=32&borrow_timeout=250ms")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Addr, cfg.Username, cfg.DB, cfg.MaxTotal, cfg.BorrowTimeout, cfg.TLSConfig != nil)

	_, err = redispool.ParseURL("redis://app:s3cret@cache.internal:6380/2?max_totl=32")
	fmt.Println(err)
	// Output:
	// cache.internal:6380 app 2 32 250ms true
	// redispool: invalid URL "redis://app:xxxxx@cache.internal:6380/2?max_totl=32": parameter max_totl: unknown parameter
}

// Attach a slog.Logger to a pool to see its connections come and go, as
// the example CLI's --log-level debug does. Routine events are logged at
// Debug; connections closed as broken or unhealthy, and health-check
// and reset failures, at Info; dial failures at Warn. Here the time and
// the addresses, which change from run to run, are left out.
func ExampleConfig_logger() {
	srv, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "addr", "local":
				return slog.Attr{}
			}
			return a
		},
	}))

	ctx := context.Background()
	p, err := redispool.New(ctx, redispool.Config{
		Addr:    srv.Addr(),
		MaxIdle: 1,
		Logger:  logger,
	})
	if err != nil {
		log.Fatal(err)
	}

	// Two connections at once; only one may stay idle afterwards.
	c1, _ := p.GetContext(ctx)
	c2, _ := p.GetContext(ctx)
	c1.Close()
	c2.Close()
	p.Close()
	// Output:
	// level=DEBUG msg="redispool: connection created"
	// level=DEBUG msg="redispool: connection created"
	// level=DEBUG msg="redispool: connection closed" reason=surplus
	// level=DEBUG msg="redispool: connection closed" reason=closed
}

// A Config logs safely with any slog handler, JSON included: the
// password is redacted and the func and TLS fields say only whether they
// are set. Here the time and most fields are left out.
func ExampleConfig_LogValue() {
	cfg, err := redispool.ParseURL("rediss://app:s3cret@cache.internal:6380/2?max_total=32")
	if err != nil {
		log.Fatal(err)
	}
	shown := map[string]bool{"Addr": true, "Username": true, "Password": true, "DB": true, "TLS": true, "MaxTotal": true}
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || len(groups) > 0 && !shown[a.Key] {
				return slog.Attr{}
			}
			return a
		},
	}))
	logger.Info("starting", "redis", cfg)
	// Output:
	// {"level":"INFO","msg":"starting","redis":{"Addr":"cache.internal:6380","Username":"app","Password":"xxxxx","DB":2,"TLS":true,"MaxTotal":32}}
}

// A pool that finds its master through Redis Sentinel and follows it
// across failovers. The user info is the data nodes'; the Sentinels'
// own password is a parameter, redacted like every password.
func ExampleParseURL_sentinel() {
	cfg, err := redispool.ParseURL("redis+sentinel://:data-pw@10.0.0.1,10.0.0.2:26380,10.0.0.3/mymaster/2?sentinel_password=s3cret")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Sentinel.MasterName, cfg.Sentinel.Addrs, cfg.DB)
	fmt.Println(cfg.Sentinel)

	_, err = redispool.ParseURL("redis+sentinel://10.0.0.1/mymaster?sentinel_password=s3cret&sentinel_user=x")
	fmt.Println(err)
	// Output:
	// mymaster [10.0.0.1:26379 10.0.0.2:26380 10.0.0.3:26379] 2
	// redispool.SentinelConfig{MasterName:mymaster Addrs:[10.0.0.1:26379 10.0.0.2:26380 10.0.0.3:26379] Username: Password:xxxxx TLS:false Timeout:0s PollInterval:0s}
	// redispool: invalid URL "redis+sentinel://10.0.0.1/mymaster?sentinel_password=xxxxx&sentinel_user=x": parameter sentinel_user: unknown parameter
}
