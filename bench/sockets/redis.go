package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// dialRedis returns a client for addr, or an error when Redis does not answer.
func dialRedis(addr string) (*redis.Client, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("no Redis at %s: %w; start it or set MPSESSION_REDIS_ADDR", addr, err)
	}
	return rdb, nil
}

// newPrefix returns a key prefix no other run uses, so runs and tests share a Redis
// safely and delete only their own keys.
func newPrefix() string { return "mpsession-sockets:" + rand.Text() + ":" }

// deleteKeys deletes the keys that start with prefix, with SCAN and DEL: never KEYS,
// which blocks Redis, and never FLUSHDB, which deletes what is not ours. It returns
// how many it deleted.
func deleteKeys(rdb redis.UniversalClient, prefix string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var deleted int64
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	flush := func() error {
		n, err := rdb.Del(ctx, batch...).Result()
		deleted += n
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return deleted, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return deleted, err
	}
	if len(batch) > 0 {
		return deleted, flush()
	}
	return deleted, nil
}

// redisVersion returns the server's version, or "?" if INFO does not give it.
func redisVersion(rdb redis.UniversalClient) string {
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil {
		return "?"
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
