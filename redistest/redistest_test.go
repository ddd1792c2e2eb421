package redistest_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/goleak"

	"github.com/redispool/redispool/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dial connects to addr with short timeouts, closed when the test completes.
func dial(t *testing.T, network, addr string, opts ...redis.DialOption) redis.Conn {
	t.Helper()
	opts = append([]redis.DialOption{
		redis.DialConnectTimeout(2 * time.Second),
		redis.DialReadTimeout(2 * time.Second),
		redis.DialWriteTimeout(2 * time.Second),
	}, opts...)
	c, err := redis.Dial(network, addr, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustPing(t *testing.T, c redis.Conn) {
	t.Helper()
	got, err := redis.String(c.Do("PING"))
	if err != nil || got != "PONG" {
		t.Fatalf("PING: got %q, %v; want PONG, nil", got, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestStartServerAnswersOnLoopbackPort(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)

	if srv.Port() <= 0 || srv.Port() == 6379 {
		t.Fatalf("got port %d; want a free port other than 6379", srv.Port())
	}
	if want := net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Port())); srv.Addr() != want {
		t.Errorf("got Addr %q; want %q", srv.Addr(), want)
	}
	if srv.Network() != "tcp" || srv.SocketPath() != "" {
		t.Errorf("got Network %q, SocketPath %q; want tcp, empty", srv.Network(), srv.SocketPath())
	}
	mustPing(t, dial(t, "tcp", srv.Addr()))
	if got := srv.Do(t, "CONFIG", "GET", "save"); !reflect.DeepEqual(got, []any{"save", ""}) {
		t.Errorf("CONFIG GET save: got %#v; want [save \"\"]", got)
	}
	if got := srv.Do(t, "SET", "k", "v"); got != "OK" {
		t.Errorf("SET: got %#v; want OK", got)
	}
	if got := srv.Do(t, "GET", "k"); got != "v" {
		t.Errorf("GET: got %#v; want v", got)
	}
	if got := srv.Do(t, "INCRBY", "n", 42); got != int64(42) {
		t.Errorf("INCRBY: got %#v; want int64(42)", got)
	}
	if got := srv.Do(t, "GET", "missing"); got != nil {
		t.Errorf("GET missing: got %#v; want nil", got)
	}
	if _, err := srv.Exec("NOSUCHCOMMAND"); !strings.HasPrefix(errString(err), "ERR unknown command") {
		t.Errorf("NOSUCHCOMMAND: got error %v; want ERR unknown command", err)
	}
	if !strings.Contains(srv.Log(), "Ready to accept connections") {
		t.Errorf("log lacks %q:\n%s", "Ready to accept connections", srv.Log())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestServerRestartKeepsPortAndArgs(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--maxclients", "17")
	port := srv.Port()
	c := dial(t, "tcp", srv.Addr())
	mustPing(t, c)
	srv.Do(t, "SET", "k", "v")

	srv.Restart()

	if srv.Port() != port {
		t.Fatalf("got port %d after Restart; want %d", srv.Port(), port)
	}
	if _, err := c.Do("PING"); err == nil {
		t.Errorf("PING on a connection from before Restart: got nil error; want one")
	}
	mustPing(t, dial(t, "tcp", srv.Addr()))
	if got := srv.Do(t, "GET", "k"); got != nil {
		t.Errorf("GET k after Restart: got %#v; want nil (no persistence)", got)
	}
	if got := srv.Do(t, "CONFIG", "GET", "maxclients"); !reflect.DeepEqual(got, []any{"maxclients", "17"}) {
		t.Errorf("CONFIG GET maxclients after Restart: got %#v; want [maxclients 17]", got)
	}
	if !strings.Contains(srv.Log(), "restarting") {
		t.Errorf("log lacks the restart marker:\n%s", srv.Log())
	}
}

func TestServerRestartWaitsWhileAnotherProcessHoldsThePort(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	srv.Stop()

	// A listener that never accepts: the readiness probe must not hang on it.
	ln, err := net.Listen("tcp", srv.Addr())
	if err != nil {
		t.Fatalf("listen on the stopped server's port: %v", err)
	}
	released := make(chan struct{})
	time.AfterFunc(700*time.Millisecond, func() {
		ln.Close()
		close(released)
	})
	defer func() { <-released }()

	srv.Restart()
	mustPing(t, dial(t, "tcp", srv.Addr()))
	if !strings.Contains(srv.Log(), "Address already in use") {
		t.Errorf("log lacks %q; the port was not contended:\n%s", "Address already in use", srv.Log())
	}
}

func TestServerKillStopAndRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)

	srv.Kill()
	srv.Kill()
	if srv.Running() {
		t.Fatalf("got Running() = true after Kill; want false")
	}
	if c, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("dial after Kill: got nil error; want connection refused")
	}

	srv.Restart()
	if !srv.Running() {
		t.Fatalf("got Running() = false after Restart; want true")
	}
	mustPing(t, dial(t, "tcp", srv.Addr()))

	srv.Stop()
	srv.Stop()
	if _, err := srv.Exec("PING"); err == nil {
		t.Errorf("PING after Stop: got nil error; want one")
	}
}

func TestStartServerAuthenticatesAdminWithRequirepass(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--requirepass", "s3cret")

	if srv.Password() != "s3cret" {
		t.Errorf("got Password %q; want s3cret", srv.Password())
	}
	srv.Do(t, "PING")

	c := dial(t, "tcp", srv.Addr())
	if _, err := c.Do("PING"); !strings.HasPrefix(errString(err), "NOAUTH") {
		t.Errorf("PING without AUTH: got error %v; want NOAUTH", err)
	}
	mustPing(t, dial(t, "tcp", srv.Addr(), redis.DialPassword("s3cret")))

	srv.Restart()
	srv.Do(t, "PING")
}

func TestStartUnixServer(t *testing.T) {
	t.Parallel()
	srv := redistest.StartUnixServer(t)

	if srv.Network() != "unix" || srv.Port() != 0 || srv.SocketPath() == "" || srv.Addr() != srv.SocketPath() {
		t.Fatalf("got Network %q, Port %d, SocketPath %q, Addr %q; want unix, 0, a path, the path",
			srv.Network(), srv.Port(), srv.SocketPath(), srv.Addr())
	}
	c := dial(t, "unix", srv.SocketPath(), redis.DialClientName("unix-client"))
	mustPing(t, c)

	clients := srv.ClientList(t)
	var found bool
	for _, ci := range clients {
		if ci.Name != "unix-client" {
			continue
		}
		found = true
		if !strings.Contains(ci.Flags, "U") || !strings.HasPrefix(ci.Addr, srv.SocketPath()) {
			t.Errorf("got Flags %q, Addr %q; want flags with U, addr starting with %q", ci.Flags, ci.Addr, srv.SocketPath())
		}
	}
	if !found {
		t.Fatalf("client unix-client not in CLIENT LIST: %+v", clients)
	}

	srv.Restart()
	mustPing(t, dial(t, "unix", srv.SocketPath()))
}

func TestClientListReportsDBNameUserAndKillClients(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	srv.Do(t, "ACL", "SETUSER", "alice", "on", ">pw", "~*", "&*", "+@all")

	var local string
	c := dial(t, "tcp", srv.Addr(),
		redis.DialUsername("alice"),
		redis.DialPassword("pw"),
		redis.DialDatabase(3),
		redis.DialClientName("pool-conn"),
		redis.DialNetDial(func(network, addr string) (net.Conn, error) {
			nc, err := net.Dial(network, addr)
			if err == nil {
				local = nc.LocalAddr().String()
			}
			return nc, err
		}),
	)
	if _, err := c.Do("GET", "x"); err != nil {
		t.Fatal(err)
	}
	dial(t, "tcp", srv.Addr()) // an unnamed default-user client in db 0

	byName := func(name string) func(redistest.ClientInfo) bool {
		return func(ci redistest.ClientInfo) bool { return ci.Name == name }
	}
	var got *redistest.ClientInfo
	for _, ci := range srv.ClientList(t) {
		if ci.Name == "pool-conn" {
			got = &ci
		}
	}
	if got == nil {
		t.Fatalf("pool-conn not in CLIENT LIST")
	}
	if got.DB != 3 || got.User != "alice" || got.Addr != local || got.Cmd != "get" || got.ID <= 0 {
		t.Errorf("got DB %d, User %q, Addr %q, Cmd %q, ID %d; want 3, alice, %q, get, > 0",
			got.DB, got.User, got.Addr, got.Cmd, got.ID, local)
	}
	if got.Fields["laddr"] != srv.Addr() || got.LAddr != srv.Addr() {
		t.Errorf("got laddr %q; want %q", got.LAddr, srv.Addr())
	}

	if n := srv.CountClients(t, nil); n != 2 {
		t.Errorf("CountClients(nil): got %d; want 2 (admin excluded)", n)
	}
	if n := srv.CountClients(t, func(ci redistest.ClientInfo) bool { return ci.User == "default" }); n != 1 {
		t.Errorf("CountClients(user=default): got %d; want 1", n)
	}
	if n := srv.KillClients(t, byName("pool-conn")); n != 1 {
		t.Errorf("KillClients(pool-conn): got %d; want 1", n)
	}
	if _, err := c.Do("PING"); err == nil {
		t.Errorf("PING on a killed client: got nil error; want one")
	}
	srv.WaitClients(t, 0, byName("pool-conn"))
	if n := srv.KillClients(t, nil); n != 1 {
		t.Errorf("KillClients(nil): got %d; want 1", n)
	}
	srv.WaitClients(t, 0, nil)
	srv.Do(t, "PING") // the admin connection survived
}

func TestServerClientIsADedicatedAdminConnection(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, "--requirepass", "pw")
	admin := srv.Client(t)
	admin.Do(t, "SET", "k", "v")
	if got := srv.Do(t, "GET", "k"); got != "v" {
		t.Errorf("GET k: got %#v; want v", got)
	}
	admins := 0
	for _, ci := range admin.ClientList(t) {
		if ci.Name == redistest.AdminName {
			admins++
		}
	}
	if admins != 2 {
		t.Errorf("got %d admin connections; want 2", admins)
	}
	if n := admin.CountClients(t, nil); n != 0 {
		t.Errorf("CountClients: got %d; want 0", n)
	}
}

