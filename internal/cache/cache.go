// Package cache keeps a process's sessions in memory in front of a shared store, exact
// as long as the store's events reach the process.
//
// A Store wraps a store.Store whose events cross processes (redisstore) and serves Load
// from memory:
//
//   - An entry is dropped when an event says its session changed (EventChanged from
//     another writer), ended (EventDeleted, EventRevoked, EventExpired), and every entry
//     is dropped on EventResync. Events are handled before they are passed on to the
//     cache's own subscribers (wsauth's live handles), so a handle that reloads after an
//     event gets what the store holds.
//   - While the store cannot vouch for its events (store.Events.EventsLive reports
//     false: the subscription is down, or missed a health check), every Load goes to the
//     store and nothing is cached. When events are live again, the store has sent an
//     EventResync, which dropped every entry.
//   - An entry is never served past the session's expiry as last known, nor older than
//     MaxAge, and the cache holds at most MaxEntries entries (least recently used go
//     first).
//   - A Load that hits extends the session in the store at most once per Renew
//     interval, in the background, batched (Store.TouchMany): a cached read costs no
//     round trip, and the session's expiry in the store lags the last read by at most
//     Renew.
//   - Writes (Save, Incr, Touch) go to the store in one call each, and the events they
//     send back are recognised by their origin (the cache writes through
//     store.Events.From) and skipped. A Save
//     or an Incr that succeeded is applied to the entry when no other write or event of
//     its shard (sessions are spread over 256 by hash) completed while it was under way,
//     and drops the entry otherwise: replies may come back in another order than the
//     store ran the writes. A Load that was under way while a write or an event of its
//     shard completed does not fill the cache, since it may have read what was there
//     before. Concurrent writes to one session from one process therefore cost a reload
//     now and then, never a stale read once they have all returned.
//   - Over a store that counts each session's writes (Versioned: redisstore), Save and
//     Incr return the version they made, and the cache applies the concurrent writes of
//     its process in that order instead (see writes): they keep the entry, and each
//     costs its one round trip. A gap no write of this process can fill is another
//     process's write: the entry is dropped.
//   - Over events that route each session's events to the processes that watch it
//     (store.Watcher: redisstore), the cache watches a session before it first loads
//     it, which waits for the store (one round trip on Redis), keeps the watches of the
//     MaxEntries sessions it loaded or served last, holds an entry only while its
//     session is watched, and subscribes to the watched sessions' events only. The
//     process then receives the events of the sessions it holds, not every event of
//     the store. A Load whose watch fails goes to the store and caches nothing.
//
// # How stale an entry may be
//
// A write, logout or revocation acknowledged at time X in any process is seen by every
// Load that starts at X + MaxLag or later in every process, whatever the load on the
// processes, the store or the network, for a store whose events implement
// store.Fencer (redisstore on one Redis). A Load that starts within MaxLag of X may
// still be served what the cache held before. The cache keeps the bound with fences:
//
//   - Every MaxLag/2 the cache publishes a fence, an event carrying a token of its own
//     that records when it was sent (S, on this process's monotonic clock), on the
//     store's events channel. The store delivers the process's events, on that
//     channel and on the watched sessions' own, in the order it ran the publications
//     (redisstore receives them all on one connection), and the cache handles events
//     in order, so when its fence comes back, it has handled the event of every
//     watched session's write acknowledged anywhere before S.
//   - An entry is served at T only while the newest fence received was sent at S with
//     T - S <= MaxLag. A write acknowledged at X <= T - MaxLag <= S has then been
//     handled: its entry dropped. Otherwise the Load goes to the store, as when events
//     are not live, and counts as a bypass. Both times are read on one clock: no
//     clocks need to agree across machines.
//   - A slow store or subscription therefore makes the cache serve less (fences come
//     back late, and Loads go to the store meanwhile), never staler.
//   - Fences are sent only while the cache is used: after fenceIdle (10 s) without a
//     Load through it, the cache stops, and its next Load goes to the store and sends
//     one at once. A busy process sends 2/MaxLag fences a second (20 at the default
//     100 ms); each reaches every process subscribed to the store, so N busy processes
//     cause N*N*2/MaxLag deliveries a second in all.
//
// Over events that do not implement store.Fencer, entries are served while events are
// live and nothing bounds the window: a write made in another process is seen by every
// Load that starts after its event reached this process, however late that is (up to
// MaxAge).
package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/mpsession/mpsession/internal/counting"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

