// Package redisserver starts a throwaway redis-server on a free loopback
// port for the benchmarks, and restarts it on the same port for the
// recovery measurement.
//
// It is a small, non-testing cousin of redistest: the harness
// in cmd/poolbench is a program, not a test, so it cannot use helpers
// that take a testing.TB.
package redisserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is returned by Start when the redis-server binary is not
// in $PATH.
var ErrNotFound = errors.New("redisserver: redis-server not found in $PATH")

const (
	readyTimeout = 5 * time.Second // for a started server to accept connections
	startTries   = 5               // ports tried before giving up on bind failures
)

// Server is a redis-server process listening on 127.0.0.1. Its methods
// are safe for concurrent use.
type Server struct {
	// Addr is host:port, fixed for the life of the Server: Restart binds
	// the same port again.
	Addr string

	path string
	port int
	dir  string

	mu   sync.Mutex // protects the fields below
	cmd  *exec.Cmd  // nil while stopped
	done chan struct{}
	log  bytes.Buffer
}

// Start starts redis-server on a free port of 127.0.0.1 with no
// persistence, and returns once it accepts connections.
func Start(ctx context.Context) (*Server, error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotFound
	}
	dir, err := os.MkdirTemp("", "poolbench-redis-")
	if err != nil {
		return nil, fmt.Errorf("redisserver: %w", err)
	}
	for try := 0; ; try++ {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), path: path, port: port, dir: dir}
		err = s.Start(ctx)
		if err == nil {
			return s, nil
		}
		if try+1 == startTries {
			os.RemoveAll(dir)
			return nil, err
		}
		// Most likely another process took the port between freePort
		// and the server's bind: try another.
	}
}

// freePort asks the kernel for a free loopback port. Another process
// may take it before redis-server binds it; Start retries if so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redisserver: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the server process again after Kill, on the same port,
// and returns once it accepts connections. It does nothing if the
// server is running.
func (s *Server) Start(ctx context.Context) error {
	if err := s.StartProcess(); err != nil {
		return err
	}
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			s.mu.Lock()
			defer s.mu.Unlock()
			s.cmd, s.done = nil, nil
			return fmt.Errorf("redisserver: redis-server on port %d exited at start: %s", s.port, strings.TrimSpace(s.log.String()))
		case <-ctx.Done():
			s.Kill()
			return fmt.Errorf("redisserver: start: %w", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redisserver: redis-server on port %d did not accept connections within %v", s.port, readyTimeout)
		}
	}
}

// StartProcess starts the server process again after Kill, on the same
// port, without waiting for it to accept connections: the recovery
// measurement watches for that itself. It does nothing if the server is
// running.
func (s *Server) StartProcess() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	s.log.Reset()
	cmd := exec.Command(s.path,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--loglevel", "warning",
	)
	// The server writes its log here from another goroutine of exec's;
	// the buffer is read only after the process has exited.
	cmd.Stdout = &s.log
	cmd.Stderr = &s.log
	DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redisserver: start %s: %w", s.path, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	return nil
}

// Kill stops the server with SIGKILL, as a crash would, and waits for
// the process to exit. The kernel closes its sockets, so clients see
// their idle connections closed by the peer.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

func (s *Server) killLocked() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Close stops the server and removes its working directory.
func (s *Server) Close() error {
	s.Kill()
	return os.RemoveAll(s.dir)
}