func TestParseClientList(t *testing.T) {
	t.Parallel()
	const tcp = "id=5 addr=127.0.0.1:54894 laddr=127.0.0.1:17777 fd=7 name=pool age=12 idle=3 flags=N db=2 sub=0 psub=0 ssub=0 multi=-1 qbuf=26 qbuf-free=20448 argv-mem=10 multi-mem=0 rbs=16384 rbp=16384 obl=0 oll=0 omem=0 tot-mem=37658 events=r cmd=client|list user=default redir=-1 resp=2"
	const unix = "id=3 addr=/tmp/ux/r.sock:0 laddr=/tmp/ux/r.sock:0 fd=7 name= age=0 idle=0 flags=U db=0 cmd=NULL user=alice"
	tests := []struct {
		name    string
		in      string
		want    []redistest.ClientInfo
		wantErr bool
	}{
		{name: "empty", in: ""},
		{
			name: "redis 7.0 tcp and unix",
			in:   tcp + "\n" + unix + "\n",
			want: []redistest.ClientInfo{
				{ID: 5, Addr: "127.0.0.1:54894", LAddr: "127.0.0.1:17777", Name: "pool", DB: 2, User: "default",
					Flags: "N", Cmd: "client|list", Age: 12 * time.Second, Idle: 3 * time.Second},
				{ID: 3, Addr: "/tmp/ux/r.sock:0", LAddr: "/tmp/ux/r.sock:0", User: "alice", Flags: "U", Cmd: "NULL"},
			},
		},
		{name: "field without equals", in: "id=1 addr=x junk", wantErr: true},
		{name: "bad db", in: "id=1 db=x", wantErr: true},
		{name: "no id", in: "addr=127.0.0.1:1 db=0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := redistest.ParseClientList(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v; want error: %v", err, tt.wantErr)
			}
			for i := range got {
				if got[i].Fields == nil {
					t.Errorf("client %d: got nil Fields", i)
				}
				got[i].Fields = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestProxyForwardsAndPauseStopsTraffic(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	p := redistest.NewProxy(t, srv.Addr())
	if p.Target() != srv.Addr() {
		t.Errorf("got Target %q; want %q", p.Target(), srv.Addr())
	}

	c := dial(t, "tcp", p.Addr(), redis.DialReadTimeout(200*time.Millisecond), redis.DialClientName("via-proxy"))
	mustPing(t, c)
	if got := p.Conns(); got != 1 {
		t.Errorf("Conns: got %d; want 1", got)
	}
	if got := srv.CountClients(t, nil); got != 1 {
		t.Errorf("CountClients: got %d; want 1", got)
	}

	p.Pause()
	p.Pause()
	if _, err := c.Do("PING"); !isTimeout(err) {
		t.Fatalf("PING while paused: got error %v; want a timeout", err)
	}
	// redigo has closed c after the timeout; the partition hides that too.

	// A connection made during the partition is accepted but goes nowhere.
	raw, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatalf("dial proxy while paused: %v", err)
	}
	defer raw.Close()
	if _, err := raw.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	raw.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	br := bufio.NewReader(raw)
	if _, err := br.ReadString('\n'); !isTimeout(err) {
		t.Fatalf("read while paused: got error %v; want a timeout", err)
	}
	if got := p.Conns(); got != 2 {
		t.Errorf("Conns while paused: got %d; want 2", got)
	}
	if got := srv.CountClients(t, nil); got != 1 {
		t.Errorf("CountClients while paused: got %d; want 1 (no close, no new client)", got)
	}

	// Healing the partition delivers what was sent meanwhile.
	p.Resume()
	p.Resume()
	raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, err := br.ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("read after Resume: got %q, %v; want +PONG", line, err)
	}
	// Now c's close went through, and raw is connected.
	srv.WaitClients(t, 0, func(ci redistest.ClientInfo) bool { return ci.Name == "via-proxy" })
	srv.WaitClients(t, 1, nil)
	mustPing(t, dial(t, "tcp", p.Addr()))
}

