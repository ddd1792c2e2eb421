package redistest

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SentinelOptions configures StartSentinel. The zero value is a master, two
// replicas and three Sentinels monitoring "mymaster" with a quorum of 2.
type SentinelOptions struct {
	// MasterName is the name the Sentinels monitor. Zero means "mymaster".
	MasterName string

	// Replicas is the number of replicas. Zero means 2; negative means none.
	Replicas int

	// Sentinels is the number of Sentinels. Zero means 3.
	Sentinels int

	// Quorum is the quorum of "sentinel monitor". Zero means a majority
	// of the Sentinels.
	Quorum int

	// DataArgs are extra redis-server arguments for the master and the
	// replicas, e.g. "--min-replicas-to-write", "1".
	DataArgs []string

	// SentinelArgs are extra arguments for the Sentinels, e.g.
	// "--requirepass", "secret".
	SentinelArgs []string
}

// Timing of the deployment: Sentinels consider a node down after a second
// without replies, and a failover that has not completed in 5 seconds is
// abandoned.
const (
	SentinelDownAfter       = time.Second
	SentinelFailoverTimeout = 5 * time.Second
)

// sentinelReadyTimeout bounds the wait for a deployment, or for a new
// master, to settle. It is generous: up to five test binaries share two
// cores.
const sentinelReadyTimeout = 30 * time.Second

// SentinelDeployment is a master, its replicas and the Sentinels that
// monitor them, each a Server of its own on a loopback port, with its own
// directory. Which data node is the master changes with failovers: ask
// MasterAddr or Master.
type SentinelDeployment struct {
	t    testing.TB
	name string

	// Data holds the data nodes; Data[0] started as the master.
	Data []*Server

	// Sentinels holds the Sentinels, in the order of SentinelAddrs.
	Sentinels []*Server
}

// StartSentinel starts a Sentinel deployment and returns when it is ready:
// every replica is in sync, SENTINEL CKQUORUM is OK on every Sentinel, and
// every Sentinel knows the replicas and the other Sentinels (about 2.5
// seconds). Data nodes run with --repl-diskless-sync-delay 0; each
// Sentinel runs as "redis-server sentinel.conf --sentinel" with its own
// writable sentinel.conf, with down-after-milliseconds 1000 and
// failover-timeout 5000. Every process is stopped when the test completes,
// whether it passes or not.
func StartSentinel(t testing.TB, opts SentinelOptions) *SentinelDeployment {
	t.Helper()
	if opts.MasterName == "" {
		opts.MasterName = "mymaster"
	}
	switch {
	case opts.Replicas == 0:
		opts.Replicas = 2
	case opts.Replicas < 0:
		opts.Replicas = 0
	}
	if opts.Sentinels == 0 {
		opts.Sentinels = 3
	}
	if opts.Quorum == 0 {
		opts.Quorum = opts.Sentinels/2 + 1
	}
	d := &SentinelDeployment{t: t, name: opts.MasterName}

	dataArgs := append([]string{"--repl-diskless-sync-delay", "0"}, opts.DataArgs...)
	master := StartServer(t, dataArgs...)
	d.Data = append(d.Data, master)
	for i := 0; i < opts.Replicas; i++ {
		args := append(dataArgs[:len(dataArgs):len(dataArgs)], "--replicaof", "127.0.0.1", strconv.Itoa(master.Port()))
		d.Data = append(d.Data, StartServer(t, args...))
	}
	d.waitFor(t, "replicas in sync", func() error { return replicasInSync(master, opts.Replicas) })

	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d\n"+
		"sentinel down-after-milliseconds %[1]s %[4]d\n"+
		"sentinel failover-timeout %[1]s %[5]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		opts.MasterName, master.Port(), opts.Quorum,
		SentinelDownAfter.Milliseconds(), SentinelFailoverTimeout.Milliseconds())
	head := func(dir string) []string {
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		return []string{path, "--sentinel"}
	}
	for i := 0; i < opts.Sentinels; i++ {
		d.Sentinels = append(d.Sentinels, startServerWith(t, serverSetup{network: "tcp", head: head}, opts.SentinelArgs))
	}
	d.WaitReady(t)
	return d
}

// MasterName returns the name the Sentinels monitor.
func (d *SentinelDeployment) MasterName() string { return d.name }

