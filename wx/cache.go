package wx

import (
	"context"
	"crypto/rand"
	"sync"
	"time"
)

// TokenCache holds access tokens between calls, under keys the Client chooses (one per
// AppID and TokenSource). Implementations must be safe for concurrent use.
type TokenCache interface {
	// Get returns the token stored under key. If there is none (never stored, expired or
	// deleted), found is false and err is nil; err is returned only for failures of the
	// cache itself.
	Get(ctx context.Context, key string) (token string, found bool, err error)

	// Set stores token under key for ttl, replacing whatever is there. The Client never
	// passes a ttl under one second.
	Set(ctx context.Context, key, token string, ttl time.Duration) error

	// CompareAndDelete deletes the token under key if, and only if, it equals token, in
	// one atomic step, and reports whether it did. A missing key or a different token is
	// deleted == false with a nil error.
	CompareAndDelete(ctx context.Context, key, token string) (deleted bool, err error)
}

// TokenLocker is a lock shared by the processes that share a TokenCache (see
// Config.TokenLock).
type TokenLocker interface {
	// TryLock makes one attempt to take the lock named key for ttl, without waiting. If
	// another holder has it, ok is false and err is nil. unlock releases the lock if, and
	// only if, this holder still has it: after ttl it may have expired and gone to
	// someone else, whose lock must survive.
	TryLock(ctx context.Context, key string, ttl time.Duration) (unlock func(context.Context) error, ok bool, err error)
}

// MemoryTokenCache is a TokenCache and TokenLocker within one process: the default cache
// of a Client. Share one between Clients only if they are for the same apps and run in
// the same process; across processes use NewRedisTokenCache.
type MemoryTokenCache struct {
	mu      sync.Mutex
	entries map[string]memEntry
	now     func() time.Time
}

type memEntry struct {
	value   string
	expires time.Time
}

// NewMemoryTokenCache returns an empty in-memory cache.
func NewMemoryTokenCache() *MemoryTokenCache {
	return &MemoryTokenCache{entries: make(map[string]memEntry), now: time.Now}
}

// get returns the live entry under key; the caller holds mu.
func (m *MemoryTokenCache) get(key string) (string, bool) {
	e, ok := m.entries[key]
	if !ok {
		return "", false
	}
	if !m.now().Before(e.expires) {
		delete(m.entries, key)
		return "", false
	}
	return e.value, true
}

// Get implements TokenCache.
func (m *MemoryTokenCache) Get(_ context.Context, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.get(key)
	return v, ok, nil
}

// Set implements TokenCache.
func (m *MemoryTokenCache) Set(_ context.Context, key, token string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries[key] = memEntry{value: token, expires: m.now().Add(ttl)}
	return nil
}

// CompareAndDelete implements TokenCache.
func (m *MemoryTokenCache) CompareAndDelete(_ context.Context, key, token string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.get(key); !ok || v != token {
		return false, nil
	}
	delete(m.entries, key)
	return true, nil
}

// TryLock implements TokenLocker. Locks live in the same map as tokens, so lock keys must
// not be token keys (the Client's never are).
func (m *MemoryTokenCache) TryLock(_ context.Context, key string, ttl time.Duration) (func(context.Context) error, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, held := m.get(key); held {
		return nil, false, nil
	}
	owner := rand.Text()
	m.entries[key] = memEntry{value: owner, expires: m.now().Add(ttl)}
	unlock := func(ctx context.Context) error {
		_, err := m.CompareAndDelete(ctx, key, owner)
		return err
	}
	return unlock, true, nil
}
