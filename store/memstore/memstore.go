package memstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

// Config configures a memory store.
type Config struct {
	// MaxRecordBytes limits a record's size (see Size). Writes that would make a
	// record larger return store.ErrTooLarge.
	//
	// Optional. Default: store.DefaultMaxRecordBytes
	MaxRecordBytes int

	// CleanupInterval is how often a background goroutine removes expired sessions
	// and tickets, sending store.EventExpired for each session. Expired records are never
	// returned in between: every method checks expiry on access.
	//
	// Optional. Default: 1 * time.Minute
	CleanupInterval time.Duration
}

// ConfigDefault is the config New uses for fields left zero.
var ConfigDefault = Config{
	MaxRecordBytes:  store.DefaultMaxRecordBytes,
	CleanupInterval: 1 * time.Minute,
}

// memoryConfigDefault fills the zero fields of the first config, if any.
func memoryConfigDefault(config ...Config) Config {
	if len(config) == 0 {
		return ConfigDefault
	}
	cfg := config[0]
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = ConfigDefault.MaxRecordBytes
	}
	if cfg.CleanupInterval <= 0 {
		cfg.CleanupInterval = ConfigDefault.CleanupInterval
	}
	return cfg
}

// memoryShards spreads sessions over locks so that requests on different sessions
// rarely wait for each other. A power of two, indexed by the first byte of the key.
const memoryShards = 32

// memoryEventQueue is how many events wait for a slow subscriber before Store drops
// them rather than make writers wait.
const memoryEventQueue = 4096

// Store is a Store that keeps sessions in the process's memory: the default store,
// for a single process and for tests. Sessions are lost when the process exits and are
// not shared with other processes; use store/redisstore for that.
//
// store.Events are delivered in-process. Store queues up to 4096 events for its subscribers;
// if a subscriber blocks long enough for the queue to fill, Store drops further events
// rather than stall writers, and counts them (see DroppedEvents). Once the subscribers
// have caught up with the queue, they receive one store.EventResync, before any later event,
// so that they check again what they cache: a dropped store.EventDeleted must not leave a
// socket open after logout.
//
// A Store must be closed to stop its background goroutines.
type Store struct {
	limit int

	shards [memoryShards]memoryShard

	ownersMu sync.Mutex
	owners   map[string]map[[sha256.Size]byte]struct{} // owner -> keys of sessions

	ticketsMu sync.Mutex
	tickets   map[[sha256.Size]byte]memoryTicket

	// subs is replaced, never changed in place, so the dispatcher and writers read it
	// without locking. subsMu serialises the replacements.
	subsMu  sync.Mutex
	subs    atomic.Pointer[[]*memorySub]
	events  chan store.Event // created by the first Subscribe
	wake    chan struct{}    // tells the dispatcher of a drop; created with events
	dropped atomic.Uint64
	// resynced is dropped as it was when the last store.EventResync was delivered: while
	// they differ, events are lost and the resync that tells of them is to come.
	resynced atomic.Uint64
	closed   bool // guarded by subsMu

	done chan struct{}
	wg   sync.WaitGroup

	broker   memoryBroker   // application messages: broker.go
	history  memoryHistory  // kept messages: history.go
	presence memoryPresence // who is in each room: presence.go
}

type memoryShard struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]*memoryEntry
	_  [64 - 32]byte // a cache line per shard: neighbours' locks do not contend
}

type memoryEntry struct {
	hash     string // store.Hash(id), for events and Sessions
	fields   map[string]string
	size     int // storekit.Size(fields)
	owner    string
	deadline time.Time
	expires  time.Time
}

type memoryTicket struct {
	value   string
	expires time.Time
}

type memorySub struct {
	fn   func(store.Event)
	gone atomic.Bool
}

var (
	errMemoryIdle   = errors.New("store: memory: idle timeout must be positive")
	errMemoryTTL    = errors.New("store: memory: ticket ttl must be positive")
	errMemoryClosed = errors.New("store: memory: closed")
)

