package redispool

// The fault-injection suite of issue 3: each TestFault scenario runs a
// bounded concurrent workload through a pool while it injects a fault,
// with a real redis-server (or a fake one) as the oracle, and records a
// row of the chaos report (see chaos_test.go). Run them with
//
//	REDISPOOL_CHAOS_REPORT=docs/chaos.md go test -race -count=1 -run 'Fault|Chaos' -v .
//
// TestSoak, the 60-second mixed workload with random faults, runs only
// with REDISPOOL_SOAK=1.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

// 1. The server restarts (SIGTERM, then SIGKILL) under 64 goroutines.
func TestFaultRestartUnderLoad(t *testing.T) {
	runScenario(t, "1. restart under load (64 goroutines, MaxTotal 16)", func(t *testing.T, r *chaosRun) {
		s := redistest.StartServer(t)
		r.start(s, Config{Addr: s.Addr(), ClientName: "chaos-restart", MaxTotal: 16, DialTimeout: time.Second})
		stop := r.load(64)
		time.Sleep(300 * time.Millisecond)
		for _, crash := range []bool{false, true} {
			r.beginFault()
			if crash {
				s.Kill()
			} else {
				s.Stop()
			}
			time.Sleep(400 * time.Millisecond)
			s.Restart()
			r.endFault()
			time.Sleep(700 * time.Millisecond)
		}
		stop()
		if r.errFaulted.Load() == 0 {
			t.Errorf("no operation failed while the server was down; want some: was the fault injected?")
		}
		// Errors while the server is down must come fast: a refused dial,
		// not a pile-up of waiters sitting out BorrowTimeout (5s).
		if d := time.Duration(r.maxErrLatency.Load()); d > 2*time.Second {
			t.Errorf("slowest error while the server was down took %v; want under 2s", d)
		}
	})
}

