package redistest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the server when the process that
// started it dies. Cleanup stops servers on every ordinary exit, but not
// when the test binary is killed: by go test's -timeout (it panics, and
// no Cleanup runs), by the CI runner, or by Ctrl-C of the benchmark
// harness. Without this the servers outlive it and keep their ports.
//
// The signal is tied to the thread that forks; Go ends a thread only when
// a goroutine locked to it exits, which nothing in a test does.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
