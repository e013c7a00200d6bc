package wx_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
	"github.com/redis/go-redis/v9"
)

// TestTokenCaches runs the TokenCache and TokenLocker contracts on both caches.
func TestTokenCaches(t *testing.T) {
	caches := []struct {
		name string
		make func(t *testing.T) tokenCacheLocker
	}{
		{"memory", func(*testing.T) tokenCacheLocker { return wx.NewMemoryTokenCache() }},
		{"redis", func(t *testing.T) tokenCacheLocker {
			rdb, prefix := redisForTest(t)
			return wx.NewRedisTokenCache(rdb, prefix)
		}},
	}
	for _, cc := range caches {
		t.Run(cc.name, func(t *testing.T) {
			t.Run("get set delete", func(t *testing.T) { testCacheGetSet(t, cc.make(t)) })
			t.Run("expiry", func(t *testing.T) { testCacheExpiry(t, cc.make(t)) })
			t.Run("lock", func(t *testing.T) { testCacheLock(t, cc.make(t)) })
		})
	}
}

type tokenCacheLocker interface {
	wx.TokenCache
	wx.TokenLocker
}

func testCacheGetSet(t *testing.T, c tokenCacheLocker) {
	ctx := context.Background()
	if _, found, err := c.Get(ctx, "k"); found || err != nil {
		t.Fatalf("empty cache: want not found, nil; got %v, %v", found, err)
	}
	if err := c.Set(ctx, "k", "t1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, found, err := c.Get(ctx, "k"); v != "t1" || !found || err != nil {
		t.Fatalf("want t1; got %q, %v, %v", v, found, err)
	}
	if deleted, err := c.CompareAndDelete(ctx, "k", "t0"); deleted || err != nil {
		t.Errorf("other token: want kept; got deleted=%v, %v", deleted, err)
	}
	if v, _, _ := c.Get(ctx, "k"); v != "t1" {
		t.Errorf("want t1 kept; got %q", v)
	}
	if err := c.Set(ctx, "k", "t2", time.Minute); err != nil {
		t.Fatal(err)
	}
	if deleted, err := c.CompareAndDelete(ctx, "k", "t2"); !deleted || err != nil {
		t.Errorf("same token: want deleted; got %v, %v", deleted, err)
	}
	if _, found, _ := c.Get(ctx, "k"); found {
		t.Errorf("want gone; got found")
	}
	if deleted, err := c.CompareAndDelete(ctx, "missing", "t"); deleted || err != nil {
		t.Errorf("missing key: want false, nil; got %v, %v", deleted, err)
	}
}

func testCacheExpiry(t *testing.T, c tokenCacheLocker) {
	ctx := context.Background()
	if err := c.Set(ctx, "short", "t", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond) // the TTL running out is what is tested (Redis keeps its own clock)
	if _, found, err := c.Get(ctx, "short"); found || err != nil {
		t.Errorf("want expired; got %v, %v", found, err)
	}
}

func testCacheLock(t *testing.T, c tokenCacheLocker) {
	ctx := context.Background()
	unlock, ok, err := c.TryLock(ctx, "lock", time.Minute)
	if !ok || err != nil {
		t.Fatalf("free lock: want taken; got %v, %v", ok, err)
	}
	if _, ok, err := c.TryLock(ctx, "lock", time.Minute); ok || err != nil {
		t.Errorf("held lock: want refused, nil; got %v, %v", ok, err)
	}
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
	unlock2, ok, err := c.TryLock(ctx, "lock", time.Minute)
	if !ok || err != nil {
		t.Fatalf("released lock: want taken; got %v, %v", ok, err)
	}
	// The first holder's late unlock must not release the second holder's lock.
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.TryLock(ctx, "lock", time.Minute); ok {
		t.Errorf("a stale unlock released another holder's lock")
	}
	unlock2(ctx)

	// An expired lock can be taken, and its old holder cannot release the new one.
	unlock3, ok, _ := c.TryLock(ctx, "brief", 50*time.Millisecond)
	if !ok {
		t.Fatal("want taken")
	}
	time.Sleep(120 * time.Millisecond) // the lock's TTL running out, as above
	unlock4, ok, err := c.TryLock(ctx, "brief", time.Minute)
	if !ok || err != nil {
		t.Fatalf("expired lock: want taken; got %v, %v", ok, err)
	}
	unlock3(ctx)
	if _, ok, _ := c.TryLock(ctx, "brief", time.Minute); ok {
		t.Errorf("an expired holder's unlock released the new holder's lock")
	}
	unlock4(ctx)
}

