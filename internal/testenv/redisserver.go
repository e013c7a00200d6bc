package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server of the test's own, for tests that stop Redis and start
// it again. It keeps its data in an append-only file, so sessions outlive a restart.
type RedisServer struct {
	Addr string
	dir  string
	cmd  *exec.Cmd
}

// StartRedis starts a redis-server on a free loopback port and stops it when the test
// ends. Without redis-server the test fails in CI and skips elsewhere.
func StartRedis(tb testing.TB) *RedisServer {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Unavailable(tb, "redis-server: %v", err)
	}
	s := &RedisServer{Addr: FreeAddr(tb), dir: tb.TempDir()}
	tb.Cleanup(s.Stop)
	s.Start(tb)
	return s
}

// Start starts the server again on its address, with its data.
func (s *RedisServer) Start(tb testing.TB) {
	tb.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	s.cmd = RedisCommand(port, s.dir, "--appendonly", "yes", "--appendfsync", "always")
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("redis-server: %v", err)
	}
	if err := WaitRedis(s.Addr, 10*time.Second); err != nil {
		tb.Fatalf("redis-server on %s: %v", s.Addr, err)
	}
}

// StartEmpty starts the server again on its address without its data, as a Redis that
// keeps nothing on disk comes back after a crash.
func (s *RedisServer) StartEmpty(tb testing.TB) {
	tb.Helper()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			tb.Fatal(err)
		}
	}
	s.Start(tb)
}

// Stop kills the server, as a crash would.
func (s *RedisServer) Stop() {
	if s.cmd != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// Pause stops the server without closing its connections (SIGSTOP), as a hung Redis
// would; Resume lets it go on.
func (s *RedisServer) Pause(tb testing.TB) {
	tb.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }) // never leave it stopped
}

// Resume continues a paused server.
func (s *RedisServer) Resume(tb testing.TB) {
	tb.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		tb.Fatal(err)
	}
}

// RedisCommand returns a redis-server command for port, keeping its files in dir,
// that dies with the test binary; args come last.
func RedisCommand(port, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("redis-server", append([]string{"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--daemonize", "no", "--dir", dir}, args...)...)
	dieWithParent(cmd)
	return cmd
}

// WaitRedis waits until the Redis at addr answers PING.
func WaitRedis(addr string, limit time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address nothing listens on.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
