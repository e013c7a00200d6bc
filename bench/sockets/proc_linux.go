package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// dieWithParent makes the client process die with this one, even when this one is
// killed before it can stop it.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// raiseFileLimit raises the process's limit on open files to at least need if it can,
// and returns the limit in force. It lifts the soft limit to the hard one; when the
// hard limit is below need it raises both to need, which only root may do (up to
// fs.nr_open). Processes started afterwards inherit the limit. The error says what
// stood in the way; the limit returned is still the one in force.
func raiseFileLimit(need uint64) (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if l.Cur < l.Max {
		raised := syscall.Rlimit{Cur: l.Max, Max: l.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			l = raised
		}
	}
	if l.Cur >= need {
		return l.Cur, nil
	}
	if nrOpen, ok := readUint("/proc/sys/fs/nr_open"); ok && nrOpen < need {
		return l.Cur, fmt.Errorf("the system allows at most %d open files per process (fs.nr_open); raise it with sysctl -w fs.nr_open=%d", nrOpen, need)
	}
	raised := syscall.Rlimit{Cur: need, Max: need}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		if errors.Is(err, syscall.EPERM) && os.Geteuid() == 0 {
			why := "root without CAP_SYS_RESOURCE"
			if has, ok := hasCapability(capSysResource); ok && !has {
				why = "this process lacks CAP_SYS_RESOURCE (most containers drop it)"
			}
			return l.Cur, fmt.Errorf("the hard limit is %d and cannot be raised from inside, even as root: %s; raise it from outside (docker run --ulimit nofile=%d, systemd LimitNOFILE=%d, /etc/security/limits.conf)", l.Max, why, need, need)
		}
		if errors.Is(err, syscall.EPERM) {
			return l.Cur, fmt.Errorf("the hard limit is %d and only root may raise it: run as root, or ulimit -Hn %d first", l.Max, need)
		}
		return l.Cur, fmt.Errorf("setrlimit to %d: %w", need, err)
	}
	return need, nil
}

// portRange returns how many local ports the system hands out to connections that do
// not choose one (net.ipv4.ip_local_port_range).
func portRange() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || hi < lo {
		return 0, false
	}
	return hi - lo + 1, true
}

// loopbackSources reports whether a client may bind any 127.0.0.x address: Linux
// routes the whole of 127.0.0.0/8 to the loopback interface.
const loopbackSources = true

// rss returns the resident set size of process pid (0: this one), in bytes.
func rss(pid int) (uint64, bool) {
	path := "/proc/self/status"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// capSysResource is CAP_SYS_RESOURCE, which raising a hard limit takes.
const capSysResource = 24

// hasCapability reports whether the process holds capability bit c (CapEff in
// /proc/self/status).
func hasCapability(c uint) (has, ok bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, false
	}
	for line := range strings.Lines(string(b)) {
		if v, found := strings.CutPrefix(line, "CapEff:"); found {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<c) != 0, err == nil
		}
	}
	return false, false
}

func readUint(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}
