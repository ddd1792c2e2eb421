package redispool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

func TestBlockingReadTimeout(t *testing.T) {
	const rt = time.Second
	withDeadline, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	noDeadline, cancel2 := context.WithCancel(context.Background())
	defer cancel2()

	for _, tc := range []struct {
		name string
		ctx  context.Context
		cmd  string
		args []any
		want time.Duration
	}{
		{"GET", withDeadline, "GET", []any{"k"}, rt},
		{"WAIT stays with ReadTimeout", withDeadline, "WAIT", []any{1, 5000}, rt},
		{"BLPOP int", withDeadline, "BLPOP", []any{"k", 5}, 5*time.Second + rt},
		{"BLPOP several keys", withDeadline, "BLPOP", []any{"a", "b", "c", int64(2)}, 2*time.Second + rt},
		{"blpop lower case", withDeadline, "blpop", []any{"k", "5"}, 5*time.Second + rt},
		{"BRPOP float text", withDeadline, "BRPOP", []any{"k", "0.25"}, 250*time.Millisecond + rt},
		{"BRPOP bytes", withDeadline, "BRPOP", []any{"k", []byte("1.5")}, 1500*time.Millisecond + rt},
		{"BZPOPMIN float64", withDeadline, "BZPOPMIN", []any{"z", 0.5}, 500*time.Millisecond + rt},
		{"BZPOPMAX", withDeadline, "BZPOPMAX", []any{"z", uint32(3)}, 3*time.Second + rt},
		{"BLMOVE", withDeadline, "BLMOVE", []any{"a", "b", "LEFT", "RIGHT", 2}, 2*time.Second + rt},
		{"BRPOPLPUSH", withDeadline, "BRPOPLPUSH", []any{"a", "b", 2}, 2*time.Second + rt},
		{"BLMPOP timeout first", withDeadline, "BLMPOP", []any{"2", 2, "a", "b", "LEFT"}, 2*time.Second + rt},
		{"BZMPOP", withDeadline, "BZMPOP", []any{1, 1, "z", "MIN", "COUNT", 10}, time.Second + rt},
		{"XREAD BLOCK ms", withDeadline, "XREAD", []any{"COUNT", 10, "BLOCK", 1500, "STREAMS", "s", "$"}, 1500*time.Millisecond + rt},
		{"xread block lower case", withDeadline, "xread", []any{"block", "250", "streams", "s", "$"}, 250*time.Millisecond + rt},
		{"XREAD without BLOCK", withDeadline, "XREAD", []any{"COUNT", 10, "STREAMS", "s", "0"}, rt},
		{"XREAD BLOCK after STREAMS is a stream", withDeadline, "XREAD", []any{"STREAMS", "BLOCK", "5000", "0", "0"}, rt},
		{"XREAD BLOCK without value", withDeadline, "XREAD", []any{"BLOCK"}, rt},
		{"XREADGROUP", withDeadline, "XREADGROUP", []any{"GROUP", "g", "c", "COUNT", 1, "BLOCK", 2000, "NOACK", "STREAMS", "s", ">"}, 2*time.Second + rt},
		{"XREADGROUP group named block", withDeadline, "XREADGROUP", []any{"GROUP", "block", "5000", "STREAMS", "s", ">"}, rt},

		// Block until there is something: ctx's deadline, if any, ends it.
		{"BLPOP 0 with a deadline", withDeadline, "BLPOP", []any{"k", 0}, 0},
		{"BLPOP 0.0 with a deadline", withDeadline, "BLPOP", []any{"k", "0.0"}, 0},
		{"XREAD BLOCK 0 with a deadline", withDeadline, "XREAD", []any{"BLOCK", 0, "STREAMS", "s", "$"}, 0},
		{"BLPOP 0 without a deadline", noDeadline, "BLPOP", []any{"k", 0}, rt},
		{"BLPOP 0 with Background", context.Background(), "BLPOP", []any{"k", 0}, rt},

		// What the server refuses at once keeps ReadTimeout.
		{"negative", withDeadline, "BLPOP", []any{"k", -1}, rt},
		{"not a number", withDeadline, "BLPOP", []any{"k", "soon"}, rt},
		{"NaN", withDeadline, "BLPOP", []any{"k", "NaN"}, rt},
		{"NaN float", withDeadline, "BLPOP", []any{"k", math.NaN()}, rt},
		{"Inf", withDeadline, "BLPOP", []any{"k", "+Inf"}, rt},
		{"a time.Duration", withDeadline, "BLPOP", []any{"k", 5 * time.Second}, rt},
		{"nil", withDeadline, "BLPOP", []any{"k", nil}, rt},
		{"no arguments", withDeadline, "BLPOP", nil, rt},
		{"key only", withDeadline, "BLPOP", []any{"5"}, rt},
		{"BLMPOP no arguments", withDeadline, "BLMPOP", nil, rt},

		// Years: capped, never overflowing into a negative duration.
		{"huge", withDeadline, "BLPOP", []any{"k", "1e300"}, maxBlock},
		{"huge ms", withDeadline, "XREAD", []any{"BLOCK", uint64(math.MaxUint64), "STREAMS", "s", "$"}, maxBlock},
		{"just under the cap", withDeadline, "BLPOP", []any{"k", float64(maxBlock/time.Second) - 0.5}, maxBlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := blockingReadTimeout(tc.ctx, rt, tc.cmd, tc.args); got != tc.want {
				t.Errorf("blockingReadTimeout(%s %v) = %v; want %v", tc.cmd, tc.args, got, tc.want)
			}
		})
	}

	// No ReadTimeout means no limit, for every command.
	if got := blockingReadTimeout(withDeadline, 0, "BLPOP", []any{"k", 5}); got != 0 {
		t.Errorf("without ReadTimeout: got %v; want 0 (no limit)", got)
	}
}