// New returns a memory store and starts its cleanup goroutine.
func New(config ...Config) *Store {
	cfg := memoryConfigDefault(config...)
	m := &Store{
		limit:   cfg.MaxRecordBytes,
		owners:  make(map[string]map[[sha256.Size]byte]struct{}),
		tickets: make(map[[sha256.Size]byte]memoryTicket),
		done:    make(chan struct{}),
	}
	for i := range m.shards {
		m.shards[i].m = make(map[[sha256.Size]byte]*memoryEntry)
	}
	m.subs.Store(new([]*memorySub))
	m.wg.Add(1)
	go m.sweep(cfg.CleanupInterval)
	return m
}

// memoryKey returns the digest that store.Hash(id) encodes: Store keys its maps by the 32 bytes
// rather than the 64-character hex, which spares an allocation on every call.
func memoryKey(id string) [sha256.Size]byte {
	// []byte(id) would allocate for ids longer than 32 bytes.
	var buf [128]byte
	if len(id) <= len(buf) {
		return sha256.Sum256(append(buf[:0], id...))
	}
	return sha256.Sum256([]byte(id))
}

func (m *Store) shard(k *[sha256.Size]byte) *memoryShard {
	return &m.shards[k[0]%memoryShards]
}

// memoryCheck checks what every method checks first.
func memoryCheck(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: memory: %w", err)
	}
	return storekit.CheckID(id)
}

// Create implements Store.
func (m *Store) Create(ctx context.Context, id string, rec store.Record, idle time.Duration) error {
	if err := memoryCheck(ctx, id); err != nil {
		return err
	}
	if idle <= 0 {
		return errMemoryIdle
	}
	for name := range rec.Fields {
		if err := storekit.CheckField(name); err != nil {
			return err
		}
	}
	size := storekit.Size(rec.Fields)
	if size > m.limit {
		return storekit.TooLarge(size, m.limit)
	}
	fields := maps.Clone(rec.Fields)
	if fields == nil {
		fields = make(map[string]string)
	}
	k := memoryKey(id)
	now := time.Now()
	e := &memoryEntry{
		hash:     hex.EncodeToString(k[:]),
		fields:   fields,
		size:     size,
		owner:    rec.Owner,
		deadline: rec.Deadline,
		expires:  storekit.ExpiresAt(now, idle, rec.Deadline),
	}

	sh := m.shard(&k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.m[k]; old != nil {
		if now.Before(old.expires) {
			return store.ErrExists
		}
		m.remove(sh, k, old, store.EventExpired, "")
	}
	sh.m[k] = e
	if e.owner != "" {
		m.ownersMu.Lock()
		keys := m.owners[e.owner]
		if keys == nil {
			keys = make(map[[sha256.Size]byte]struct{})
			m.owners[e.owner] = keys
		}
		keys[k] = struct{}{}
		m.ownersMu.Unlock()
	}
	return nil
}

// Load implements Store. The record it returns is a copy.
func (m *Store) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	if err := memoryCheck(ctx, id); err != nil {
		return nil, err
	}
	k := memoryKey(id)
	sh := m.shard(&k)
	now := time.Now()
	if touch <= 0 {
		sh.mu.RLock()
		e := sh.m[k]
		if e != nil && now.Before(e.expires) {
			rec := e.record()
			sh.mu.RUnlock()
			return rec, nil
		}
		sh.mu.RUnlock()
		if e == nil {
			return nil, store.ErrNotFound
		}
		// Expired: fall through to remove it under the write lock.
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, err := m.live(sh, k, now)
	if err != nil {
		return nil, err
	}
	if touch > 0 {
		e.expires = storekit.ExpiresAt(now, touch, e.deadline)
	}
	return e.record(), nil
}

func (e *memoryEntry) record() *store.Record {
	return &store.Record{
		Fields:    maps.Clone(e.fields),
		Owner:     e.owner,
		Deadline:  e.deadline,
		ExpiresAt: e.expires,
	}
}

// live returns the session under key k, removing it if it has expired. sh.mu must be
// held for writing.
func (m *Store) live(sh *memoryShard, k [sha256.Size]byte, now time.Time) (*memoryEntry, error) {
	e := sh.m[k]
	if e == nil {
		return nil, store.ErrNotFound
	}
	if !now.Before(e.expires) {
		m.remove(sh, k, e, store.EventExpired, "")
		return nil, store.ErrNotFound
	}
	return e, nil
}

// remove deletes e, under key k, from sh and from its owner's index, and tells
// subscribers why, and the origin of the write that removed it ("" for an expiry).
// sh.mu must be held for writing.
func (m *Store) remove(sh *memoryShard, k [sha256.Size]byte, e *memoryEntry, why store.EventKind, origin string) {
	delete(sh.m, k)
	if e.owner != "" {
		m.ownersMu.Lock()
		if keys := m.owners[e.owner]; keys != nil {
			delete(keys, k)
			if len(keys) == 0 {
				delete(m.owners, e.owner)
			}
		}
		m.ownersMu.Unlock()
	}
	if m.subscribed() {
		m.publish(store.Event{Kind: why, Hash: e.hash, Origin: origin})
	}
}

// Save implements Store.
func (m *Store) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	return m.save(ctx, id, ch, idle, "")
}