// TestRedisOneFetchPerCluster: ten Clients, as in ten processes (each with its own HTTP
// client), share one Redis cache and lock; asked for a token at the same moment, they
// make one stable_token call between them.
func TestRedisOneFetchPerCluster(t *testing.T) {
	rdb, prefix := redisForTest(t)
	fake := newFake(t)
	fake.Fail(wxtest.StableToken, wxtest.Fault{Latency: 100 * time.Millisecond, Times: -1})

	clients := make([]*wx.Client, 10)
	for i := range clients {
		cache := wx.NewRedisTokenCache(rdb, prefix) // one per "process", same keys
		clients[i] = newClient(t, fake, wx.Config{
			TokenCache: cache,
			TokenLock:  cache,
			HTTPClient: newHTTPClient(t, 5*time.Second),
		})
	}
	tokens := concurrentTokens(t, clients)
	for i, tok := range tokens {
		if tok != tokens[0] || tok == "" {
			t.Errorf("client %d: want %q; got %q", i, tokens[0], tok)
		}
	}
	if got := fake.Calls(wxtest.StableToken); got != 1 {
		t.Errorf("want 1 stable_token call across 10 clients; got %d", got)
	}
	if !fake.AccessTokenValid(tokens[0]) {
		t.Errorf("want a token the server accepts")
	}
	// The lock is released once the token is stored.
	if n, err := rdb.Exists(context.Background(), prefix+"access_token:stable_token:"+testAppID+":lock").Result(); n != 0 || err != nil {
		t.Errorf("want the lock released; got %d keys, %v", n, err)
	}
	ttl, err := rdb.PTTL(context.Background(), prefix+"access_token:stable_token:"+testAppID).Result()
	if err != nil || ttl <= 0 || ttl > wxtest.TokenLifetime-wx.ConfigDefault.TokenMargin {
		t.Errorf("want the token cached for under its life less the margin; got %s, %v", ttl, err)
	}
}

// TestRedisTokenSharedAcrossRestarts: a new Client (a restarted process) uses the token in
// Redis instead of fetching one.
func TestRedisTokenSharedAcrossRestarts(t *testing.T) {
	rdb, prefix := redisForTest(t)
	fake := newFake(t)
	ctx := context.Background()
	first := newClient(t, fake, wx.Config{TokenCache: wx.NewRedisTokenCache(rdb, prefix)})
	tok, err := first.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second := newClient(t, fake, wx.Config{TokenCache: wx.NewRedisTokenCache(rdb, prefix), HTTPClient: newHTTPClient(t, 5*time.Second)})
	if got, err := second.AccessToken(ctx); got != tok || err != nil {
		t.Errorf("want the shared token; got %v", err)
	}
	if got := fake.Calls(wxtest.StableToken); got != 1 {
		t.Errorf("want 1 stable_token call; got %d", got)
	}
}

// TestRedisDown: with Redis unreachable the cache and lock return errors, and the Client
// still gets a token (fetching it itself) instead of failing every API call.
func TestRedisDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	defer rdb.Close()
	cache := wx.NewRedisTokenCache(rdb, "")
	ctx := context.Background()

	checks := []struct {
		name string
		err  func() error
	}{
		{"get", func() error { _, _, err := cache.Get(ctx, "k"); return err }},
		{"set", func() error { return cache.Set(ctx, "k", "t", time.Minute) }},
		{"compare and delete", func() error { _, err := cache.CompareAndDelete(ctx, "k", "t"); return err }},
		{"lock", func() error { _, _, err := cache.TryLock(ctx, "k", time.Minute); return err }},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			err := c.err()
			if err == nil || !strings.HasPrefix(err.Error(), "redis token cache: "+c.name+": ") {
				t.Errorf("want a %q error; got %v", c.name, err)
			}
		})
	}

	fake := newFake(t)
	client := newClient(t, fake, wx.Config{TokenCache: cache, TokenLock: cache})
	for range 3 {
		if tok, err := client.AccessToken(ctx); err != nil || !fake.AccessTokenValid(tok) {
			t.Fatalf("want a valid token with Redis down; got %v", err)
		}
	}
	if got := fake.Calls(wxtest.StableToken); got != 1 {
		t.Errorf("want 1 stable_token call (then the process's own token); got %d", got)
	}
}
