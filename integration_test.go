package redispool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
)

func TestAuthFailureIsClearAndSecret(t *testing.T) {
	const password, wrong = "right-horse-battery", "wrong-staple-secret"
	s := redistest.StartServer(t, "--requirepass", password)
	s.Do(t, "ACL", "SETUSER", "app", "on", ">app-pw-secret", "~app:*", "+get", "+set", "+ping")

	for _, tt := range []struct {
		name   string
		cfg    Config
		secret string
		want   string
	}{
		{"wrong password", Config{Password: wrong}, wrong, `auth failed for user "default"`},
		{"wrong user password", Config{Username: "app", Password: wrong}, wrong, `auth failed for user "app"`},
		{"no password", Config{}, "", "NOAUTH"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			tt.cfg.Addr = s.Addr()
			tt.cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			p := newTestPool(t, tt.cfg)
			err := p.Ping(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), s.Addr()) {
				t.Fatalf("Ping = %v; want an error containing %q and the address", err, tt.want)
			}
			for what, text := range map[string]string{"error": err.Error(), "log": logs.String(), "config": fmt.Sprintf("%+v", tt.cfg)} {
				if tt.secret != "" && strings.Contains(text, tt.secret) {
					t.Errorf("%s contains the password: %s", what, text)
				}
			}
		})
	}

	t.Run("ACL user", func(t *testing.T) {
		p := newTestPool(t, Config{Addr: s.Addr(), Username: "app", Password: "app-pw-secret"})
		c := mustGet(t, p)
		defer c.Close()
		if _, err := c.Do("SET", "app:k", "v"); err != nil {
			t.Fatalf("SET as app: %v", err)
		}
		_, err := c.Do("SET", "other:k", "v")
		if err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Fatalf("SET outside the user's keys = %v; want NOPERM", err)
		}
		c.Close()
		if n := s.CountClients(t, func(ci redistest.ClientInfo) bool { return ci.User == "app" }); n != 1 {
			t.Fatalf("server sees %d connections as user app; want 1", n)
		}
		if st := p.Stats(); st.Destroyed != 0 {
			t.Fatalf("a NOPERM reply closed the connection: %+v", st)
		}
	})
}

func TestBadDBIsClearError(t *testing.T) {
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), DB: 99})
	err := p.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "DB index is out of range") || !strings.Contains(err.Error(), s.Addr()) {
		t.Fatalf("Ping with DB 99 = %v; want the server's range error and the address", err)
	}
}

func TestConnectionsAreNamedAndSelectDB(t *testing.T) {
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), DB: 3, ClientName: "svc-a"})
	var conns []redis.Conn
	for i := 0; i < 3; i++ {
		conns = append(conns, mustGet(t, p))
	}
	for _, ci := range s.ClientList(t) {
		if ci.Name == redistest.AdminName {
			continue
		}
		if ci.Name != "svc-a" || ci.DB != 3 {
			t.Errorf("client %d: name=%q db=%d; want name=svc-a db=3", ci.ID, ci.Name, ci.DB)
		}
	}
	if n := s.CountClients(t, nil); n != 3 {
		t.Errorf("server sees %d clients; want 3", n)
	}
	for _, c := range conns {
		c.Close()
	}
	p.Close()
	s.WaitClients(t, 0, nil)
}

func TestUnixSocket(t *testing.T) {
	s := redistest.StartUnixServer(t)
	cfg, err := ParseURL("unix://" + s.SocketPath() + "?db=1")
	if err != nil {
		t.Fatal(err)
	}
	p := newTestPool(t, cfg)
	c := mustGet(t, p)
	info := clientInfo(t, c)
	c.Close()
	if info.DB != 1 || !strings.Contains(info.Flags, "U") {
		t.Fatalf("db=%d flags=%s; want db=1 over a unix socket (U)", info.DB, info.Flags)
	}
	// The peek works on unix sockets too.
	s.KillClients(t, nil)
	idleForPeek()
	if err := p.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after the idle connection was killed: %v", err)
	}
	if st := p.Stats(); st.DestroyedUnhealthy != 1 {
		t.Fatalf("Stats = %+v; want the killed connection caught on borrow", st)
	}
}

func TestKilledIdleConnectionsAreReplacedOnBorrow(t *testing.T) {
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 4, PingAfterIdle: -1})
	var conns []redis.Conn
	for i := 0; i < 4; i++ {
		conns = append(conns, mustGet(t, p))
	}
	for _, c := range conns {
		c.Close()
	}
	if n := s.KillClients(t, nil); n != 4 {
		t.Fatalf("killed %d; want 4", n)
	}
	s.WaitClients(t, 0, nil)
	idleForPeek()
	for i := 0; i < 8; i++ {
		if _, err := p.Do(context.Background(), "PING"); err != nil {
			t.Fatalf("PING %d after CLIENT KILL: %v", i, err)
		}
	}
	if st := p.Stats(); st.DestroyedUnhealthy != 4 {
		t.Fatalf("Stats = %+v; want all 4 killed connections caught by the peek", st)
	}
}