// Defaults of Config.
const (
	DefaultMaxEntries = 100_000
	DefaultMaxAge     = 5 * time.Minute
	DefaultMaxLag     = 100 * time.Millisecond
	// MinMaxLag is the smallest MaxLag: fences go out every MaxLag/2.
	MinMaxLag = 10 * time.Millisecond
)

// fenceIdle is how long the cache goes on sending fences after its last Load.
const fenceIdle = 10 * time.Second

// Config bounds a cache.
type Config struct {
	// MaxEntries is the most sessions kept. Default: DefaultMaxEntries.
	MaxEntries int
	// MaxAge is the longest an entry is served before the session is loaded again.
	// Default: DefaultMaxAge.
	MaxAge time.Duration
	// Renew is the longest a cached read goes without extending the session in the
	// store. Default: a tenth of the idle timeout.
	Renew time.Duration
	// MaxLag is the longest after a write acknowledged in another process that a Load
	// may still be served what the cache held before (see the package doc). It holds
	// for a store whose events implement store.Fencer; fences are sent every MaxLag/2.
	// Default: DefaultMaxLag.
	MaxLag time.Duration
	// Metrics counts lookups by result; nil: not counted.
	Metrics *counting.Counts
}

// ErrNoEvents is returned by New for a store whose events do not reach every process.
var ErrNoEvents = errors.New("cache: the store's events do not reach every process (its Capabilities().Events are nil or not Shared)")

// shards is how many load sequences a cache keeps: a Load compares its session's shard
// before and after it reads the store.
const shards = 256

// Store is a store.Store with a cache in front of Load. See the package doc.
type Store struct {
	store.Store              // the backend; Sessions, PutTicket and TakeTicket go straight to it
	health      store.Events // the backend's
	own         store.Store  // the backend, writing with the cache's origin
	idle        time.Duration
	renew       time.Duration
	maxAge      time.Duration
	origin      string // marks this cache's writes, so it skips their events

	// Fences (see the package doc); fencer is nil when the store's events carry none.
	fencer    store.Fencer
	maxLag    int64         // nanoseconds
	fenceIdle int64         // nanoseconds; fenceIdle, shorter in tests
	fenceAt   atomic.Int64  // when the newest fence received was sent (monoNow); 0: none
	usedAt    atomic.Int64  // about when a Load last wanted a fence (monoNow)
	fenceNow  chan struct{} // asks for a fence at once: the newest is too old
	stopFence func()        // stops the fence goroutine; set with unsubscribe
	Fences    atomic.Uint64 // fences received, for tests

	entries *lru.Cache[string, *entry] // by session hash
	seq     [shards]atomic.Uint64      // bumped by every write (but versioned ones) and event of the shard
	// versions is the backend's Versioned, nil when the backend or its view for the
	// cache's origin has none: then writes are ordered by seq alone (see update).
	versions Versioned
	writes   map[string]*writes // by session hash, while a versioned write or a load of it is under way; under mu
	epoch    atomic.Uint64      // bumped by every EventResync
	// watcher is the backend's store.Watcher, nil when its events have none: the cache
	// then receives every event of the store. With one, the cache watches each session
	// before it loads it, keeps the watch as long as the session is in watches (the
	// MaxEntries sessions most recently loaded or hit, see keepWatched), caches a
	// session only while it is watched, and receives the events of the sessions it
	// watches only.
	watcher    store.Watcher
	watches    *simplelru.LRU[string, func()] // session hash -> its unwatch; under mu
	unwatching []func()                       // watches evicted, to end once mu is released; under mu
	keepEvery  int64                          // how often, at most, a hit moves its watch to the front (see keepWatched)
	// mu makes each change of entries one step with the checks it depends on (a
	// load's sequence check and its insert, an update's copy and its replace, a drop's
	// bump and its removal). Reads take no lock beyond the LRU's own.
	mu sync.Mutex

	subMu       sync.Mutex
	subs        atomic.Pointer[[]*subscriber]
	unsubscribe func()       // the cache's own subscription to the backend
	retryAt     atomic.Int64 // when a failed subscription may be tried again, UnixNano
	closed      atomic.Bool
	subscribing atomic.Bool // a background subscribe is under way

	touchMu  sync.Mutex
	touchDue map[string]string // session hash -> id, due for a background touch
	touching bool              // a goroutine is flushing touchDue
	touchWG  sync.WaitGroup

	// Counts, for tests; metrics, when not nil, counts them too.
	Hits, Misses, Bypasses atomic.Uint64
	metrics                *counting.Counts
}