// 2. CLIENT KILL of random pool connections, repeatedly, under load.
func TestFaultClientKill(t *testing.T) {
	runScenario(t, "2. CLIENT KILL of random pool connections", func(t *testing.T, r *chaosRun) {
		s := redistest.StartServer(t)
		r.start(s, Config{Addr: s.Addr(), ClientName: "chaos-kill", MaxTotal: 8})
		stop := r.load(32)
		time.Sleep(200 * time.Millisecond)
		rng := rand.New(rand.NewPCG(2, 2))
		killed := 0
		r.beginFault()
		for range 30 {
			killed += r.killRandom(rng, 1+rng.IntN(3))
			time.Sleep(40 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // the last FIN reaches the pool
		r.endFault()
		time.Sleep(700 * time.Millisecond)
		stop()
		r.note("%d connections killed", killed)
		if killed < 30 {
			t.Errorf("killed %d pool connections; want at least 30", killed)
		}
		if r.okFaulted.Load() == 0 {
			t.Errorf("no operation succeeded while connections were being killed; want the rest to succeed")
		}
		st := r.p.Stats()
		if st.DestroyedBroken+st.DestroyedUnhealthy == 0 {
			t.Errorf("Stats = %+v; want killed connections destroyed as broken or unhealthy", st)
		}
	})
}

// 3. The server stalls (DEBUG SLEEP) longer than ReadTimeout: the
// connections that timed out must never be reused, or their late replies
// would reach the next borrower.
func TestFaultServerStall(t *testing.T) {
	runScenario(t, "3. server stall (DEBUG SLEEP 1s > ReadTimeout 300ms)", func(t *testing.T, r *chaosRun) {
		s := redistest.StartServer(t, "--enable-debug-command", "yes")
		staller := s.Client(t)
		r.start(s, Config{Addr: s.Addr(), ClientName: "chaos-stall", MaxTotal: 8, ReadTimeout: 300 * time.Millisecond})
		stop := r.load(24)
		time.Sleep(300 * time.Millisecond)
		for range 2 {
			r.beginFault()
			if _, err := staller.Exec("DEBUG", "SLEEP", "1"); err != nil {
				t.Fatalf("DEBUG SLEEP: %v", err)
			}
			r.endFault()
			time.Sleep(600 * time.Millisecond)
		}
		stop()
		if r.errFaulted.Load() == 0 {
			t.Errorf("no operation timed out during the stalls; want some")
		}
		if st := r.p.Stats(); st.DestroyedBroken == 0 {
			t.Errorf("Stats = %+v; want the timed-out connections destroyed as broken", st)
		}
	})
}

// 4. A silent partition: a proxy stops forwarding without closing
// anything. Every call must return by its context deadline, dials
// included, and the pool must recover when forwarding resumes.
func TestFaultSilentPartition(t *testing.T) {
	runScenario(t, "4. silent partition (proxy paused 1.5s)", func(t *testing.T, r *chaosRun) {
		s := redistest.StartServer(t)
		px := redistest.NewProxy(t, s.Addr())
		r.slack = time.Second
		r.start(s, Config{
			Addr:          px.Addr(),
			ClientName:    "chaos-partition",
			MaxTotal:      8,
			DialTimeout:   2 * time.Second, // the context's 300ms must win
			ReadTimeout:   2 * time.Second,
			WriteTimeout:  2 * time.Second,
			BorrowTimeout: 2 * time.Second,
			// The PING of a long-idle connection has its own test
			// (TestFaultPartitionIdlePingHonoursContext).
			PingAfterIdle: -1,
		})
		stop := r.load(16)
		time.Sleep(500 * time.Millisecond)
		stop()

		// The short deadline is for the partition only, where every call
		// must end by it. Outside the fault an operation must succeed,
		// however slow a loaded machine makes it: with 300ms there, CPU
		// starvation (the healed proxy dialing the server for every
		// connection the partition left pending, under -race on a busy
		// machine) failed a few operations after recovery. A connection the partition left stuck still fails
		// them, at ReadTimeout (2s), inside the default 5s deadline.
		r.beginFault()
		px.Pause()
		normal := r.opTimeout
		r.opTimeout = 300 * time.Millisecond
		stop = r.load(16)
		time.Sleep(1500 * time.Millisecond)
		stop()
		r.opTimeout = normal
		px.Resume()
		r.endFault()

		stop = r.load(16)
		time.Sleep(800 * time.Millisecond)
		stop()
		if r.errFaulted.Load() == 0 {
			t.Errorf("no operation failed during the partition; want every one to")
		}
		if n := r.okFaulted.Load(); n != 0 {
			t.Errorf("%d operations succeeded during the partition; want none", n)
		}
		r.note("300ms deadline per operation during the partition")
	})
}

// The borrow-time PING of a connection idle past PingAfterIdle is a round
// trip on the caller's behalf: through a partition it must end at the
// caller's deadline, not at CheckTimeout.
func TestFaultPartitionIdlePingHonoursContext(t *testing.T) {
	s := redistest.StartServer(t)
	px := redistest.NewProxy(t, s.Addr())
	p := newTestPool(t, Config{Addr: px.Addr(), MaxTotal: 1, PingAfterIdle: 20 * time.Millisecond, CheckTimeout: 3 * time.Second})
	if err := p.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // idle past PingAfterIdle
	px.Pause()
	defer px.Resume()

	const deadline = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	c, err := p.GetContext(ctx)
	elapsed := time.Since(start)
	if err == nil {
		c.Close()
		t.Fatal("GetContext through a partition succeeded")
	}
	if elapsed > deadline+time.Second {
		t.Errorf("GetContext took %v with a %v context deadline (CheckTimeout 3s); want it to end by the deadline: %v",
			elapsed.Round(time.Millisecond), deadline, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetContext = %v; want an error wrapping context.DeadlineExceeded", err)
	}
}

// 5a. The pool is created while the server is down; the server starts.
func TestFaultOutageAtStartup(t *testing.T) {
	runScenario(t, "5a. outage at startup", func(t *testing.T, r *chaosRun) {
		s := redistest.StartServer(t)
		s.Stop()
		r.beginFault()
		r.start(s, Config{Addr: s.Addr(), ClientName: "chaos-outage", MaxTotal: 8, DialTimeout: time.Second})
		err := r.p.Ping(context.Background())
		if err == nil || !strings.HasPrefix(err.Error(), "redispool: ") || !strings.Contains(err.Error(), s.Addr()) ||
			!strings.Contains(err.Error(), "connection refused") {
			t.Errorf("Ping with the server down = %v; want a redispool error naming %s and the refusal", err, s.Addr())
		}
		stop := r.load(16)
		time.Sleep(400 * time.Millisecond)
		s.Restart()
		r.endFault()
		time.Sleep(600 * time.Millisecond)
		stop()
		if err := r.p.Ping(context.Background()); err != nil {
			t.Errorf("Ping once the server is up: %v", err)
		}
		if d := time.Duration(r.maxErrLatency.Load()); d > 2*time.Second {
			t.Errorf("slowest error while the server was down took %v; want under 2s", d)
		}
	})
}

// 5b. maxclients is reached: the server accepts and rejects. The admin
// connection takes one of the 5 slots, so the pool gets 4 of its 8.
func TestFaultMaxClients(t *testing.T) {
	runScenario(t, "5b. maxclients reached (4 of MaxTotal 8)", func(t *testing.T, r *chaosRun) {
		s := redistest.StartServer(t, "--maxclients", "5")
		s.Do(t, "PING") // the admin connection takes its slot before the pool
		r.beginFault()
		r.start(s, Config{Addr: s.Addr(), ClientName: "chaos-maxclients", MaxTotal: 8, DialTimeout: time.Second})
		stop := r.load(8)
		time.Sleep(500 * time.Millisecond)
		s.Do(t, "CONFIG", "SET", "maxclients", "100")
		r.endFault()
		time.Sleep(600 * time.Millisecond)
		stop()
		if r.okFaulted.Load() == 0 {
			t.Errorf("no operation succeeded with 4 connections available")
		}
		clearErr := false
		for _, msg := range r.errorMessages() {
			if strings.HasPrefix(msg, "redispool: ") && strings.Contains(msg, "max number of clients reached") &&
				strings.Contains(msg, s.Addr()) {
				clearErr = true
			}
		}
		if !clearErr {
			t.Errorf("errors %q; want one naming the address and the server's \"max number of clients reached\"", r.errorMessages())
		}
	})
}

// 5c. The server expects another password; then the server's password is
// changed to the pool's.
func TestFaultWrongPassword(t *testing.T) {
	const right, wrong = "chaos-right-pw-5c", "chaos-wrong-pw-5c"
	runScenario(t, "5c. wrong password", func(t *testing.T, r *chaosRun) {
		s := redistest.StartServer(t, "--requirepass", right)
		var logs redistest.LockedBuffer
		r.secrets = []string{right, wrong}
		r.beginFault()
		r.start(s, Config{
			Addr: s.Addr(), ClientName: "chaos-auth", Password: wrong, MaxTotal: 8,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
		err := r.p.Ping(context.Background())
		if err == nil || !strings.Contains(err.Error(), `auth failed for user "default"`) || !strings.Contains(err.Error(), s.Addr()) {
			t.Errorf("Ping with a wrong password = %v; want an auth error naming the user and the address", err)
		}
		stop := r.load(8)
		time.Sleep(400 * time.Millisecond)
		s.Do(t, "CONFIG", "SET", "requirepass", wrong)
		r.endFault()
		time.Sleep(500 * time.Millisecond)
		stop()
		r.finish()
		for _, secret := range r.secrets {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the pool's log contains a password")
			}
		}
	})
}

// 5d. An ACL user without permission: first for the CLIENT SETNAME every
// new connection sends, then for the workload's ECHO; then all is granted.
func TestFaultACLNoPermission(t *testing.T) {
	const pw = "chaos-acl-pw-5d"
	runScenario(t, "5d. ACL user without permission", func(t *testing.T, r *chaosRun) {
		s := redistest.StartServer(t)
		s.Do(t, "ACL", "SETUSER", "chaos", "on", ">"+pw, "~*", "&*", "+@all", "-client")
		r.ours = func(ci redistest.ClientInfo) bool { return ci.User == "chaos" }
		r.secrets = []string{pw}
		r.beginFault()
		r.start(s, Config{Addr: s.Addr(), Username: "chaos", Password: pw, ClientName: "chaos-acl", MaxTotal: 8})
		err := r.p.Ping(context.Background())
		if err == nil || !strings.Contains(err.Error(), "NOPERM") || !strings.Contains(err.Error(), s.Addr()) {
			t.Errorf("Ping without permission for CLIENT SETNAME = %v; want the server's NOPERM and the address", err)
		}
		stop := r.load(8)
		time.Sleep(300 * time.Millisecond)
		s.Do(t, "ACL", "SETUSER", "chaos", "+client", "-echo")
		time.Sleep(100 * time.Millisecond)
		destroyed := r.p.Stats().Destroyed
		time.Sleep(300 * time.Millisecond)
		// An error reply is not a broken connection: none is closed.
		if st := r.p.Stats(); st.Destroyed != destroyed {
			t.Errorf("NOPERM replies closed connections: Destroyed %d -> %d (%+v)", destroyed, st.Destroyed, st)
		}
		s.Do(t, "ACL", "SETUSER", "chaos", "+@all")
		r.endFault()
		time.Sleep(500 * time.Millisecond)
		stop()
		noperm := 0
		for _, msg := range r.errorMessages() {
			if strings.Contains(msg, "NOPERM") {
				noperm++
			}
		}
		if noperm == 0 {
			t.Errorf("errors %q; want the server's NOPERM", r.errorMessages())
		}
	})
}

// 6. TLS: rediss:// through ParseURL, connections killed under load; and
// certificates that fail verification are clear errors, never a
// plaintext fallback.
func TestFaultTLS(t *testing.T) {
	runScenario(t, "6. TLS (rediss://), CLIENT KILL under load", func(t *testing.T, r *chaosRun) {
		s, certs := redistest.StartTLSServer(t)
		plain := redistest.StartServer(t)
		cfg, err := ParseURL("rediss://" + s.Addr() + "?client_name=chaos-tls&max_total=8&dial_timeout=2s")
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLSConfig.RootCAs = certs.CAPool
		cfg.TLSConfig.ServerName = redistest.TLSServerName
		var rec writeRecorder
		cfg.Dial = rec.dial
		r.start(s, cfg)
		stop := r.load(16)
		time.Sleep(300 * time.Millisecond)
		rng := rand.New(rand.NewPCG(6, 6))
		killed := 0
		r.beginFault()
		for range 10 {
			killed += r.killRandom(rng, 2)
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		r.endFault()
		time.Sleep(700 * time.Millisecond)
		stop()
		if killed == 0 {
			t.Errorf("killed no TLS connection")
		}
		if n := rec.plaintext.Load(); n != 0 || rec.writes.Load() == 0 {
			t.Errorf("%d of %d writes were not TLS records; want all", n, rec.writes.Load())
		}

		for _, tt := range []struct {
			name string
			addr string
			tls  func(*tls.Config)
			want string
		}{
			{"unknown CA", s.Addr(), func(c *tls.Config) { c.RootCAs = certs.OtherCAPool() }, "certificate signed by unknown authority"},
			{"wrong server name", s.Addr(), func(c *tls.Config) { c.ServerName = "not-the-server.example" }, "not-the-server.example"},
			// A plaintext server waits for the rest of an inline command
			// that never comes: the handshake ends at DialTimeout.
			{"plaintext server", plain.Addr(), func(*tls.Config) {}, "timed out"},
		} {
			bad := cfg
			bad.Addr = tt.addr
			bad.ClientName = "chaos-tls-bad"
			bad.DialTimeout = time.Second
			bad.TLSConfig = cfg.TLSConfig.Clone()
			tt.tls(bad.TLSConfig)
			var rec writeRecorder
			bad.Dial = rec.dial
			p := newTestPool(t, bad)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			start := time.Now()
			err := p.Ping(ctx)
			cancel()
			switch {
			case err == nil:
				t.Errorf("%s: Ping succeeded; want a TLS error", tt.name)
			case !strings.HasPrefix(err.Error(), "redispool: ") || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.addr):
				t.Errorf("%s: Ping = %v; want a redispool error naming %s and %q", tt.name, err, tt.addr, tt.want)
			case tt.name != "plaintext server" && !errors.As(err, new(*tls.CertificateVerificationError)):
				t.Errorf("%s: Ping = %v; want it to wrap *tls.CertificateVerificationError", tt.name, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("%s: Ping took %v to fail", tt.name, d)
			}
			if n := rec.plaintext.Load(); n != 0 {
				t.Errorf("%s: %d of %d writes were not TLS records: plaintext fallback", tt.name, n, rec.writes.Load())
			}
			if st := p.Stats(); st.Created != 0 {
				t.Errorf("%s: Stats = %+v; want no connection created", tt.name, st)
			}
		}
		for _, srv := range []*redistest.Server{s, plain} {
			if n := srv.CountClients(t, func(ci redistest.ClientInfo) bool { return ci.Name == "chaos-tls-bad" }); n != 0 {
				t.Errorf("a server sees %d connections of the pools whose TLS failed; want 0", n)
			}
		}
		r.note("%d killed; unknown CA, wrong name and plaintext server refused, 0 plaintext writes", killed)
	})
}

// writeRecorder is a Config.Dial that counts the writes on its
// connections that do not start with a TLS record type (20-23), that is
// plaintext.
type writeRecorder struct {
	writes, plaintext atomic.Int64
}

func (w *writeRecorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, w: w}, nil
}

type recordingConn struct {
	net.Conn
	w *writeRecorder
}

func (c *recordingConn) Write(b []byte) (int, error) {
	if len(b) > 0 {
		c.w.writes.Add(1)
		if b[0] < 20 || b[0] > 23 {
			c.w.plaintext.Add(1)
		}
	}
	return c.Conn.Write(b)
}

// SyscallConn keeps the pool's socket peek working through the wrapper.
func (c *recordingConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// 7. Contexts cancelled at random points: before the borrow, while
// waiting for a connection, mid-command, mid-pipeline (ReceiveContext),
// mid-transaction. TestFaultCancellationAtEachPoint hits each point
// deterministically.
func TestFaultCancellation(t *testing.T) {
	runScenario(t, "7. cancellation at random points", func(t *testing.T, r *chaosRun) {
		s := redistest.StartServer(t)
		var cancelling atomic.Bool
		cancelling.Store(true)
		r.op = func(ctx context.Context, r *chaosRun, g, i int) error {
			return cancelOp(ctx, r, g, i, cancelling.Load())
		}
		r.start(s, Config{Addr: s.Addr(), ClientName: "chaos-cancel", MaxTotal: 8})
		stop := r.load(12)
		time.Sleep(2500 * time.Millisecond)
		stop()
		cancelling.Store(false)
		stop = r.load(12)
		time.Sleep(500 * time.Millisecond)
		stop()
		if r.errFaulted.Load() == 0 {
			t.Errorf("no operation was cancelled")
		}
		if st := r.p.Stats(); st.DestroyedBroken == 0 {
			t.Errorf("no cancellation landed mid-command (DestroyedBroken 0)")
		}
		st := r.p.Stats()
		r.note("%d connections closed as broken, %d timeouts (cancelled waits)", st.DestroyedBroken, st.Timeouts)
	})
}

// cancelOp runs one of four shapes under a context that, when cancel is
// set, is cancelled before the borrow or after a random delay of up to
// 15ms (each shape has a 10ms command in it). An error caused by that cancellation is marked injected; it must
// wrap context.Canceled.
func cancelOp(ctx context.Context, r *chaosRun, g, i int, cancel bool) error {
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	rng := rand.New(rand.NewPCG(uint64(g), uint64(i)))
	if cancel {
		switch when := rng.IntN(8); {
		case when == 0:
			stop()
		case when <= 5:
			t := time.AfterFunc(time.Duration(rng.IntN(15000))*time.Microsecond, stop)
			defer t.Stop()
		}
	}
	err := cancelShape(cctx, r, g, i)
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		var de *desyncError
		if errors.As(err, &de) || !errors.Is(err, context.Canceled) {
			return fmt.Errorf("cancelled operation: error does not wrap context.Canceled: %w", err)
		}
		return &injectedError{err}
	}
	return err
}

// cancelShape is an operation with a slow command in it (BLPOP of an
// empty list for 10ms), so that cancellations land mid-command.
func cancelShape(ctx context.Context, r *chaosRun, g, i int) error {
	tok := r.token(g, i, "a")
	key := fmt.Sprintf("chaos:empty:%d", g)
	if i%4 == 0 {
		reply, err := r.p.Do(ctx, "BLPOP", key, "0.01")
		r.checkDeadline(ctx)
		if err != nil {
			return err
		}
		if reply != nil {
			return &desyncError{cmd: "Pool.Do BLPOP", want: "nil", got: reply}
		}
		return nil
	}
	c, err := r.get(ctx)
	if err != nil {
		return err
	}
	defer r.put(c)
	switch i % 4 {
	case 1: // mid-command
		reply, err := r.do(ctx, c, "BLPOP", key, "0.01")
		if err != nil {
			return err
		}
		if reply != nil {
			return &desyncError{cmd: "BLPOP", want: "nil", got: reply}
		}
		reply, err = r.do(ctx, c, "ECHO", tok)
		return wantBulk("ECHO after BLPOP", reply, err, tok)
	case 2: // mid-pipeline
		tok2 := r.token(g, i, "b")
		c.Send("ECHO", tok)
		c.Send("BLPOP", key, "0.01")
		c.Send("ECHO", tok2)
		if err := c.Flush(); err != nil {
			return err
		}
		reply, err := r.receive(ctx, c)
		if err := wantBulk("pipelined ECHO", reply, err, tok); err != nil {
			return err
		}
		reply, err = r.receive(ctx, c)
		if err != nil {
			return err
		}
		if reply != nil {
			return &desyncError{cmd: "pipelined BLPOP", want: "nil", got: reply}
		}
		reply, err = r.receive(ctx, c)
		return wantBulk("pipelined ECHO after BLPOP", reply, err, tok2)
	default: // mid-transaction
		reply, err := r.do(ctx, c, "MULTI")
		if err := wantStatus("MULTI", reply, err, "OK"); err != nil {
			return err
		}
		reply, err = r.do(ctx, c, "ECHO", tok)
		if err := wantStatus("ECHO in MULTI", reply, err, "QUEUED"); err != nil {
			return err
		}
		reply, err = r.do(ctx, c, "BLPOP", key, "0.01")
		if err := wantStatus("BLPOP in MULTI", reply, err, "QUEUED"); err != nil {
			return err
		}
		reply, err = r.do(ctx, c, "EXEC")
		if err != nil {
			return err
		}
		if rs, ok := reply.([]any); !ok || len(rs) != 2 || rs[1] != nil {
			return &desyncError{cmd: "EXEC", want: "[" + tok + " nil]", got: reply}
		}
		return wantBulk("EXEC", reply.([]any)[0], nil, tok)
	}
}

// TestFaultCancellationAtEachPoint cancels a context at each point of an
// operation in turn and checks that the call returns at once with an
// error wrapping context.Canceled, that no slot or connection leaks, and
// that the next borrower gets a connection in step.
func TestFaultCancellationAtEachPoint(t *testing.T) {
	s := redistest.StartServer(t, "--enable-debug-command", "yes")
	const after = 30 * time.Millisecond // when the context is cancelled
	for _, tt := range []struct {
		name string
		// run cancels ctx, by calling cancel or by letting the AfterFunc
		// fire, at its point and returns the call's error.
		run        func(t *testing.T, p *Pool, ctx context.Context, cancel func()) error
		wantBroken int64 // connections closed as broken
	}{
		{name: "before the borrow", run: func(t *testing.T, p *Pool, ctx context.Context, cancel func()) error {
			cancel()
			_, err := p.GetContext(ctx)
			return err
		}},
		{name: "while waiting for a connection", run: func(t *testing.T, p *Pool, ctx context.Context, cancel func()) error {
			held := mustGet(t, p)
			defer held.Close()
			time.AfterFunc(after, cancel)
			_, err := p.GetContext(ctx)
			if !errors.Is(err, ErrPoolExhausted) {
				t.Errorf("GetContext = %v; want ErrPoolExhausted", err)
			}
			return err
		}},
		{name: "mid-command", wantBroken: 1, run: func(t *testing.T, p *Pool, ctx context.Context, cancel func()) error {
			c := mustGet(t, p)
			defer c.Close()
			time.AfterFunc(after, cancel)
			_, err := c.(redis.ConnWithContext).DoContext(ctx, "BLPOP", "empty", 2)
			return err
		}},
		{name: "Pool.Do mid-command", wantBroken: 1, run: func(t *testing.T, p *Pool, ctx context.Context, cancel func()) error {
			time.AfterFunc(after, cancel)
			_, err := p.Do(ctx, "BLPOP", "empty", 2)
			return err
		}},
		{name: "mid-pipeline", wantBroken: 1, run: func(t *testing.T, p *Pool, ctx context.Context, cancel func()) error {
			c := mustGet(t, p)
			defer c.Close()
			c.Send("ECHO", "first")
			c.Send("BLPOP", "empty", 2)
			c.Send("ECHO", "late")
			c.Flush()
			cc := c.(redis.ConnWithContext)
			if got, err := redis.String(cc.ReceiveContext(ctx)); err != nil || got != "first" {
				t.Errorf("first ReceiveContext = %q, %v; want \"first\"", got, err)
			}
			time.AfterFunc(after, cancel)
			_, err := cc.ReceiveContext(ctx)
			return err
		}},
		{name: "mid-transaction, between commands", run: func(t *testing.T, p *Pool, ctx context.Context, cancel func()) error {
			c := mustGet(t, p)
			defer c.Close()
			cc := c.(redis.ConnWithContext)
			mustDo(t, c, "MULTI")
			mustDo(t, c, "SET", "tx", "1")
			cancel()
			_, err := cc.DoContext(ctx, "EXEC")
			return err
		}},
		{name: "mid-transaction, during EXEC", wantBroken: 1, run: func(t *testing.T, p *Pool, ctx context.Context, cancel func()) error {
			c := mustGet(t, p)
			defer c.Close()
			cc := c.(redis.ConnWithContext)
			mustDo(t, c, "MULTI")
			mustDo(t, c, "DEBUG", "SLEEP", "0.3")
			time.AfterFunc(after, cancel)
			_, err := cc.DoContext(ctx, "EXEC")
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.Do(t, "FLUSHALL")
			p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 1, BorrowTimeout: -1, ReadTimeout: 5 * time.Second})
			if err := p.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			before := p.Stats()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			err := tt.run(t, p, ctx, cancel)
			if d := time.Since(start); d > after+time.Second {
				t.Errorf("took %v; want the call to return when its context is cancelled (after %v)", d, after)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("got %v; want an error wrapping context.Canceled", err)
			}
			st := p.Stats()
			if st.Active != 0 {
				t.Errorf("Active = %d after the connection was returned; want 0", st.Active)
			}
			if broken := st.DestroyedBroken - before.DestroyedBroken; broken != tt.wantBroken {
				t.Errorf("%d connections closed as broken; want %d (%+v)", broken, tt.wantBroken, st)
			}
			if st.Created-before.Created > 0 && tt.wantBroken == 0 {
				t.Errorf("a connection was dialed: %+v", st)
			}
			// The next borrower is in step and outside any transaction.
			c := mustGet(t, p)
			defer c.Close()
			tok := fmt.Sprintf("next-%d", time.Now().UnixNano())
			if got, err := redis.String(c.Do("ECHO", tok)); err != nil || got != tok {
				t.Errorf("next borrower: ECHO %s = %q, %v: desync", tok, got, err)
			}
			if n, err := redis.Int(c.Do("EXISTS", "tx")); err != nil || n != 0 {
				t.Errorf("EXISTS tx = %d, %v; want 0: an abandoned transaction ran", n, err)
			}
		})
	}
}

// 8. The pool is closed while 32 goroutines use its 8 connections and
// the rest wait for one.
func TestFaultCloseUnderLoad(t *testing.T) {
	runScenario(t, "8. Close under load (32 goroutines, MaxTotal 8)", func(t *testing.T, r *chaosRun) {
		s := redistest.StartServer(t)
		r.op = func(ctx context.Context, r *chaosRun, g, i int) error {
			tok := r.token(g, i, "a")
			c, err := r.get(ctx)
			if err != nil {
				return err
			}
			defer r.put(c)
			reply, err := r.do(ctx, c, "ECHO", tok)
			if err := wantBulk("ECHO", reply, err, tok); err != nil {
				return err
			}
			time.Sleep(time.Duration(i%3) * time.Millisecond) // hold it, so others wait
			tok2 := r.token(g, i, "b")
			reply, err = r.do(ctx, c, "ECHO", tok2)
			return wantBulk("ECHO after a pause", reply, err, tok2)
		}
		r.start(s, Config{Addr: s.Addr(), ClientName: "chaos-close", MaxTotal: 8, BorrowTimeout: -1})
		stop := r.load(32)
		time.Sleep(400 * time.Millisecond)
		waits := r.p.Stats().WaitCount
		r.beginFault()
		start := time.Now()
		r.p.Close()
		closing := time.Since(start)
		time.Sleep(200 * time.Millisecond)
		stop()
		if waits == 0 {
			t.Errorf("no borrower waited before Close; want waiters to release")
		}
		if closing > 2*time.Second {
			t.Errorf("Close took %v with connections borrowed; want it not to wait for them", closing)
		}
		closedErrs := 0
		for _, msg := range r.errorMessages() {
			if msg != ErrPoolClosed.Error() {
				t.Errorf("error %q after Close; want only %q", msg, ErrPoolClosed)
			}
			closedErrs++
		}
		if closedErrs == 0 {
			t.Errorf("no borrower got ErrPoolClosed")
		}
		r.finish()
		if st := r.p.Stats(); st.Created != st.Destroyed {
			t.Errorf("Stats = %+v; want every connection destroyed", st)
		}
		r.note("Close took %v", closing.Round(time.Microsecond))
	})
}

// 9. A hostile or broken server: every reply is an error, the connection
// that saw it is destroyed, nothing panics and memory stays bounded.
func TestFaultHostileServer(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handler func(net.Conn)
		named   bool // Config.ClientName: the dial itself reads a reply
		ops     int
	}{
		{name: "garbage", handler: redistest.Garbage(), ops: 20},
		{name: "garbage during the dial", handler: redistest.Garbage(), named: true, ops: 20},
		{name: "truncated reply, then silence", handler: redistest.Truncated(), ops: 4},
		{name: "truncated reply, then close", handler: redistest.TruncatedClose(), ops: 20},
		{name: "hangup", handler: redistest.Hangup(), ops: 20},
		{name: "silent", handler: redistest.Silent(), ops: 4},
		{name: "silent during the dial", handler: redistest.Silent(), named: true, ops: 2},
		{name: "error line without CRLF", handler: redistest.Reply("-ERR no terminator\n"), ops: 20},
		// redigo v1.9.3 allocates a bulk string's or an array's declared
		// size up front, and its length parser overflows: the pool's
		// reply guard must refuse these before redigo sees them.
		{name: "huge bulk length", handler: redistest.HugeBulk(), ops: 2},
		{name: "huge array length", handler: redistest.Reply("*100000000\r\n"), ops: 2},
		{name: "bulk length that overflows int (redigo panics)", handler: redistest.Reply("$99999999999999999999\r\n"), ops: 2},
		{name: "bulk length that wraps negative (redigo reads nil)", handler: redistest.Reply("$9223372036854775808\r\n"), ops: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runScenario(t, "9. hostile server: "+tt.name, func(t *testing.T, r *chaosRun) {
				handler := tt.handler
				if !tt.named {
					// A dial that sends nothing else PINGs: the hostile
					// reply is to the workload's commands.
					handler = redistest.PongFirst(handler)
				}
				fake := redistest.NewFakeServer(t, handler)
				r.ours = func(redistest.ClientInfo) bool { return false } // no redis-server to ask
				cfg := Config{Addr: fake.Addr(), MaxTotal: 2, ReadTimeout: 300 * time.Millisecond, DialTimeout: time.Second, PingAfterIdle: -1}
				if tt.named {
					cfg.ClientName = "chaos-hostile"
				}
				r.op = echoOp
				r.backoff = -1
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				r.start(nil, cfg)
				r.beginFault()
				for i := range tt.ops {
					r.runOp(0, i)
				}
				r.endFault()
				runtime.ReadMemStats(&after)
				alloc := after.TotalAlloc - before.TotalAlloc
				if alloc > 100<<20 {
					t.Errorf("the workload allocated %d MB; want well under 100 MB", alloc>>20)
				}
				if got := r.errFaulted.Load(); got != int64(tt.ops) {
					t.Errorf("%d of %d operations failed; want all", got, tt.ops)
				}
				st := r.p.Stats()
				if st.Active != 0 || st.Idle != 0 || st.Created != st.Destroyed {
					t.Errorf("Stats = %+v; want every connection that saw the hostile reply destroyed", st)
				}
				for _, msg := range r.errorMessages() {
					if strings.Contains(msg, "panic") {
						t.Errorf("error %q mentions a panic", msg)
					}
				}
				r.note("%d MB allocated", alloc>>20)
			})
		})
	}
}

