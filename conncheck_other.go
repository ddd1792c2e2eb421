//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package redispool

import "net"

// socketPeeker is unavailable on this platform: a connection the server
// closed is found by its first command (or by PING, after PingAfterIdle).
type socketPeeker struct{}

func newSocketPeeker(net.Conn, bool) *socketPeeker { return nil }

func (*socketPeeker) check() error { return nil }