func (m *Store) save(ctx context.Context, id string, ch store.Change, idle time.Duration, origin string) error {
	if err := memoryCheck(ctx, id); err != nil {
		return err
	}
	if err := storekit.CheckChange(ch); err != nil {
		return err
	}
	k := memoryKey(id)
	sh := m.shard(&k)
	now := time.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, err := m.live(sh, k, now)
	if err != nil {
		return err
	}
	size := e.size + sizeDelta(e.fields, ch)
	if size > m.limit {
		return storekit.TooLarge(size, m.limit)
	}
	storekit.Apply(ch, e.fields)
	e.size = size
	if idle > 0 {
		e.expires = storekit.ExpiresAt(now, idle, e.deadline)
	}
	if !ch.Empty() && m.subscribed() {
		m.publish(store.Event{Kind: store.EventChanged, Hash: e.hash, Fields: changed(ch), Origin: origin})
	}
	return nil
}

// changed returns the names of the fields ch sets or deletes. The slice has no spare
// capacity, so a subscriber that appends to the store.Event.Fields it shares with others
// gets a copy rather than write into their array.
func changed(ch store.Change) []string {
	names := make([]string, 0, len(ch.Set)+len(ch.Delete))
	for name := range ch.Set {
		names = append(names, name)
	}
	for _, name := range ch.Delete {
		if _, ok := ch.Set[name]; !ok && !slices.Contains(names[len(ch.Set):], name) {
			names = append(names, name)
		}
	}
	return slices.Clip(names)
}

// sizeDelta returns by how much applying ch changes storekit.Size(fields), without applying it.
func sizeDelta(fields map[string]string, ch store.Change) int {
	d := 0
	for name, v := range ch.Set {
		if slices.Contains(ch.Delete, name) {
			continue // counted as a deletion below
		}
		if old, ok := fields[name]; ok {
			d += len(v) - len(old)
		} else {
			d += len(name) + len(v)
		}
	}
	for i, name := range ch.Delete {
		if slices.Contains(ch.Delete[:i], name) {
			continue
		}
		if old, ok := fields[name]; ok {
			d -= len(name) + len(old)
		}
	}
	return d
}

// Incr implements Store. It reads integers as Redis's HINCRBY does (see parseInteger),
// so that a value Store increments, Redis would too. Like Save, it returns store.ErrTooLarge
// rather than grow the record past the limit, whether by a new field or by a value
// that gains digits. An increment past the range of int64 returns store.ErrNotInteger and
// changes nothing.
func (m *Store) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	return m.incr(ctx, id, field, delta, "")
}

