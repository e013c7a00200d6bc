// Package testredis connects tests to the Redis they need: MPSESSION_REDIS_ADDR, or
// 127.0.0.1:6379. In CI (CI set to anything but "", "0" or "false") a missing Redis
// fails the test; elsewhere it skips the test and says why.
package testredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Addr returns the address of the test Redis.
func Addr() string {
	if a := os.Getenv("MPSESSION_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// InCI reports whether the tests run in CI, where every server they need must be up.
func InCI() bool {
	ci := os.Getenv("CI")
	return ci != "" && ci != "0" && ci != "false"
}

// Client returns a client of the test Redis, closed when the test ends, or fails or
// skips the test when Redis does not answer.
func Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: Addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		if InCI() {
			tb.Fatalf("Redis at %s: %v", Addr(), err)
		}
		tb.Skipf("Redis at %s is not running (%v); set MPSESSION_REDIS_ADDR", Addr(), err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Prefix returns a key prefix of the test's own, and deletes every key under it (with
// SCAN, never KEYS or FLUSHDB) when the test ends.
func Prefix(tb testing.TB, c *redis.Client) string {
	tb.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "mpsession-test:" + hex.EncodeToString(b) + ":"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return prefix
}