func TestProxyCloseAllDropsConnections(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	p := redistest.NewProxy(t, srv.Addr())
	c1 := dial(t, "tcp", p.Addr())
	c2 := dial(t, "tcp", p.Addr())
	mustPing(t, c1)
	mustPing(t, c2)

	p.CloseAll()
	if got := p.Conns(); got != 0 {
		t.Errorf("Conns after CloseAll: got %d; want 0", got)
	}
	for _, c := range []redis.Conn{c1, c2} {
		if _, err := c.Do("PING"); err == nil || isTimeout(err) {
			t.Errorf("PING after CloseAll: got error %v; want a connection error", err)
		}
	}
	srv.WaitClients(t, 0, nil)
	mustPing(t, dial(t, "tcp", p.Addr()))

	// CloseAll while paused drops connections that never reached the target.
	p.Pause()
	raw, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	waitFor(t, func() bool { return p.Conns() == 2 })
	p.CloseAll()
	raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("read after CloseAll: got error %v; want EOF or reset", err)
	}

	p.Close()
	p.Close()
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Errorf("dial after Close: got nil error; want one")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 2s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProxyFollowsServerRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	p := redistest.NewProxy(t, srv.Addr())
	c := dial(t, "tcp", p.Addr())
	mustPing(t, c)
	srv.Restart()
	if _, err := c.Do("PING"); err == nil {
		t.Errorf("PING through the proxy after Restart: got nil error; want one")
	}
	mustPing(t, dial(t, "tcp", p.Addr()))
	waitFor(t, func() bool { return p.Conns() == 1 })
}

