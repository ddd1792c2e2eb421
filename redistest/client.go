package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// AdminName is the CLIENT SETNAME of every admin connection. CountClients,
// WaitClients and KillClients never count or kill a client with this name.
const AdminName = "redistest-admin"

// adminTimeout bounds dialing and each command round trip of an admin
// connection, so a broken server fails the test instead of hanging it.
const adminTimeout = 5 * time.Second

// Error is an error reply from the server, such as "NOAUTH Authentication
// required.".
type Error string

func (e Error) Error() string { return string(e) }

// Client is an admin connection to a Server, outside any pool. It dials
// lazily, authenticates with the server's password, names itself AdminName,
// and redials on the next command after an I/O error or a server restart.
//
// Replies are decoded as: simple and bulk strings as string, integers as
// int64, arrays as []any, nil bulk strings and arrays as nil, and error
// replies as Error.
//
// A Client is safe for concurrent use; commands are serialized.
type Client struct {
	network   string
	addr      string
	password  string
	tlsConfig *tls.Config   // nil for plain connections
	timeout   time.Duration // for dialing and for each round trip

	mu   sync.Mutex // protects following fields
	conn net.Conn
	br   *bufio.Reader
}

func newClient(network, addr, password string, tlsConfig *tls.Config) *Client {
	return &Client{network: network, addr: addr, password: password, tlsConfig: tlsConfig, timeout: adminTimeout}
}

// Exec runs a command and returns its reply. An error reply is returned as
// an Error. Unlike Do it does not fail the test, so it may be called from
// any goroutine.
func (c *Client) Exec(cmd string, args ...any) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		if err := c.dialLocked(); err != nil {
			return nil, err
		}
	}
	reply, err := c.roundTripLocked(cmd, args...)
	if err != nil {
		c.closeLocked()
		return nil, err
	}
	if e, ok := reply.(Error); ok {
		return nil, e
	}
	return reply, nil
}

// Do runs a command and returns its reply, failing the test on any error,
// including an error reply. Call it from the test goroutine only.
func (c *Client) Do(t testing.TB, cmd string, args ...any) any {
	t.Helper()
	reply, err := c.Exec(cmd, args...)
	if err != nil {
		t.Fatalf("redistest: %s: %v", formatCommand(cmd, args), err)
	}
	return reply
}

// ClientList runs CLIENT LIST and returns every client, including admin
// connections.
func (c *Client) ClientList(t testing.TB) []ClientInfo {
	t.Helper()
	reply := c.Do(t, "CLIENT", "LIST")
	s, ok := reply.(string)
	if !ok {
		t.Fatalf("redistest: CLIENT LIST: got reply of type %T; want string", reply)
	}
	infos, err := ParseClientList(s)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return infos
}

// CountClients returns how many clients other than admin connections match
// filter. A nil filter matches every client.
func (c *Client) CountClients(t testing.TB, filter func(ClientInfo) bool) int {
	t.Helper()
	return len(selectClients(c.ClientList(t), filter))
}

// WaitClients polls CLIENT LIST until CountClients(t, filter) equals want,
// and fails the test if it does not within 5 seconds. The server notices
// closed connections asynchronously, so tests should wait rather than count
// right after closing a pool.
func (c *Client) WaitClients(t testing.TB, want int, filter func(ClientInfo) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := c.CountClients(t, filter)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: got %d clients after 5s; want %d", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// KillClients kills, with CLIENT KILL ID, every client other than admin
// connections that matches filter, and returns how many were killed. A nil
// filter matches every client.
func (c *Client) KillClients(t testing.TB, filter func(ClientInfo) bool) int {
	t.Helper()
	killed := 0
	for _, ci := range selectClients(c.ClientList(t), filter) {
		n, _ := c.Do(t, "CLIENT", "KILL", "ID", ci.ID).(int64)
		killed += int(n)
	}
	return killed
}

// Close closes the connection. The Client stays usable: the next command
// dials again.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
}

func (c *Client) closeLocked() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.br = nil, nil
	}
}

func (c *Client) dialLocked() error {
	d := &net.Dialer{Timeout: c.timeout}
	var (
		conn net.Conn
		err  error
	)
	if c.tlsConfig != nil {
		conn, err = tls.DialWithDialer(d, c.network, c.addr, c.tlsConfig)
	} else {
		conn, err = d.Dial(c.network, c.addr)
	}
	if err != nil {
		return err
	}
	c.conn, c.br = conn, bufio.NewReader(conn)
	if c.password != "" {
		if err := c.setupLocked("AUTH", c.password); err != nil {
			return err
		}
	}
	return c.setupLocked("CLIENT", "SETNAME", AdminName)
}

// setupLocked runs a connection setup command and closes the connection if
// it fails in any way.
func (c *Client) setupLocked(cmd string, args ...any) error {
	reply, err := c.roundTripLocked(cmd, args...)
	if err == nil {
		if e, ok := reply.(Error); ok {
			err = e
		}
	}
	if err != nil {
		c.closeLocked()
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return nil
}

func (c *Client) roundTripLocked(cmd string, args ...any) (any, error) {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(appendCommand(nil, cmd, args...)); err != nil {
		return nil, err
	}
	return readReply(c.br)
}

// appendCommand appends cmd and args to b as a RESP array of bulk strings.
func appendCommand(b []byte, cmd string, args ...any) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(1+len(args)), 10)
	b = append(b, "\r\n"...)
	b = appendBulk(b, cmd)
	for _, a := range args {
		var s string
		switch a := a.(type) {
		case string:
			s = a
		case []byte:
			s = string(a)
		default:
			s = fmt.Sprint(a)
		}
		b = appendBulk(b, s)
	}
	return b
}

