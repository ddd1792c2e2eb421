package redispool

// Attacks on what landed with auto-pipelining, PipelineGet, the Cluster
// connection, Sentinel and the test kit: each a bounded test on a real
// redis-server or a fake one.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
	"go.uber.org/goleak"
)

// panicArg is an argument whose encoding panics, as a caller's buggy
// redis.Argument might; an HTTP server recovers such a panic and goes on
// serving with the same pool.
type panicArg struct{}

func (panicArg) RedisArg() any { panic("attack: RedisArg") }

func doRecovering(ctx context.Context, p *Pool, cmd string, args ...any) (reply, panicked any, err error) {
	defer func() { panicked = recover() }()
	reply, err = p.Do(ctx, cmd, args...)
	return reply, nil, err
}

// TestAttackPipelinePanickingArgument: a caller whose argument panics
// while it is encoded must not wedge the pool for everybody else, and no
// half-encoded command may reach the server.
func TestAttackPipelinePanickingArgument(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 4})
	ctx := context.Background()
	for i := range 3 {
		_, panicked, _ := doRecovering(ctx, p, "SET", "attack:panic", panicArg{})
		if panicked == nil {
			t.Fatalf("round %d: Do with a panicking argument did not panic", i)
		}
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if _, err := p.Do(ctx, "SET", "attack:panic", "v"+strconv.Itoa(i)); err != nil {
				done <- err
				return
			}
			got, err := redis.String(p.Do(ctx, "GET", "attack:panic"))
			if err == nil && got != "v"+strconv.Itoa(i) {
				err = fmt.Errorf("GET = %q; want v%d", got, i)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Do after a caller panicked: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Do after a caller panicked hangs: the pipe's lock is held", i)
		}
	}
}

// TestAttackPipelinePanickingHook: a CommandHook that panics (user code)
// must not wedge the pipe for later callers.
func TestAttackPipelinePanickingHook(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	var boom atomic.Bool
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 4, CommandHook: func(ctx context.Context, cmd CommandInfo) func(error) {
		if boom.Load() {
			panic("attack: hook")
		}
		return nil
	}})
	ctx := context.Background()
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// Let the pipe go idle with its connection, so the next caller
	// takes the inline path.
	for i := range 3 {
		boom.Store(true)
		_, panicked, _ := doRecovering(ctx, p, "GET", "attack:hook")
		boom.Store(false)
		if panicked == nil {
			t.Fatalf("round %d: hook did not panic", i)
		}
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := p.Do(ctx, "GET", "attack:hook")
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Do after the hook panicked: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Do after the hook panicked hangs", i)
		}
	}
}

