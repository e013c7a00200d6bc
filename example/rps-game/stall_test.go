//go:build linux

package main

import (
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStalledRequests: 1,000 clients that announce a 1 MB login body and send nothing,
// and 1,000 that never finish their headers, neither hold the server's memory nor
// their connections: the first are refused at once (body limit), the others closed
// after the read timeout.
func TestStalledRequests(t *testing.T) {
	const n = 1000
	raiseFileLimit(t, 4*n+256)
	const readTimeout = 2 * time.Second
	s := startServer(t, config{ReadTimeout: readTimeout})
	addr := strings.TrimPrefix(s.url, "http://")
	runtime.GC()
	before := rss(t)

	stall := func(request string) []net.Conn {
		conns := make([]net.Conn, 0, n)
		for i := 0; i < n; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			t.Cleanup(func() { _ = c.Close() })
			if _, err := c.Write([]byte(request)); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			conns = append(conns, c)
		}
		return conns
	}
	start := time.Now()
	bodies := stall("POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{")
	headers := stall("GET /api/me HTTP/1.1\r\nHost: x\r\nX-Half: ")
	time.Sleep(500 * time.Millisecond)
	grown := rss(t) - before
	t.Logf("%d stalled bodies and %d stalled headers open: the process's RSS grew %.1f MB", n, n, float64(grown)/(1<<20))
	// Without the limits they held about 1 GB (a 1 MB buffer each); the race detector
	// alone adds tens of MB for 2,000 connections.
	if grown > 200<<20 {
		t.Errorf("stalled requests hold %.0f MB; want under 200 MB", float64(grown)/(1<<20))
	}

	// Every connection must be closed by the server: read until EOF.
	closedBy := func(conns []net.Conn, limit time.Duration, what string) {
		t.Helper()
		var last time.Duration
		for i, c := range conns {
			_ = c.SetReadDeadline(start.Add(limit))
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatalf("%s: connection %d still open %v after it stalled", what, i, limit)
					}
					break
				}
			}
			last = max(last, time.Since(start))
		}
		t.Logf("%s: all %d closed by the server, the last %v after the first stalled", what, len(conns), last.Round(10*time.Millisecond))
	}
	closedBy(bodies, readTimeout+3*time.Second, "1 MB bodies announced")
	closedBy(headers, readTimeout+3*time.Second, "headers never finished")
}

// rss returns the process's resident memory in bytes.
func rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// raiseFileLimit lets the test hold n descriptors: client and server ends share it.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	if l.Cur >= n {
		return
	}
	old := l
	l.Cur = min(max(n, l.Cur), l.Max)
	if l.Cur < n {
		t.Fatalf("the file limit is %d (hard %d); this test needs %d", old.Cur, l.Max, n)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}
