//go:build unix

package micro

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
)

// dialSocketpair returns one end of a unix socketpair: a real socket,
// which redispool peeks at on every borrow, with no network behind it.
// The other end is closed when the returned end is.
func dialSocketpair(context.Context, string, string) (net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("micro: socketpair: %w", err)
	}
	ends := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f) // dups fd
		f.Close()
		if err != nil {
			for _, e := range ends[:i] {
				e.Close()
			}
			if i == 0 {
				syscall.Close(fds[1])
			}
			return nil, fmt.Errorf("micro: socketpair: %w", err)
		}
		ends[i] = c
	}
	// The reply to the PING redispool's dial sends, waiting to be read.
	if _, err := ends[1].Write([]byte("+PONG\r\n")); err != nil {
		ends[0].Close()
		ends[1].Close()
		return nil, fmt.Errorf("micro: socketpair: %w", err)
	}
	return pairConn{ends[0].(*net.UnixConn), ends[1]}, nil
}

// pairConn is one end of a socketpair that closes the other end with
// it. It keeps syscall.Conn, which redispool needs to peek.
type pairConn struct {
	*net.UnixConn
	peer net.Conn
}

func (c pairConn) Close() error {
	c.peer.Close()
	return c.UnixConn.Close()
}
