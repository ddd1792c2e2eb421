package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FakeServer accepts TCP connections on 127.0.0.1 and runs a handler for
// each one in a goroutine it owns. It is closed when the test completes.
type FakeServer struct {
	t        testing.TB
	ln       net.Listener
	handler  func(net.Conn)
	wg       sync.WaitGroup // the accept loop and every handler
	accepted atomic.Int64

	mu     sync.Mutex // protects following fields
	conns  map[*acceptedConn]struct{}
	closed bool
}

// NewFakeServer starts a fake server that runs handler for each accepted
// connection. The connection is closed when handler returns, and when the
// server is closed; handlers must return once their connection is closed.
func NewFakeServer(t testing.TB, handler func(conn net.Conn)) *FakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: fake server listen: %v", err)
	}
	s := &FakeServer{t: t, ln: ln, handler: handler, conns: make(map[*acceptedConn]struct{})}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(s.Close)
	return s
}

// Addr returns the server's address, "127.0.0.1:port".
func (s *FakeServer) Addr() string { return s.ln.Addr().String() }

// Accepted returns how many connections the server has accepted.
func (s *FakeServer) Accepted() int { return int(s.accepted.Load()) }

// Close closes the listener and every connection and waits for the
// handlers to return. It is idempotent.
func (s *FakeServer) Close() {
	s.mu.Lock()
	wasClosed := s.closed
	s.closed = true
	conns := make([]*acceptedConn, 0, len(s.conns))
	for fc := range s.conns {
		conns = append(conns, fc)
	}
	s.mu.Unlock()
	if !wasClosed {
		s.ln.Close()
	}
	for _, fc := range conns {
		fc.Close()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.t.Errorf("redistest: fake server handlers still running 10s after their connections were closed")
	}
}

func (s *FakeServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed by Close
		}
		s.accepted.Add(1)
		fc := &acceptedConn{Conn: c, done: make(chan struct{})}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[fc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, fc)
				s.mu.Unlock()
				fc.Close()
			}()
			s.handler(fc)
		}()
	}
}

// acceptedConn is the net.Conn handed to handlers. Done lets the handlers of
// this package stop waiting when the server closes the connection.
type acceptedConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
}

func (c *acceptedConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		close(c.done)
		err = c.Conn.Close()
	})
	return err
}

func (c *acceptedConn) Done() <-chan struct{} { return c.done }

// sleep waits for d, or until conn is closed if it is a connection from a
// FakeServer. It reports whether the full duration passed.
func sleep(conn net.Conn, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	var done <-chan struct{}
	if dc, ok := conn.(interface{ Done() <-chan struct{} }); ok {
		done = dc.Done()
	}
	select {
	case <-timer.C:
		return true
	case <-done:
		return false
	}
}

// stall reads and discards everything until the peer or the server closes
// conn: the connection stays open but never answers again.
func stall(conn net.Conn) {
	io.Copy(io.Discard, conn) //nolint:errcheck // ends when conn is closed
}

// FakeConn is a connection served by Dispatch. Its writes are serialised,
// so that a reply from the dispatch loop and a push written by another
// goroutine (a pub/sub message) never interleave on the wire.
type FakeConn struct {
	net.Conn // as accepted by the FakeServer

	mu sync.Mutex // serialises Write
}

// Write writes p in one piece, after any write in progress.
func (c *FakeConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Write(p)
}

// Dispatch returns a handler for NewFakeServer that reads commands from
// its connection, RESP arrays or inline, and calls answer for each one in
// turn. answer returns the raw reply to write, "" for none, and whether to
// hang up after it: the handler then returns and the server closes the
// connection. The loop also ends when a read or a write fails. Commands
// may be empty (a blank inline line); answer decides what they get.
//
// c is the connection the command came from: a test may keep it, e.g. as
// a subscriber, and push to it from another goroutine while the loop
// answers. A fake that only answers, such as a node that moves every key:
//
//	srv := redistest.NewFakeServer(t, redistest.Dispatch(func(_ *redistest.FakeConn, cmd []string) (string, bool) {
//		switch {
//		case len(cmd) == 0:
//			return "", true
//		case strings.EqualFold(cmd[0], "PING"):
//			return "+PONG\r\n", false
//		case strings.EqualFold(cmd[0], "QUIT"):
//			return "+OK\r\n", true
//		}
//		return "-MOVED 3999 127.0.0.1:7000\r\n", false
//	}))
func Dispatch(answer func(c *FakeConn, cmd []string) (reply string, hangUp bool)) func(net.Conn) {
	return func(conn net.Conn) { dispatch(&FakeConn{Conn: conn}, answer) }
}

func dispatch(c *FakeConn, answer func(c *FakeConn, cmd []string) (string, bool)) {
	br := bufio.NewReader(c)
	for {
		cmd, err := ReadCommand(br)
		if err != nil {
			return
		}
		out, hangUp := answer(c, cmd)
		if out != "" {
			if _, err := io.WriteString(c, out); err != nil {
				return
			}
		}
		if hangUp {
			return
		}
	}
}

// serveCommands is Dispatch for the handlers of this package, which leave
// conn open after the loop: reply reports false to stop reading.
func serveCommands(conn net.Conn, reply func(cmd []string) (string, bool)) {
	dispatch(&FakeConn{Conn: conn}, func(_ *FakeConn, cmd []string) (string, bool) {
		out, ok := reply(cmd)
		return out, !ok
	})
}

