package cache

import (
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/store/storetest"
)

// TestConformance runs the store conformance suite on the cache in front of Redis: a
// cache is a store.Store, and fibermp and wsauth rely on every guarantee of one.
func TestConformance(t *testing.T) {
	t.Parallel()
	testenv.Redis(t) // fail at once in CI without Redis
	var mu sync.Mutex
	prefixes := map[store.Store]string{}
	cached := func(t *testing.T, prefix string, maxRecordBytes int) store.Store {
		rs := redisstore.New(testenv.Redis(t), redisstore.Config{Prefix: prefix, MaxRecordBytes: maxRecordBytes})
		c, err := New(rs, time.Hour, Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(); _ = rs.Close() })
		mu.Lock()
		prefixes[c] = prefix
		mu.Unlock()
		return c
	}
	storetest.Run(t, storetest.Config{
		New: func(t *testing.T, maxRecordBytes int) store.Store {
			return cached(t, testenv.RedisPrefix(t, testenv.Redis(t)), maxRecordBytes)
		},
		CrossProcess: func(t *testing.T, s store.Store) store.Store {
			mu.Lock()
			prefix := prefixes[s]
			mu.Unlock()
			return cached(t, prefix, store.DefaultMaxRecordBytes)
		},
		SkipExpiryEvents: true, // Redis drops expired keys silently
		ReadAfterEvent:   true, // the cache's promise across processes
	})
}