// pastDeadline is a context whose deadline has passed but whose timer
// has not yet cancelled it: the moment deadlineErr exists for.
type pastDeadline struct{ context.Context }

func (pastDeadline) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

func TestDeadlineErr(t *testing.T) {
	timeout := &os.PathError{Op: "read", Err: os.ErrDeadlineExceeded} // a net.Error whose Timeout is true
	late := pastDeadline{context.Background()}
	if err := deadlineErr(late, timeout); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read timeout at ctx's deadline: got %v; want context.DeadlineExceeded", err)
	}
	if err := deadlineErr(late, redis.Error("ERR x")); errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error reply at ctx's deadline: got %v; want it unchanged", err)
	}
	early, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if err := deadlineErr(early, timeout); err != timeout {
		t.Errorf("read timeout before ctx's deadline: got %v; want it unchanged", err)
	}
	if err := deadlineErr(context.Background(), timeout); err != timeout {
		t.Errorf("read timeout without a deadline: got %v; want it unchanged", err)
	}
	if err := deadlineErr(late, nil); err != nil {
		t.Errorf("no error: got %v", err)
	}
	// ctx recorded its deadline after the caller's own check of ctx.Err
	// (CI: BLPOP under a 3s ctx ended with the raw i/o timeout).
	ended, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	if err := deadlineErr(ended, timeout); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read timeout after ctx ended: got %v; want context.DeadlineExceeded", err)
	}
}

// TestBlockingCommandsMatchServer checks the blocking entries of the
// command table against the commands redis-server flags "blocking".
func TestBlockingCommandsMatchServer(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	noTimeout := map[string]string{
		"WAIT":    "only means something on the connection that made the writes, a borrowed one",
		"WAITAOF": "as WAIT",
	}
	flagged := map[string]bool{}
	for _, c := range srv.Do(t, "COMMAND").([]any) {
		info := c.([]any)
		name := strings.ToUpper(info[0].(string))
		for _, f := range info[2].([]any) {
			if f == "blocking" {
				flagged[name] = true
			}
		}
		if _, ok := noTimeout[name]; !flagged[name] || ok {
			continue
		}
		if !lookupCommand(name).blocks() || lookupCommand(name).block == blockOwnWrites {
			t.Errorf("%s: the server flags it blocking, but the table gives it no timeout", name)
		}
	}
	if len(flagged) < 10 {
		t.Fatalf("the server flags %d commands blocking; want 10 or more", len(flagged))
	}
	for name, info := range commandTable {
		if _, ok := noTimeout[name]; ok {
			if info.block != blockOwnWrites {
				t.Errorf("%s: the table gives it a timeout; want blockOwnWrites", name)
			}
			continue
		}
		if info.blocks() && !flagged[name] {
			t.Errorf("%s: a timeout in the table, but the server does not flag it blocking", name)
		}
	}
}