// TestAttackPipelineMixedCommands: many goroutines, each with its own
// keys, mixing GET/SET/INCR/HGETALL, error replies, nil replies and
// values on both sides of the 64 KiB pipelining limit; every reply must
// be the caller's own.
func TestAttackPipelineMixedCommands(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 8, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	const workers, rounds = 64, 30
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(format string, args ...any) {
				errs <- fmt.Errorf("worker %d: "+format, append([]any{w}, args...)...)
			}
			ctx := context.Background()
			if w%3 == 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Minute)
				defer cancel()
			}
			k := "attack:mix:" + strconv.Itoa(w)
			for i := range rounds {
				size := 100
				switch i % 4 {
				case 1:
					size = 64<<10 - 64 // just under the limit once encoded
				case 2:
					size = 64<<10 + 1 // just over: exclusive
				case 3:
					size = 100 << 10
				}
				val := bytes.Repeat([]byte{byte('a' + w%26)}, size)
				copy(val, fmt.Sprintf("%d/%d/", w, i))
				if _, err := p.Do(ctx, "SET", k, val); err != nil {
					fail("SET: %v", err)
					return
				}
				if got, err := redis.Bytes(p.Do(ctx, "GET", k)); err != nil || !bytes.Equal(got, val) {
					fail("GET: len %d err %v; want len %d prefix %q", len(got), err, len(val), val[:12])
					return
				}
				if n, err := redis.Int64(p.Do(ctx, "INCR", k+":n")); err != nil || n != int64(i+1) {
					fail("INCR = %d, %v; want %d", n, err, i+1)
					return
				}
				// An error reply: WRONGTYPE, to this caller only.
				if _, err := p.Do(ctx, "HGETALL", k); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
					fail("HGETALL on a string: %v; want WRONGTYPE", err)
					return
				}
				if _, err := p.Do(ctx, "HSET", k+":h", "f", i); err != nil {
					fail("HSET: %v", err)
					return
				}
				if m, err := redis.StringMap(p.Do(ctx, "HGETALL", k+":h")); err != nil || m["f"] != strconv.Itoa(i) || len(m) != 1 {
					fail("HGETALL = %v, %v; want f=%d", m, err, i)
					return
				}
				if v, err := p.Do(ctx, "GET", k+":none"); err != nil || v != nil {
					fail("GET missing = %v, %v; want nil", v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestAttackPipelineCloseUnderLoad: Close while 256 goroutines are in
// Do; every Do returns (a reply or an error), Close returns, and no
// goroutine is left.
func TestAttackPipelineCloseUnderLoad(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	p, err := New(context.Background(), Config{Addr: s.Addr(), MaxTotal: 4, BorrowTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const workers = 256
	var wg sync.WaitGroup
	var ops, closedErrs atomic.Int64
	wrong := make(chan string, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := "attack:close:" + strconv.Itoa(w)
			for i := 0; ; i++ {
				v := strconv.Itoa(i)
				if _, err := p.Do(context.Background(), "SET", k, v); err != nil {
					closedErrs.Add(1)
					return
				}
				got, err := redis.String(p.Do(context.Background(), "GET", k))
				if err != nil {
					closedErrs.Add(1)
					return
				}
				if got != v {
					wrong <- fmt.Sprintf("%s = %q; want %q", k, got, v)
					return
				}
				ops.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for ops.Load() < 2000 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("Close under load hangs")
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(15 * time.Second):
		t.Fatal("Do calls hang after Close")
	}
	close(wrong)
	for w := range wrong {
		t.Error("wrong reply:", w)
	}
	if st := p.Stats(); st.Active != 0 {
		t.Errorf("after Close, Stats.Active = %d", st.Active)
	}
}

// TestAttackPipelineStarvesExclusiveBorrow: MaxTotal 1, goroutines keep
// the shared connection busy with Do; an exclusive borrow must still get
// the connection within BorrowTimeout, as it would against the same load
// of exclusive Do calls.
func TestAttackPipelineStarvesExclusiveBorrow(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 1, BorrowTimeout: 3 * time.Second})
	var stop atomic.Bool
	var wg sync.WaitGroup
	var ops atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				p.Do(ctx, "SET", "attack:starve:"+strconv.Itoa(w), "v")
				cancel()
				ops.Add(1)
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	for ops.Load() < 500 {
		time.Sleep(time.Millisecond)
	}
	for i := range 5 {
		start := time.Now()
		c, err := p.GetContext(context.Background())
		if err != nil {
			t.Fatalf("borrow %d after %v under pipelined load with MaxTotal 1: %v", i, time.Since(start), err)
		}
		if _, err := c.Do("CLIENT", "ID"); err != nil {
			t.Errorf("borrowed connection: %v", err)
		}
		c.Close()
	}
}

// TestAttackPipelineLongExclusiveBorrow: MaxTotal 1, an exclusive borrow
// held for a while: pipelined Do waits for it (BorrowTimeout) and fails
// cleanly with ErrPoolExhausted, nothing deadlocks, and Do works again
// once the borrow is returned.
func TestAttackPipelineLongExclusiveBorrow(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 1, BorrowTimeout: 300 * time.Millisecond})
	c := mustGet(t, p)
	if _, err := c.Do("SET", "attack:long", "1"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Do(context.Background(), "GET", "attack:long")
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if !errors.Is(err, ErrPoolExhausted) {
			t.Errorf("Do while the only connection is borrowed: %v; want ErrPoolExhausted", err)
		}
	}
	c.Close()
	if v, err := redis.String(p.Do(context.Background(), "GET", "attack:long")); err != nil || v != "1" {
		t.Fatalf("Do after the borrow returned = %q, %v", v, err)
	}
	// And the other way round: the pipe holds the connection idle, an
	// exclusive borrower takes it at once.
	start := time.Now()
	c2, err := p.GetContext(context.Background())
	if err != nil {
		t.Fatalf("GetContext with the pipe holding the only connection: %v after %v", err, time.Since(start))
	}
	c2.Close()
}

// TestAttackPipelineIdlePastReadTimeout: bursts separated by idle spells
// longer than ReadTimeout must not fail on a stale read deadline.
func TestAttackPipelineIdlePastReadTimeout(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	// The pipe keeps its connection while commands come; make it hold
	// it across the gap by keeping the gap just under idleReturn is not
	// possible (20 ms < ReadTimeout), so test both: a gap with the pipe
	// holding the connection (pipelineOn with a long idleReturn) and the
	// default.
	for _, name := range []string{"held", "default"} {
		t.Run(name, func(t *testing.T) {
			var p *Pool
			cfg := Config{MaxTotal: 2, ReadTimeout: 150 * time.Millisecond}
			if name == "held" {
				p, _ = pipelineOn(t, s, cfg, pipeConfig{idleReturn: time.Hour})
			} else {
				cfg.Addr = s.Addr()
				p = newTestPool(t, cfg)
			}
			for burst := range 3 {
				var wg sync.WaitGroup
				errc := make(chan error, 32)
				for w := range 32 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ctx := context.Background()
						if w%2 == 0 {
							var cancel context.CancelFunc
							ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
							defer cancel()
						}
						if _, err := p.Do(ctx, "INCR", "attack:idle"); err != nil {
							errc <- fmt.Errorf("burst %d: %w", burst, err)
						}
					}()
				}
				wg.Wait()
				close(errc)
				for err := range errc {
					t.Error(err)
				}
				time.Sleep(400 * time.Millisecond) // the attack itself: idle past ReadTimeout
			}
		})
	}
}