func TestStartTLSServer(t *testing.T) {
	t.Parallel()
	srv, certs := redistest.StartTLSServer(t)
	srv.Do(t, "PING") // the admin connection speaks TLS

	c := dial(t, "tcp", srv.Addr(), redis.DialUseTLS(true), redis.DialTLSConfig(certs.ClientConfig()))
	mustPing(t, c)

	cfg := certs.ClientConfig()
	cfg.RootCAs = certs.OtherCAPool()
	_, err := redis.Dial("tcp", srv.Addr(), redis.DialUseTLS(true), redis.DialTLSConfig(cfg),
		redis.DialConnectTimeout(2*time.Second))
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("dial with OtherCAPool: got error %v; want x509.UnknownAuthorityError", err)
	}

	plain, err := redis.Dial("tcp", srv.Addr(), redis.DialReadTimeout(time.Second))
	if err == nil {
		defer plain.Close()
		if _, err := plain.Do("PING"); err == nil {
			t.Errorf("plain PING on the TLS port: got nil error; want one")
		}
	}
}

func TestStartTLSServerRequiringClientCerts(t *testing.T) {
	t.Parallel()
	srv, certs := redistest.StartTLSServer(t, "--tls-auth-clients", "yes")
	srv.Do(t, "PING")
	mustPing(t, dial(t, "tcp", srv.Addr(), redis.DialUseTLS(true), redis.DialTLSConfig(certs.ClientConfig())))

	cfg := certs.ClientConfig()
	cfg.Certificates = nil
	c, err := redis.Dial("tcp", srv.Addr(), redis.DialUseTLS(true), redis.DialTLSConfig(cfg),
		redis.DialConnectTimeout(2*time.Second), redis.DialReadTimeout(2*time.Second))
	if err == nil {
		defer c.Close()
		// With TLS 1.3 the server rejects the missing certificate after
		// the client's handshake has completed.
		_, err = c.Do("PING")
	}
	if err == nil {
		t.Errorf("PING without a client certificate: got nil error; want one")
	}
}

