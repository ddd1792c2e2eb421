package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redispool/redispool/redistest"
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
		{"do", []string{"--url", url, "do", "INCR", "n"}, exitOK, "1\n", ""},
		{"do formatted", []string{"--url", url, "--no-raw", "do", "INCR", "n"}, exitOK, "(integer) 2\n", ""},
		{"error reply", []string{"--url", url, "do", "NOSUCH"}, exitError, "ERR unknown command", ""},
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

// On a real 80-column terminal (tmux), bench's progress line is redrawn
// in place: while it runs the screen holds exactly one progress line,
// and when it ends no progress line is left in the scrollback.
func TestBinaryProgressStaysOnOneLineIn80Columns(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not on $PATH")
	}
	bin := binary(t)
	sock := "redispool-cli-test-" + strconv.Itoa(os.Getpid())
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-L", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// The pane outlives the command, so that its output can be read.
	run("new-session", "-d", "-x", "80", "-y", "24", bin+" bench -d 2s; sleep 60")
	t.Cleanup(func() { exec.Command(tmux, "-L", sock, "kill-server").Run() })

	progressLines := func(screen string) int {
		n := 0
		for _, l := range strings.Split(screen, "\n") {
			if strings.Contains(l, "% |") && strings.Contains(l, "ops/s") {
				n++
			}
		}
		return n
	}
	var screen string
	waitFor(t, "the progress line", func() bool {
		screen = run("capture-pane", "-p")
		return progressLines(screen) > 0
	})
	time.Sleep(500 * time.Millisecond) // a few redraws
	screen = run("capture-pane", "-p")
	if n := progressLines(screen); n != 1 {
		t.Errorf("%d progress lines on the screen; want 1:\n%s", n, screen)
	}
	waitFor(t, "the report", func() bool {
		screen = run("capture-pane", "-p", "-S", "-")
		return strings.Contains(screen, "\nPool\n")
	})
	if n := progressLines(screen); n != 0 {
		t.Errorf("%d progress lines left behind; want none:\n%s", n, screen)
	}
}