// TestAttackPipelineMaxClients: the server refuses new connections
// (maxclients reached). Do fails with an error, promptly, and works once
// a slot is free again.
func TestAttackPipelineMaxClients(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	hog := s.Client(t)
	n := len(s.ClientList(t))
	hog.Do(t, "CONFIG", "SET", "maxclients", strconv.Itoa(n))
	t.Cleanup(func() { s.Exec("CONFIG", "SET", "maxclients", "10000") })
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 4, BorrowTimeout: time.Second})
	var wg sync.WaitGroup
	errc := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := p.Do(ctx, "GET", "attack:maxclients")
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err == nil {
			t.Error("Do with maxclients reached succeeded")
		} else if !strings.Contains(err.Error(), "max number of clients") && !errors.Is(err, ErrPoolExhausted) {
			t.Logf("Do with maxclients reached: %v", err)
		}
	}
	hog.Do(t, "CONFIG", "SET", "maxclients", "10000")
	if _, err := p.Do(context.Background(), "GET", "attack:maxclients"); err != nil {
		t.Fatalf("Do once maxclients is lifted: %v", err)
	}
}

// TestAttackPipelineNoPerm: an ACL user lacking SET: the NOPERM reply
// goes to the SET caller only; concurrent GETs all succeed.
func TestAttackPipelineNoPerm(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	s.Do(t, "ACL", "SETUSER", "ro", "on", ">ropass", "~*", "+@all", "-set")
	s.Do(t, "SET", "attack:acl", "v")
	p := newTestPool(t, Config{Addr: s.Addr(), Username: "ro", Password: "ropass", MaxTotal: 4})
	var wg sync.WaitGroup
	errc := make(chan error, 128)
	for w := range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if w%4 == 0 {
					_, err := p.Do(context.Background(), "SET", "attack:acl", "x")
					if err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
						errc <- fmt.Errorf("SET by ro: %v; want NOPERM", err)
						return
					}
					continue
				}
				v, err := redis.String(p.Do(context.Background(), "GET", "attack:acl"))
				if err != nil || v != "v" {
					errc <- fmt.Errorf("GET = %q, %v", v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// TestAttackPipelineSelectDB: a pool on DB 5 pipelines into DB 5 only.
func TestAttackPipelineSelectDB(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	p5 := newTestPool(t, Config{Addr: s.Addr(), DB: 5, MaxTotal: 4, ClientName: "attack-db5"})
	p0 := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 2})
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p5.Do(context.Background(), "SET", "attack:db:"+strconv.Itoa(w), w)
		}()
	}
	// While the pipe holds its connection, it is in db 5.
	held := make(chan struct{})
	var holding sync.WaitGroup
	for range 8 {
		holding.Add(1)
		go func() {
			defer holding.Done()
			for {
				select {
				case <-held:
					return
				default:
				}
				p5.Do(context.Background(), "GET", "attack:db:0")
			}
		}()
	}
	wg.Wait()
	for _, ci := range s.ClientList(t) {
		if ci.Name == "attack-db5" && ci.DB != 5 {
			t.Errorf("a connection of the DB 5 pool is in db %d: %+v", ci.DB, ci)
		}
	}
	close(held)
	holding.Wait()
	for w := range 64 {
		k := "attack:db:" + strconv.Itoa(w)
		if v, err := p0.Do(context.Background(), "EXISTS", k); err != nil || v != int64(0) {
			t.Errorf("DB 0 has %s: %v, %v", k, v, err)
		}
		if v, err := redis.Int(p5.Do(context.Background(), "GET", k)); err != nil || v != w {
			t.Errorf("DB 5 %s = %v, %v", k, v, err)
		}
	}
	if n, err := redis.Int(p0.Do(context.Background(), "DBSIZE")); err != nil || n != 0 {
		t.Errorf("DBSIZE of DB 0 = %d, %v; want 0", n, err)
	}
}
