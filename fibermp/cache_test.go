package fibermp_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/cache"
	"github.com/mpsession/mpsession/internal/session"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/metrics"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
)

// process is one server process of a fleet sharing a Redis: its own client, store,
// cache and listener.
type process struct {
	*harness
	rs     *redisstore.Store
	trips  *commandCounter // Redis round trips made for its requests
	events chan store.Event
}

// cachedRoutes are routes plus a logout everywhere.
func cachedRoutes(app fiber.Router) {
	routes(app)
	app.Post("/destroy-all", fibermp.Required(), func(c *fiber.Ctx) error {
		_, err := fibermp.Get(c).DestroyAll()
		return err
	})
}

// newProcess starts a process on the Redis at addr under prefix, with the cache on.
// Its events channel gets the store's events after the cache has seen them.
func newProcess(t *testing.T, addr, prefix string) *process {
	t.Helper()
	return newProcessWith(t, addr, prefix, fibermp.CacheConfig{})
}

// newProcessWith is newProcess with the cache configured as cc.
func newProcessWith(t *testing.T, addr, prefix string, cc fibermp.CacheConfig) *process {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	p := &process{trips: &commandCounter{}, events: make(chan store.Event, 4096)}
	rdb.AddHook(p.trips)
	p.rs = redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	t.Cleanup(func() { _ = p.rs.Close() })
	p.harness = newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, Store: p.rs, Cache: &cc}, cachedRoutes)
	// The cache subscribes in the background from the start: once its events are live
	// it has subscribed, and requests use it. The observer subscribes after it, so the
	// store calls the cache first.
	awaitServing(t, p.harness)
	unsubscribe, err := p.rs.Subscribe(func(ev store.Event) {
		select {
		case p.events <- ev:
		default:
			t.Error("observer: event queue full")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsubscribe)
	return p
}

// cacheOf returns the harness's session cache.
func cacheOf(h *harness) *cache.Store { return session.ManagerEngine(h.mp).Store.(*cache.Store) }

// awaitServing waits until the harness's cache serves from memory: its events are live
// and its last fence came back within MaxLag.
func awaitServing(t *testing.T, h *harness) {
	t.Helper()
	c := cacheOf(h)
	deadline := time.Now().Add(10 * time.Second)
	for !c.Serving() {
		if time.Now().After(deadline) {
			t.Fatal("the cache never served from memory")
		}
		time.Sleep(time.Millisecond)
	}
}

// await waits for an event of kind about the session id and returns when it arrived.
func (p *process) await(t *testing.T, kind store.EventKind, id string) time.Time {
	t.Helper()
	hash := store.Hash(id)
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-p.events:
			if ev.Kind == kind && ev.Hash == hash {
				return time.Now()
			}
		case <-timeout:
			t.Fatalf("no %s event for the session", kind)
		}
	}
}

func sharedRedis(t *testing.T) (addr, prefix string) {
	rdb := testenv.Redis(t)
	return rdb.Options().Addr, testenv.RedisPrefix(t, rdb)
}