func (m *Store) incr(ctx context.Context, id, field string, delta int64, origin string) (int64, error) {
	if err := memoryCheck(ctx, id); err != nil {
		return 0, err
	}
	if err := storekit.CheckField(field); err != nil {
		return 0, err
	}
	k := memoryKey(id)
	sh := m.shard(&k)
	now := time.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, err := m.live(sh, k, now)
	if err != nil {
		return 0, err
	}
	var n int64
	old, exists := e.fields[field]
	if exists {
		var ok bool
		if n, ok = storekit.ParseInteger(old); !ok {
			return 0, fmt.Errorf("%w: %q", store.ErrNotInteger, field)
		}
	}
	if delta > 0 && n > math.MaxInt64-delta || delta < 0 && n < math.MinInt64-delta {
		return 0, fmt.Errorf("%w: %q: %d%+d overflows int64", store.ErrNotInteger, field, n, delta)
	}
	n += delta
	v := strconv.FormatInt(n, 10)
	size := e.size + len(v) - len(old)
	if !exists {
		size += len(field)
	}
	if size > m.limit {
		return 0, storekit.TooLarge(size, m.limit)
	}
	e.fields[field] = v
	e.size = size
	if m.subscribed() {
		m.publish(store.Event{Kind: store.EventChanged, Hash: e.hash, Fields: []string{field}, Origin: origin})
	}
	return n, nil
}

// Touch implements Store.
func (m *Store) Touch(ctx context.Context, id string, idle time.Duration) error {
	if err := memoryCheck(ctx, id); err != nil {
		return err
	}
	if idle <= 0 {
		return errMemoryIdle
	}
	k := memoryKey(id)
	sh := m.shard(&k)
	now := time.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, err := m.live(sh, k, now)
	if err != nil {
		return err
	}
	e.expires = storekit.ExpiresAt(now, idle, e.deadline)
	return nil
}

// Delete implements Store.
func (m *Store) Delete(ctx context.Context, id string) error {
	return m.delete(ctx, id, "")
}

