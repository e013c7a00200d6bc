package cache

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
)

// Writes of this process to one cached session race: Redis applies them in one order,
// and their replies may come back in the other. The cache must end holding what Redis
// holds, though it skips the events of its own writes.
func TestConcurrentOwnIncrs(t *testing.T) {
	t.Parallel()
	rs := redisstore.New(testenv.Redis(t), redisstore.Config{Prefix: testenv.RedisPrefix(t, testenv.Redis(t))})
	defer rs.Close()
	c, err := New(rs, time.Hour, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Subscribing makes the cache's subscription now: the loads use the cache from the
	// first trial on.
	events := make(chan store.Event, 1024)
	unsubscribe, err := c.Subscribe(func(ev store.Event) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	ctx := context.Background()
	for trial := 0; trial < 50; trial++ {
		id := "cache-test-" + strconv.Itoa(trial) + "-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		if err := c.Create(ctx, id, store.Record{Fields: map[string]string{"n": "0"}}, time.Hour); err != nil {
			t.Fatal(err)
		}
		// The subscriber receives the events of watched sessions only; the Load
		// watches it too, but not when it bypasses the cache (no fence back yet).
		unwatch, _, err := c.Capabilities().Events.(store.Watcher).Watch(ctx, store.Hash(id))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Load(ctx, id, 0); err != nil { // fills the cache
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					if _, err := c.Incr(ctx, id, "n", 1); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		// Every event has arrived: the cache skips them as its own, so they must
		// change nothing.
		for range 8 * 20 {
			waitEvent(t, events)
		}
		got, err := c.Load(ctx, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		unwatch()
		if got.Fields["n"] != "160" {
			direct, _ := rs.Load(ctx, id, 0)
			t.Fatalf("trial %d: the cache serves n=%s, Redis holds n=%s (hits %d)", trial, got.Fields["n"], direct.Fields["n"], c.Hits.Load())
		}
	}
}
