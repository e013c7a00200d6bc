package cache

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store/redisstore"
)

// A Redis that accepts connections and never answers (hung), before the cache's first
// subscription: loads fail within their own context, as without the cache, and do not
// wait for the subscription, which is made in the background: it is still under way
// when they have all returned.
func TestLoadsBypassWhileSubscribingToHungRedis(t *testing.T) {
	t.Parallel()
	hung := testenv.StartHung(t)
	rdb := redis.NewClient(&redis.Options{Addr: hung.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer rdb.Close()
	// Far longer than the loads take, so that the subscription is still under way when
	// they return (go-redis's own read timeouts end it after some seconds); the hung
	// Redis going away ends it at the end of the test.
	rs := redisstore.New(rdb, redisstore.Config{SubscribeTimeout: time.Minute})
	defer rs.Close()
	c, err := New(rs, time.Hour, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const (
		n       = 3
		timeout = 250 * time.Millisecond // StoreTimeout
	)
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			_, _ = c.Load(ctx, "some-session-id", 0)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	if !c.subscribing.Load() {
		t.Error("the loads returned after the subscription ended: they waited for it")
	}
	if got := c.Bypasses.Load(); got != n {
		t.Errorf("want %d loads that bypass the cache; got %d", n, got)
	}
	for i, d := range took {
		if d > timeout+time.Second {
			t.Errorf("Load %d with a %v context took %v", i, timeout, d.Round(10*time.Millisecond))
		}
	}
	hung.Close() // the subscription fails at once: Close need not wait a minute
}