func (m *Store) delete(ctx context.Context, id string, origin string) error {
	if err := memoryCheck(ctx, id); err != nil {
		return err
	}
	k := memoryKey(id)
	sh := m.shard(&k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, err := m.live(sh, k, time.Now()); err == nil {
		m.remove(sh, k, e, store.EventDeleted, origin)
	}
	return nil
}

// ownerKeys returns a copy of the keys in owner's index.
func (m *Store) ownerKeys(owner string) [][sha256.Size]byte {
	m.ownersMu.Lock()
	defer m.ownersMu.Unlock()
	keys := make([][sha256.Size]byte, 0, len(m.owners[owner]))
	for k := range m.owners[owner] {
		keys = append(keys, k)
	}
	return keys
}

// Sessions implements Store.
func (m *Store) Sessions(ctx context.Context, owner string) ([]string, error) {
	if err := memoryCheck(ctx, owner); err != nil {
		return nil, err
	}
	// Locks are taken shard first, then the owner index, everywhere: so the index
	// lock is not held here while the shards are visited.
	keys := m.ownerKeys(owner)
	hashes := make([]string, 0, len(keys))
	now := time.Now()
	for _, k := range keys {
		sh := m.shard(&k)
		sh.mu.Lock()
		if e, err := m.live(sh, k, now); err == nil && e.owner == owner {
			hashes = append(hashes, e.hash)
		}
		sh.mu.Unlock()
	}
	return hashes, nil
}

// DeleteOwner implements Store.
func (m *Store) DeleteOwner(ctx context.Context, owner string, keep ...string) (int, error) {
	return m.deleteOwner(ctx, owner, keep, "")
}

func (m *Store) deleteOwner(ctx context.Context, owner string, keep []string, origin string) (int, error) {
	if err := memoryCheck(ctx, owner); err != nil {
		return 0, err
	}
	kept := make([][sha256.Size]byte, len(keep))
	for i, id := range keep {
		kept[i] = memoryKey(id)
	}
	n := 0
	now := time.Now()
	for _, k := range m.ownerKeys(owner) {
		if slices.Contains(kept, k) {
			continue
		}
		sh := m.shard(&k)
		sh.mu.Lock()
		if e, err := m.live(sh, k, now); err == nil && e.owner == owner {
			m.remove(sh, k, e, store.EventRevoked, origin)
			n++
		}
		sh.mu.Unlock()
	}
	return n, nil
}

// PutTicket implements Store. A ticket put again replaces the earlier one.
func (m *Store) PutTicket(ctx context.Context, ticket string, value string, ttl time.Duration) error {
	if err := memoryCheck(ctx, ticket); err != nil {
		return err
	}
	if ttl <= 0 {
		return errMemoryTTL
	}
	k := memoryKey(ticket)
	t := memoryTicket{value: value, expires: time.Now().Add(ttl)}
	m.ticketsMu.Lock()
	m.tickets[k] = t
	m.ticketsMu.Unlock()
	return nil
}

// TakeTicket implements Store.
func (m *Store) TakeTicket(ctx context.Context, ticket string) (string, error) {
	if err := memoryCheck(ctx, ticket); err != nil {
		return "", err
	}
	k := memoryKey(ticket)
	now := time.Now()
	m.ticketsMu.Lock()
	t, ok := m.tickets[k]
	delete(m.tickets, k)
	m.ticketsMu.Unlock()
	if !ok || !now.Before(t.expires) {
		return "", store.ErrNotFound
	}
	return t.value, nil
}

// Subscribe implements Store. fn is called from one goroutine per Store, in the order
// of the writes; see Store for what happens when it blocks. After unsubscribe returns,
// fn is called at most once more, with an event whose delivery had begun. Subscribe
// returns an error after Close.
func (m *Store) Subscribe(fn func(store.Event)) (unsubscribe func(), err error) {
	if fn == nil {
		return nil, errors.New("store: memory: Subscribe: nil func")
	}
	sub := &memorySub{fn: fn}
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	if m.closed {
		return nil, errMemoryClosed
	}
	if m.events == nil {
		m.events = make(chan store.Event, memoryEventQueue)
		m.wake = make(chan struct{}, 1)
		m.wg.Add(1)
		go m.dispatch(m.events, m.wake)
	}
	subs := append(slices.Clone(*m.subs.Load()), sub)
	m.subs.Store(&subs)
	return func() { m.unsubscribe(sub) }, nil
}

func (m *Store) unsubscribe(sub *memorySub) {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	sub.gone.Store(true)
	subs := slices.DeleteFunc(slices.Clone(*m.subs.Load()), func(s *memorySub) bool { return s == sub })
	m.subs.Store(&subs)
}

// subscribed reports whether anyone listens, so that writers build no event for nobody.
// It is false after Close, which removes the subscribers.
func (m *Store) subscribed() bool {
	return len(*m.subs.Load()) > 0
}

// publish queues e for the subscribers. Call it only when subscribed is true. Writers
// call it while they hold the session's lock, so a session's events queue in the order
// of its writes.
func (m *Store) publish(e store.Event) {
	e.At = time.Now()
	// m.events was created before the first subscriber was added, and subscribed saw
	// one.
	select {
	case m.events <- e:
	default:
		m.drop()
	}
}

// drop counts an event that found the queue full, and has the dispatcher send an
// store.EventResync for it.
func (m *Store) drop() {
	m.dropped.Add(1)
	// The dispatcher may have emptied the queue since the send failed and be waiting for
	// events that may never come: wake it to send the store.EventResync.
	select {
	case m.wake <- struct{}{}:
	default: // a wake-up is pending already, and will see the drop
	}
}

// EventsLive implements store.Events. The memory store's events never leave the process, so they
// are live while anyone is subscribed, except from a drop (see Store) until the
// store.EventResync that follows it has been delivered. It reports false before the first
// Subscribe and after Close.
func (m *Store) EventsLive() bool {
	return m.subscribed() && m.dropped.Load() == m.resynced.Load()
}

// DroppedEvents returns how many events Store has dropped because a subscriber blocked
// for so long that its queue filled; each run of drops is followed by an store.EventResync
// once the subscribers caught up. It stays 0 while subscribers keep up.
func (m *Store) DroppedEvents() uint64 {
	return m.dropped.Load()
}

// dispatch delivers the queued events. After a drop it sends one store.EventResync once the
// queue is empty, so that subscribers get the events queued before the drop first, and
// one resync for a whole run of drops rather than one per event.
func (m *Store) dispatch(events <-chan store.Event, wake <-chan struct{}) {
	defer m.wg.Done()
	for {
		select {
		case <-m.done:
			return
		case e := <-events:
			m.deliver(e)
		case <-wake:
		}
		if len(events) == 0 {
			// resynced moves only once the resync is delivered, so that EventsLive
			// stays false until then; a drop meanwhile makes another.
			if d := m.dropped.Load(); d != m.resynced.Load() {
				m.deliver(store.Event{Kind: store.EventResync})
				m.resynced.Store(d)
			}
		}
	}
}

func (m *Store) deliver(e store.Event) {
	for _, sub := range *m.subs.Load() {
		if !sub.gone.Load() {
			sub.fn(e)
		}
	}
}

func (m *Store) sweep(interval time.Duration) {
	defer m.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-m.done:
			return
		case now := <-tick.C:
			m.removeExpired(now)
		}
	}
}

