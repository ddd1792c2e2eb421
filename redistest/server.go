package redistest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireServerEnv is the environment variable that, set to "1", turns the
// skip for a missing redis-server binary (or one built without TLS) into a
// test failure. CI sets it so integration tests cannot pass vacuously.
const RequireServerEnv = "REDISPOOL_REQUIRE_SERVER"

const (
	readyTimeout = 5 * time.Second // for a started server to answer PING
	stopTimeout  = 5 * time.Second // for SIGTERM before falling back to SIGKILL
	startTries   = 5               // ports tried before giving up on bind failures
)

// Server is a redis-server process started for one test. Its methods are
// safe for concurrent use; Stop, Kill and Restart are serialized.
type Server struct {
	t       testing.TB
	path    string   // redis-server binary
	network string   // "tcp" or "unix"
	addr    string   // host:port, or the socket path
	port    int      // 0 for unix servers
	busPort int      // --cluster-port of a cluster node, or 0
	socket  string   // "" for TCP servers
	dir     string   // --dir, the server's working directory
	args    []string // command line after the binary
	pass    string   // --requirepass, if any
	admin   *Client
	log     LockedBuffer

	mu   sync.Mutex // serializes starting and stopping; protects proc
	proc *process   // nil while stopped
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait has returned
}

// StartServer starts redis-server on a free port of 127.0.0.1 with
//
//	--save "" --appendonly no --bind 127.0.0.1 --port N --dir <t.TempDir()>
//
// followed by args, which override those defaults (redis uses the last
// occurrence of a directive), e.g. "--requirepass", "x",
// "--enable-debug-command", "yes" or "--maxclients", "10". Do not pass
// --port: Restart relies on the port chosen here. When args contain
// --requirepass, the admin connection authenticates with it. Note that the
// admin connection counts towards --maxclients.
//
// StartServer returns once the server answers PING, and fails the test with
// the server's log if it does not within 5 seconds. It skips the test if
// redis-server is not in $PATH, unless REDISPOOL_REQUIRE_SERVER=1. The server
// is stopped when the test and its subtests complete.
func StartServer(t testing.TB, args ...string) *Server {
	t.Helper()
	return startServer(t, "tcp", nil, args)
}

// StartUnixServer is like StartServer but the server listens only on a unix
// socket in a temporary directory (--port 0 --unixsocket path). Addr and
// SocketPath return the socket path, Network returns "unix" and Port 0.
func StartUnixServer(t testing.TB, args ...string) *Server {
	t.Helper()
	return startServer(t, "unix", nil, args)
}

func startServer(t testing.TB, network string, certs *TLSCerts, args []string) *Server {
	t.Helper()
	return startServerWith(t, serverSetup{network: network, certs: certs}, args)
}

// serverSetup says how startServerWith makes a server listen.
type serverSetup struct {
	network string    // "tcp" or "unix"
	certs   *TLSCerts // for a TLS server, or nil
	cluster bool      // a cluster node: data and bus port from FreeLowPort
	// head, if not nil, returns what the command line begins with, given
	// the server's directory: a config file written there, and for a
	// Sentinel, "--sentinel". The defaults and args follow it.
	head func(dir string) []string
}

