//go:build !linux

package redistest

import "os/exec"

// dieWithParent does nothing where the kernel has no parent-death signal:
// there, servers whose test binary is killed outlive it.
func dieWithParent(*exec.Cmd) {}
