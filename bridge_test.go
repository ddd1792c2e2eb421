package redispool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

func TestRedigoPoolIsOneUnpooledPool(t *testing.T) {
	p, _ := miniPool(t, Config{})
	// Concurrent first calls, under -race: one *redis.Pool for all.
	const n = 8
	got := make([]*redis.Pool, n)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = p.RedigoPool()
		}()
	}
	wg.Wait()
	rp := got[0]
	for i, g := range got {
		if g != rp {
			t.Fatalf("call %d returned %p; call 0 returned %p", i, g, rp)
		}
	}
	if rp != p.RedigoPool() {
		t.Fatal("a later call returned another *redis.Pool")
	}
	if rp.MaxIdle != 0 || rp.MaxActive != 0 || rp.Wait || rp.IdleTimeout != 0 || rp.MaxConnLifetime != 0 ||
		rp.TestOnBorrow != nil || rp.TestOnBorrowContext != nil || rp.Dial == nil || rp.DialContext == nil {
		t.Fatalf("RedigoPool = %+v; want MaxIdle 0, MaxActive 0, Wait false, no checks, Dial and DialContext set", rp)
	}
}

func TestRedigoPoolBorrowsFromPool(t *testing.T) {
	p, _ := miniPool(t, Config{MaxTotal: 4})
	rp := p.RedigoPool()

	c := rp.Get()
	if _, err := c.Do("SET", "k", "v"); err != nil {
		t.Fatalf("SET through the bridge: %v", err)
	}
	c2, err := rp.GetContext(context.Background())
	if err != nil {
		t.Fatalf("GetContext: %v", err)
	}
	if got, want := p.Stats().Active, 2; got != want {
		t.Fatalf("pool Active = %d with two bridge connections; want %d", got, want)
	}
	if got := rp.ActiveCount(); got != 2 {
		t.Fatalf("bridge ActiveCount = %d; want 2", got)
	}
	if v, err := redis.String(c2.Do("GET", "k")); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v; want v", v, err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s := p.Stats()
	if s.Active != 0 || s.Idle != 2 || s.Created != 2 {
		t.Fatalf("pool Stats after Close = %+v; want Active 0, Idle 2, Created 2: the connections back in the pool", s)
	}
	if rp.ActiveCount() != 0 || rp.IdleCount() != 0 {
		t.Fatalf("bridge ActiveCount %d, IdleCount %d after Close; want 0, 0", rp.ActiveCount(), rp.IdleCount())
	}
	// The next borrow reuses one: the bridge dialed nothing of its own.
	c = rp.Get()
	if _, err := c.Do("PING"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if s := p.Stats(); s.Created != 2 {
		t.Fatalf("Created = %d after a third bridge borrow; want 2 (reused)", s.Created)
	}
}

func TestRedigoPoolResetsSessionState(t *testing.T) {
	p, _ := miniPool(t, Config{MaxTotal: 1})
	rp := p.RedigoPool()
	c := rp.Get()
	for _, cmd := range [][]any{{"SELECT", 3}, {"MULTI"}, {"SET", "k", "v"}} {
		if _, err := c.Do(cmd[0].(string), cmd[1:]...); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	c.Close()
	c = rp.Get()
	defer c.Close()
	// Back on DB 0 and out of MULTI: the SET never ran.
	if n, err := redis.Int(c.Do("EXISTS", "k")); err != nil || n != 0 {
		t.Fatalf("EXISTS k = %d, %v; want 0 (the transaction discarded)", n, err)
	}
	if _, err := c.Do("SELECT", 3); err != nil {
		t.Fatal(err)
	}
	if n, err := redis.Int(c.Do("EXISTS", "k")); err != nil || n != 0 {
		t.Fatalf("EXISTS k on db 3 = %d, %v; want 0", n, err)
	}
}

func TestRedigoPoolCloseLeavesPoolOpen(t *testing.T) {
	p, _ := miniPool(t, Config{})
	rp := p.RedigoPool()
	held := rp.Get()
	if _, err := held.Do("PING"); err != nil {
		t.Fatal(err)
	}
	if err := rp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Get().Do("PING"); err == nil {
		t.Fatal("Get on the closed bridge worked; want redigo's get on closed pool")
	}
	// A connection borrowed before still works and goes back to p.
	if _, err := held.Do("PING"); err != nil {
		t.Fatalf("PING on a connection borrowed before the bridge's Close: %v", err)
	}
	held.Close()
	if s := p.Stats(); s.Active != 0 || s.Idle != 1 {
		t.Fatalf("Stats = %+v; want the connection idle in p", s)
	}
	if err := p.Ping(context.Background()); err != nil {
		t.Fatalf("p.Ping after the bridge's Close: %v", err)
	}
}

// Every exhaustion error matches redigo's ErrPoolExhausted as well as
// ours, borrowed directly and through the bridge.
func TestExhaustionMatchesRedigoErrPoolExhausted(t *testing.T) {
	timeoutPool, _ := miniPool(t, Config{MaxTotal: 1, BorrowTimeout: 20 * time.Millisecond})
	failFastPool, _ := miniPool(t, Config{MaxTotal: 1, FailFast: true})
	// Its Get and the bridge's Get borrow under context.Background:
	// those end by BorrowTimeout.
	ctxPool, _ := miniPool(t, Config{MaxTotal: 1, BorrowTimeout: 200 * time.Millisecond})
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	for _, tc := range []struct {
		name string
		p    *Pool
		ctx  func() context.Context
	}{
		{"BorrowTimeout", timeoutPool, context.Background},
		{"FailFast", failFastPool, context.Background},
		{"context deadline", ctxPool, short},
	} {
		held := mustGet(t, tc.p)
		check := func(how string, err error) {
			t.Helper()
			if !errors.Is(err, redis.ErrPoolExhausted) || !errors.Is(err, ErrPoolExhausted) {
				t.Errorf("%s, %s: %v; want both redis.ErrPoolExhausted and redispool.ErrPoolExhausted", tc.name, how, err)
			}
		}
		_, err := tc.p.GetContext(tc.ctx())
		check("GetContext", err)
		_, err = tc.p.Get().Do("PING")
		check("Get().Do", err)
		_, err = tc.p.Do(tc.ctx(), "PING")
		check("Do", err)
		_, err = tc.p.RedigoPool().GetContext(tc.ctx())
		check("bridge GetContext", err)
		bc := tc.p.RedigoPool().Get()
		_, err = bc.Do("PING")
		check("bridge Get().Do", err)
		if err := bc.Close(); err != nil {
			t.Errorf("%s: Close of the bridge's error connection: %v; want nil", tc.name, err)
		}
		held.Close()
	}
	if errors.Is(ErrPoolClosed, redis.ErrPoolExhausted) {
		t.Error("ErrPoolExhausted matches too much")
	}
}

func TestErrorConnCloseReturnsNil(t *testing.T) {
	p, _ := miniPool(t, Config{MaxTotal: 1, FailFast: true})
	held := mustGet(t, p)
	defer held.Close()
	c := p.Get()
	if err := c.Err(); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("Err = %v; want ErrPoolExhausted", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close of the error connection = %v; want nil, as redigo's", err)
	}
}

// TestRedigoPoolOnARealServer: what a library written for redigo's pool
// relies on, on a real redis-server, with PipelineGet off and on: a
// transaction cut short by Close is not seen by the next borrower
// (CLIENT INFO, EXEC), ActiveCount follows the bridge's connections,
// exhaustion matches redis.ErrPoolExhausted, a closed pool fails Get
// with ErrPoolClosed, and no connection is left on the server.
func TestRedigoPoolOnARealServer(t *testing.T) {
	for _, pipelineGet := range []bool{false, true} {
		t.Run(fmt.Sprintf("PipelineGet=%v", pipelineGet), func(t *testing.T) {
			s := redistest.StartServer(t)
			const name = "bridge-real"
			p := newTestPool(t, Config{Addr: s.Addr(), ClientName: name, MaxTotal: 1, FailFast: true, PipelineGet: pipelineGet})
			rp := p.RedigoPool()

			c := rp.Get()
			mustDo(t, c, "SET", "br:k", "before")
			mustDo(t, c, "MULTI")
			mustDo(t, c, "SET", "br:k", "in the transaction")
			if rp.ActiveCount() != 1 || rp.IdleCount() != 0 {
				t.Fatalf("in the transaction: ActiveCount %d, IdleCount %d; want 1, 0", rp.ActiveCount(), rp.IdleCount())
			}
			c.Close() // mid-transaction
			if rp.ActiveCount() != 0 || p.Stats().Active != 0 {
				t.Fatalf("after Close: bridge ActiveCount %d, pool Active %d; want 0, 0", rp.ActiveCount(), p.Stats().Active)
			}

			c = rp.Get()
			defer c.Close()
			if info := clientInfo(t, c); info.Fields["multi"] != "-1" || strings.Contains(info.Flags, "x") {
				t.Fatalf("the next borrower's connection: multi=%s flags=%s; want multi=-1, no x", info.Fields["multi"], info.Flags)
			}
			if _, err := c.Do("EXEC"); err == nil || !strings.Contains(err.Error(), "without MULTI") {
				t.Fatalf("EXEC on the next borrower: %v; want EXEC without MULTI", err)
			}
			if v, err := redis.String(c.Do("GET", "br:k")); err != nil || v != "before" {
				t.Fatalf("GET = %q, %v; want before: the transaction discarded", v, err)
			}

			// The pool's one connection is borrowed: exhausted, as
			// redigo's pool with Wait false says it.
			c2 := rp.Get()
			_, err := c2.Do("CLIENT", "ID") // borrows, with PipelineGet too
			c2.Close()
			if !errors.Is(err, redis.ErrPoolExhausted) || !errors.Is(err, ErrPoolExhausted) {
				t.Fatalf("exhausted: %v; want redis.ErrPoolExhausted and ErrPoolExhausted", err)
			}
			c.Close()
			if rp.ActiveCount() != 0 || p.Stats().Active != 0 {
				t.Fatalf("bridge ActiveCount %d, pool Active %d; want 0, 0", rp.ActiveCount(), p.Stats().Active)
			}

			p.Close()
			c = rp.Get()
			if _, err := c.Do("PING"); !errors.Is(err, ErrPoolClosed) {
				t.Fatalf("Get on a closed pool, then PING: %v; want ErrPoolClosed", err)
			}
			c.Close()
			if rp.ActiveCount() != 0 {
				t.Fatalf("ActiveCount %d after a failed Get; want 0", rp.ActiveCount())
			}
			s.WaitClients(t, 0, func(c redistest.ClientInfo) bool { return c.Name == name })
		})
	}
}