// entry is one cached session. It is never changed once in the cache: a write replaces
// it, so readers need no lock.
type entry struct {
	fields   map[string]string // shared by every reader: copied before it is handed out
	owner    string
	deadline time.Time
	expires  time.Time // the session's expiry as last known
	touched  time.Time // when the store last extended it: expires - idle, or later
	loaded   time.Time // for MaxAge
	version  uint64    // the session's version (Versioned) that fields hold; 0 without versions
	touchDue atomic.Bool
	kept     atomic.Int64 // when a hit last moved the session's watch to the front (monoNow); see keepWatched
}

type subscriber struct {
	fn     func(store.Event)
	active atomic.Bool
}

// New returns st with a cache in front of it, for sessions whose idle timeout is idle.
// st's events must be Shared (redisstore; memory needs no cache): otherwise New returns
// ErrNoEvents.
func New(st store.Store, idle time.Duration, cfg Config) (*Store, error) {
	health := st.Capabilities().Events
	if health == nil || !health.Shared() {
		return nil, ErrNoEvents
	}
	if idle <= 0 {
		return nil, errors.New("cache: idle timeout must be positive")
	}
	if cfg.MaxEntries < 0 || cfg.MaxAge < 0 || cfg.Renew < 0 || cfg.MaxLag < 0 {
		return nil, errors.New("cache: MaxEntries, MaxAge, Renew and MaxLag must not be negative")
	}
	if cfg.MaxLag > 0 && cfg.MaxLag < MinMaxLag {
		return nil, fmt.Errorf("cache: MaxLag %v is below %v: a fence every MaxLag/2 would load the store for nothing", cfg.MaxLag, MinMaxLag)
	}
	if cfg.MaxLag == 0 {
		cfg.MaxLag = DefaultMaxLag
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Renew <= 0 {
		cfg.Renew = idle / 10
	}
	entries, err := lru.New[string, *entry](cfg.MaxEntries)
	if err != nil {
		return nil, err
	}
	watcher, _ := health.(store.Watcher)
	var b [12]byte
	_, _ = rand.Read(b[:])
	origin := tagPrefix + hex.EncodeToString(b[:])
	fencer, _ := health.(store.Fencer)
	own := health.From(origin)
	var versions Versioned
	if v, ok := st.(Versioned); ok {
		if _, ok := own.(Versioned); ok {
			versions = v
		}
	}
	c := &Store{Store: st, health: health, own: own, idle: idle, renew: min(cfg.Renew, idle), maxAge: cfg.MaxAge,
		origin: origin, entries: entries, touchDue: map[string]string{}, metrics: cfg.Metrics,
		versions: versions, writes: map[string]*writes{}, watcher: watcher,
		fencer: fencer, maxLag: int64(cfg.MaxLag), fenceIdle: int64(fenceIdle), fenceNow: make(chan struct{}, 1),
		keepEvery: int64(time.Second)}
	if watcher != nil {
		// A watch evicted takes its entry with it: the cache no longer hears of the
		// session. The drop also bumps the shard, so that a load that read before the
		// watch ended does not fill the cache once the session is watched again.
		c.watches, _ = simplelru.NewLRU(cfg.MaxEntries, func(hash string, unwatch func()) {
			c.dropLocked(hash)
			c.unwatching = append(c.unwatching, unwatch)
		})
	}
	return c, nil
}

// watch has the cache watch the session hash, unless it does (see Store.watcher). It
// costs the store's Watch on the first load of a session: one round trip on Redis.
func (c *Store) watch(ctx context.Context, hash string) error {
	c.mu.Lock()
	_, ok := c.watches.Get(hash)
	c.mu.Unlock()
	if ok {
		return nil
	}
	unwatch, _, err := c.watcher.Watch(ctx, hash)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed.Load() || c.watches.Contains(hash) {
		c.mu.Unlock()
		unwatch() // closed, or another load watched it meanwhile, and holds it
		return nil
	}
	c.watches.Add(hash, unwatch)
	c.unlockUnwatching()
	return nil
}

// keepWatched moves the watch of the session hash, whose entry e a Load served, to the
// front of the watches, so that a session read often from memory keeps its watch, and
// so its entry, ahead of sessions loaded once since. It takes mu at most once per
// keepEvery per entry: the hits in between take no lock beyond the entries' own.
func (c *Store) keepWatched(hash string, e *entry) {
	now := monoNow()
	kept := e.kept.Load()
	if now-kept < c.keepEvery || !e.kept.CompareAndSwap(kept, now) {
		return
	}
	c.mu.Lock()
	c.watches.Get(hash)
	c.mu.Unlock()
}

// unlockUnwatching releases mu, then ends the watches evicted meanwhile: Unwatch talks
// to the store.
func (c *Store) unlockUnwatching() {
	evicted := c.unwatching
	c.unwatching = nil
	c.mu.Unlock()
	for _, unwatch := range evicted {
		unwatch()
	}
}

// watching reports whether the session hash may be cached: it is watched, or the
// cache needs no watch. mu held.
func (c *Store) watching(hash string) bool {
	return c.watches == nil || c.watches.Contains(hash)
}

// clockBase anchors monoNow's readings.
var clockBase = time.Now()

// monoNow returns a reading of the monotonic clock in nanoseconds, never 0.
func monoNow() int64 { return int64(time.Since(clockBase)) + 1 }

// Serving reports whether a Load now may be served from memory: events are live and,
// for a store that fences, the newest fence is recent enough (see the package doc).
// It subscribes on first use, as Load does.
func (c *Store) Serving() bool { return c.live() && c.fenced() }

// fenced reports whether the newest fence received was sent within MaxLag, or the store
// sends none. It records that the cache is in use, and asks for a fence at once when
// the newest is too old.
func (c *Store) fenced() bool {
	if c.fencer == nil {
		return true
	}
	now := monoNow()
	// Written about once per MaxLag/2 only: reads of a line no one writes stay cheap.
	if now-c.usedAt.Load() > c.maxLag/2 {
		c.usedAt.Store(now)
	}
	if now-c.fenceAt.Load() <= c.maxLag {
		return true
	}
	select {
	case c.fenceNow <- struct{}{}:
	default:
	}
	return false
}

// fence sends a fence every MaxLag/2 while the cache is in use, and one at once when a
// Load asks, unless one was sent less than MaxLag/2 ago: so never more than 2/MaxLag a
// second. A fence whose send fails or is lost is simply not received; the next one
// follows on time.
func (c *Store) fence(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	every := time.Duration(c.maxLag / 2)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last int64 // when the last fence was sent; 0: none
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		case <-c.fenceNow:
			if last != 0 && monoNow()-last < int64(every) {
				continue
			}
		}
		now := monoNow()
		if now-c.usedAt.Load() > c.fenceIdle {
			continue
		}
		last = now
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(c.maxLag))
		_ = c.fencer.Fence(ctx, c.origin+"/"+strconv.FormatInt(now, 10))
		cancel()
		tick.Reset(every)
	}
}

