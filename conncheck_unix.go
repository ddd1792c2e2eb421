//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package redispool

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// socketPeeker looks at a socket's receive queue without reading from
// it and without blocking, as go-redis's conn_check.go does, so the
// borrow check costs one system call and no round trip.
type socketPeeker struct {
	raw syscall.RawConn
	tls bool             // the socket carries TLS records
	fn  func(fd uintptr) // p.recv, bound once so peeking does not allocate
	n   int
	err error
	// peerClosed: the peer has sent FIN behind the unread bytes. Only
	// asked when bytes are waiting, since otherwise EOF shows directly.
	peerClosed bool
	buf        [64]byte
}

func newSocketPeeker(nc net.Conn, isTLS bool) *socketPeeker {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &socketPeeker{raw: raw, tls: isTLS}
	p.fn = p.recv
	return p
}

func (p *socketPeeker) recv(fd uintptr) {
	p.n, p.err = recvPeek(fd, p.buf[:])
	p.peerClosed = p.err == nil && p.n > 0 && peerSentFIN(fd)
}

var errServerClosed = errors.New("server closed the connection")

// check reports a connection that is certainly dead: the server closed
// it, reset it, or (without TLS) sent bytes nobody asked for. Under TLS
// unread bytes may be a record the server sends on its own, such as a
// session ticket, so they do not count; but a server closing a TLS
// connection sends an alert record before its FIN, which hides the EOF
// from a peek, so where the platform tells (Linux), a FIN queued behind
// the bytes counts as closed.
func (p *socketPeeker) check() error {
	if p == nil {
		return nil
	}
	// Control, not Read: RawConn.Read fails with a timeout, without
	// calling fn, once the socket's read deadline has passed, and redigo
	// leaves the deadline of the last reply set. Control ignores
	// deadlines and takes no read lock; nothing else reads an idle
	// connection, and recvPeek neither blocks nor consumes.
	if err := p.raw.Control(p.fn); err != nil {
		return err
	}
	switch {
	case p.err == syscall.EAGAIN || p.err == syscall.EWOULDBLOCK:
		return nil
	case p.err != nil:
		return p.err
	case p.n == 0, p.peerClosed:
		return errServerClosed
	case p.tls:
		return nil
	}
	return fmt.Errorf("unexpected data from server: %q", firstLine(p.buf[:p.n]))
}

func firstLine(b []byte) []byte {
	for i, c := range b {
		if c == '\r' || c == '\n' {
			return b[:i]
		}
	}
	return b
}
