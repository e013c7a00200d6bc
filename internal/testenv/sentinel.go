package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the Sentinels of StartSentinel monitor the master under.
const SentinelMaster = "mymaster"

// Sentinel is a Redis master, one replica and three Sentinels of the test's own, for
// tests of a failover. The Sentinels agree that the master is down after 1 s without
// an answer (two of them must) and promote the replica.
type Sentinel struct {
	Master    string   // the master's address at start
	Replica   string   // the replica's address at start: the master after a failover
	Sentinels []string // the Sentinels' addresses

	master *proc
}

// StartSentinel starts the topology on free loopback ports and stops it when the test
// ends. It returns once the replica has synchronised and every Sentinel knows the
// replica and the two other Sentinels, so that a failover can start at once. Without
// redis-server the test fails in CI and skips elsewhere. When the test fails, the
// servers' logs are printed.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Unavailable(tb, "redis-server: %v", err)
	}
	root := tb.TempDir()
	var logs []string
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				tb.Logf("%s:\n%s", filepath.Base(l), b)
			}
		}
	})
	dir := func(name string) (string, string) {
		d := filepath.Join(root, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		l := filepath.Join(root, name+".log")
		logs = append(logs, l)
		return d, l
	}

	s := &Sentinel{}
	d, l := dir("master")
	// The master starts a full sync 5 s after a replica asks, by default, in case
	// others ask too.
	s.Master, s.master = launch(tb, "master", func(port string) *exec.Cmd {
		return RedisCommand(port, d, "--logfile", l, "--repl-diskless-sync-delay", "0")
	})
	_, masterPort, _ := net.SplitHostPort(s.Master)
	d, l = dir("replica")
	s.Replica, _ = launch(tb, "replica", func(port string) *exec.Cmd {
		return RedisCommand(port, d, "--logfile", l, "--replicaof", "127.0.0.1", masterPort)
	})
	if err := waitFor(10*time.Second, nil, func(ctx context.Context) error {
		return replicaSynced(ctx, s.Replica)
	}); err != nil {
		tb.Fatalf("redis-server (replica) on %s: %v", s.Replica, err)
	}

	for i := range 3 {
		d, l := dir(fmt.Sprintf("sentinel%d", i))
		addr, _ := launch(tb, "sentinel", func(port string) *exec.Cmd {
			// Sentinel rewrites its config file: each has one of its own. A short
			// failover-timeout also makes a failed election start again sooner
			// (after twice the timeout).
			conf := filepath.Join(d, "sentinel.conf")
			text := fmt.Sprintf("port %s\nbind 127.0.0.1\ndaemonize no\ndir %q\nlogfile %q\n", port, d, l) +
				fmt.Sprintf("sentinel monitor %s 127.0.0.1 %s 2\n", SentinelMaster, masterPort) +
				fmt.Sprintf("sentinel down-after-milliseconds %s 1000\n", SentinelMaster) +
				fmt.Sprintf("sentinel failover-timeout %s 5000\n", SentinelMaster)
			if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
				tb.Fatal(err)
			}
			cmd := exec.Command("redis-server", conf, "--sentinel")
			dieWithParent(cmd)
			return cmd
		})
		s.Sentinels = append(s.Sentinels, addr)
	}
	for _, addr := range s.Sentinels {
		// Sentinels find each other through hello messages every 2 s.
		if err := waitFor(20*time.Second, nil, func(ctx context.Context) error {
			return sentinelReady(ctx, addr, s.Replica)
		}); err != nil {
			tb.Fatalf("sentinel on %s: %v", addr, err)
		}
	}
	return s
}

// KillMaster kills the master with SIGKILL, as a crash would, and waits until it has
// exited.
func (s *Sentinel) KillMaster() { s.master.kill() }

// proc is a running redis-server.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

var errExited = errors.New("exited")

// launch starts the redis-server that command returns for a free port, waits until it
// answers PING, and kills it when the test ends. A server whose port another process
// took after FreeAddr released it exits at once: launch tries again on another port.
func launch(tb testing.TB, name string, command func(port string) *exec.Cmd) (string, *proc) {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		addr := FreeAddr(tb)
		_, port, _ := net.SplitHostPort(addr)
		p := &proc{cmd: command(port), exited: make(chan struct{})}
		if err := p.cmd.Start(); err != nil {
			tb.Fatalf("redis-server (%s): %v", name, err)
		}
		go func() {
			_ = p.cmd.Wait()
			close(p.exited)
		}()
		tb.Cleanup(p.kill)
		err := waitFor(10*time.Second, p.exited, func(ctx context.Context) error {
			c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
			defer c.Close()
			return c.Ping(ctx).Err()
		})
		if err == nil {
			return addr, p
		}
		if !errors.Is(err, errExited) || attempt == 3 {
			tb.Fatalf("redis-server (%s) on %s: %v", name, addr, err)
		}
		tb.Logf("redis-server (%s) on %s exited; trying another port", name, addr)
	}
}

// waitFor calls ready every 50 ms, each call with a second to answer, until it returns
// nil or limit passes; then it returns ready's last error. It returns errExited as
// soon as exited is closed.
func waitFor(limit time.Duration, exited <-chan struct{}, ready func(ctx context.Context) error) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-exited:
			return errExited
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replicaSynced reports as an error why the replica at addr is not yet in sync with
// its master.
func replicaSynced(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "master_link_status:up") {
		return fmt.Errorf("not in sync: %q", info)
	}
	return nil
}

// sentinelReady reports as an error why the Sentinel at addr could not take part in a
// failover to replica yet.
func sentinelReady(ctx context.Context, addr, replica string) error {
	c := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	m, err := c.Master(ctx, SentinelMaster).Result()
	if err != nil {
		return err
	}
	if m["flags"] != "master" || m["num-other-sentinels"] != "2" || m["num-slaves"] != "1" {
		return fmt.Errorf("master as the Sentinel sees it: flags %q, %s other sentinels, %s replicas",
			m["flags"], m["num-other-sentinels"], m["num-slaves"])
	}
	replicas, err := c.Replicas(ctx, SentinelMaster).Result()
	if err != nil {
		return err
	}
	for _, r := range replicas {
		if net.JoinHostPort(r["ip"], r["port"]) == replica && r["flags"] == "slave" && r["master-link-status"] == "ok" {
			return nil
		}
	}
	return fmt.Errorf("replica %s not seen in sync: %v", replica, replicas)
}
