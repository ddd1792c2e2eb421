package redisserver

import (
	"os/exec"
	"syscall"
)

// DieWithParent makes the kernel kill the server when the harness that
// started it dies, so that a harness killed mid-run (Ctrl-C, a CI
// timeout) leaves no redis-server behind. The signal is tied to the
// thread that forks; Go ends a thread only when a goroutine locked to it
// exits, which the harness never does.
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
