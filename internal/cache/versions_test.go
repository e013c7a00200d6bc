package cache

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
)

// The tests of versioned writes (versions.go), over Redis.

// verID returns a session id no other test uses.
func verID(name string) string {
	return "cache-ver-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 10)
}

// verCache returns a cache over a redisstore of its own on a prefix of the test's own
// (with its store.Watcher and store.Fencer, as in production), the store, and the
// events the cache passes on. It waits until the cache serves from memory.
func verCache(t *testing.T) (*Store, *redisstore.Store, string, chan store.Event) {
	t.Helper()
	rdb := testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdb)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	c, err := New(rs, time.Hour, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c.versions == nil {
		t.Fatal("the cache over redisstore does not use versions")
	}
	events := make(chan store.Event, 4096)
	unsubscribe, err := c.Subscribe(func(ev store.Event) {
		select {
		case events <- ev:
		default: // a test that does not read them
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unsubscribe(); _ = c.Close(); _ = rs.Close() })
	waitServing(t, c)
	return c, rs, prefix, events
}

// cached returns the cache's entry of id, if any.
func cached(c *Store, id string) (*entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.Peek(store.Hash(id))
}

// fill loads id until the cache holds it (a first Load may bypass the cache while its
// fence is late on a loaded machine).
func fill(t *testing.T, c *Store, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := c.Load(context.Background(), id, 0); err != nil {
			t.Fatal(err)
		}
		if _, ok := cached(c, id); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache never held the session")
		}
	}
}

// noWrites fails t when the cache still keeps the bookkeeping of a write or load.
func noWrites(t *testing.T, c *Store) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for hash, w := range c.writes {
		t.Errorf("c.writes[%s] left: sent %d, loads %d, waiting %d", hash, w.sent, w.loads, len(w.waiting))
	}
}

// intField returns the field of rec as an integer.
func intField(t *testing.T, rec *store.Record, field string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(rec.Fields[field], 10, 64)
	if err != nil {
		t.Fatalf("field %s: %v", field, err)
	}
	return n
}

// within waits for ch, failing t after 5 s: a writer that never returns.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no return within 5 s", what)
		panic("unreachable")
	}
}

// 32 requests increment one session at once, each reading it back: the cache applies
// its own writes in Redis's order and keeps its entry (no load of the session after the
// first), every read sees at least the request's own increment, and the cache ends
// holding what Redis holds, with nothing left in its bookkeeping.
func TestVersionedConcurrentIncrs(t *testing.T) {
	t.Parallel()
	c, rs, _, _ := verCache(t)
	ctx := context.Background()
	id := verID("concurrent")
	if err := c.Create(ctx, id, store.Record{Fields: map[string]string{"n": "0"}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	fill(t, c, id)
	misses, bypasses, hits, epoch := c.Misses.Load(), c.Bypasses.Load(), c.Hits.Load(), c.epoch.Load()
	const goroutines, each = 32, 40
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if !incrThenRead(t, c, id) {
					return
				}
			}
		}()
	}
	wg.Wait()
	requests := uint64(goroutines * each)
	misses, bypasses, hits = c.Misses.Load()-misses, c.Bypasses.Load()-bypasses, c.Hits.Load()-hits
	// A request is one Incr (one round trip) and one Load: none on a hit, one on a
	// miss or a bypass (the fence late on a loaded machine).
	t.Logf("%d requests: %d hits, %d misses, %d bypasses: %.3f round trips per request",
		requests, hits, misses, bypasses, float64(requests+misses+bypasses)/float64(requests))
	if misses != 0 && c.epoch.Load() == epoch {
		t.Errorf("the cache lost its entry: %d misses in %d requests of one process", misses, requests)
	}
	want := strconv.Itoa(goroutines * each)
	direct, version, err := rs.LoadVersion(ctx, id, 0)
	if err != nil || direct.Fields["n"] != want {
		t.Fatalf("Redis holds %v, %v; want n=%s", direct, err, want)
	}
	e, ok := cached(c, id)
	if !ok && c.epoch.Load() == epoch {
		t.Fatal("the cache holds no entry")
	}
	if ok && (e.fields["n"] != want || e.version != version) {
		t.Fatalf("the cache holds n=%s at version %d; Redis n=%s at %d", e.fields["n"], e.version, want, version)
	}
	noWrites(t, c)
}