// fenceReceived records the fence of token, when it is one of this cache's.
func (c *Store) fenceReceived(token string) {
	sent, ok := strings.CutPrefix(token, c.origin+"/")
	if !ok {
		return
	}
	at, err := strconv.ParseInt(sent, 10, 64)
	if err != nil {
		return
	}
	c.Fences.Add(1)
	for {
		old := c.fenceAt.Load()
		if at <= old || c.fenceAt.CompareAndSwap(old, at) {
			return
		}
	}
}

// live reports whether entries may be served and filled: the cache receives the store's
// events and the store vouches for them. It subscribes on first use.
func (c *Store) live() bool {
	if c.closed.Load() {
		return false
	}
	if c.subs.Load() == nil {
		if time.Now().UnixNano() >= c.retryAt.Load() {
			c.Start()
		}
		return false
	}
	return c.health.EventsLive()
}

// Start subscribes the cache to the store's events in the background, unless it is
// subscribed or subscribing. Until it is, Load goes to the store. Subscribing is not
// done on a request's time: it waits for the store (redisstore: up to its
// Config.SubscribeTimeout on a hung Redis).
func (c *Store) Start() {
	if c.subs.Load() != nil || !c.subscribing.CompareAndSwap(false, true) {
		return
	}
	c.touchMu.Lock() // as dueForTouch: nothing joins touchWG once Close began
	defer c.touchMu.Unlock()
	if c.closed.Load() {
		c.subscribing.Store(false)
		return
	}
	c.touchWG.Add(1)
	go func() {
		defer c.touchWG.Done()
		defer c.subscribing.Store(false)
		_ = c.subscribe()
	}()
}

// subscribe starts the cache's own subscription to the backend, unless it runs. After a
// failure, live tries again at most once a second.
func (c *Store) subscribe() error {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.closed.Load() {
		return errors.New("cache: closed")
	}
	if c.subs.Load() != nil {
		return nil
	}
	subscribe := c.health.Subscribe
	if c.watcher != nil {
		subscribe = c.watcher.SubscribeWatched
	}
	unsubscribe, err := subscribe(c.onEvent)
	if err != nil {
		c.retryAt.Store(time.Now().Add(time.Second).UnixNano())
		return err
	}
	c.unsubscribe = unsubscribe
	c.subs.Store(&[]*subscriber{})
	if c.fencer != nil {
		c.usedAt.Store(monoNow()) // a first fence now: the cache is about to be used
		stop, done := make(chan struct{}), make(chan struct{})
		go c.fence(stop, done)
		select {
		case c.fenceNow <- struct{}{}:
		default:
		}
		c.stopFence = func() { close(stop); <-done }
	}
	return nil
}