// removeExpired removes the sessions and tickets that expired by now.
func (m *Store) removeExpired(now time.Time) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if !now.Before(e.expires) {
				m.remove(sh, k, e, store.EventExpired, "")
			}
		}
		sh.mu.Unlock()
	}
	m.ticketsMu.Lock()
	for k, t := range m.tickets {
		if !now.Before(t.expires) {
			delete(m.tickets, k)
		}
	}
	m.ticketsMu.Unlock()
}

// Close stops the background goroutines and removes the subscribers; events not yet
// delivered are dropped. It waits for a subscriber call in progress to return, so it
// must not be called from a subscriber. The sessions stay readable and writable. Close
// is safe to call more than once.
func (m *Store) Close() error {
	m.subsMu.Lock()
	if m.closed {
		m.subsMu.Unlock()
		return nil
	}
	m.closed = true
	for _, sub := range *m.subs.Load() {
		sub.gone.Store(true)
	}
	m.subs.Store(new([]*memorySub))
	m.subsMu.Unlock()
	close(m.done)
	m.wg.Wait()
	return nil
}

// TouchMany implements store.Store, one Touch at a time: each costs no more than a map
// lookup.
func (m *Store) TouchMany(ctx context.Context, ids []string, idle time.Duration) []error {
	return storekit.TouchEach(ctx, m, ids, idle)
}

// Capabilities implements store.Store: the memory store lives in this process, sends
// events, and carries and keeps messages within it.
func (m *Store) Capabilities() store.Capabilities {
	return store.Capabilities{InProcess: true, Events: events{m}, Broker: m, History: m, Presence: m}
}

// events is the memory store's store.Events.
type events struct{ *Store }

// Shared implements store.Events: every writer is in this process.
func (events) Shared() bool { return true }

// From implements store.Events.
func (e events) From(origin string) store.Store {
	s := e.Store
	return storekit.View(s, storekit.Writes{Save: s.save, Incr: s.incr, Delete: s.delete, DeleteOwner: s.deleteOwner}, origin)
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Events = events{}
	_ store.Broker = (*Store)(nil)
)