func TestNewTLSCertsWritesPEMFiles(t *testing.T) {
	t.Parallel()
	certs := redistest.NewTLSCerts(t)
	for _, f := range []string{certs.CACertFile, certs.ServerCertFile, certs.ServerKeyFile, certs.ClientCertFile, certs.ClientKeyFile} {
		b, err := os.ReadFile(f)
		if err != nil || !strings.HasPrefix(string(b), "-----BEGIN ") {
			t.Errorf("%s: got %.20q, %v; want a PEM file", f, b, err)
		}
	}
	if _, err := tls.LoadX509KeyPair(certs.ServerCertFile, certs.ServerKeyFile); err != nil {
		t.Errorf("load server key pair: %v", err)
	}
	if cfg := certs.ClientConfig(); cfg.ServerName != redistest.TLSServerName || cfg.RootCAs != certs.CAPool {
		t.Errorf("got ServerName %q; want %q and RootCAs = CAPool", cfg.ServerName, redistest.TLSServerName)
	}
}

func TestFakeServerHandlers(t *testing.T) {
	t.Parallel()
	// Each case sends PING and reads until want has arrived, then checks what
	// happens next: stall (a read times out), close (EOF), or nothing.
	tests := []struct {
		name    string
		handler func(net.Conn)
		want    string // exact prefix of what is read; "" for Garbage
		then    string // "stall", "close" or "open"
	}{
		{"OK", redistest.OK(), "+PONG\r\n", "open"},
		{"Reply", redistest.Reply("-ERR boom\r\n"), "-ERR boom\r\n", "open"},
		{"Garbage", redistest.Garbage(), "", "open"},
		{"Truncated", redistest.Truncated(), "$10\r\nabc", "stall"},
		{"TruncatedClose", redistest.TruncatedClose(), "$10\r\nabc", "close"},
		{"HugeBulk", redistest.HugeBulk(), "$2147483647\r\nabcdef", "stall"},
		{"SlowReply", redistest.SlowReply(50 * time.Millisecond), "+PONG\r\n", "open"},
		{"Silent", redistest.Silent(), "", "stall"},
		{"Hangup", redistest.Hangup(), "", "close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := redistest.NewFakeServer(t, tt.handler)
			c, err := net.DialTimeout("tcp", fs.Addr(), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			br := bufio.NewReader(c)

			if tt.name == "Garbage" {
				line, err := br.ReadString('\n')
				if err != nil || !strings.HasSuffix(line, "\r\n") || strings.ContainsAny(line[:1], "+-:$*_,#!=(%~>|") {
					t.Fatalf("got %q, %v; want a non-RESP line", line, err)
				}
			} else {
				got := make([]byte, len(tt.want))
				if _, err := io.ReadFull(br, got); err != nil || string(got) != tt.want {
					t.Fatalf("got %q, %v; want %q", got, err, tt.want)
				}
			}

			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, err = br.ReadByte()
			switch tt.then {
			case "stall":
				if !isTimeout(err) {
					t.Errorf("read after reply: got %v; want a timeout", err)
				}
			case "close":
				if err != io.EOF {
					t.Errorf("read after reply: got %v; want EOF", err)
				}
			case "open":
				if !isTimeout(err) {
					t.Errorf("read after reply: got %v; want a timeout (nothing more)", err)
				}
				// A second command gets a second reply.
				if _, err := c.Write([]byte("PING\r\n")); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := br.ReadString('\n'); err != nil {
					t.Errorf("second reply: %v", err)
				}
			}
			if fs.Accepted() != 1 {
				t.Errorf("Accepted: got %d; want 1", fs.Accepted())
			}
		})
	}
}

