//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing here: only Linux kills a child when its parent dies. Stop
// the run with Ctrl-C, which stops the redis-server it started.
func dieWithParent(*exec.Cmd) {}
