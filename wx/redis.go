package wx

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisTokenCache is a TokenCache and TokenLocker in Redis, for the processes of one app
// to share a token and fetch it once between them. Use it as both:
//
//	cache := wx.NewRedisTokenCache(rdb, "myapp:")
//	client, err := wx.New(wx.Config{AppID: id, AppSecret: secret, TokenCache: cache, TokenLock: cache})
//
// Tokens are plain strings under prefix + the Client's key, with a TTL; the lock is
// SET NX PX with a random owner value, released by a compare-and-delete script so a
// process never deletes a lock that expired and went to another.
type RedisTokenCache struct {
	rdb    redis.UniversalClient
	prefix string
}

// DefaultRedisPrefix is the key prefix NewRedisTokenCache uses when given "".
const DefaultRedisPrefix = "mpsession:wx:"

// NewRedisTokenCache returns a cache that keeps its keys under prefix in rdb (a single
// node, Sentinel or Cluster client). An empty prefix means DefaultRedisPrefix.
func NewRedisTokenCache(rdb redis.UniversalClient, prefix string) *RedisTokenCache {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &RedisTokenCache{rdb: rdb, prefix: prefix}
}

// compareAndDelete deletes KEYS[1] only if it holds ARGV[1].
var compareAndDelete = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

// Get implements TokenCache.
func (r *RedisTokenCache) Get(ctx context.Context, key string) (string, bool, error) {
	v, err := r.rdb.Get(ctx, r.prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("redis token cache: get: %w", err)
	}
	return v, true, nil
}

// Set implements TokenCache.
func (r *RedisTokenCache) Set(ctx context.Context, key, token string, ttl time.Duration) error {
	if ttl < time.Millisecond {
		ttl = time.Millisecond // go-redis reads 0 as "no expiry" and -1 as KEEPTTL
	}
	if err := r.rdb.Set(ctx, r.prefix+key, token, ttl).Err(); err != nil {
		return fmt.Errorf("redis token cache: set: %w", err)
	}
	return nil
}

// CompareAndDelete implements TokenCache.
func (r *RedisTokenCache) CompareAndDelete(ctx context.Context, key, token string) (bool, error) {
	n, err := compareAndDelete.Run(ctx, r.rdb, []string{r.prefix + key}, token).Int()
	if err != nil {
		return false, fmt.Errorf("redis token cache: compare and delete: %w", err)
	}
	return n == 1, nil
}

// TryLock implements TokenLocker.
func (r *RedisTokenCache) TryLock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, bool, error) {
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	owner := rand.Text()
	k := r.prefix + key
	ok, err := r.rdb.SetNX(ctx, k, owner, ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("redis token cache: lock: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	unlock := func(ctx context.Context) error {
		if err := compareAndDelete.Run(ctx, r.rdb, []string{k}, owner).Err(); err != nil {
			return fmt.Errorf("redis token cache: unlock: %w", err)
		}
		return nil
	}
	return unlock, true, nil
}
