package cache

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/store/redisstore"
)

// A Redis that accepts connections and never answers (hung), before the cache's first
// subscription: loads fail within their own context, as without the cache, and do not
// wait for the subscription (up to 5 s each), which is made in the background.
func TestLoadsBypassWhileSubscribingToHungRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1})
	defer rdb.Close()
	rs := redisstore.New(rdb, redisstore.Config{})
	defer rs.Close()
	c, err := New(rs, time.Hour, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 3
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second) // StoreTimeout
			defer cancel()
			start := time.Now()
			_, _ = c.Load(ctx, "some-session-id", 0)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, d := range took {
		if d > 2*time.Second {
			t.Errorf("Load %d with a 1 s context took %v", i, d.Round(100*time.Millisecond))
		}
	}
}