// SentinelAddrs returns the Sentinels' addresses.
func (d *SentinelDeployment) SentinelAddrs() []string {
	addrs := make([]string, len(d.Sentinels))
	for i, s := range d.Sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Node returns the data node listening on addr, or nil.
func (d *SentinelDeployment) Node(addr string) *Server {
	for _, s := range d.Data {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// MasterAddr returns the master's address as the first running Sentinel
// that answers reports it.
func (d *SentinelDeployment) MasterAddr(t testing.TB) string {
	t.Helper()
	var lastErr error
	for _, s := range d.Sentinels {
		if !s.Running() {
			continue
		}
		addr, err := d.askMaster(s)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	t.Fatalf("redistest: no Sentinel reports the master of %q: %v", d.name, lastErr)
	return ""
}

// Master returns the data node the Sentinels report as the master.
func (d *SentinelDeployment) Master(t testing.TB) *Server {
	t.Helper()
	addr := d.MasterAddr(t)
	s := d.Node(addr)
	if s == nil {
		t.Fatalf("redistest: the Sentinels report master %s, which is none of the data nodes", addr)
	}
	return s
}

func (d *SentinelDeployment) askMaster(s *Server) (string, error) {
	reply, err := s.Exec("SENTINEL", "GET-MASTER-ADDR-BY-NAME", d.name)
	if err != nil {
		return "", err
	}
	hp, ok := reply.([]any)
	if !ok || len(hp) != 2 {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME %s: got %#v", d.name, reply)
	}
	host, _ := hp[0].(string)
	port, _ := hp[1].(string)
	return net.JoinHostPort(host, port), nil
}

// Failover starts a planned failover with SENTINEL FAILOVER on the first
// running Sentinel, retrying while the Sentinels are not yet ready for one
// (a failover in progress, no good replica yet).
func (d *SentinelDeployment) Failover(t testing.TB) {
	t.Helper()
	d.waitFor(t, "SENTINEL FAILOVER accepted", func() error {
		for _, s := range d.Sentinels {
			if s.Running() {
				_, err := s.Exec("SENTINEL", "FAILOVER", d.name)
				return err
			}
		}
		return fmt.Errorf("no Sentinel is running")
	})
}

// WaitMaster waits until every running Sentinel reports a master other
// than old, and that node answers ROLE as a master, and returns its
// address.
func (d *SentinelDeployment) WaitMaster(t testing.TB, old string) string {
	t.Helper()
	var addr string
	d.waitFor(t, "a new master", func() error {
		addr = ""
		for _, s := range d.Sentinels {
			if !s.Running() {
				continue
			}
			a, err := d.askMaster(s)
			switch {
			case err != nil:
				return err
			case a == old:
				return fmt.Errorf("sentinel %s still reports %s", s.Addr(), old)
			case addr != "" && a != addr:
				return fmt.Errorf("sentinels disagree: %s and %s", addr, a)
			}
			addr = a
		}
		if addr == "" {
			return fmt.Errorf("no Sentinel is running")
		}
		node := d.Node(addr)
		if node == nil {
			return fmt.Errorf("master %s is none of the data nodes", addr)
		}
		if role := Role(node); role != "master" {
			return fmt.Errorf("%s reports ROLE %s", addr, role)
		}
		return nil
	})
	return addr
}

// WaitReady waits until every running replica is in sync with the
// master, and every running Sentinel reports CKQUORUM OK, knows the
// other running Sentinels and the running replicas. Call it after a
// failover and before the next one.
func (d *SentinelDeployment) WaitReady(t testing.TB) {
	t.Helper()
	var sentinels, replicas int
	for _, s := range d.Sentinels {
		if s.Running() {
			sentinels++
		}
	}
	for _, s := range d.Data {
		if s.Running() {
			replicas++
		}
	}
	replicas-- // the master
	d.waitFor(t, "the deployment to be ready", func() error {
		master := d.Node(d.MasterAddr(t))
		if master == nil {
			return fmt.Errorf("the master is none of the data nodes")
		}
		if err := replicasInSync(master, replicas); err != nil {
			return err
		}
		for _, s := range d.Sentinels {
			if !s.Running() {
				continue
			}
			if _, err := s.Exec("SENTINEL", "CKQUORUM", d.name); err != nil {
				return fmt.Errorf("sentinel %s: %v", s.Addr(), err)
			}
			for _, what := range []struct {
				cmd  string
				want int
			}{{"SENTINELS", sentinels - 1}, {"REPLICAS", replicas}} {
				reply, err := s.Exec("SENTINEL", what.cmd, d.name)
				if err != nil {
					return fmt.Errorf("sentinel %s: %v", s.Addr(), err)
				}
				if n := countUp(reply); n != what.want {
					return fmt.Errorf("sentinel %s knows %d %s up; want %d", s.Addr(), n, strings.ToLower(what.cmd), what.want)
				}
			}
		}
		return nil
	})
}

// SetInfoPeriod sets SENTINEL DEBUG info-period on every running
// Sentinel: how often a Sentinel sends INFO to the nodes it monitors (ten
// seconds by default). A shorter period makes Sentinels notice sooner that
// a demoted master still reachable claims to be a master, and turn it
// into a replica (they wait failover-timeout after its report first).
func (d *SentinelDeployment) SetInfoPeriod(t testing.TB, period time.Duration) {
	t.Helper()
	for _, s := range d.Sentinels {
		if s.Running() {
			s.Do(t, "SENTINEL", "DEBUG", "info-period", period.Milliseconds())
		}
	}
}

// Role returns the first element of s's ROLE reply ("master", "slave" or
// "sentinel"), or the error that prevented reading it.
func Role(s *Server) string {
	reply, err := s.Exec("ROLE")
	if err != nil {
		// Sentinel kills the clients of a node it reconfigures, admin
		// connections included: the retry dials again.
		reply, err = s.Exec("ROLE")
	}
	if err != nil {
		return "error: " + err.Error()
	}
	if r, ok := reply.([]any); ok && len(r) > 0 {
		if role, ok := r[0].(string); ok {
			return role
		}
	}
	return fmt.Sprintf("unexpected reply %#v", reply)
}

// replicasInSync checks that master is a master with n replicas online.
func replicasInSync(master *Server, n int) error {
	reply, err := master.Exec("INFO", "replication")
	if err != nil {
		return err
	}
	info, _ := reply.(string)
	if !strings.Contains(info, "role:master\r\n") {
		return fmt.Errorf("%s is not a master yet", master.Addr())
	}
	if online := strings.Count(info, ",state=online,"); online != n {
		return fmt.Errorf("%s has %d replicas online; want %d", master.Addr(), online, n)
	}
	return nil
}

// countUp counts the entries of a SENTINEL SENTINELS or REPLICAS reply
// whose flags show neither a down node nor a disconnected one.
func countUp(reply any) int {
	entries, _ := reply.([]any)
	n := 0
	for _, e := range entries {
		fields, _ := e.([]any)
		for i := 0; i+1 < len(fields); i += 2 {
			if k, _ := fields[i].(string); k == "flags" {
				flags, _ := fields[i+1].(string)
				if !strings.Contains(flags, "down") && !strings.Contains(flags, "disconnected") {
					n++
				}
			}
		}
	}
	return n
}

// waitFor polls check every 50ms until it returns nil, and fails the test
// with its last error if that takes longer than sentinelReadyTimeout.
func (d *SentinelDeployment) waitFor(t testing.TB, what string, check func() error) {
	t.Helper()
	debug := os.Getenv("REDISTEST_DEBUG") != "" // to see what a slow wait waits for
	err := poll(sentinelReadyTimeout, 50*time.Millisecond, func() error {
		err := check()
		if err != nil && debug {
			t.Logf("%v %s: %v", time.Now().Format("15:04:05.000"), what, err)
		}
		return err
	})
	if err == nil {
		return
	}
	var logs strings.Builder
	for _, s := range d.Sentinels {
		log := s.Log()
		if len(log) > 2<<10 {
			log = "..." + log[len(log)-2<<10:]
		}
		fmt.Fprintf(&logs, "\nSentinel %s log:\n%s", s.Addr(), log)
	}
	t.Fatalf("redistest: waiting for %s (master %q): %v after %v%s", what, d.name, err, sentinelReadyTimeout, logs.String())
}

// FakeSentinel answers like a Sentinel monitoring one master, with
// whatever address and config-epoch a test sets: a Sentinel that lags, lies
// or announces a switch that never happened. It serves AUTH (any
// credentials), PING, SENTINEL GET-MASTER-ADDR-BY-NAME, SENTINEL MASTER
// (with the fields a client reads: name, ip, port, flags, config-epoch)
// and SUBSCRIBE; Announce publishes +switch-master to its subscribers.
type FakeSentinel struct {
	*FakeServer
	name string

	mu     sync.Mutex // protects following fields
	master string
	epoch  int64
	noperm bool // SENTINEL MASTER is refused, as an ACL without sentinel|master does
	asked  int
	subs   map[net.Conn]*FakeConn // subscribed to +switch-master, by the connection the server accepted
}

// NewFakeSentinel starts a fake Sentinel that names master, host:port,
// with config-epoch epoch for the master called name.
func NewFakeSentinel(t testing.TB, name, master string, epoch int64) *FakeSentinel {
	t.Helper()
	s := &FakeSentinel{name: name, master: master, epoch: epoch, subs: make(map[net.Conn]*FakeConn)}
	s.FakeServer = NewFakeServer(t, s.serve)
	return s
}

// SetMaster changes the master's address and config-epoch the fake reports.
func (s *FakeSentinel) SetMaster(addr string, epoch int64) {
	s.mu.Lock()
	s.master, s.epoch = addr, epoch
	s.mu.Unlock()
}

// RefuseMasterCommand makes SENTINEL MASTER fail with NOPERM, as for an
// ACL user without +sentinel|master.
func (s *FakeSentinel) RefuseMasterCommand() {
	s.mu.Lock()
	s.noperm = true
	s.mu.Unlock()
}

// Asked returns how many GET-MASTER-ADDR-BY-NAME queries the fake answered.
func (s *FakeSentinel) Asked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked
}

// Subscribers returns how many connections are subscribed to +switch-master.
func (s *FakeSentinel) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// Announce publishes "+switch-master <name> <old host> <old port> <new
// host> <new port>" to every subscriber, and returns how many it reached.
// It does not change what the fake reports when asked.
func (s *FakeSentinel) Announce(oldAddr, newAddr string) int {
	oh, op, _ := net.SplitHostPort(oldAddr)
	nh, np, _ := net.SplitHostPort(newAddr)
	payload := strings.Join([]string{s.name, oh, op, nh, np}, " ")
	msg := "*3\r\n" + bulk("message") + bulk("+switch-master") + bulk(payload)
	s.mu.Lock()
	subs := make([]*FakeConn, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	n := 0
	for _, sub := range subs {
		if _, err := io.WriteString(sub, msg); err == nil {
			n++
		}
	}
	return n
}

func (s *FakeSentinel) serve(conn net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.subs, conn)
		s.mu.Unlock()
	}()
	Dispatch(func(c *FakeConn, cmd []string) (string, bool) {
		if len(cmd) == 0 {
			return "", false
		}
		return s.reply(c, cmd), false
	})(conn)
}

func (s *FakeSentinel) reply(c *FakeConn, cmd []string) string {
	arg := func(i int) string {
		if i < len(cmd) {
			return cmd[i]
		}
		return ""
	}
	switch strings.ToUpper(cmd[0]) {
	case "AUTH":
		return "+OK\r\n"
	case "PING":
		s.mu.Lock()
		_, subscribed := s.subs[c.Conn]
		s.mu.Unlock()
		if subscribed {
			return "*2\r\n" + bulk("pong") + bulk(arg(1))
		}
		return "+PONG\r\n"
	case "SUBSCRIBE":
		var out strings.Builder
		for i, ch := range cmd[1:] {
			out.WriteString("*3\r\n" + bulk("subscribe") + bulk(ch) + ":" + strconv.Itoa(i+1) + "\r\n")
			if ch == "+switch-master" {
				s.mu.Lock()
				s.subs[c.Conn] = c
				s.mu.Unlock()
			}
		}
		return out.String()
	case "SENTINEL":
		s.mu.Lock()
		defer s.mu.Unlock()
		if arg(2) != s.name {
			if strings.EqualFold(arg(1), "MASTER") {
				return "-ERR No such master with that name\r\n"
			}
			return "*-1\r\n"
		}
		host, port, _ := net.SplitHostPort(s.master)
		switch strings.ToUpper(arg(1)) {
		case "GET-MASTER-ADDR-BY-NAME":
			s.asked++
			return "*2\r\n" + bulk(host) + bulk(port)
		case "MASTER":
			if s.noperm {
				return "-NOPERM this user has no permissions to run the 'sentinel|master' command\r\n"
			}
			fields := []string{"name", s.name, "ip", host, "port", port, "flags", "master",
				"config-epoch", strconv.FormatInt(s.epoch, 10)}
			out := "*" + strconv.Itoa(len(fields)) + "\r\n"
			for _, f := range fields {
				out += bulk(f)
			}
			return out
		}
		return "-ERR unknown sentinel subcommand '" + arg(1) + "'\r\n"
	}
	return "-ERR unknown command '" + cmd[0] + "'\r\n"
}
