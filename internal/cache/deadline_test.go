package cache

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
)

// Within IdleTimeout of a session's absolute deadline, where a touch no longer moves
// the expiry, cached reads still extend the session at most once per Renew, not once
// per read.
func TestRenewOnceNearDeadline(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: testenv.RedisPrefix(t, rdb)})
	defer rs.Close()
	backend := newCounted(rs, nil)
	c, err := New(backend, time.Hour, Config{Renew: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.subscribe(); err != nil { // now, so that the reads use the cache from the first
		t.Fatal(err)
	}
	ctx := context.Background()
	id := "cache-test-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	// 30 minutes left of its lifetime, idle timeout an hour.
	if err := c.Create(ctx, id, store.Record{Fields: map[string]string{"n": "1"}, Deadline: time.Now().Add(30 * time.Minute)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := c.Load(ctx, id, time.Hour); err != nil {
			t.Fatal(err)
		}
		c.touchWG.Wait() // the background touch this read asked for, if any, is done
	}
	if n := backend.touches.Load(); n > 2 {
		t.Fatalf("Renew 1 min, 50 reads: %d background touches (hits %d)", n, c.Hits.Load())
	}
}
