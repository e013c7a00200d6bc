package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/store"
)

// dialRedis returns a client for addr built as gofiber/storage/redis builds its own, so
// both Redis contenders talk to Redis alike. It fails when Redis does not answer.
func dialRedis(addr string) (redis.UniversalClient, error) {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("no Redis at %s: %w", addr, err)
	}
	return rdb, nil
}

// newPrefix returns a key prefix no other run uses, so runs and tests share a Redis
// safely and delete only their own keys.
func newPrefix() string { return "mpsession-bench:" + rand.Text() + ":" }

// deleteKeys deletes the keys that start with prefix, with SCAN and DEL: never KEYS,
// which blocks Redis, and never FLUSHDB, which deletes what is not ours.
func deleteKeys(rdb redis.UniversalClient, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := rdb.Del(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return rdb.Del(ctx, batch...).Err()
	}
	return nil
}

// redisVersion returns the server's version, or "" if INFO does not give it.
func redisVersion(rdb redis.UniversalClient) string {
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil {
		return ""
	}
	v, _ := infoField(info, "redis_version")
	return v
}

// redisCPU returns the CPU time the Redis server has used, user and system, for all
// its clients: not only this process's.
func redisCPU(rdb redis.UniversalClient) (time.Duration, error) {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("reading Redis INFO cpu: %w", err)
	}
	var total float64
	for _, name := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, ok := infoField(info, name)
		f, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			return 0, fmt.Errorf("reading Redis INFO cpu: no %s", name)
		}
		total += f
	}
	return time.Duration(total * float64(time.Second)), nil
}

// commandCalls returns the calls of each command the Redis server has run since it
// started (INFO commandstats), for all its clients. A script's commands count as the
// commands they are, besides the EVALSHA that ran them. INFO itself is left out, as
// the run asks it between rounds.
func commandCalls(rdb redis.UniversalClient) (map[string]int64, error) {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("reading Redis INFO commandstats: %w", err)
	}
	return parseCommandStats(info)
}

// parseCommandStats reads the lines "cmdstat_<name>:calls=<n>,usec=..." of INFO
// commandstats; the lines of other sections are ignored.
func parseCommandStats(info string) (map[string]int64, error) {
	calls := make(map[string]int64)
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, stats, ok := strings.Cut(rest, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("reading Redis INFO commandstats: malformed line %q", line)
		}
		v, ok := strings.CutPrefix(stats, "calls=")
		if !ok {
			return nil, fmt.Errorf("reading Redis INFO commandstats: no calls in %q", line)
		}
		v, _, _ = strings.Cut(v, ",")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("reading Redis INFO commandstats: calls of %s: %q", name, v)
		}
		if name != "info" {
			calls[name] = n
		}
	}
	return calls, nil
}

// callsSince returns the calls of each command made between two readings of
// commandCalls, without the commands not called.
func callsSince(before, after map[string]int64) map[string]int64 {
	d := make(map[string]int64)
	for name, n := range after {
		if n -= before[name]; n > 0 {
			d[name] = n
		}
	}
	return d
}

// startRedis starts a redis-server of the run's own on a free loopback port, with no
// persistence, so that INFO commandstats and INFO cpu count this run's commands
// alone. It returns its address and a function that stops it. It fails when
// redis-server is not on the PATH or does not answer within 10 s.
func startRedis() (addr string, stop func() error, err error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr = ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	// Another program may take the port between this Close and redis-server's bind; then
	// redis-server exits and the wait below fails.
	_ = ln.Close()
	dir, err := os.MkdirTemp("", "mpsession-bench-redis-")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--dir", dir, "--loglevel", "warning")
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() error {
		_ = cmd.Process.Kill()
		<-exited
		return os.RemoveAll(dir)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return addr, stop, nil
		}
		select {
		case werr := <-exited:
			exited <- werr // for stop
			_ = stop()
			return "", nil, fmt.Errorf("redis-server on %s exited: %v", addr, werr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = stop()
			return "", nil, errors.Join(fmt.Errorf("redis-server on %s did not answer in 10s", addr), err)
		}
	}
}

func infoField(info, name string) (string, bool) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// tripCounter is a go-redis hook that counts round trips to Redis: a command is one
// round trip, and so is a pipeline, however many commands it holds. INFO commandstats
// counts the commands.
type tripCounter struct{ n atomic.Int64 }

func (t *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (t *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isFence(cmd) && !isSetup(cmd) {
			t.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

// isSetup reports whether cmd sets up a connection go-redis has just dialled (HELLO,
// CLIENT SETINFO, AUTH, SELECT): part of a dial, which a request makes when another
// goroutine (the cache's fences, its renewals) holds the idle connection, not a round
// trip of the request's own.
func isSetup(cmd redis.Cmder) bool {
	switch strings.ToLower(cmd.Name()) {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

// isFence reports whether cmd is a fence of the session cache (internal/cache): a
// PUBLISH it sends on its own time, every MaxLag/2 while it is used, not for a request.
func isFence(cmd redis.Cmder) bool {
	args := cmd.Args()
	if len(args) != 3 || !strings.EqualFold(cmd.Name(), "publish") {
		return false
	}
	payload, ok := args[2].(string)
	return ok && payload != "" && payload[0] == byte(store.EventFence)
}

func (t *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		// go-redis sets up a new connection with a pipeline of HELLO and CLIENT SETINFO.
		if !slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return !isSetup(c) }) {
			return next(ctx, cmds)
		}
		t.n.Add(1)
		return next(ctx, cmds)
	}
}

// load returns the round trips counted so far, or 0 for a contender without Redis.
func (t *tripCounter) load() int64 {
	if t == nil {
		return 0
	}
	return t.n.Load()
}