func TestRestartZeroErrorsOnceBack(t *testing.T) {
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), MaxTotal: 4, DialTimeout: time.Second})
	var conns []redis.Conn
	for i := 0; i < 4; i++ {
		conns = append(conns, mustGet(t, p))
	}
	for _, c := range conns {
		c.Close()
	}
	s.Restart()
	for i := 0; i < 20; i++ {
		if _, err := p.Do(context.Background(), "INCR", "n"); err != nil {
			t.Fatalf("command %d after Redis came back: %v", i, err)
		}
	}
	if st := p.Stats(); st.DestroyedUnhealthy != 4 {
		t.Fatalf("Stats = %+v; want the 4 stale connections caught on borrow", st)
	}
}

func TestTLS(t *testing.T) {
	s, certs := redistest.StartTLSServer(t)
	cfg, err := ParseURL("rediss://" + s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig.RootCAs = certs.CAPool
	cfg.TLSConfig.ServerName = redistest.TLSServerName
	cfg.TLSConfig.Certificates = certs.ClientConfig().Certificates
	p := newTestPool(t, cfg)
	c := mustGet(t, p)
	id := mustDo(t, c, "CLIENT", "ID")
	c.Close()
	// TLS 1.3 servers send session tickets after the handshake: unread
	// bytes on an idle TLS socket must not count as a dead connection.
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < 3; i++ {
		c = mustGet(t, p)
		if got := mustDo(t, c, "CLIENT", "ID"); got != id {
			t.Fatalf("idle TLS connection replaced (id %v -> %v): %+v", id, got, p.Stats())
		}
		c.Close()
	}
	// A TLS connection the server closed is still caught on borrow.
	s.KillClients(t, nil)
	s.WaitClients(t, 0, nil)
	idleForPeek()
	if err := p.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after CLIENT KILL over TLS: %v", err)
	}
	if st := p.Stats(); st.DestroyedUnhealthy != 1 {
		t.Fatalf("Stats = %+v; want the killed TLS connection caught on borrow", st)
	}

	t.Run("unverifiable certificate", func(t *testing.T) {
		bad := cfg
		bad.TLSConfig = cfg.TLSConfig.Clone()
		bad.TLSConfig.RootCAs = certs.OtherCAPool()
		p := newTestPool(t, bad)
		err := p.Ping(context.Background())
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Ping with an unknown CA = %v; want a certificate error", err)
		}
	})
	t.Run("plaintext to a TLS port", func(t *testing.T) {
		plain := cfg
		plain.TLSConfig = nil
		plain.ReadTimeout = 500 * time.Millisecond
		p := newTestPool(t, plain)
		if err := p.Ping(context.Background()); err == nil {
			t.Fatal("plaintext PING to a TLS port succeeded")
		}
	})
}

func TestDialHonoursContextDeadline(t *testing.T) {
	// A server that accepts and never answers: the TLS handshake hangs.
	fake := redistest.NewFakeServer(t, redistest.Silent())
	p := newTestPool(t, Config{
		Addr:        fake.Addr(),
		DialTimeout: 10 * time.Second,
		TLSConfig:   (&redistest.TLSCerts{}).ClientConfig(),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.GetContext(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetContext = %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dial took %v past a 100ms context deadline", d)
	}
}

func TestLoggerRecordsLifecycleWithoutSecrets(t *testing.T) {
	s := redistest.StartServer(t, "--requirepass", "pw-in-logs?")
	var logs bytes.Buffer
	p := newTestPool(t, Config{
		Addr: s.Addr(), Password: "pw-in-logs?",
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	c := mustGet(t, p)
	c.Do("MONITOR")
	c.Close()
	p.Close()
	out := logs.String()
	for _, want := range []string{"connection created", "reason=dirty"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pw-in-logs") {
		t.Errorf("log contains the password:\n%s", out)
	}
}

func TestPubSubReceiverOutlivesReadTimeout(t *testing.T) {
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr(), ReadTimeout: 50 * time.Millisecond})
	c := mustGet(t, p)
	psc := redis.PubSubConn{Conn: c}
	if err := psc.Subscribe("news"); err != nil {
		t.Fatal(err)
	}
	if _, ok := psc.ReceiveWithTimeout(0).(redis.Subscription); !ok {
		t.Fatal("want the subscription confirmation")
	}
	time.AfterFunc(200*time.Millisecond, func() { s.Exec("PUBLISH", "news", "late") })
	msg, ok := psc.ReceiveWithTimeout(0).(redis.Message) // waits past ReadTimeout
	if !ok || string(msg.Data) != "late" {
		t.Fatalf("ReceiveWithTimeout(0) = %v; want the message published after ReadTimeout", msg)
	}
	c.Close()
	if st := p.Stats(); st.Destroyed != 0 || st.Idle != 1 {
		t.Fatalf("Stats = %+v; want the subscriber reset and kept", st)
	}
}
