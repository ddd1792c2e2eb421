// Package rediscluster starts a throwaway Redis Cluster of masters on
// loopback ports for the cluster benchmarks.
//
// It is a small, non-testing cousin of redistest's StartCluster,
// which the bench module cannot import: no replicas, no resharding, only
// what a throughput comparison needs.
package rediscluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redispool/redispool/bench/internal/redisserver"
)

// ErrNotFound is returned by Start when redis-server or redis-cli is not
// in $PATH.
var ErrNotFound = errors.New("rediscluster: redis-server or redis-cli not found in $PATH")

// Cluster is a running Redis Cluster of masters.
type Cluster struct {
	// Addrs are the masters' host:port, one per node.
	Addrs []string

	dir   string
	procs []*exec.Cmd
	done  []chan struct{}
	logs  []*bytes.Buffer
}

// Start starts masters redis-server processes in cluster mode and joins
// them with redis-cli --cluster create, and returns once every node
// reports cluster_state:ok. Each node has a data port and a bus port
// (--cluster-port) below 32000: Redis refuses cluster mode when the
// default bus port, port + 10000, would pass 65535, and the kernel's
// ephemeral ports are mostly above 55535.
func Start(ctx context.Context, masters int) (*Cluster, error) {
	server, err1 := exec.LookPath("redis-server")
	cli, err2 := exec.LookPath("redis-cli")
	if err1 != nil || err2 != nil {
		return nil, ErrNotFound
	}
	dir, err := os.MkdirTemp("", "poolbench-cluster-")
	if err != nil {
		return nil, fmt.Errorf("rediscluster: %w", err)
	}
	c := &Cluster{dir: dir}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	used := map[int]bool{}
	for i := range masters {
		if err := c.startNode(ctx, server, filepath.Join(dir, "node"+strconv.Itoa(i)), used); err != nil {
			return nil, err
		}
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	out, err := cmd.CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("[ERR]")) {
		return nil, fmt.Errorf("rediscluster: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range c.Addrs {
		if err := waitStateOK(ctx, addr); err != nil {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

// startNode starts one node in dir, on ports it picks below 32000,
// retrying with other ports when the chosen ones turn out taken.
func (c *Cluster) startNode(ctx context.Context, server, dir string, used map[int]bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("rediscluster: %w", err)
	}
	var lastErr error
	for range 5 {
		port, bus := lowPort(used), lowPort(used)
		log := &bytes.Buffer{}
		cmd := exec.Command(server,
			"--port", strconv.Itoa(port),
			"--cluster-port", strconv.Itoa(bus),
			"--bind", "127.0.0.1",
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--loglevel", "warning",
		)
		cmd.Stdout, cmd.Stderr = log, log
		redisserver.DieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("rediscluster: start %s: %w", server, err)
		}
		done := make(chan struct{})
		go func() {
			cmd.Wait()
			close(done)
		}()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := waitListening(ctx, addr, done); err != nil {
			cmd.Process.Kill()
			<-done
			lastErr = fmt.Errorf("%w\n%s", err, log)
			continue
		}
		c.Addrs = append(c.Addrs, addr)
		c.procs = append(c.procs, cmd)
		c.done = append(c.done, done)
		c.logs = append(c.logs, log)
		return nil
	}
	return lastErr
}

// lowPort picks a port between 20000 and 31999 that is free now and not
// in used.
func lowPort(used map[int]bool) int {
	for {
		port := 20000 + rand.IntN(12000)
		if used[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		used[port] = true
		return port
	}
}

func waitListening(ctx context.Context, addr string, done <-chan struct{}) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("rediscluster: redis-server on %s exited at start", addr)
		case <-ctx.Done():
			return fmt.Errorf("rediscluster: start: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rediscluster: redis-server on %s did not accept connections", addr)
		}
	}
}

// waitStateOK polls CLUSTER INFO on addr until it reports
// cluster_state:ok.
func waitStateOK(ctx context.Context, addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := command(addr, "CLUSTER", "INFO")
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rediscluster: %s: cluster_state not ok after 20s: %v", addr, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rediscluster: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// command sends one command and returns its bulk or simple string reply.
func command(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	switch line[0] {
	case '+':
		return strings.TrimSpace(line[1:]), nil
	case '$':
		n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil || n < 0 {
			return "", fmt.Errorf("rediscluster: bad reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("rediscluster: %s", strings.TrimSpace(line))
}

// Close stops every node with SIGKILL, waits for them to exit, and
// removes their directories.
func (c *Cluster) Close() error {
	for i, cmd := range c.procs {
		cmd.Process.Kill()
		<-c.done[i]
	}
	c.procs, c.done = nil, nil
	return os.RemoveAll(c.dir)
}
