//go:build !unix

package main

import "time"

// processCPU returns false: only Unix systems tell the CPU time here.
func processCPU() (time.Duration, bool) { return 0, false }
