package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redispool/redispool/internal/redistest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the CLI once per test run and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "redispool-cli")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return binPath
}

// execCLI runs the built binary with args.
func execCLI(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

func TestBinaryExitCodes(t *testing.T) {
	url, _ := miniURL(t)
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStdout string
		wantStderr string
	}{
		{"ping embedded", []string{"ping"}, exitOK, "PONG\n", "embedded miniredis"},
		{"do", []string{"--url", url, "do", "INCR", "n"}, exitOK, "(integer) 1\n", ""},
		{"error reply", []string{"--url", url, "do", "NOSUCH"}, exitError, "(error) ERR unknown command", ""},
		{"bench embedded", []string{"bench", "-d", "200ms", "-c", "4"}, exitOK, "ops/s", ""},
		{"unreachable", []string{"--url", "redis://" + closedAddr(t), "ping"}, exitError, "", "connection refused"},
		{"unknown command", []string{"frob"}, exitUsage, "", `unknown command "frob"`},
		{"bad flag", []string{"bench", "-c", "x"}, exitUsage, "", `invalid value "x" for flag -c`},
		{"no command", nil, exitUsage, "", "Usage:"},
		{"help", []string{"-h"}, exitOK, "Commands:", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := execCLI(t, tt.args...)
			wantCode(t, r, tt.code)
			contains(t, "stdout", r.stdout, tt.wantStdout)
			contains(t, "stderr", r.stderr, tt.wantStderr)
		})
	}
}

// An interrupt ends stats --watch (and bench) cleanly: the totals are
// printed and the exit status is 0.
func TestBinaryInterruptEndsStatsWatch(t *testing.T) {
	cmd := exec.Command(binary(t), "stats", "--watch", "--interval", "50ms", "-c", "2")
	var stdout, stderr redistest.LockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a few rows", func() bool { return strings.Count(stdout.String(), "\n") >= 5 })
	cmd.Process.Signal(os.Interrupt)

	done := make(chan error)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stats --watch after SIGINT: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		t.Fatal("stats --watch did not stop within 10s of SIGINT")
	}
	contains(t, "stdout", stdout.String(), "(interrupted)", "\nPool\n")
}