func (c *Store) shard(hash string) *atomic.Uint64 {
	// The hash is hex: its first two characters spread sessions evenly.
	if len(hash) < 2 {
		return &c.seq[0]
	}
	return &c.seq[(unhex(hash[0])<<4|unhex(hash[1]))%shards]
}

func unhex(b byte) int {
	switch {
	case b >= '0' && b <= '9':
		return int(b - '0')
	case b >= 'a' && b <= 'f':
		return int(b-'a') + 10
	}
	return int(b)
}

// Load returns the session from memory when the cache holds it and events are live, and
// from the store otherwise, filling the cache. A hit with touch > 0 extends the session
// in the store in the background when the last extension is older than Renew.
func (c *Store) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	hash := store.Hash(id)
	if !c.live() || !c.fenced() {
		c.Bypasses.Add(1)
		c.metrics.CacheLookup(counting.CacheBypass)
		return c.Store.Load(ctx, id, touch)
	}
	now := time.Now()
	if e, ok := c.entries.Get(hash); ok {
		if now.Before(e.expires) && now.Sub(e.loaded) < c.maxAge {
			c.Hits.Add(1)
			c.metrics.CacheLookup(counting.CacheHit)
			if touch > 0 && now.Sub(e.touched) >= c.renew && !e.touchDue.Swap(true) {
				c.dueForTouch(hash, id)
			}
			if c.watches != nil {
				c.keepWatched(hash, e)
			}
			return e.record(), nil
		}
		c.entries.Remove(hash)
	}
	c.Misses.Add(1)
	c.metrics.CacheLookup(counting.CacheMiss)
	// Read before the watch is confirmed: a watch evicted from here on bumps the
	// shard, so that this load cannot fill the cache after another load watched the
	// session again (events went unheard in between).
	sh := c.shard(hash)
	seq, epoch := sh.Load(), c.epoch.Load()
	if c.watcher != nil {
		if err := c.watch(ctx, hash); err != nil {
			return c.Store.Load(ctx, id, touch) // unwatched: not cached
		}
	}
	if c.versions != nil {
		return c.loadVersion(ctx, hash, id, touch, now, seq, epoch)
	}
	rec, err := c.Store.Load(ctx, id, touch)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.entries.Remove(hash)
		}
		return nil, err
	}
	// Only what no write or event overtook, read while events were live.
	// A load with touch extended the session just now; one without says only that the
	// last extension was no later than its expiry minus the idle timeout (earlier, near
	// the deadline, which then costs one renewal, not one per read).
	touched := rec.ExpiresAt.Add(-c.idle)
	if touch > 0 {
		touched = now
	}
	e := &entry{fields: cloneFields(rec.Fields), owner: rec.Owner, deadline: rec.Deadline,
		expires: rec.ExpiresAt, touched: touched, loaded: now}
	c.mu.Lock()
	if c.health.EventsLive() && sh.Load() == seq && c.epoch.Load() == epoch && c.watching(hash) {
		c.entries.Add(hash, e)
	}
	c.mu.Unlock()
	return rec, nil
}

// clone returns a copy of e to change and put in its place: fields are shared, and
// copied by the change that writes them (touchDue starts false).
func (e *entry) clone() *entry {
	return &entry{fields: e.fields, owner: e.owner, deadline: e.deadline, expires: e.expires,
		touched: e.touched, loaded: e.loaded, version: e.version}
}

// record returns a copy of e as a store hands it out: the caller may change its fields.
func (e *entry) record() *store.Record {
	fields := make(map[string]string, len(e.fields)+1)
	for k, v := range e.fields {
		fields[k] = v
	}
	return &store.Record{Fields: fields, Owner: e.owner, Deadline: e.deadline, ExpiresAt: e.expires}
}

// update replaces the entry of hash, if the cache has one, by change applied to a copy,
// after a write that began when the shard's sequence was before. If another write or
// an event of the shard completed meanwhile, the store's order of the two is unknown
// here (replies may come back in either order): the entry is dropped instead, and the
// next read loads what the store holds. Loads under way no longer fill the cache.
func (c *Store) update(hash string, before uint64, change func(e *entry)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shard(hash).Add(1) != before+1 {
		c.entries.Remove(hash)
		return
	}
	e, ok := c.entries.Peek(hash)
	if !ok {
		return
	}
	next := e.clone()
	change(next)
	c.entries.Add(hash, next)
}