// blockedClients returns how many connections named name the server
// holds blocked on a command.
func blockedClients(t testing.TB, srv *redistest.Server, name string) int {
	t.Helper()
	return srv.CountClients(t, func(c redistest.ClientInfo) bool {
		return c.Name == name && strings.Contains(c.Flags, "b")
	})
}

// testBlockingDo runs the issue 14 scenarios for the one-shot Do of a
// Pool or a Cluster whose nodes have a ReadTimeout of 1s. open returns a
// fresh Do whose connections are named name; srv is the server that
// holds key.
func testBlockingDo(t *testing.T, open func(t *testing.T, name string) func(context.Context, string, ...any) (any, error),
	srv func(key string) *redistest.Server, key string) {

	t.Run("TimeoutLongerThanReadTimeout", func(t *testing.T) {
		t.Parallel()
		do := open(t, "blocking-nil")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		reply, err := do(ctx, "BLPOP", key+":empty", 5)
		took := time.Since(start)
		if reply != nil || err != nil {
			t.Fatalf("BLPOP with timeout 5 and ReadTimeout 1s = %v, %v after %v; want nil, nil after 5s", reply, err, took)
		}
		if took < 4900*time.Millisecond {
			t.Errorf("BLPOP returned after %v; want 5s", took)
		}
		// The connection answered in time, so it is kept. (A Cluster's
		// control connections have the same name; their last command is
		// another.)
		if n := srv(key).CountClients(t, func(c redistest.ClientInfo) bool {
			return c.Name == "blocking-nil" && c.Cmd == "blpop"
		}); n != 1 {
			t.Errorf("%d connections on the server whose last command is BLPOP; want the one, kept", n)
		}
	})

	t.Run("PushAfterReadTimeoutIsReceived", func(t *testing.T) {
		t.Parallel()
		do := open(t, "blocking-push")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		k := key + ":push"
		type result struct {
			reply []string
			err   error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			r, err := redis.Strings(do(ctx, "BLPOP", k, 5))
			done <- result{r, err}
		}()
		s := srv(key)
		deadline := time.Now().Add(5 * time.Second)
		for blockedClients(t, s, "blocking-push") != 1 {
			if time.Now().After(deadline) {
				t.Fatal("BLPOP not blocked on the server within 5s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The push comes 2s after the call, past ReadTimeout (1s).
		select {
		case r := <-done:
			t.Fatalf("BLPOP returned %v, %v after %v, before the push", r.reply, r.err, time.Since(start))
		case <-time.After(time.Until(start.Add(2 * time.Second))):
		}
		if n := blockedClients(t, s, "blocking-push"); n != 1 {
			t.Fatalf("%d connections blocked at 2s; want the BLPOP's", n)
		}
		s.Do(t, "RPUSH", k, "job")
		r := <-done
		if r.err != nil || !slices.Equal(r.reply, []string{k, "job"}) {
			t.Fatalf("BLPOP = %q, %v; want [%s job]", r.reply, r.err, k)
		}
	})

	t.Run("ZeroTimeoutEndsWithCtx", func(t *testing.T) {
		t.Parallel()
		do := open(t, "blocking-zero")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		reply, err := do(ctx, "BLPOP", key+":zero", 0)
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("BLPOP with timeout 0 under a 3s ctx = %v, %v after %v; want context.DeadlineExceeded", reply, err, took)
		}
		if took < 2900*time.Millisecond {
			t.Errorf("BLPOP ended after %v; want 3s, ctx's deadline", took)
		}
		// The reply may still come: the connection must be gone, which
		// ends the BLPOP that would otherwise block for ever.
		s := srv(key)
		deadline := time.Now().Add(5 * time.Second)
		for blockedClients(t, s, "blocking-zero") != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the interrupted connection is still open after 5s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestPoolDoBlockingCommand(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	open := func(t *testing.T, name string) func(context.Context, string, ...any) (any, error) {
		p := newTestPool(t, Config{Addr: srv.Addr(), ClientName: name, ReadTimeout: time.Second})
		return p.Do
	}
	testBlockingDo(t, open, func(string) *redistest.Server { return srv }, "pool")
}

func TestClusterDoBlockingCommand(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	open := func(t *testing.T, name string) func(context.Context, string, ...any) (any, error) {
		c := newTestCluster(t, rc, ClusterConfig{Node: Config{ClientName: name, ReadTimeout: time.Second}})
		return c.Do
	}
	// One hash tag: every key of the test on one master.
	const key = "{blocking}"
	testBlockingDo(t, open, func(k string) *redistest.Server { return rc.MasterOf(t, Slot(k)).Server }, key)
}

// TestPoolDoBlockingFamily runs each blocking command through Pool.Do
// with a timeout longer than ReadTimeout, all at once: each returns nil,
// and no connection is lost to a read timeout. ReadTimeout is the margin
// for the server to answer once the timeout passes: Redis checks blocked
// clients' timeouts only every 1/hz (100ms), and the machine is loaded.
func TestPoolDoBlockingFamily(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: srv.Addr(), ReadTimeout: 500 * time.Millisecond, MaxTotal: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.Do(ctx, "XGROUP", "CREATE", "stream", "g", "$", "MKSTREAM"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		cmd  string
		args []any
	}{
		{"BLPOP", []any{"list", "1.2"}},
		{"BRPOP", []any{"list", []byte("1.2")}},
		{"BLMOVE", []any{"list", "dst", "LEFT", "RIGHT", 1.2}},
		{"BRPOPLPUSH", []any{"list", "dst", "1.2"}},
		{"BLMPOP", []any{"1.2", 1, "list", "LEFT"}},
		{"BZPOPMIN", []any{"zset", 1.2}},
		{"BZPOPMAX", []any{"zset", "1.2"}},
		{"BZMPOP", []any{1.2, 1, "zset", "MIN"}},
		{"XREAD", []any{"COUNT", 1, "BLOCK", 1200, "STREAMS", "stream", "$"}},
		{"XREADGROUP", []any{"GROUP", "g", "c", "BLOCK", "1200", "STREAMS", "stream", ">"}},
	}
	errs := make(chan error, len(cases))
	for _, tc := range cases {
		go func() {
			start := time.Now()
			reply, err := p.Do(ctx, tc.cmd, tc.args...)
			if reply != nil || err != nil {
				err = fmt.Errorf("%s %v = %v, %v after %v; want nil, nil after 1.2s", tc.cmd, tc.args, reply, err, time.Since(start))
			}
			errs <- err
		}()
	}
	for range cases {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if s := p.Stats(); s.DestroyedBroken != 0 || s.Created > int64(len(cases)) {
		t.Errorf("%d connections broken, %d created; want 0 and at most %d: %+v", s.DestroyedBroken, s.Created, len(cases), s)
	}
}

// TestPoolDoBlockingKeepsReadTimeout checks the cases where Pool.Do
// keeps ReadTimeout, and that a borrowed connection always does.
func TestPoolDoBlockingKeepsReadTimeout(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: srv.Addr(), ReadTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A timeout the server refuses is its error, at once.
	for _, timeout := range []any{"soon", -1, 5 * time.Second, nil} {
		if _, err := p.Do(ctx, "BLPOP", "list", timeout); !isRedisError(err) {
			t.Errorf("BLPOP list %v: got %v; want the server's error", timeout, err)
		}
	}

	// Timeout 0 under a context that has no deadline: ReadTimeout.
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	if _, err := p.Do(cctx, "BLPOP", "list", 0); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("BLPOP list 0 without a deadline: got %v; want an i/o timeout after ReadTimeout", err)
	}

	// A borrowed connection: ReadTimeout unless DoWithTimeout says otherwise.
	conn, err := p.GetContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := redis.DoContext(conn, ctx, "BLPOP", "list", 1); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("DoContext BLPOP list 1 on a borrowed connection: got %v; want an i/o timeout after ReadTimeout", err)
	}
}

func isRedisError(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr)
}

// blocks reports whether the command blocks on the server. Production
// code asks what kind of block it is (cmdInfo.block).
func (info cmdInfo) blocks() bool { return info.block != blockNever }
