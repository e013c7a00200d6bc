package cache

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// health is an EventsLive a test turns on and off.
type health struct{ live atomic.Bool }

// testEvents are a backend's events as a test's wrapping store gives them: the views of
// From are wrapped as the store is, events are dropped while mute is set, and
// EventsLive is health's when there is one.
type testEvents struct {
	store.Events
	wrap   func(store.Store) store.Store
	mute   *atomic.Bool
	health *health
}

func (e testEvents) From(origin string) store.Store { return e.wrap(e.Events.From(origin)) }

func (e testEvents) Subscribe(fn func(store.Event)) (func(), error) {
	return e.Events.Subscribe(func(ev store.Event) {
		if e.mute == nil || !e.mute.Load() {
			fn(ev)
		}
	})
}

func (e testEvents) EventsLive() bool {
	if e.health != nil {
		return e.health.live.Load()
	}
	return e.Events.EventsLive()
}

// counted counts the calls that reach the backend, its views' included.
type counted struct {
	store.Store
	*counts
	health *health // nil: the backend's
}

type counts struct {
	loads, saves, incrs, touches atomic.Int64
	mute                         atomic.Bool // events are lost, as by a broken subscription
}

func newCounted(st store.Store, h *health) *counted {
	return &counted{Store: st, counts: &counts{}, health: h}
}

func (c *counted) Capabilities() store.Capabilities {
	caps := c.Store.Capabilities()
	caps.Events = testEvents{Events: caps.Events, mute: &c.mute, health: c.health,
		wrap: func(v store.Store) store.Store { return &counted{Store: v, counts: c.counts, health: c.health} }}
	return caps
}

func (c *counted) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx, id, touch)
}

func (c *counted) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	c.saves.Add(1)
	return c.Store.Save(ctx, id, ch, idle)
}

func (c *counted) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	c.incrs.Add(1)
	return c.Store.Incr(ctx, id, field, delta)
}

func (c *counted) TouchMany(ctx context.Context, ids []string, idle time.Duration) []error {
	c.touches.Add(int64(len(ids)))
	return c.Store.TouchMany(ctx, ids, idle)
}

type fixture struct {
	mem     *memstore.Store // the backend, as another process writes it
	backend *counted
	health  *health
	cache   *Store
	events  chan store.Event // what the cache passes on
}

const idle = time.Hour

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	mem := memstore.New()
	h := &health{}
	f := &fixture{mem: mem, backend: newCounted(mem, h), health: h, events: make(chan store.Event, 1024)}
	f.health.live.Store(true)
	c, err := New(f.backend, idle, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.cache = c
	unsubscribe, err := c.Subscribe(func(ev store.Event) { f.events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unsubscribe()
		_ = c.Close()
		_ = mem.Close()
	})
	return f
}

func (f *fixture) create(t *testing.T, id string, fields map[string]string) {
	t.Helper()
	if err := f.mem.Create(context.Background(), id, store.Record{Fields: fields, Owner: "o-" + id}, idle); err != nil {
		t.Fatal(err)
	}
}

// await waits for the cache to pass on an event of want's kind about want's session.
func (f *fixture) await(t *testing.T, want store.Event) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-f.events:
			if ev.Kind == want.Kind && ev.Hash == want.Hash {
				return
			}
		case <-deadline:
			t.Fatalf("no %s event for %s", want.Kind, want.Hash)
		}
	}
}

func (f *fixture) load(t *testing.T, id string) map[string]string {
	t.Helper()
	rec, err := f.cache.Load(context.Background(), id, idle)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return rec.Fields
}

func TestNeedsHealth(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	defer mem.Close()
	if _, err := New(noEvents{mem}, idle, Config{}); !errors.Is(err, ErrNoEvents) {
		t.Fatalf("New on a store without events: %v, want ErrNoEvents", err)
	}
}

func TestHitMakesNoStoreCall(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.create(t, "a", map[string]string{"n": "1"})
	f.load(t, "a")
	before := f.backend.loads.Load()
	for range 100 {
		if got := f.load(t, "a")["n"]; got != "1" {
			t.Fatalf("n = %q", got)
		}
	}
	if n := f.backend.loads.Load() - before; n != 0 {
		t.Fatalf("100 cached reads made %d loads", n)
	}
	if f.cache.Hits.Load() != 100 {
		t.Fatalf("hits = %d", f.cache.Hits.Load())
	}
}

// A handed-out record is the caller's: changing it does not change the cache.
func TestRecordIsACopy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.create(t, "a", map[string]string{"n": "1"})
	f.load(t, "a")["n"] = "changed"
	if got := f.load(t, "a")["n"]; got != "1" {
		t.Fatalf("n = %q after a caller changed its copy", got)
	}
}

func TestOtherWritersEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	ctx := context.Background()
	f.create(t, "a", map[string]string{"n": "1"})
	f.load(t, "a")
	hash := store.Hash("a")

	// Another process writes: once its event arrived, every load sees it.
	if err := f.mem.Save(ctx, "a", store.Change{Set: map[string]string{"n": "2"}}, idle); err != nil {
		t.Fatal(err)
	}
	f.await(t, store.Event{Kind: store.EventChanged, Hash: hash})
	if got := f.load(t, "a")["n"]; got != "2" {
		t.Fatalf("after another writer's Save: n = %q", got)
	}
	if _, err := f.mem.Incr(ctx, "a", "n", 5); err != nil {
		t.Fatal(err)
	}
	f.await(t, store.Event{Kind: store.EventChanged, Hash: hash})
	if got := f.load(t, "a")["n"]; got != "7" {
		t.Fatalf("after another writer's Incr: n = %q", got)
	}
	if err := f.mem.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	f.await(t, store.Event{Kind: store.EventDeleted, Hash: hash})
	if _, err := f.cache.Load(ctx, "a", idle); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("load after delete: %v", err)
	}

	f.create(t, "b", map[string]string{"x": "1"})
	f.load(t, "b")
	if _, err := f.mem.DeleteOwner(ctx, "o-b"); err != nil {
		t.Fatal(err)
	}
	f.await(t, store.Event{Kind: store.EventRevoked, Hash: store.Hash("b")})
	if _, err := f.cache.Load(ctx, "b", idle); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("load after revoke: %v", err)
	}
}

// The cache's own writes cost one store call each, apply at once, and their events
// (which come back) do not drop the entry.
func TestOwnWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	ctx := context.Background()
	f.create(t, "a", map[string]string{"n": "1", "gone": "x"})
	f.load(t, "a")
	loads := f.backend.loads.Load()

	if err := f.cache.Save(ctx, "a", store.Change{Set: map[string]string{"s": "v"}, Delete: []string{"gone"}}, idle); err != nil {
		t.Fatal(err)
	}
	fields := f.load(t, "a")
	if fields["s"] != "v" || fields["gone"] != "" {
		t.Fatalf("after own Save: %v", fields)
	}
	n, err := f.cache.Incr(ctx, "a", "n", 2)
	if err != nil || n != 3 {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	if got := f.load(t, "a")["n"]; got != "3" {
		t.Fatalf("after own Incr: n = %q", got)
	}
	f.await(t, store.Event{Kind: store.EventChanged, Hash: store.Hash("a")})
	f.await(t, store.Event{Kind: store.EventChanged, Hash: store.Hash("a")})
	if got := f.load(t, "a")["n"]; got != "3" {
		t.Fatalf("after own events: n = %q", got)
	}
	if d := f.backend.loads.Load() - loads; d != 0 {
		t.Fatalf("own writes and their events cost %d loads, want 0", d)
	}
	if f.backend.saves.Load() != 1 || f.backend.incrs.Load() != 1 {
		t.Fatalf("saves %d, incrs %d: want one store call each", f.backend.saves.Load(), f.backend.incrs.Load())
	}
	if err := f.cache.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cache.Load(ctx, "a", idle); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("load after own delete: %v", err)
	}
}

func TestDeleteOwnerDropsAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	ctx := context.Background()
	f.create(t, "a", nil)
	f.load(t, "a")
	if _, err := f.cache.DeleteOwner(ctx, "o-a"); err != nil {
		t.Fatal(err)
	}
	// No waiting for the event: this process must refuse the session at once.
	if _, err := f.cache.Load(ctx, "a", idle); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("load right after DeleteOwner: %v", err)
	}
}

func TestBypassWhileEventsAreNotLive(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.create(t, "a", map[string]string{"n": "1"})
	f.load(t, "a")
	f.health.live.Store(false)
	loads := f.backend.loads.Load()
	// A write whose event is lost: the cache must not serve what it holds.
	// A write whose event the cache never gets (the subscription broke): it drops
	// nothing, and yet the cache must not serve the old value.
	f.backend.mute.Store(true)
	if err := f.mem.Save(context.Background(), "a", store.Change{Set: map[string]string{"n": "2"}}, idle); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := f.load(t, "a")["n"]; got != "2" {
			t.Fatalf("n = %q while events are not live", got)
		}
	}
	if d := f.backend.loads.Load() - loads; d != 3 {
		t.Fatalf("%d loads while events were not live, want 3", d)
	}
	if f.cache.Bypasses.Load() != 3 || f.cache.Len() != 1 {
		// The entry stays until the resync; it is not served meanwhile.
		t.Fatalf("bypasses %d, entries %d", f.cache.Bypasses.Load(), f.cache.Len())
	}
}

