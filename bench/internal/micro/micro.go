// Package micro holds the network-free borrow-and-return benchmark:
// redispool against bare go-commons-pool, the engine under it, and
// against redigo's redis.Pool. Connections come from fake dialers, and
// the operation measured is a borrow and a return, nothing else, so the
// numbers are the pools' own cost.
package micro

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	pool "github.com/jolestar/go-commons-pool/v2"

	"github.com/redispool/redispool"
	"github.com/redispool/redispool/bench/internal/parallel"
)

// PoolSize is the number of connections (objects) every pool holds.
const PoolSize = 16

// Concurrencies are the goroutine counts of the benchmark.
var Concurrencies = []int{1, 2, 4, 8, 16, 32, 64}

// A Subject is a pool under test.
type Subject struct {
	Name     string
	Describe string

	// Open makes the pool and returns its borrow-and-return operation,
	// safe for concurrent use, and a function that closes the pool.
	Open func() (op func(context.Context) error, closePool func(), err error)
}

// The subjects, in report order. Baseline is the one overhead is
// measured against.
var (
	Redigo = Subject{
		Name:     "redigo",
		Describe: "redigo redis.Pool, Wait, MaxActive 16, MaxIdle 16, no TestOnBorrow; a fake net.Conn",
		Open:     openRedigo,
	}
	CommonsPool = Subject{
		Name: "commons-pool",
		Describe: "bare go-commons-pool ObjectPool with redispool's engine settings (MaxTotal = MaxIdle 16, LIFO, " +
			"TestOnBorrow with a trivial validate, evictor every 30s), but BlockWhenExhausted, as nothing waits in front of it; a trivial factory",
		Open: func() (func(context.Context) error, func(), error) { return openCommons(true) },
	}
	CommonsPoolSem = Subject{
		Name: "commons-pool+sem",
		Describe: "the same ObjectPool with exactly redispool's engine settings (BlockWhenExhausted false) " +
			"behind a channel semaphore of 16 tokens, as redispool borrowed before its hot stack took the engine off the path of a busy pool",
		Open: func() (func(context.Context) error, func(), error) { return openCommons(false) },
	}
	Redispool = Subject{
		Name:     "redispool",
		Describe: "redispool, defaults, MaxTotal 16; a fake net.Conn, so no socket peek",
		Open:     func() (func(context.Context) error, func(), error) { return openRedispool(dialFake) },
	}
	RedispoolPeek = Subject{
		Name:     "redispool+peek",
		Describe: "redispool, defaults, MaxTotal 16; connections are one end of a unix socketpair, so every borrow peeks at the socket (one recvfrom)",
		Open:     func() (func(context.Context) error, func(), error) { return openRedispool(dialSocketpair) },
	}
)

// Subjects are all the subjects, in report order.
var Subjects = []Subject{Redigo, CommonsPool, CommonsPoolSem, Redispool, RedispoolPeek}

// Baseline is the subject whose cost the adapter overhead is measured
// against.
var Baseline = CommonsPool

// fakeConn is a net.Conn that is never read or written: the benchmark
// only borrows and returns.
type fakeConn struct{}

var _ net.Conn = fakeConn{}

var errFake = errors.New("micro: fake connection used for I/O")