func startServerWith(t testing.TB, setup serverSetup, args []string) *Server {
	t.Helper()
	network, certs, head := setup.network, setup.certs, setup.head
	s := &Server{
		t:       t,
		path:    lookupServer(t),
		network: network,
		dir:     t.TempDir(),
		pass:    passwordFromArgs(args),
	}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(s.Stop)

	var tlsConfig *tls.Config
	if certs != nil {
		tlsConfig = certs.ClientConfig()
	}
	var err error
	for try := 0; try < startTries; try++ {
		var listen []string
		switch {
		case network == "unix":
			s.socket = socketPath(t, s.dir)
			s.addr = s.socket
			listen = []string{"--port", "0", "--unixsocket", s.socket, "--unixsocketperm", "700"}
		case certs != nil:
			s.port = FreePort(t)
			s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
			listen = []string{
				"--port", "0",
				"--tls-port", strconv.Itoa(s.port),
				"--tls-cert-file", certs.ServerCertFile,
				"--tls-key-file", certs.ServerKeyFile,
				"--tls-ca-cert-file", certs.CACertFile,
				"--tls-auth-clients", "no",
			}
		case setup.cluster:
			// Both ports below the ephemeral range: see FreeLowPort.
			s.port, s.busPort = FreeLowPort(t), FreeLowPort(t)
			s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
			listen = []string{"--port", strconv.Itoa(s.port), "--cluster-port", strconv.Itoa(s.busPort)}
		default:
			s.port = FreePort(t)
			s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
			listen = []string{"--port", strconv.Itoa(s.port)}
		}
		s.args = nil
		if head != nil {
			s.args = head(s.dir)
		}
		s.args = append(s.args, []string{
			"--save", "",
			"--appendonly", "no",
			"--bind", "127.0.0.1",
			"--dir", s.dir,
		}...)
		s.args = append(s.args, listen...)
		s.args = append(s.args, args...)
		s.admin = newClient(s.network, s.addr, s.pass, tlsConfig)

		s.mu.Lock()
		err = s.startLocked()
		s.mu.Unlock()
		if err == nil {
			return s
		}
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	log := s.Log()
	if certs != nil && strings.Contains(log, "Bad directive") && strings.Contains(log, "tls-") {
		skipOrFail(t, "redistest: %s was built without TLS support:\n%s", s.path, logTail(log))
	}
	t.Fatalf("redistest: start %s %s: %v\nserver log:\n%s", s.path, quoteArgs(s.args), err, logTail(log))
	return nil
}

var errAddrInUse = errors.New("address already in use")

// startLocked starts the process and waits until it answers PING. On failure
// the process has exited when startLocked returns.
func (s *Server) startLocked() error {
	logStart := s.log.Len()
	cmd := exec.Command(s.path, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout = &s.log
	cmd.Stderr = &s.log
	cmd.WaitDelay = time.Second
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait() //nolint:errcheck // the exit status is in the log
		close(p.done)
	}()
	s.proc = p

	err := s.waitReady(p)
	if err == nil {
		return nil
	}
	s.killLocked()
	if strings.Contains(s.log.From(logStart), "Address already in use") {
		return fmt.Errorf("%w: %v", errAddrInUse, err)
	}
	return err
}

// waitReady polls the server with PING until it answers, and checks that it
// is our process that answers and not one that took the port first. The
// probe has short timeouts, so that a foreign process that accepts but does
// not answer cannot stall it.
func (s *Server) waitReady(p *process) error {
	probe := newClient(s.admin.network, s.admin.addr, s.admin.password, s.admin.tlsConfig)
	probe.timeout = 500 * time.Millisecond
	defer probe.Close()
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited: %v", p.cmd.ProcessState)
		default:
		}
		reply, err := probe.Exec("PING")
		if err == nil && reply != "PONG" {
			err = fmt.Errorf("PING: got %#v; want PONG", reply)
		}
		if err == nil {
			err = checkPid(probe, p)
			if err == nil || errors.Is(err, errAddrInUse) {
				return err
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", readyTimeout, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func checkPid(c *Client, p *process) error {
	reply, err := c.Exec("INFO", "server")
	if err != nil {
		return err
	}
	info, _ := reply.(string)
	want := "process_id:" + strconv.Itoa(p.cmd.Process.Pid) + "\r\n"
	if !strings.Contains(info, want) {
		return fmt.Errorf("%w: another server answers on %s", errAddrInUse, c.addr)
	}
	return nil
}

// Addr returns the address to dial: "127.0.0.1:port", or the socket path of
// a unix server.
func (s *Server) Addr() string { return s.addr }

// Network returns "tcp", or "unix" for a server from StartUnixServer.
func (s *Server) Network() string { return s.network }

// Port returns the TCP port (the TLS port of a TLS server), or 0 for a unix
// server. It does not change on Restart.
func (s *Server) Port() int { return s.port }

// BusPort returns the cluster bus port (--cluster-port) of a node started
// by StartCluster, or 0 for other servers.
func (s *Server) BusPort() int { return s.busPort }

// SocketPath returns the unix socket path, or "" for a TCP server.
func (s *Server) SocketPath() string { return s.socket }

// Password returns the value of --requirepass, or "" if none was given.
func (s *Server) Password() string { return s.pass }

// Log returns everything the server wrote to stdout and stderr since it was
// first started, across restarts.
func (s *Server) Log() string { return s.log.String() }

// Stop terminates the server with SIGTERM, falling back to SIGKILL after 5
// seconds, and waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.proc == nil {
		return
	}
	s.admin.Close()
	p := s.proc
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited already
	p.cmd.Process.Signal(syscall.SIGCONT) //nolint:errcheck // a paused server cannot act on SIGTERM
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill() //nolint:errcheck
		<-p.done
	}
	s.proc = nil
}

// Kill kills the server with SIGKILL, as in a crash, and waits for it to
// exit. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