func TestResyncDropsEverything(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	for i := range 10 {
		id := "s" + strconv.Itoa(i)
		f.create(t, id, nil)
		f.load(t, id)
	}
	if f.cache.Len() != 10 {
		t.Fatalf("entries = %d", f.cache.Len())
	}
	f.cache.onEvent(store.Event{Kind: store.EventResync})
	if f.cache.Len() != 0 {
		t.Fatalf("entries after resync = %d", f.cache.Len())
	}
}

// TestBounds, TestNotServedPastExpiry and TestRenew run on synctest's clock: with the
// store in memory, what they check depends on time only.
func TestBounds(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, Config{MaxEntries: 5, MaxAge: 50 * time.Millisecond})
		for i := range 20 {
			id := "s" + strconv.Itoa(i)
			f.create(t, id, nil)
			f.load(t, id)
		}
		if f.cache.Len() != 5 {
			t.Fatalf("entries = %d, want MaxEntries 5", f.cache.Len())
		}
		f.load(t, "s19")
		loads := f.backend.loads.Load()
		time.Sleep(60 * time.Millisecond) // past MaxAge
		f.load(t, "s19")
		if f.backend.loads.Load() != loads+1 {
			t.Fatal("an entry older than MaxAge was served")
		}
	})
}

// A session is never served past its expiry as the cache knows it, even when no
// event says it expired.
func TestNotServedPastExpiry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		mem := memstore.New()
		defer mem.Close()
		h := &health{}
		h.live.Store(true)
		c, err := New(newCounted(mem, h), 80*time.Millisecond, Config{Renew: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		if err := mem.Create(ctx, "a", store.Record{}, 80*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Load(ctx, "a", 80*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if _, err := c.Load(ctx, "a", 80*time.Millisecond); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("load past expiry: %v", err)
		}
	})
}

// Cached reads extend the session in the store once per Renew, in the background.
func TestRenew(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		mem := memstore.New()
		defer mem.Close()
		backend := newCounted(mem, nil)
		h := &health{}
		h.live.Store(true)
		const idle = 400 * time.Millisecond
		backend.health = h
		c, err := New(backend, idle, Config{Renew: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		if err := mem.Create(ctx, "a", store.Record{}, idle); err != nil {
			t.Fatal(err)
		}
		// Read it for three idle timeouts, from memory: the store keeps it alive.
		end := time.Now().Add(3 * idle)
		for time.Now().Before(end) {
			if _, err := c.Load(ctx, "a", idle); err != nil {
				t.Fatalf("cached reads did not keep the session: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.touchWG.Wait()
		if _, err := mem.Load(ctx, "a", 0); err != nil {
			t.Fatalf("the store let it expire: %v", err)
		}
		// About one extension per Renew: 12 in 1.2 s, far fewer than the 240 reads.
		if n := backend.touches.Load(); n < 3 || n > 40 {
			t.Fatalf("%d touches for 1.2 s of reads with Renew 100ms", n)
		}
		if backend.loads.Load() > 3 {
			t.Fatalf("%d loads: reads were not served from memory", backend.loads.Load())
		}
	})
}

// A Load that reads the store while a write completes must not fill the cache with
// what it read: concurrent increments through the cache and another writer, and loads,
// end with the cache agreeing with the store.
func TestConcurrentWritersAgree(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	ctx := context.Background()
	f.create(t, "a", map[string]string{"n": "0"})
	done := make(chan struct{})
	defer close(done)
	go func() { // the events are not awaited here
		for {
			select {
			case <-f.events:
			case <-done:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				var err error
				if w%2 == 0 {
					_, err = f.cache.Incr(ctx, "a", "n", 1)
				} else {
					_, err = f.mem.Incr(ctx, "a", "n", 1)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := f.cache.Load(ctx, "a", 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Once the last event is in, the cache says what the store says.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := f.cache.Load(ctx, "a", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Fields["n"] == "800" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache says n = %s, the store 800", got.Fields["n"])
		}
		time.Sleep(time.Millisecond)
	}
}

// noEvents is a store that declares no events.
type noEvents struct{ store.Store }

func (noEvents) Capabilities() store.Capabilities { return store.Capabilities{} }
