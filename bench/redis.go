package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// dialRedis returns a client for addr built as gofiber/storage/redis builds its own, so
// both Redis contenders talk to Redis alike. It fails when Redis does not answer.
func dialRedis(addr string) (redis.UniversalClient, error) {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("Redis at %s: %w", addr, err)
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
		return 0, fmt.Errorf("Redis INFO cpu: %w", err)
	}
	var total float64
	for _, name := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, ok := infoField(info, name)
		f, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			return 0, fmt.Errorf("Redis INFO cpu: no %s", name)
		}
		total += f
	}
	return time.Duration(total * float64(time.Second)), nil
}

func infoField(info, name string) (string, bool) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// tripCounter is a go-redis hook that counts round trips to Redis: a command is one,
// and so is a pipeline, however many commands it holds.
type tripCounter struct{ n atomic.Int64 }

func (t *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (t *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		t.n.Add(1)
		return next(ctx, cmd)
	}
}

func (t *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
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