// TestCacheAcrossProcesses: with the cache on, a change, an increment, a logout or a
// revocation acknowledged by process A at time X is seen by every request to process B
// that starts at X + MaxLag, whether or not its event has reached B yet, and a cached
// read costs B no round trip. MaxLag is set below the default, which makes the check
// stricter.
func TestCacheAcrossProcesses(t *testing.T) {
	t.Parallel()
	const maxLag = 30 * time.Millisecond
	addr, prefix := sharedRedis(t)
	cc := fibermp.CacheConfig{MaxLag: maxLag}
	a, b := newProcessWith(t, addr, prefix, cc), newProcessWith(t, addr, prefix, cc)
	const trials = 200
	var cached, bypassed int // reads on B made while it served from memory, or not
	for i := range trials {
		hdr := loginWafer(t, a.harness, fmt.Sprintf("o-cache-%d", i))
		id := hdr["X-WX-Id"]
		awaitServing(t, b.harness)
		b.do(t, "GET", "/color", hdr, "") // B caches the session
		c := cacheOf(b.harness)
		before, bypasses, misses := b.trips.n.Load(), c.Bypasses.Load(), c.Misses.Load()
		if r := b.do(t, "GET", "/whoami", hdr, ""); r.status != 200 {
			t.Fatalf("trial %d: read on B: %d %s", i, r.status, r.body)
		}
		// A read may go to Redis when B's last fence came back late (the machine is
		// loaded), or when the read that was to cache the session crossed an event of
		// another session of its shard: the cache serves less rather than staler.
		// Otherwise it is free.
		if c.Bypasses.Load() != bypasses || c.Misses.Load() != misses {
			bypassed++
		} else if n := b.trips.n.Load() - before; n != 0 {
			t.Fatalf("trial %d: a cached read made %d round trips", i, n)
		} else {
			cached++
		}

		// A change, then an increment, on A is read on B from MaxLag after A's reply.
		color := fmt.Sprintf(`{"color":"c%d"}`, i)
		if r := a.do(t, "POST", "/color", map[string]string{"X-WX-Id": id, "X-WX-Skey": hdr["X-WX-Skey"], "Content-Type": "application/json"}, color); r.status != 200 {
			t.Fatalf("trial %d: set on A: %d %s", i, r.status, r.body)
		}
		time.Sleep(maxLag) // from A's reply: the bound is the scenario
		if got := b.do(t, "GET", "/color", hdr, "").json(t)["color"]; got != fmt.Sprintf("c%d", i) {
			t.Fatalf("trial %d: B read %q MaxLag after A's change", i, got)
		}
		if r := a.do(t, "POST", "/incr", hdr, ""); r.status != 200 {
			t.Fatalf("trial %d: incr on A: %d %s", i, r.status, r.body)
		}
		time.Sleep(maxLag) // from A's reply: the bound is the scenario
		if got := b.do(t, "GET", "/get/n", hdr, "").json2(t); got != float64(1) {
			t.Fatalf("trial %d: B read n = %v MaxLag after A's increment, want 1", i, got)
		}
		b.await(t, store.EventChanged, id)
		b.await(t, store.EventChanged, id)

		// A logout (even trials) or a revocation (odd) on A refuses the session on B.
		path, kind := "/logout", store.EventDeleted
		if i%2 == 1 {
			path, kind = "/destroy-all", store.EventRevoked
		}
		if r := a.do(t, "POST", path, hdr, ""); r.status != 200 {
			t.Fatalf("trial %d: %s on A: %d %s", i, path, r.status, r.body)
		}
		time.Sleep(maxLag) // from A's reply: the bound is the scenario
		if r := b.do(t, "GET", "/whoami", hdr, ""); r.json(t)["error"] != "ERR_INVALID_SESSION" {
			t.Fatalf("trial %d: B served a session %s on A MaxLag before: %d %s", i, path, r.status, r.body)
		}
		b.await(t, kind, id)
	}
	t.Logf("%d trials, 0 stale reads MaxLag (%v) after A's reply; cached reads %d, bypassed %d", trials, maxLag, cached, bypassed)
}

// TestCacheRoundTrips: with the cache, a read makes no round trip, a write one.
func TestCacheRoundTrips(t *testing.T) {
	t.Parallel()
	addr, prefix := sharedRedis(t)
	p := newProcess(t, addr, prefix)
	loadScripts(t, p.harness)
	hdr := loginWafer(t, p.harness, "o-trips")
	p.do(t, "GET", "/color", hdr, "") // fills the cache
	write := map[string]string{"X-WX-Id": hdr["X-WX-Id"], "X-WX-Skey": hdr["X-WX-Skey"], "Content-Type": "application/json"}
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		body               string
		want               int64
	}{
		{"read", "GET", "/color", hdr, "", 0},
		{"set", "POST", "/color", write, `{"color":"teal"}`, 1},
		{"read after set", "GET", "/color", hdr, "", 0},
		{"incr", "POST", "/incr", hdr, "", 1},
		{"incr again", "POST", "/incr", hdr, "", 1},
		{"read after incr", "GET", "/get/n", hdr, "", 0},
	} {
		before := p.trips.n.Load()
		r := p.do(t, tc.method, tc.path, tc.hdr, tc.body)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", tc.name, r.status, r.body)
		}
		if got := p.trips.n.Load() - before; got != tc.want {
			t.Errorf("%s: want %d round trips; got %d", tc.name, tc.want, got)
		}
	}
	if got := p.do(t, "GET", "/get/n", hdr, "").json2(t); got != float64(2) {
		t.Errorf("n = %v after two increments", got)
	}
	if got := p.do(t, "GET", "/color", hdr, "").json(t)["color"]; got != "teal" {
		t.Errorf("color = %v", got)
	}
}