func (fakeConn) Read([]byte) (int, error)         { return 0, errFake }
func (fakeConn) Write([]byte) (int, error)        { return 0, errFake }
func (fakeConn) Close() error                     { return nil }
func (fakeConn) LocalAddr() net.Addr              { return fakeAddr{} }
func (fakeConn) RemoteAddr() net.Addr             { return fakeAddr{} }
func (fakeConn) SetDeadline(time.Time) error      { return nil }
func (fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (fakeConn) SetWriteDeadline(time.Time) error { return nil }

type fakeAddr struct{}

func (fakeAddr) Network() string { return "fake" }
func (fakeAddr) String() string  { return "fake" }

// pongConn is a fakeConn that answers the one PING redispool's dial
// sends when it has nothing else to send. The dial uses it from one
// goroutine.
type pongConn struct {
	fakeConn
	pinged bool
	ponged bool
}

func (c *pongConn) Write(b []byte) (int, error) {
	if c.pinged || !bytes.Contains(b, []byte("PING")) {
		return 0, errFake
	}
	c.pinged = true
	return len(b), nil
}

func (c *pongConn) Read(b []byte) (int, error) {
	if !c.pinged || c.ponged {
		return 0, errFake
	}
	c.ponged = true
	return copy(b, "+PONG\r\n"), nil
}

func dialFake(context.Context, string, string) (net.Conn, error) { return &pongConn{}, nil }

func openRedigo() (func(context.Context) error, func(), error) {
	p := &redis.Pool{
		MaxActive: PoolSize,
		MaxIdle:   PoolSize,
		Wait:      true,
		DialContext: func(context.Context) (redis.Conn, error) {
			return redis.NewConn(fakeConn{}, 0, 0), nil
		},
	}
	op := func(ctx context.Context) error {
		c, err := p.GetContext(ctx)
		if err != nil {
			return err
		}
		return c.Close()
	}
	return op, func() { p.Close() }, nil
}

func openRedispool(dial func(context.Context, string, string) (net.Conn, error)) (func(context.Context) error, func(), error) {
	p, err := redispool.New(context.Background(), redispool.Config{MaxTotal: PoolSize, Dial: dial})
	if err != nil {
		return nil, nil, err
	}
	op := func(ctx context.Context) error {
		c, err := p.GetContext(ctx)
		if err != nil {
			return err
		}
		return c.Close()
	}
	return op, func() { p.Close() }, nil
}

// object is what the trivial factory makes: one pointer per object, as
// the engine requires.
type object struct{ _ int }

// trivialFactory is the cheapest PooledObjectFactory: no I/O, a validate
// that says yes.
type trivialFactory struct{}

var _ pool.PooledObjectFactory = trivialFactory{}

func (trivialFactory) MakeObject(context.Context) (*pool.PooledObject, error) {
	return pool.NewPooledObject(&object{}), nil
}
func (trivialFactory) DestroyObject(context.Context, *pool.PooledObject) error  { return nil }
func (trivialFactory) ValidateObject(context.Context, *pool.PooledObject) bool  { return true }
func (trivialFactory) ActivateObject(context.Context, *pool.PooledObject) error { return nil }
func (trivialFactory) PassivateObject(context.Context, *pool.PooledObject) error {
	return nil
}

// openCommons makes a bare ObjectPool with the settings redispool's
// engineConfig gives its engine, except BlockWhenExhausted when block is
// true. With block false the engine cannot wait, so a semaphore in front
// does the waiting, as redispool's does.
func openCommons(block bool) (func(context.Context) error, func(), error) {
	bg, cancel := context.WithCancel(context.Background())
	oc := pool.NewDefaultPoolConfig()
	oc.MaxTotal = PoolSize
	oc.MaxIdle = PoolSize
	oc.MinIdle = 0
	oc.LIFO = true
	oc.BlockWhenExhausted = block
	oc.TestOnBorrow = true
	oc.TestOnCreate = false
	oc.TestOnReturn = false
	oc.TestWhileIdle = false
	oc.TimeBetweenEvictionRuns = redispool.DefaultEvictionInterval
	oc.NumTestsPerEvictionRun = -1
	oc.EvictionContext = bg
	p := pool.NewObjectPool(bg, trivialFactory{}, oc)
	closePool := func() {
		cancel()
		p.Close(context.Background())
	}

	if block {
		op := func(ctx context.Context) error {
			o, err := p.BorrowObject(ctx)
			if err != nil {
				return err
			}
			return p.ReturnObject(ctx, o)
		}
		return op, closePool, nil
	}
	sem := make(chan struct{}, PoolSize)
	op := func(ctx context.Context) error {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-sem }()
		o, err := p.BorrowObject(ctx)
		if err != nil {
			return err
		}
		return p.ReturnObject(ctx, o)
	}
	return op, closePool, nil
}

// Benchmark returns the benchmark of s with conc goroutines, for b.Run
// and testing.Benchmark.
func Benchmark(s Subject, conc int) func(*testing.B) {
	return func(b *testing.B) {
		op, closePool, err := s.Open()
		if err != nil {
			b.Fatal(err)
		}
		defer closePool()
		ctx := context.Background()
		// Fill the pool first, so that dials are not measured.
		warm(ctx, op)
		parallel.Run(b, conc, func(int) func() error {
			return func() error { return op(ctx) }
		})
	}
}

// warm borrows PoolSize objects at once and returns them, so that the
// pool holds PoolSize idle objects.
func warm(ctx context.Context, op func(context.Context) error) {
	var wg sync.WaitGroup
	for range PoolSize {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				op(ctx)
			}
		}()
	}
	wg.Wait()
}