// extendedAt records in the entry of hash, if the cache has one, that the store
// extended the session at at by idle. It changes no field, so it needs no ordering
// with writes, and leaves the shard's sequence alone.
func (c *Store) extendedAt(hash string, at time.Time, idle time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries.Peek(hash)
	if !ok {
		return
	}
	next := e.clone()
	c.extended(next, at, idle)
	c.entries.Add(hash, next)
}

// extended records that the store extended the session to min(at+idle, deadline).
func (c *Store) extended(e *entry, at time.Time, idle time.Duration) {
	exp := at.Add(idle)
	if !e.deadline.IsZero() && e.deadline.Before(exp) {
		exp = e.deadline
	}
	if exp.After(e.expires) {
		e.expires = exp
	}
	if at.After(e.touched) {
		e.touched = at // also at the deadline, where the expiry no longer moves
	}
}

// drop removes the session's entry after a write that may have changed it in ways the
// cache cannot apply, or that failed.
func (c *Store) drop(hash string) {
	c.mu.Lock()
	c.dropLocked(hash)
	c.mu.Unlock()
}

// dropLocked is drop with c.mu held. Versioned writes waiting to apply to the entry
// return: there is none left.
func (c *Store) dropLocked(hash string) {
	c.shard(hash).Add(1)
	c.entries.Remove(hash)
	if w := c.writes[hash]; w != nil {
		for v := range w.waiting {
			w.release(v)
		}
	}
}

// tagPrefix starts the origins caches give their writes. Events reach subscribers
// without them, as if the writes had been made with no origin.
const tagPrefix = "mpsession-cache:"

// Save writes ch in one store call and applies it to the entry.
func (c *Store) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	return c.save(ctx, c.own, id, ch, idle)
}

// save writes ch through w: the cache's own view of the store, whose events it skips,
// or a view with another origin (From), whose events come back and drop the entry (a
// reload, never a stale read).
func (c *Store) save(ctx context.Context, w store.Store, id string, ch store.Change, idle time.Duration) error {
	hash := store.Hash(id)
	start := time.Now()
	if vw, ok := w.(Versioned); ok && c.versions != nil && !ch.Empty() {
		err := c.writeVersion(hash, func() (uint64, error) { return vw.SaveVersion(ctx, id, ch, idle) }, func(e *entry) {
			e.fields = cloneFields(e.fields)
			storekit.Apply(ch, e.fields)
		})
		if err == nil && idle > 0 {
			c.extendedAt(hash, start, idle)
		}
		return err
	}
	before := c.shard(hash).Load()
	if err := w.Save(ctx, id, ch, idle); err != nil {
		c.drop(hash)
		return err
	}
	c.update(hash, before, func(e *entry) {
		e.fields = cloneFields(e.fields)
		storekit.Apply(ch, e.fields)
		if idle > 0 {
			c.extended(e, start, idle)
		}
	})
	return nil
}

// Incr increments in one store call and applies the result to the entry.
func (c *Store) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	return c.incr(ctx, c.own, id, field, delta)
}

func (c *Store) incr(ctx context.Context, w store.Store, id, field string, delta int64) (int64, error) {
	hash := store.Hash(id)
	if vw, ok := w.(Versioned); ok && c.versions != nil {
		var n int64
		err := c.writeVersion(hash, func() (v uint64, err error) {
			n, v, err = vw.IncrVersion(ctx, id, field, delta)
			return v, err
		}, func(e *entry) {
			e.fields = cloneFields(e.fields)
			e.fields[field] = strconv.FormatInt(n, 10)
		})
		return n, err
	}
	before := c.shard(hash).Load()
	n, err := w.Incr(ctx, id, field, delta)
	if err != nil {
		c.drop(hash)
		return 0, err
	}
	v := strconv.FormatInt(n, 10)
	c.update(hash, before, func(e *entry) {
		e.fields = cloneFields(e.fields)
		e.fields[field] = v
	})
	return n, nil
}

// Touch extends the session in one store call and records it in the entry.
func (c *Store) Touch(ctx context.Context, id string, idle time.Duration) error {
	hash := store.Hash(id)
	start := time.Now()
	if err := c.Store.Touch(ctx, id, idle); err != nil {
		c.drop(hash)
		return err
	}
	c.extendedAt(hash, start, idle)
	return nil
}

