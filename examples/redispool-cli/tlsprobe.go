package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gomodule/redigo/redis"
)

// tlsProbeAfter is how long the first command to a rediss:// server may
// take before the CLI checks whether the server speaks plaintext Redis.
// A plaintext server reads a TLS ClientHello as the start of an inline
// command and waits for its end, which never comes, so the handshake
// would otherwise wait out the whole dial timeout and fail with nothing
// but "timed out". The check costs a TLS server a connection it logs as
// a failed handshake, so it is made only when the first command is slow
// or fails.
var tlsProbeAfter = 500 * time.Millisecond

// errPlaintext stops the first command once the probe has found a
// plaintext server.
var errPlaintext = errors.New("the server speaks plaintext Redis, not TLS: use a redis:// URL, or the port where the server accepts TLS")

// firstContact runs op, the first command through the pool, and explains
// the failure of a rediss:// URL that points at a plaintext server.
func (s *server) firstContact(ctx context.Context, op func(context.Context) error) error {
	if s.cfg.TLSConfig == nil {
		return op(ctx)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	probed := make(chan bool, 1)
	t := time.AfterFunc(tlsProbeAfter, func() {
		plain := speaksPlaintext(s.cfg.Network, s.cfg.Addr)
		if plain {
			cancel(errPlaintext)
		}
		probed <- plain
	})
	err := op(ctx)
	var plain bool
	if t.Stop() {
		var rerr redis.Error
		if err != nil && !errors.As(err, &rerr) && ctx.Err() == nil {
			plain = speaksPlaintext(s.cfg.Network, s.cfg.Addr)
		}
	} else {
		plain = <-probed
	}
	switch {
	case err == nil:
		return nil
	case plain:
		return errPlaintext
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (if the TLS handshake is what timed out, the server may not speak TLS on this port)", err)
	}
	return err
}

// speaksPlaintext reports whether a Redis server answers a plaintext
// PING at addr: with +PONG, or with an error such as -NOAUTH. A TLS
// server answers with an alert or closes the connection.
func speaksPlaintext(network, addr string) bool {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return false
	}
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		return false
	}
	return b[0] == '+' || b[0] == '-'
}
