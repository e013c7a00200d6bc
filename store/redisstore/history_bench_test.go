package redisstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
)

// BenchmarkHistorySend compares a message published (Broker.Publish) with one kept
// and published (History.PublishKept), one round trip each, on the test Redis:
//
//	go test -run '^$' -bench HistorySend ./store/redisstore/
func BenchmarkHistorySend(b *testing.B) {
	rdb := testenv.Redis(b)
	st := redisstore.New(rdb, redisstore.Config{Prefix: testenv.RedisPrefix(b, rdb)})
	b.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	msg := []byte(`{"round":2,"move":"rock","from":"o-0123456789abcdef"}`)
	keep := store.Retention{Size: 300, Age: 2 * time.Minute}
	b.Run("publish", func(b *testing.B) {
		for b.Loop() {
			if err := st.Publish(ctx, "room", msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kept", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.PublishKept(ctx, "room", msg, keep); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestHistoryMemory reports what Redis holds for 1,000 kept messages of 64 bytes (the
// stream and its hash), on a Redis of the test's own so that nothing else counts:
//
//	go test -run TestHistoryMemory -v ./store/redisstore/
func TestHistoryMemory(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	st := redisstore.New(rdb, redisstore.Config{Prefix: "t:"})
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	msg := []byte(`{"round":2,"move":"rock","from":"o-0123456789abcdef","n":123456789}`) // 64 bytes
	keep := store.Retention{Size: 1000, Age: time.Hour}
	for range 1000 {
		if _, err := st.PublishKept(ctx, "room", msg, keep); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, key := range []string{"t:h:{room}", "t:hm:{room}"} {
		n, err := rdb.MemoryUsage(ctx, key, 0).Result()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", key, err)
		}
		total += n
	}
	info, _ := rdb.Info(ctx, "memory").Result()
	used := ""
	for _, line := range strings.Split(info, "\r\n") {
		if strings.HasPrefix(line, "used_memory_human:") {
			used = line
		}
	}
	if total <= 64*1000 {
		t.Errorf("1,000 messages of 64 bytes in %d bytes: MEMORY USAGE does not count them all", total)
	}
	t.Logf("1,000 kept messages of 64 bytes: %d bytes in Redis (%.1f per message; %s)", total, float64(total)/1000, used)
}