func appendBulk(b []byte, s string) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, "\r\n"...)
	b = append(b, s...)
	return append(b, "\r\n"...)
}

// maxBulk bounds the bulk strings and arrays readReply accepts.
const maxBulk = 512 << 20

// readReply reads one RESP2 reply.
func readReply(br *bufio.Reader) (any, error) {
	line, err := readLine(br)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 {
		return nil, errors.New("redistest: empty reply line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return Error(line[1:]), nil
	case ':':
		n, err := strconv.ParseInt(line[1:], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redistest: bad integer reply %q", line)
		}
		return n, nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < -1 || n > maxBulk {
			return nil, fmt.Errorf("redistest: bad bulk length %q", line)
		}
		if n == -1 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		if string(buf[n:]) != "\r\n" {
			return nil, errors.New("redistest: bulk string not terminated by CRLF")
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < -1 || n > maxBulk {
			return nil, fmt.Errorf("redistest: bad array length %q", line)
		}
		if n == -1 {
			return nil, nil
		}
		elems := make([]any, n)
		for i := range elems {
			if elems[i], err = readReply(br); err != nil {
				return nil, err
			}
		}
		return elems, nil
	default:
		return nil, fmt.Errorf("redistest: unexpected reply line %q", line)
	}
}

// readLine reads a CRLF-terminated line and returns it without the CRLF.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", fmt.Errorf("redistest: line not terminated by CRLF: %q", line)
	}
	return line[:len(line)-2], nil
}

func formatCommand(cmd string, args []any) string {
	var sb strings.Builder
	sb.WriteString(cmd)
	for _, a := range args {
		fmt.Fprintf(&sb, " %v", a)
	}
	return sb.String()
}

// ClientInfo is one client as reported by CLIENT LIST.
type ClientInfo struct {
	ID    int64         // id=
	Addr  string        // addr=, "127.0.0.1:53122" or "/path/to/sock:0"
	LAddr string        // laddr=, the server side of the connection
	Name  string        // name=, set by CLIENT SETNAME; empty if unset
	DB    int           // db=, the selected database
	User  string        // user=, the authenticated ACL user ("default" without ACLs)
	Flags string        // flags=, e.g. "N" (none), "U" (unix socket), "x" (in MULTI)
	Cmd   string        // cmd=, the last command, subcommands as "client|list"
	Age   time.Duration // age=, time since the connection was accepted, in whole seconds
	Idle  time.Duration // idle=, time since the last command, in whole seconds

	// Fields holds every field as reported, including those above.
	Fields map[string]string
}

// ParseClientList parses the reply of CLIENT LIST, one client per line.
func ParseClientList(s string) ([]ClientInfo, error) {
	var infos []ClientInfo
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		ci, err := parseClientInfo(line)
		if err != nil {
			return nil, err
		}
		infos = append(infos, ci)
	}
	return infos, nil
}

func parseClientInfo(line string) (ClientInfo, error) {
	ci := ClientInfo{Fields: make(map[string]string)}
	// Client names cannot contain spaces, so splitting on spaces is exact.
	for _, field := range strings.Fields(line) {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return ClientInfo{}, fmt.Errorf("parse CLIENT LIST: field %q without '=' in line %q", field, line)
		}
		ci.Fields[k] = v
	}
	var err error
	atoi := func(k string) int64 {
		v, ok := ci.Fields[k]
		if !ok || err != nil {
			return 0
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil {
			err = fmt.Errorf("parse CLIENT LIST: %s=%q in line %q: %w", k, v, line, perr)
		}
		return n
	}
	ci.ID = atoi("id")
	ci.DB = int(atoi("db"))
	ci.Age = time.Duration(atoi("age")) * time.Second
	ci.Idle = time.Duration(atoi("idle")) * time.Second
	if err != nil {
		return ClientInfo{}, err
	}
	if _, ok := ci.Fields["id"]; !ok {
		return ClientInfo{}, fmt.Errorf("parse CLIENT LIST: no id in line %q", line)
	}
	ci.Addr = ci.Fields["addr"]
	ci.LAddr = ci.Fields["laddr"]
	ci.Name = ci.Fields["name"]
	ci.User = ci.Fields["user"]
	ci.Flags = ci.Fields["flags"]
	ci.Cmd = ci.Fields["cmd"]
	return ci, nil
}

// selectClients returns the clients other than admin connections that match
// filter; a nil filter matches all of them.
func selectClients(infos []ClientInfo, filter func(ClientInfo) bool) []ClientInfo {
	var out []ClientInfo
	for _, ci := range infos {
		if ci.Name == AdminName {
			continue
		}
		if filter == nil || filter(ci) {
			out = append(out, ci)
		}
	}
	return out
}