func (s *Server) killLocked() {
	if s.proc == nil {
		return
	}
	s.admin.Close()
	s.proc.cmd.Process.Kill() //nolint:errcheck // it may have exited already
	<-s.proc.done
	s.proc = nil
}

// Restart stops the server if it is running and starts it again on the same
// address with the same arguments, waiting until it answers PING. Data is
// not kept: dump.rdb, which a replica writes when it syncs, is deleted
// before the start, so that a restarted node never reloads stale data. It
// fails the test if the server does not come back within about
// 5 seconds, so call it from the test goroutine.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	if err := os.Remove(filepath.Join(s.dir, "dump.rdb")); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.t.Fatalf("redistest: restart %s: %v", s.addr, err)
	}
	fmt.Fprintf(&s.log, "--- redistest: restarting ---\n")
	var err error
	for try := 0; try < 50; try++ {
		if err = s.startLocked(); err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("redistest: restart %s: %v\nserver log:\n%s", s.addr, err, logTail(s.Log()))
	}
}

// Pause stops the server process with SIGSTOP, as a hung host would: its
// sockets stay open and nothing answers. Resume, Stop, Kill and the test's
// cleanup undo it. Pausing a stopped server does nothing.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.cmd.Process.Signal(sig) //nolint:errcheck // it may have exited already
	}
}

// PID returns the process ID of the running server, or 0 while it is
// stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Client returns a new admin connection of its own, closed when the test
// completes. Most tests can use the server's shared admin connection through
// Do, ClientList and the other methods of Server instead.
func (s *Server) Client(t testing.TB) *Client {
	t.Helper()
	c := newClient(s.admin.network, s.admin.addr, s.admin.password, s.admin.tlsConfig)
	t.Cleanup(c.Close)
	return c
}

// Exec runs a command on the shared admin connection; see Client.Exec.
func (s *Server) Exec(cmd string, args ...any) (any, error) { return s.admin.Exec(cmd, args...) }

// Do runs a command on the shared admin connection; see Client.Do.
func (s *Server) Do(t testing.TB, cmd string, args ...any) any {
	t.Helper()
	return s.admin.Do(t, cmd, args...)
}

// ClientList returns CLIENT LIST; see Client.ClientList.
func (s *Server) ClientList(t testing.TB) []ClientInfo {
	t.Helper()
	return s.admin.ClientList(t)
}

// CountClients counts clients other than admin connections that match
// filter; see Client.CountClients.
func (s *Server) CountClients(t testing.TB, filter func(ClientInfo) bool) int {
	t.Helper()
	return s.admin.CountClients(t, filter)
}

// WaitClients waits until CountClients(t, filter) equals want; see
// Client.WaitClients.
func (s *Server) WaitClients(t testing.TB, want int, filter func(ClientInfo) bool) {
	t.Helper()
	s.admin.WaitClients(t, want, filter)
}

// KillClients kills clients other than admin connections that match filter;
// see Client.KillClients.
func (s *Server) KillClients(t testing.TB, filter func(ClientInfo) bool) int {
	t.Helper()
	return s.admin.KillClients(t, filter)
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
// Another process may take it before the caller binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// lookupServer returns the path of redis-server, or skips the test.
func lookupServer(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		skipOrFail(t, "redistest: redis-server not found in $PATH: %v", err)
	}
	return path
}

// skipOrFail skips the test, or fails it if RequireServerEnv is "1".
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireServerEnv) == "1" {
		t.Fatalf(format+" ("+RequireServerEnv+"=1)", args...)
	}
	t.Skipf(format, args...)
}

func passwordFromArgs(args []string) string {
	var pass string
	for i := 0; i+1 < len(args); i++ {
		if strings.EqualFold(args[i], "--requirepass") {
			pass = args[i+1]
		}
	}
	return pass
}

// maxSocketPath keeps socket paths below the 104 bytes (macOS) and 108 bytes
// (Linux) of sockaddr_un.sun_path.
const maxSocketPath = 100

func socketPath(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "redis.sock")
	if len(path) <= maxSocketPath {
		return path
	}
	short, err := os.MkdirTemp("", "rt")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	return filepath.Join(short, "redis.sock")
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// logTail returns at most the last 8 KiB of a server log.
func logTail(log string) string {
	const max = 8 << 10
	if len(log) > max {
		return "..." + log[len(log)-max:]
	}
	return log
}

// LockedBuffer is a bytes.Buffer safe for concurrent use: a server's
// output, which exec.Cmd writes from its own goroutine, or a log a test
// reads while the code under test writes it.
type LockedBuffer struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *LockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// From returns the output written since the buffer had length off.
func (b *LockedBuffer) From(off int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf.Bytes()[off:])
}