// TestSoak runs a mixed workload, cancellations included, for 60 seconds
// (REDISPOOL_SOAK_DURATION) while random faults strike: crashes, restarts,
// CLIENT KILL, stalls, silent partitions and connection resets.
func TestSoak(t *testing.T) {
	if os.Getenv("REDISPOOL_SOAK") != "1" {
		t.Skip("set REDISPOOL_SOAK=1 to run the soak test (make soak)")
	}
	d := time.Minute
	if v := os.Getenv("REDISPOOL_SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("REDISPOOL_SOAK_DURATION: %v", err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	runScenario(t, fmt.Sprintf("soak: %v of random faults", d), func(t *testing.T, r *chaosRun) {
		s := redistest.StartServer(t, "--enable-debug-command", "yes")
		px := redistest.NewProxy(t, s.Addr())
		staller := s.Client(t)
		r.op = func(ctx context.Context, r *chaosRun, g, i int) error {
			if g%4 == 3 {
				return cancelOp(ctx, r, g, i, true)
			}
			return mixedOp(ctx, r, g, i)
		}
		r.start(s, Config{
			Addr: px.Addr(), ClientName: "chaos-soak", MaxTotal: 16,
			ReadTimeout: 500 * time.Millisecond, DialTimeout: time.Second,
		})
		stop := r.load(48)
		rng := rand.New(rand.NewPCG(seed, 0))
		faults := map[string]int{}
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
			r.beginFault()
			switch f := rng.IntN(6); f {
			case 0:
				faults["crash"]++
				s.Kill()
				time.Sleep(300 * time.Millisecond)
				s.Restart()
			case 1:
				faults["restart"]++
				s.Restart()
			case 2:
				faults["client kill"]++
				r.killRandom(rng, 1+rng.IntN(4))
			case 3:
				faults["stall"]++
				staller.Exec("DEBUG", "SLEEP", "1")
			case 4:
				faults["partition"]++
				px.Pause()
				time.Sleep(700 * time.Millisecond)
				px.Resume()
			case 5:
				faults["reset"]++
				px.CloseAll()
			}
			time.Sleep(50 * time.Millisecond)
			r.endFault()
		}
		time.Sleep(time.Second)
		stop()
		var kinds []string
		for k, n := range faults {
			kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
		}
		sort.Strings(kinds)
		r.note("faults: %s; seed %d", strings.Join(kinds, ", "), seed)
	})
}

