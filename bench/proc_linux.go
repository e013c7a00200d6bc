package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes cmd's process receive SIGKILL when this one dies, so that an
// interrupted run leaves no redis-server behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