// TouchMany extends sessions as Touch does, in one batch when the store can.
func (c *Store) TouchMany(ctx context.Context, ids []string, idle time.Duration) []error {
	start := time.Now()
	errs := c.Store.TouchMany(ctx, ids, idle)
	for i, id := range ids {
		hash := store.Hash(id)
		if errs[i] != nil {
			c.drop(hash)
		} else {
			c.extendedAt(hash, start, idle)
		}
	}
	return errs
}

// Create creates the session in the store; the cache fills on its first Load.
func (c *Store) Create(ctx context.Context, id string, rec store.Record, idle time.Duration) error {
	err := c.own.Create(ctx, id, rec, idle)
	if err == nil {
		c.drop(store.Hash(id))
	}
	return err
}

// Delete deletes the session from the store and from the cache.
func (c *Store) Delete(ctx context.Context, id string) error { return c.delete(ctx, c.own, id) }

func (c *Store) delete(ctx context.Context, w store.Store, id string) error {
	err := w.Delete(ctx, id)
	c.drop(store.Hash(id))
	return err
}

// DeleteOwner deletes the owner's sessions from the store and from the cache. It asks
// the store for them first (one more round trip, for a rare call): their events drop
// them too, but a request of this process must not use one in between.
func (c *Store) DeleteOwner(ctx context.Context, owner string, keep ...string) (int, error) {
	return c.deleteOwner(ctx, c.own, owner, keep)
}

func (c *Store) deleteOwner(ctx context.Context, w store.Store, owner string, keep []string) (int, error) {
	hashes, err := c.Store.Sessions(ctx, owner)
	if err != nil {
		return 0, err
	}
	n, err := w.DeleteOwner(ctx, owner, keep...)
	for _, hash := range hashes {
		c.drop(hash)
	}
	return n, err
}

// Capabilities are the backend's, with the cache's own events: subscribers get each
// event after the cache has handled it.
func (c *Store) Capabilities() store.Capabilities {
	caps := c.Store.Capabilities()
	caps.Events = events{c}
	if c.watcher != nil {
		caps.Events = watchedEvents{events{c}}
	}
	return caps
}

// watchedEvents are the cache's events over a backend with a store.Watcher: its own
// subscribers are SubscribeWatched's, and receive the events of every session watched
// in the process (by the cache and by others), after the cache; Subscribe's get every
// event from the backend.
type watchedEvents struct{ events }

func (e watchedEvents) SubscribeWatched(fn func(store.Event)) (func(), error) {
	return e.c.Subscribe(fn)
}

func (e watchedEvents) Watch(ctx context.Context, hash string) (func(), time.Time, error) {
	return e.c.watcher.Watch(ctx, hash)
}

// Subscribe registers fn for every event of the store, as the backend delivers them:
// the cache receives those of the sessions it holds first (the store delivers a
// session's channel before the pattern of all), so fn reads what the cache holds no
// earlier than its entry was dropped.
func (e watchedEvents) Subscribe(fn func(store.Event)) (func(), error) {
	if fn == nil {
		return nil, errors.New("cache: subscribe: nil func")
	}
	if err := e.c.subscribe(); err != nil { // EventsLive reports the cache's subscription
		return nil, err
	}
	return e.c.health.Subscribe(func(ev store.Event) {
		if ev.Kind == store.EventFence {
			return
		}
		if strings.HasPrefix(ev.Origin, tagPrefix) {
			ev.Origin = ""
		}
		fn(ev)
	})
}

// events is the cache's store.Events.
type events struct{ c *Store }

func (e events) Subscribe(fn func(store.Event)) (func(), error) { return e.c.Subscribe(fn) }
func (e events) Shared() bool                                   { return true }
func (e events) EventsLive() bool {
	return !e.c.closed.Load() && e.c.subs.Load() != nil && e.c.health.EventsLive()
}

// From returns the cache whose writes go through the backend's view with origin: the
// events of those writes reach subscribers with it, and drop the cache's entry.
func (e events) From(origin string) store.Store {
	return &view{Store: e.c, w: e.c.health.From(origin)}
}

// view is the cache writing with an origin of the caller's.
type view struct {
	*Store
	w store.Store // the backend's view
}

func (v *view) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	return v.save(ctx, v.w, id, ch, idle)
}

func (v *view) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	return v.incr(ctx, v.w, id, field, delta)
}

func (v *view) Delete(ctx context.Context, id string) error { return v.delete(ctx, v.w, id) }

func (v *view) DeleteOwner(ctx context.Context, owner string, keep ...string) (int, error) {
	return v.deleteOwner(ctx, v.w, owner, keep)
}

func (v *view) Close() error { return nil }