// The writes that change no field, or only the expiry, keep the entry's version: the
// next write applies to it, and the entry stays.
func TestVersionedExtensionsKeepEntry(t *testing.T) {
	t.Parallel()
	c, rs, _, _ := verCache(t)
	ctx := context.Background()
	id := verID("extend")
	if err := c.Create(ctx, id, store.Record{Fields: map[string]string{"n": "0"}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	fill(t, c, id)
	misses, epoch := c.Misses.Load(), c.epoch.Load()
	steps := []struct {
		name string
		do   func() error
	}{
		{"Save with idle", func() error {
			return c.Save(ctx, id, store.Change{Set: map[string]string{"a": "1"}}, time.Hour)
		}},
		{"Incr", func() error { _, err := c.Incr(ctx, id, "n", 1); return err }},
		{"Touch", func() error { return c.Touch(ctx, id, time.Hour) }},
		{"Incr", func() error { _, err := c.Incr(ctx, id, "n", 1); return err }},
		{"empty Save with idle", func() error { return c.Save(ctx, id, store.Change{}, time.Hour) }},
		{"Incr", func() error { _, err := c.Incr(ctx, id, "n", 1); return err }},
		{"TouchMany", func() error { return errors.Join(c.TouchMany(ctx, []string{id}, time.Hour)...) }},
		{"Save delete", func() error { return c.Save(ctx, id, store.Change{Delete: []string{"a"}}, 0) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if _, ok := cached(c, id); !ok && c.epoch.Load() == epoch {
			t.Fatalf("after %s, the cache holds no entry", s.name)
		}
	}
	rec, err := c.Load(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Misses.Load() - misses; m != 0 && c.epoch.Load() == epoch {
		t.Errorf("%d misses; want none", m)
	}
	direct, version, _ := rs.LoadVersion(ctx, id, 0)
	if rec.Fields["n"] != "3" || rec.Fields["a"] != "" || direct.Fields["n"] != "3" {
		t.Fatalf("the cache serves %v, Redis holds %v", rec.Fields, direct.Fields)
	}
	if e, ok := cached(c, id); ok && e.version != version {
		t.Fatalf("the entry is at version %d, Redis at %d", e.version, version)
	}
}

// Another process writes the session between two writes of this one: the second one's
// version leaves a gap no write of this process fills, so the cache drops the entry
// instead of applying it, and serves what Redis holds whether or not the other
// process's event has arrived. Then, with this process's increments under way all the
// time, each write of the other process is seen by every Load once its event arrived.
func TestVersionedOtherProcessWrite(t *testing.T) {
	t.Parallel()
	c, rs, prefix, _ := verCache(t)
	other := redisstore.New(testenv.Redis(t), redisstore.Config{Prefix: prefix}) // another process
	defer other.Close()
	theirs := other.Capabilities().Events.From("other-process")
	// Their events, once the cache has handled them.
	events := make(chan store.Event, 64)
	unsubscribe, err := c.Subscribe(func(ev store.Event) {
		if ev.Origin == "other-process" {
			events <- ev
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	theirEvent := func(what string) {
		t.Helper()
		select {
		case <-events:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no event of the other process", what)
		}
	}
	ctx := context.Background()
	id := verID("other")
	if err := c.Create(ctx, id, store.Record{Fields: map[string]string{"n": "0", "m": "0"}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	fill(t, c, id)

	if _, err := c.Incr(ctx, id, "n", 1); err != nil {
		t.Fatal(err)
	}
	if err := theirs.Save(ctx, id, store.Change{Set: map[string]string{"m": "theirs"}}, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Incr(ctx, id, "n", 1); err != nil || n != 2 {
		t.Fatalf("Incr: %d, %v", n, err)
	}
	// Their event may not have arrived: the gap dropped the entry anyway.
	rec, err := c.Load(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Fields["m"] != "theirs" || rec.Fields["n"] != "2" {
		t.Fatalf("after an own write that followed theirs, the cache serves %v", rec.Fields)
	}
	theirEvent("their first write")

	// Their writes, one at a time, while this process increments all along.
	const goroutines, rounds = 8, 20
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopAll := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopAll()
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !incrThenRead(t, c, id) {
					return
				}
			}
		}()
	}
	for i := 1; i <= rounds; i++ {
		m := strconv.Itoa(i)
		if err := theirs.Save(ctx, id, store.Change{Set: map[string]string{"m": m}}, 0); err != nil {
			t.Fatal(err)
		}
		theirEvent("round " + m)
		// Their event has been handled: no Load serves what came before it.
		for range 5 {
			rec, err := c.Load(ctx, id, 0)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Fields["m"] != m {
				t.Fatalf("round %d: after the other process's event, the cache serves m=%q", i, rec.Fields["m"])
			}
		}
	}
	stopAll()
	direct, _ := rs.Load(ctx, id, 0)
	rec, err = c.Load(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Fields["n"] != direct.Fields["n"] || rec.Fields["m"] != direct.Fields["m"] {
		t.Fatalf("the cache serves %v, Redis holds %v", rec.Fields, direct.Fields)
	}
	noWrites(t, c)
}

// holdStore is a redisstore whose views (the cache writes through one) can hold an
// IncrVersion's reply after Redis ran it, and return it, or an error in its place.
type holdStore struct {
	*redisstore.Store
	holds chan *held
}

// held is one reply held: ran is closed once Redis ran the write; the reply returns
// when release receives, with that error when it is not nil.
type held struct {
	ran     chan struct{}
	release chan error
}

func (s *holdStore) Capabilities() store.Capabilities {
	caps := s.Store.Capabilities()
	caps.Events = testEvents{Events: caps.Events, wrap: func(v store.Store) store.Store {
		return &holdView{Store: v, v: v.(Versioned), holds: s.holds}
	}}
	return caps
}

type holdView struct {
	store.Store
	v     Versioned
	holds chan *held
}

func (h *holdView) LoadVersion(ctx context.Context, id string, touch time.Duration) (*store.Record, uint64, error) {
	return h.v.LoadVersion(ctx, id, touch)
}

func (h *holdView) SaveVersion(ctx context.Context, id string, ch store.Change, idle time.Duration) (uint64, error) {
	return h.v.SaveVersion(ctx, id, ch, idle)
}

func (h *holdView) IncrVersion(ctx context.Context, id, field string, delta int64) (int64, uint64, error) {
	n, v, err := h.v.IncrVersion(ctx, id, field, delta)
	select {
	case hd := <-h.holds:
		close(hd.ran)
		if e := <-hd.release; e != nil {
			return 0, 0, e
		}
	default:
	}
	return n, v, err
}

type incrResult struct {
	n   int64
	err error
}

// holdSetup returns a cache over a holdStore (no fences: every Load is served from
// memory while events are live) holding the session id, n=0, at version 0, and a
// store of another process.
func holdSetup(t *testing.T, id string) (*Store, *holdStore, *redisstore.Store, chan store.Event) {
	t.Helper()
	rdb := testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdb)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	hs := &holdStore{Store: rs, holds: make(chan *held, 1)}
	c, err := New(hs, time.Hour, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c.versions == nil {
		t.Fatal("the cache over holdStore does not use versions")
	}
	events := make(chan store.Event, 64)
	unsubscribe, err := c.Subscribe(func(ev store.Event) {
		select {
		case events <- ev:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	other := redisstore.New(testenv.Redis(t), redisstore.Config{Prefix: prefix})
	t.Cleanup(func() { unsubscribe(); _ = c.Close(); _ = rs.Close(); _ = other.Close() })
	if err := c.Create(context.Background(), id, store.Record{Fields: map[string]string{"n": "0"}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	fill(t, c, id)
	return c, hs, other, events
}

// startHeld starts an increment whose reply is held once Redis ran it (version 1),
// then a second one (version 2), and returns both once the second waits for the first.
func startHeld(t *testing.T, c *Store, hs *holdStore, id string) (h *held, first, second chan incrResult) {
	t.Helper()
	ctx := context.Background()
	h = &held{ran: make(chan struct{}), release: make(chan error, 1)}
	hs.holds <- h
	first, second = make(chan incrResult, 1), make(chan incrResult, 1)
	go func() { n, err := c.Incr(ctx, id, "n", 1); first <- incrResult{n, err} }()
	within(t, h.ran, "the first increment in Redis")
	go func() { n, err := c.Incr(ctx, id, "n", 1); second <- incrResult{n, err} }()
	hash := store.Hash(id)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		w := c.writes[hash]
		waiting := w != nil && len(w.waiting) == 1 && w.waiting[2] != nil
		c.mu.Unlock()
		if waiting {
			break
		}
		select {
		case r := <-second:
			t.Fatalf("the second increment (%d, %v) returned before the first, which it follows in Redis", r.n, r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the second increment never waited for the first")
		}
	}
	return h, first, second
}

// The replies come back in the other order than Redis ran the writes: the second waits
// for the first, both apply, and the entry stays.
func TestVersionedRepliesOutOfOrder(t *testing.T) {
	t.Parallel()
	id := verID("order")
	c, hs, _, _ := holdSetup(t, id)
	misses := c.Misses.Load()
	h, first, second := startHeld(t, c, hs, id)
	h.release <- nil
	if r := within(t, first, "the first increment"); r.err != nil || r.n != 1 {
		t.Fatalf("first: %d, %v", r.n, r.err)
	}
	if r := within(t, second, "the second increment"); r.err != nil || r.n != 2 {
		t.Fatalf("second: %d, %v", r.n, r.err)
	}
	rec, err := c.Load(context.Background(), id, 0)
	if err != nil || rec.Fields["n"] != "2" {
		t.Fatalf("Load: %v, %v", rec, err)
	}
	if m := c.Misses.Load() - misses; m != 0 {
		t.Errorf("%d misses; want none: the entry stays", m)
	}
	if e, ok := cached(c, id); !ok || e.version != 2 {
		t.Fatalf("entry %v (held %v); want one at version 2", e, ok)
	}
	noWrites(t, c)
}

// A write that fails (here after Redis ran it, as on a timeout) releases the writes
// waiting for its version: they return, the entry is dropped, and the next Load reads
// what Redis holds.
func TestVersionedFailedWriteReleasesWaiters(t *testing.T) {
	t.Parallel()
	id := verID("failed")
	c, hs, _, _ := holdSetup(t, id)
	h, first, second := startHeld(t, c, hs, id)
	h.release <- context.DeadlineExceeded
	if r := within(t, first, "the failed increment"); !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("first: %d, %v; want its error", r.n, r.err)
	}
	if r := within(t, second, "the increment waiting for the failed one"); r.err != nil || r.n != 2 {
		t.Fatalf("second: %d, %v", r.n, r.err)
	}
	if _, ok := cached(c, id); ok {
		t.Fatal("the entry outlived a failed write")
	}
	rec, err := c.Load(context.Background(), id, 0)
	if err != nil || rec.Fields["n"] != "2" {
		t.Fatalf("Load: %v, %v; want n=2", rec, err)
	}
	noWrites(t, c)
}

// Another process deletes the session while a write waits for one of this process's
// still under way: the event drops the entry and releases the waiting write at once,
// and the cache then knows the session is gone.
func TestVersionedDeleteReleasesWaiters(t *testing.T) {
	t.Parallel()
	id := verID("deleted")
	c, hs, other, events := holdSetup(t, id)
	h, first, second := startHeld(t, c, hs, id)
	if err := other.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if r := within(t, second, "the increment waiting while the session is deleted"); r.err != nil || r.n != 2 {
		t.Fatalf("second: %d, %v", r.n, r.err)
	}
	h.release <- nil
	if r := within(t, first, "the first increment"); r.err != nil || r.n != 1 {
		t.Fatalf("first: %d, %v", r.n, r.err)
	}
	for deadline := time.After(5 * time.Second); ; {
		var ev store.Event
		select {
		case ev = <-events:
		case <-deadline:
			t.Fatal("no delete event")
		}
		if ev.Kind == store.EventDeleted {
			break
		}
	}
	if _, err := c.Load(context.Background(), id, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Load after the delete: %v; want ErrNotFound", err)
	}
	// And a write to the deleted session fails, releasing nothing it should not.
	if _, err := c.Incr(context.Background(), id, "n", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Incr after the delete: %v; want ErrNotFound", err)
	}
	noWrites(t, c)
}

// staleLoad is a store whose LoadVersion returns what Redis held before: a load that
// read the store before a write ran, and returns after it was acknowledged.
type staleLoad struct {
	Versioned
	rec     store.Record
	version uint64
}

func (s staleLoad) LoadVersion(context.Context, string, time.Duration) (*store.Record, uint64, error) {
	rec := s.rec
	rec.Fields = cloneFields(s.rec.Fields)
	return &rec, s.version, nil
}

// A write released by another's reply (applied to the entry, which then goes: evicted,
// expired) counts as acknowledged at once, not only when its own goroutine runs again:
// a load that read the store before it must not fill the cache in between, or the
// writer's next read would miss its own write, and no event would correct it (the
// cache skips its own).
func TestVersionedReleasedWriteBlocksStaleLoad(t *testing.T) {
	t.Parallel()
	id := verID("acked")
	c, _, _, _ := holdSetup(t, id)
	hash := store.Hash(id)
	c.mu.Lock()
	e, ok := c.entries.Peek(hash)
	if !ok || e.version != 0 {
		c.mu.Unlock()
		t.Fatalf("entry %v, %v; want one at version 0", e, ok)
	}
	// A load under way (it read version 0), and the write of version 1 waiting, its
	// writer parked: the reply of another write releases it by applying it.
	w := &writes{loads: 1, waiting: map[uint64]*pendingWrite{1: {
		change: func(e *entry) { e.fields = cloneFields(e.fields); e.fields["n"] = "1" },
		done:   make(chan struct{}),
	}}}
	c.writes[hash] = w
	p := w.waiting[1]
	c.applyWaiting(hash, w)
	e, _ = c.entries.Peek(hash)
	released := w.waiting[1] == nil
	c.entries.Remove(hash) // evicted before the writer runs again
	seq, epoch := c.shard(hash).Load(), c.epoch.Load()
	c.mu.Unlock()
	if !released || e.version != 1 || e.fields["n"] != "1" {
		t.Fatalf("the write of version 1 was not applied: released %v, entry at %d, n=%s", released, e.version, e.fields["n"])
	}
	within(t, p.done, "the writer's release")

	// The load returns what it read, version 0.
	c.versions = staleLoad{Versioned: c.versions, rec: store.Record{Fields: map[string]string{"n": "0"},
		ExpiresAt: time.Now().Add(time.Hour)}, version: 0}
	c.mu.Lock()
	w.loads-- // loadVersion tracks it again
	c.mu.Unlock()
	if _, err := c.loadVersion(context.Background(), hash, id, 0, time.Now(), seq, epoch); err != nil {
		t.Fatal(err)
	}
	if e, ok := cached(c, id); ok {
		t.Fatalf("a load older than an acknowledged write filled the cache: n=%s at version %d", e.fields["n"], e.version)
	}
}

// incrThenRead increments the field n of the session id through c, then reads the
// session through c and checks that the read sees the increment: a process's own
// writes are seen by its next read. It reports false, having failed t, when not.
func incrThenRead(t *testing.T, c *Store, id string) bool {
	ctx := context.Background()
	n, err := c.Incr(ctx, id, "n", 1)
	if err != nil {
		t.Error(err)
		return false
	}
	rec, err := c.Load(ctx, id, 0)
	if err != nil {
		t.Error(err)
		return false
	}
	if got := intField(t, rec, "n"); got < n {
		t.Errorf("a read after the increment to %d sees n=%d", n, got)
		return false
	}
	return true
}
