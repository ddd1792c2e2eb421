package main

import (
	"net"
	"testing"
	"time"

	"github.com/redispool/redispool/redistest"
)

func TestTLSServerWithCACert(t *testing.T) {
	srv, certs := redistest.StartTLSServer(t)
	ca := certs.CACertFile
	url := "rediss://" + srv.Addr()

	r := runCLI(t, "--url", url, "--cacert", ca, "ping")
	wantCode(t, r, exitOK)
	if r.stdout != "PONG\n" {
		t.Errorf("ping over TLS: %v", r)
	}

	r = runCLI(t, "--url", url, "--dial-timeout", "2s", "ping")
	wantCode(t, r, exitError)
	contains(t, "stderr", r.stderr, "certificate")

	r = runCLI(t, "--url", url, "--insecure", "ping")
	wantCode(t, r, exitOK)

	r = runCLI(t, "--url", url, "--cacert", ca, "bench", "-n", "200", "-c", "4", "--mix", "get=1,multi=1,pipeline=1")
	wantCode(t, r, exitOK)
	contains(t, "stdout", r.stdout, "rediss://127.0.0.1:", "200 ops in")

	r = runCLI(t, "--url", url, "--cacert", certs.ServerKeyFile, "ping")
	wantCode(t, r, exitUsage)
	contains(t, "stderr", r.stderr, "no PEM certificates")
}

// A rediss:// URL that points at a plaintext server fails fast and says
// so, instead of waiting out the dial timeout to say "timed out".
func TestTLSToPlaintextServerSaysSo(t *testing.T) {
	srv := startRedis(t)
	for _, args := range [][]string{{"ping"}, {"do", "GET", "k"}, {"bench", "-n", "10"}} {
		t.Run(args[0], func(t *testing.T) {
			start := time.Now()
			r := runCLI(t, append([]string{"--url", "rediss://" + srv.addr, "--dial-timeout", "20s"}, args...)...)
			wantCode(t, r, exitError)
			contains(t, "stderr", r.stderr, "speaks plaintext Redis, not TLS", "redis://")
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v; want well under the 20s dial timeout", d)
			}
		})
	}
}

// When the server says nothing at all, the timeout comes with a hint.
func TestTLSHandshakeTimeoutHints(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The backlog accepts connections; nothing ever reads or answers.
	r := runCLI(t, "--url", "rediss://"+ln.Addr().String(), "--dial-timeout", "1500ms", "ping")
	wantCode(t, r, exitError)
	contains(t, "stderr", r.stderr, "timed out", "the server may not speak TLS on this port")
}