// okReply answers PING with PONG (or its argument), ECHO with its argument,
// and anything else with +OK.
func okReply(cmd []string) string {
	switch {
	case len(cmd) == 0:
		return "+OK\r\n"
	case strings.EqualFold(cmd[0], "PING") && len(cmd) > 1:
		return bulk(cmd[1])
	case strings.EqualFold(cmd[0], "PING"):
		return "+PONG\r\n"
	case strings.EqualFold(cmd[0], "ECHO") && len(cmd) > 1:
		return bulk(cmd[1])
	default:
		return "+OK\r\n"
	}
}

func bulk(s string) string { return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n" }

// OK returns a handler that behaves like a healthy server as far as a pool
// cares: +PONG to PING, the argument to PING msg and ECHO msg, and +OK to
// everything else (AUTH, SELECT, CLIENT SETNAME, SET...).
func OK() func(net.Conn) {
	return func(conn net.Conn) {
		serveCommands(conn, func(cmd []string) (string, bool) { return okReply(cmd), true })
	}
}

// Reply returns a handler that writes raw, verbatim, in answer to every
// command, e.g. Reply("-ERR boom\r\n") or Reply("+PONG\r\n").
func Reply(raw string) func(net.Conn) {
	return func(conn net.Conn) {
		serveCommands(conn, func([]string) (string, bool) { return raw, true })
	}
}

// Garbage returns a handler that answers every command with a line of
// random bytes that is not RESP: it starts with '?' and ends with CRLF.
func Garbage() func(net.Conn) {
	return func(conn net.Conn) {
		serveCommands(conn, func([]string) (string, bool) {
			b := make([]byte, 1+rand.IntN(64)+16)
			b[0] = '?'
			for i := 1; i < len(b); i++ {
				c := byte(rand.IntN(256))
				if c == '\r' || c == '\n' {
					c = '#'
				}
				b[i] = c
			}
			return string(b) + "\r\n", true
		})
	}
}

// Truncated returns a handler that answers the first command with a bulk
// string announcing 10 bytes, sends only "abc", and then never writes again:
// the client is left waiting for the rest of the reply.
func Truncated() func(net.Conn) {
	return func(conn net.Conn) {
		serveCommands(conn, func([]string) (string, bool) { return "$10\r\nabc", false })
		stall(conn)
	}
}

// TruncatedClose is like Truncated but closes the connection after "abc",
// so the client reads an unexpected EOF.
func TruncatedClose() func(net.Conn) {
	return func(conn net.Conn) {
		serveCommands(conn, func([]string) (string, bool) { return "$10\r\nabc", false })
	}
}

// HugeBulk returns a handler that answers the first command with a bulk
// string header of 2147483647 bytes followed by a few bytes, and then never
// writes again. A client must not try to allocate the announced size up
// front.
func HugeBulk() func(net.Conn) {
	return func(conn net.Conn) {
		serveCommands(conn, func([]string) (string, bool) { return "$2147483647\r\nabcdef", false })
		stall(conn)
	}
}

// SlowReply returns a handler that answers like OK, but only after d for
// every command. Closing the server interrupts the wait.
func SlowReply(d time.Duration) func(net.Conn) {
	return func(conn net.Conn) {
		serveCommands(conn, func(cmd []string) (string, bool) {
			if !sleep(conn, d) {
				return "", false
			}
			return okReply(cmd), true
		})
	}
}

// PongFirst returns a handler that answers the first command, the PING
// of a dial that sends nothing else, with +PONG and hands the connection
// to h for the rest.
func PongFirst(h func(net.Conn)) func(net.Conn) {
	return func(conn net.Conn) {
		br := bufio.NewReader(conn)
		if _, err := ReadCommand(br); err != nil {
			return
		}
		if _, err := io.WriteString(conn, "+PONG\r\n"); err != nil {
			return
		}
		if br.Buffered() > 0 {
			return // h could not read what br holds; the pool waits for the PONG
		}
		h(conn)
	}
}

// Silent returns a handler that reads commands but never answers, keeping
// the connection open: a hung server.
func Silent() func(net.Conn) {
	return stall
}

// Hangup returns a handler that closes the connection as soon as a command
// arrives, without answering.
func Hangup() func(net.Conn) {
	return func(conn net.Conn) {
		serveCommands(conn, func([]string) (string, bool) { return "", false })
	}
}

// maxCommandArgs and maxCommandArg bound what ReadCommand accepts.
const (
	maxCommandArgs = 1 << 20
	maxCommandArg  = 512 << 20
)

// ReadCommand reads one command as a client sends it: a RESP array of bulk
// strings, or an inline command (words separated by spaces, ending in CRLF
// or LF), as redis-cli and telnet send. An empty inline line yields an empty
// command.
func ReadCommand(br *bufio.Reader) ([]string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if !strings.HasPrefix(line, "*") {
		return strings.Fields(line), nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 || n > maxCommandArgs {
		return nil, fmt.Errorf("redistest: bad command array header %q", line)
	}
	cmd := make([]string, 0, n)
	for range n {
		hdr, err := readLine(br)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(hdr, "$") {
			return nil, fmt.Errorf("redistest: command argument is not a bulk string: %q", hdr)
		}
		size, err := strconv.Atoi(hdr[1:])
		if err != nil || size < 0 || size > maxCommandArg {
			return nil, fmt.Errorf("redistest: bad bulk length %q", hdr)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		if string(buf[size:]) != "\r\n" {
			return nil, errors.New("redistest: command argument not terminated by CRLF")
		}
		cmd = append(cmd, string(buf[:size]))
	}
	return cmd, nil
}