// TestFakeDispatch: Dispatch answers commands in order, writes nothing
// for an empty reply, hangs up when told to, and a push written to its
// FakeConn from another goroutine arrives whole between replies.
func TestFakeDispatch(t *testing.T) {
	t.Parallel()
	subscribed := make(chan *redistest.FakeConn, 1)
	fs := redistest.NewFakeServer(t, redistest.Dispatch(func(c *redistest.FakeConn, cmd []string) (string, bool) {
		switch strings.ToUpper(cmd[0]) {
		case "SUBSCRIBE":
			subscribed <- c
			return "", false
		case "QUIT":
			return "+OK\r\n", true
		}
		return "+" + strings.Join(cmd, " ") + "\r\n", false
	}))
	nc, err := net.DialTimeout("tcp", fs.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewConn(nc, 10*time.Second, 10*time.Second)
	defer c.Close()
	if err := c.Send("SUBSCRIBE", "ch"); err != nil || c.Flush() != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	var fc *redistest.FakeConn
	select {
	case fc = <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("SUBSCRIBE did not reach the dispatcher")
	}

	const n = 50
	payload := strings.Repeat("x", 64<<10)
	push := "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$" + strconv.Itoa(len(payload)) + "\r\n" + payload + "\r\n"
	pushed := make(chan error, 1)
	go func() {
		for range n {
			if _, err := io.WriteString(fc, push); err != nil {
				pushed <- err
				return
			}
		}
		pushed <- nil
	}()
	for i := range n {
		if err := c.Send("ECHO", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	replies, pushes := 0, 0
	for replies < n || pushes < n {
		r, err := c.Receive()
		switch r := r.(type) {
		case string:
			if want := "ECHO " + strconv.Itoa(replies); r != want {
				t.Fatalf("reply %d: got %q; want %q", replies, r, want)
			}
			replies++
		case []any:
			if len(r) != 3 || string(r[2].([]byte)) != payload {
				t.Fatalf("push %d is not the message pushed", pushes)
			}
			pushes++
		default:
			t.Fatalf("after %d replies and %d pushes: got %#v, %v", replies, pushes, r, err)
		}
	}
	if err := <-pushed; err != nil {
		t.Fatalf("push: %v", err)
	}

	if r, err := redis.String(c.Do("QUIT")); err != nil || r != "OK" {
		t.Fatalf("QUIT: got %q, %v; want OK", r, err)
	}
	if _, err := c.Receive(); err == nil {
		t.Error("the connection is still open after a hang-up")
	}
}

func TestFakeServerOKServesRedigo(t *testing.T) {
	t.Parallel()
	fs := redistest.NewFakeServer(t, redistest.OK())
	c := dial(t, "tcp", fs.Addr(), redis.DialPassword("x"), redis.DialDatabase(1), redis.DialClientName("n"))
	mustPing(t, c)
	if got, err := redis.String(c.Do("PING", "hello")); err != nil || got != "hello" {
		t.Errorf("PING hello: got %q, %v; want hello", got, err)
	}
	if got, err := redis.String(c.Do("SET", "k", "v")); err != nil || got != "OK" {
		t.Errorf("SET: got %q, %v; want OK", got, err)
	}
}

func TestFakeServerCloseInterruptsStalledHandlers(t *testing.T) {
	t.Parallel()
	fs := redistest.NewFakeServer(t, redistest.SlowReply(time.Hour))
	c, err := net.Dial("tcp", fs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PING\r\n"))
	waitFor(t, func() bool { return fs.Accepted() == 1 })

	start := time.Now()
	fs.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v; want well under 1s", d)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("read after Close: got %v; want EOF or reset", err)
	}
}

func TestReadCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", want: []string{"GET", "k"}},
		{in: "*1\r\n$0\r\n\r\n", want: []string{""}},
		{in: "*0\r\n", want: []string{}},
		{in: "PING\r\n", want: []string{"PING"}},
		{in: "set  k v\n", want: []string{"set", "k", "v"}},
		{in: "\r\n", want: []string{}},
		{in: "*x\r\n", wantErr: true},
		{in: "*1\r\n:1\r\n", wantErr: true},
		{in: "*1\r\n$3\r\nabcd\r\n", wantErr: true},
		{in: "*1\r\n$3\r\nab", wantErr: true},
	}
	for _, tt := range tests {
		got, err := redistest.ReadCommand(bufio.NewReader(strings.NewReader(tt.in)))
		if (err != nil) != tt.wantErr {
			t.Errorf("ReadCommand(%q): got error %v; want error: %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !reflect.DeepEqual(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Errorf("ReadCommand(%q): got %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	// FreePort's port is one the kernel hands out for outgoing connections
	// too, so between its return and the Listen below another socket may
	// take it: on a busy machine, beside this package's servers, it did
	// in 1 of 3 runs ("address already in use"). That is the race its doc
	// warns of; three ports taken in a row would mean FreePort returns
	// ports that were not free.
	var err error
	for range 3 {
		port := redistest.FreePort(t)
		var ln net.Listener
		if ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			ln.Close()
			return
		}
	}
	t.Fatalf("listen on three ports from FreePort: the last failed: %v", err)
}

func TestStartServerSkipsWithoutBinary(t *testing.T) {
	var skipped bool
	t.Run("no redis-server", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		t.Setenv(redistest.RequireServerEnv, "")
		defer func() { skipped = t.Skipped() }()
		redistest.StartServer(t)
	})
	if !skipped {
		t.Errorf("got no skip without redis-server in $PATH; want a skip")
	}
}

func TestStartSentinelFailoverAndPause(t *testing.T) {
	start := time.Now()
	d := redistest.StartSentinel(t, redistest.SentinelOptions{})
	t.Logf("deployment ready after %v", time.Since(start))
	if got, want := d.MasterAddr(t), d.Data[0].Addr(); got != want {
		t.Fatalf("master: got %s; want %s", got, want)
	}
	for _, s := range d.Data[1:] {
		if role := redistest.Role(s); role != "slave" {
			t.Errorf("replica %s: got ROLE %s; want slave", s.Addr(), role)
		}
	}
	if role := redistest.Role(d.Sentinels[0]); role != "sentinel" {
		t.Errorf("Sentinel: got ROLE %s; want sentinel", role)
	}

	d.SetInfoPeriod(t, time.Second)
	old := d.MasterAddr(t)
	start = time.Now()
	d.Failover(t)
	addr := d.WaitMaster(t, old)
	t.Logf("new master after %v", time.Since(start))
	if addr == old {
		t.Fatalf("master still %s after a failover", old)
	}
	// A paused process keeps its port but answers nothing; Resume brings it back.
	s := d.Sentinels[0]
	pid := s.PID()
	s.Pause()
	c := dial(t, "tcp", s.Addr(), redis.DialReadTimeout(300*time.Millisecond))
	if _, err := c.Do("PING"); !isTimeout(err) {
		t.Errorf("paused Sentinel: PING got %v; want a timeout", err)
	}
	s.Resume()
	if _, err := s.Exec("PING"); err != nil {
		t.Errorf("resumed Sentinel: %v", err)
	}
	if s.PID() != pid {
		t.Errorf("pid changed across pause: %d, %d", pid, s.PID())
	}
}
