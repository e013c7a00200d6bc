// Package cachelib compares the cache libraries the per-process session cache
// (internal/cache, turned on by fibermp.Config.Cache) could stand on:
// hashicorp/golang-lru/v2's expirable LRU and its plain LRU (with the expiry checked by
// hand), and maypok86/otter/v2, with an unbounded map behind a sync.RWMutex as the floor
// that any bounded cache costs more than.
//
// The package holds no API: its benchmarks are the point.
//
//	cd bench
//	go test -bench . -benchmem -count 3 ./cachelib/
//
// Each library sits behind the same small interface, the operations the session cache
// needs: Get, Set with the entry's own expiry (a session's record expires when the
// session does, or at the cache's maximum age, whichever comes first), Invalidate of one
// key (an event for one session), InvalidateAll (a resubscription), a maximum entry
// count, and Close, which stops what goroutines the library keeps. README.md in bench/
// gives the figures and the recommendation.
package cachelib

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/maypok86/otter/v2"
)

// A record stands for a cached session: what the cache holds per key. expires is when
// the session expires in the store, computed locally (Unix nanoseconds).
type record struct {
	fields  map[string][]byte
	expires int64
}

// A cache is what the session cache asks of a library.
type cache interface {
	// Get returns the record of key, or false when there is none or it has expired.
	Get(key string) (*record, bool)
	// Set stores v under key until v.expires or the maximum age, whichever is first.
	Set(key string, v *record)
	// Invalidate drops key.
	Invalidate(key string)
	// InvalidateAll drops every key.
	InvalidateAll()
	// Close stops the library's goroutines, where it can.
	Close()
}

// A library is a cache library under test.
type library struct {
	name string
	// new returns a cache of at most maxEntries entries, none kept past maxAge.
	new func(maxEntries int, maxAge time.Duration) cache
}

var libraries = []library{
	{"golang-lru-expirable", newLRU},
	{"golang-lru-plain", newPlainLRU},
	{"otter", func(n int, age time.Duration) cache { return newOtter(n, age, nil) }},
	{"otter-coarseclock", newOtterCoarse},
	{"map-rwmutex-unbounded", newMapCache},
}

// lruCache is hashicorp/golang-lru/v2's expirable LRU. It has one TTL for the whole
// cache, counted from the last Add, so the record's own expiry is checked on each Get.
// Every operation takes one mutex, Get included (it moves the entry to the front).
type lruCache struct {
	c *expirable.LRU[string, *record]
}

func newLRU(maxEntries int, maxAge time.Duration) cache {
	return lruCache{expirable.NewLRU[string, *record](maxEntries, nil, maxAge)}
}

func (c lruCache) Get(key string) (*record, bool) {
	v, ok := c.c.Get(key)
	if !ok || time.Now().UnixNano() >= v.expires {
		return nil, false
	}
	return v, true
}

func (c lruCache) Set(key string, v *record) { c.c.Add(key, v) }
func (c lruCache) Invalidate(key string)     { c.c.Remove(key) }
func (c lruCache) InvalidateAll()            { c.c.Purge() }

// Close cannot stop the LRU's expiry goroutine: v2.0.7 never closes the channel that
// would stop it ("it's decided to add functionality to close it in the version later
// than v2"). Every expirable LRU keeps one goroutine for the life of the process, and
// the goroutine keeps the cache: Close empties it, so that at least the entries go.
func (c lruCache) Close() { c.c.Purge() }

// plainLRU is hashicorp/golang-lru/v2's plain LRU (lru.Cache), which has no expiry
// and no goroutine: the record's expiry, and the maximum age, are checked on each Get.
// Every operation takes one mutex, Get included.
type plainLRU struct {
	c      *lru.Cache[string, plainEntry]
	maxAge time.Duration
}

type plainEntry struct {
	r       *record
	expires int64 // the record's expiry or the maximum age, whichever is first
}

func newPlainLRU(maxEntries int, maxAge time.Duration) cache {
	c, err := lru.New[string, plainEntry](maxEntries)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return plainLRU{c, maxAge}
}

func (c plainLRU) Get(key string) (*record, bool) {
	e, ok := c.c.Get(key)
	if !ok || time.Now().UnixNano() >= e.expires {
		return nil, false
	}
	return e.r, true
}

func (c plainLRU) Set(key string, v *record) {
	c.c.Add(key, plainEntry{v, min(v.expires, time.Now().Add(c.maxAge).UnixNano())})
}

func (c plainLRU) Invalidate(key string) { c.c.Remove(key) }
func (c plainLRU) InvalidateAll()        { c.c.Purge() }
func (c plainLRU) Close()                {}

// otterCache is maypok86/otter/v2 with expire-after-write computed per entry, so a
// record leaves the cache when its session expires, or at the maximum age.
type otterCache struct {
	c     *otter.Cache[string, *record]
	clock *otter.CoarseClock // nil: the precise clock
}

func newOtter(maxEntries int, maxAge time.Duration, clock *otter.CoarseClock) otterCache {
	o := &otter.Options[string, *record]{
		MaximumSize: maxEntries,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *record]) time.Duration {
			return min(maxAge, time.Duration(e.Value.expires-time.Now().UnixNano()))
		}),
	}
	if clock != nil {
		o.Clock = clock
	}
	return otterCache{c: otter.Must(o), clock: clock}
}

// newOtterCoarse is otter with a clock read once a millisecond by a goroutine of its
// own: an entry may be served up to about 1 ms past its expiry.
func newOtterCoarse(maxEntries int, maxAge time.Duration) cache {
	return newOtter(maxEntries, maxAge, otter.NewCoarseClock(time.Millisecond))
}

func (c otterCache) Get(key string) (*record, bool) { return c.c.GetIfPresent(key) }
func (c otterCache) Set(key string, v *record)      { c.c.Set(key, v) }
func (c otterCache) Invalidate(key string)          { c.c.Invalidate(key) }
func (c otterCache) InvalidateAll()                 { c.c.InvalidateAll() }

// Close stops the periodic clean-up goroutine (and the coarse clock's). Maintenance
// tasks otter started on its default executor finish by themselves, soon after.
func (c otterCache) Close() {
	c.c.StopAllGoroutines()
	if c.clock != nil {
		c.clock.Stop()
	}
}

// mapCache is the floor: a map behind a sync.RWMutex, with the record's expiry checked
// on Get and no bound at all. A bounded cache can only cost more.
type mapCache struct {
	mu sync.RWMutex
	m  map[string]*record
}

func newMapCache(maxEntries int, _ time.Duration) cache {
	return &mapCache{m: make(map[string]*record, maxEntries)}
}

func (c *mapCache) Get(key string) (*record, bool) {
	c.mu.RLock()
	v, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || time.Now().UnixNano() >= v.expires {
		return nil, false
	}
	return v, true
}

func (c *mapCache) Set(key string, v *record) {
	c.mu.Lock()
	c.m[key] = v
	c.mu.Unlock()
}

func (c *mapCache) Invalidate(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

func (c *mapCache) InvalidateAll() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

func (c *mapCache) Close() {}
