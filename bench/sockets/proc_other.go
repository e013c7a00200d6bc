//go:build !linux

package main

import "os/exec"

func dieWithParent(*exec.Cmd) {}

// raiseFileLimit returns 0, for a limit it cannot tell: Go lifts the soft limit on
// open files as far as the system lets it at start-up.
func raiseFileLimit(uint64) (uint64, error) { return 0, nil }

func portRange() (int, bool) { return 0, false }

// loopbackSources is false: other systems (macOS) answer on 127.0.0.1 alone unless
// more addresses are configured.
const loopbackSources = false

func rss(int) (uint64, bool) { return 0, false }