// TestCacheExactTotals: increments of one session from two processes at once end in an
// exact total, read on both once the last event is in.
func TestCacheExactTotals(t *testing.T) {
	t.Parallel()
	addr, prefix := sharedRedis(t)
	a, b := newProcess(t, addr, prefix), newProcess(t, addr, prefix)
	hdr := loginWafer(t, a.harness, "o-totals")
	const each = 300
	var wg sync.WaitGroup
	for _, p := range []*process{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if r := p.do(t, "POST", "/incr", hdr, ""); r.status != 200 {
					t.Errorf("incr: %d %s", r.status, r.body)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Every process has seen all 4*each change events: then both read the total.
	for _, p := range []*process{a, b} {
		for range 4 * each {
			p.await(t, store.EventChanged, hdr["X-WX-Id"])
		}
		if got := p.do(t, "GET", "/get/n", hdr, "").json2(t); got != float64(4*each) {
			t.Errorf("n = %v, want %d", got, 4*each)
		}
	}
}

// TestCacheSubscriptionKilled: while B's subscription is cut (CLIENT KILL TYPE pubsub),
// B serves no request from its cache, so a change A makes meanwhile (whose event B
// never gets) is read on B; once B has subscribed again, reads are cached again.
func TestCacheSubscriptionKilled(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t) // a private server: the kill must not cut other tests
	const prefix = "killed"
	a, b := newProcess(t, srv.Addr, prefix), newProcess(t, srv.Addr, prefix)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	ctx := context.Background()
	hdr := loginWafer(t, a.harness, "o-killed")
	write := map[string]string{"X-WX-Id": hdr["X-WX-Id"], "X-WX-Skey": hdr["X-WX-Skey"], "Content-Type": "application/json"}
	health := b.rs.Capabilities().Events
	// Subscribed after B's cache: a resync reaches it once the cache has dropped
	// everything.
	var resyncs atomic.Int64
	unsubscribe, err := b.rs.Subscribe(func(ev store.Event) {
		if ev.Kind == store.EventResync {
			resyncs.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	for i := range 20 {
		b.do(t, "GET", "/color", hdr, "") // cached on B
		before := resyncs.Load()
		if err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		// Redis has closed B's connection, and B notices at once, but not before the
		// reading goroutine has run: wait for it to have noticed (events not live), or
		// to have subscribed again (a resync, which dropped what the cache held).
		for deadline := time.Now().Add(10 * time.Second); health.EventsLive() && resyncs.Load() == before; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("B never noticed that its subscription was cut")
			}
		}
		color := fmt.Sprintf("k%d", i)
		if r := a.do(t, "POST", "/color", write, `{"color":"`+color+`"}`); r.status != 200 {
			t.Fatalf("set on A: %d %s", r.status, r.body)
		}
		if got := b.do(t, "GET", "/color", hdr, "").json(t)["color"]; got != color {
			t.Fatalf("round %d: B served %v from its cache after its subscription was cut", i, got)
		}
		// Back to cached reads once B is subscribed again and its fences come back.
		awaitServing(t, b.harness)
	}
	// An event of A's last write may still be on its way to B, and would drop what B
	// caches next. Events come in order: once the event of a write to another session
	// has arrived, it has too.
	other := loginWafer(t, a.harness, "o-killed-other")
	if r := a.do(t, "POST", "/incr", other, ""); r.status != 200 {
		t.Fatalf("incr on A: %d %s", r.status, r.body)
	}
	b.await(t, store.EventChanged, other["X-WX-Id"])
	awaitServing(t, b.harness)
	b.do(t, "GET", "/color", hdr, "")
	before := b.trips.n.Load()
	if got := b.do(t, "GET", "/color", hdr, "").json(t)["color"]; got != "k19" {
		t.Fatalf("color = %v", got)
	}
	if n := b.trips.n.Load() - before; n != 0 {
		t.Fatalf("after resubscribing, a read made %d round trips, want 0 (cached)", n)
	}
}

// TestCacheMetrics: lookups in the cache are counted by result.
func TestCacheMetrics(t *testing.T) {
	t.Parallel()
	st, _ := redisStore(t)
	m := metrics.New()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, Store: st, Cache: &fibermp.CacheConfig{}, Metrics: m}, routes)
	awaitServing(t, h) // else the first reads bypass the cache
	hdr := loginWafer(t, h, "o-metrics")
	for range 5 {
		if r := h.do(t, "GET", "/color", hdr, ""); r.status != 200 {
			t.Fatalf("read: %d %s", r.status, r.body)
		}
	}
	got := map[string]float64{}
	m.Each(func(s metrics.Sample) {
		if s.Name == "mpsession_cache_lookups_total" {
			got[s.Labels["result"]] = s.Value
		}
	})
	if got["miss"] != 1 || got["hit"] != 4 || got["bypass"] != 0 {
		t.Fatalf("cache lookups: want 1 miss, 4 hits; got %v", got)
	}
}
