package testenv

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a child redis-server die with the test binary, even when the
// binary is killed before its cleanup runs.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
