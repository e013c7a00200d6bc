//go:build !linux

package main

import "os/exec"

func dieWithParent(*exec.Cmd) {}

func fdLimit() (uint64, bool) { return 0, false }

func rss(int) (uint64, bool) { return 0, false }