// onEvent drops what the event makes stale, then passes it on. It runs on the store's
// event goroutine.
func (c *Store) onEvent(ev store.Event) {
	switch ev.Kind {
	case store.EventFence:
		c.fenceReceived(ev.Origin)
		return // the cache's machinery, not its subscribers' business
	case store.EventResync:
		c.mu.Lock()
		c.epoch.Add(1)
		c.entries.Purge()
		c.mu.Unlock()
	case store.EventChanged:
		if ev.Origin == c.origin { // this cache's own write: applied when it returned
			break
		}
		c.drop(ev.Hash)
	case store.EventDeleted, store.EventRevoked, store.EventExpired:
		c.drop(ev.Hash)
	default:
		// A kind this cache does not know says nothing it can act on; it is passed on.
	}
	if strings.HasPrefix(ev.Origin, tagPrefix) {
		ev.Origin = "" // a cache's tag, here or in another process: not the caller's
	}
	if p := c.subs.Load(); p != nil {
		for _, s := range *p {
			if s.active.Load() {
				s.fn(ev)
			}
		}
	}
}

// Subscribe registers fn for the store's events, which reach it after the cache has
// handled them.
func (c *Store) Subscribe(fn func(store.Event)) (func(), error) {
	if fn == nil {
		return nil, errors.New("cache: subscribe: nil func")
	}
	if err := c.subscribe(); err != nil {
		return nil, err
	}
	s := &subscriber{fn: fn}
	s.active.Store(true)
	c.setSubs(func(subs []*subscriber) []*subscriber { return append(subs, s) })
	var once sync.Once
	return func() {
		once.Do(func() {
			s.active.Store(false)
			c.setSubs(func(subs []*subscriber) []*subscriber {
				for i, x := range subs {
					if x == s {
						return append(subs[:i:i], subs[i+1:]...)
					}
				}
				return subs
			})
		})
	}, nil
}

func (c *Store) setSubs(change func([]*subscriber) []*subscriber) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	old := *c.subs.Load()
	subs := change(old[:len(old):len(old)])
	c.subs.Store(&subs)
}

// touchBatch is the most sessions extended in one background store call.
const touchBatch = 512

// dueForTouch queues a session for a background extension, starting the goroutine that
// does them when none runs.
func (c *Store) dueForTouch(hash, id string) {
	c.touchMu.Lock()
	defer c.touchMu.Unlock()
	if c.closed.Load() {
		return
	}
	c.touchDue[hash] = id
	if c.touching {
		return
	}
	c.touching = true
	c.touchWG.Add(1)
	go c.flushTouches()
}

// flushTouches extends the queued sessions in batches until none is left.
func (c *Store) flushTouches() {
	defer c.touchWG.Done()
	for {
		c.touchMu.Lock()
		if len(c.touchDue) == 0 {
			c.touching = false
			c.touchMu.Unlock()
			return
		}
		hashes := make([]string, 0, min(len(c.touchDue), touchBatch))
		ids := make([]string, 0, cap(hashes))
		for hash, id := range c.touchDue {
			if len(ids) == touchBatch {
				break
			}
			hashes, ids = append(hashes, hash), append(ids, id)
			delete(c.touchDue, hash)
		}
		c.touchMu.Unlock()
		// TouchMany records the extensions (or drops the entries that failed); the
		// entries that replace them start with touchDue false.
		errs := c.TouchMany(context.Background(), ids, c.idle)
		for i, hash := range hashes {
			if errs[i] == nil {
				continue
			}
			if e, ok := c.entries.Peek(hash); ok {
				e.touchDue.Store(false)
			}
		}
	}
}

// Close stops the cache's subscription and waits for background extensions. It does not
// close the store.
func (c *Store) Close() error {
	c.touchMu.Lock() // no background touch starts after this
	c.closed.Store(true)
	c.touchMu.Unlock()
	c.subMu.Lock()
	unsubscribe, stopFence := c.unsubscribe, c.stopFence
	c.unsubscribe, c.stopFence = nil, nil
	c.subMu.Unlock()
	if stopFence != nil {
		stopFence()
	}
	if unsubscribe != nil {
		unsubscribe()
	}
	if c.watches != nil {
		c.mu.Lock()
		c.watches.Purge()
		c.unlockUnwatching()
	}
	c.touchWG.Wait()
	c.entries.Purge()
	return nil
}

// Len returns how many sessions the cache holds.
func (c *Store) Len() int { return c.entries.Len() }

func cloneFields(fields map[string]string) map[string]string {
	c := make(map[string]string, len(fields)+1)
	for k, v := range fields {
		c[k] = v
	}
	return c
}