// TestChaosReport logs the table of the scenarios this process ran; the
// file named by REDISPOOL_CHAOS_REPORT is rewritten after every scenario.
// It is declared after every scenario so that it runs last.
func TestChaosReport(t *testing.T) {
	chaosReport.mu.Lock()
	rows := append([]chaosRow(nil), chaosReport.rows...)
	chaosReport.mu.Unlock()
	if len(rows) == 0 {
		t.Skip("no fault scenario ran")
	}
	t.Logf("chaos report:\n%s", chaosMarkdown(rows))
	if path := os.Getenv(chaosReportEnv); path != "" {
		t.Logf("written to %s", path)
	}
}

// TestFaultPipelinedStateAfterSettlingReply: a reply that ends a
// transaction (EXEC, DISCARD) or unwatches (UNWATCH) must not clear the
// state of a MULTI or WATCH pipelined after it. FuzzTracker found the
// sequences; the real server confirms the next borrower would otherwise
// get a connection inside a transaction.
func TestFaultPipelinedStateAfterSettlingReply(t *testing.T) {
	s := redistest.StartServer(t)
	for _, tt := range []struct {
		name string
		cmds [][]any
		read string // "Receive" each reply, or "Do" for Do("")
	}{
		{"MULTI EXEC MULTI, Receive", [][]any{{"MULTI"}, {"EXEC"}, {"MULTI"}}, "Receive"},
		{"MULTI EXEC MULTI, Do(\"\")", [][]any{{"MULTI"}, {"EXEC"}, {"MULTI"}}, "Do"},
		{"MULTI DISCARD MULTI, Receive", [][]any{{"MULTI"}, {"DISCARD"}, {"MULTI"}}, "Receive"},
		{"MULTI EXEC WATCH, Receive", [][]any{{"MULTI"}, {"EXEC"}, {"WATCH", "k"}}, "Receive"},
		{"WATCH UNWATCH WATCH, Receive", [][]any{{"WATCH", "k"}, {"UNWATCH"}, {"WATCH", "k"}}, "Receive"},
		{"WATCH UNWATCH WATCH, Do(\"\")", [][]any{{"WATCH", "k"}, {"UNWATCH"}, {"WATCH", "k"}}, "Do"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 1})
			c := mustGet(t, p)
			for _, cmd := range tt.cmds {
				c.Send(cmd[0].(string), cmd[1:]...)
			}
			if tt.read == "Do" {
				if _, err := c.Do(""); err != nil {
					t.Fatal(err)
				}
			} else {
				c.Flush()
				for range tt.cmds {
					if _, err := c.Receive(); err != nil {
						t.Fatal(err)
					}
				}
			}
			c.Close()
			c = mustGet(t, p)
			defer c.Close()
			if got, err := redis.String(c.Do("ECHO", "mine")); err != nil || got != "mine" {
				t.Fatalf("next borrower: ECHO mine = %q, %v; want \"mine\": the connection came back in a transaction", got, err)
			}
			if info := clientInfo(t, c); info.Fields["multi"] != "-1" {
				t.Errorf("next borrower: multi=%s; want -1", info.Fields["multi"])
			}
			// No watched key: a transaction on a key modified elsewhere commits.
			s.Do(t, "SET", "k", "changed-by-admin")
			c.Send("MULTI")
			c.Send("SET", "k", "mine")
			if reply, err := c.Do("EXEC"); err != nil || reply == nil {
				t.Errorf("next borrower: MULTI/SET/EXEC = %v, %v: a WATCH was left behind", reply, err)
			}
		})
	}
}
