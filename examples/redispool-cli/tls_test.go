package main

import (
	"testing"

	"github.com/redispool/redispool/internal/redistest"
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
