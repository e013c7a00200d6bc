package cache

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
)

// delayed is a store whose events reach its subscribers delay late, in order, fences
// included: a subscription that is alive but slow, which nothing in EventsLive sees.
// With hideFence, its events do not implement store.Fencer.
type delayed struct {
	store.Store
	delay     *atomic.Int64 // nanoseconds; read as each event arrives
	hideFence bool
}

func (d *delayed) Capabilities() store.Capabilities {
	caps := d.Store.Capabilities()
	ev := delayedEvents{Events: caps.Events, delay: d.delay}
	caps.Events = ev
	if f, ok := ev.Events.(store.Fencer); ok && !d.hideFence {
		caps.Events = fencedDelayed{ev, f}
	}
	return caps
}

type delayedEvents struct {
	store.Events
	delay *atomic.Int64
}

type fencedDelayed struct {
	delayedEvents
	store.Fencer
}

// Subscribe queues each event with the time it is due, and one goroutine per
// subscription delivers the queue in order.
func (e delayedEvents) Subscribe(fn func(store.Event)) (func(), error) {
	type due struct {
		ev store.Event
		at time.Time
	}
	queue := make(chan due, 1<<16)
	unsubscribe, err := e.Events.Subscribe(func(ev store.Event) {
		queue <- due{ev, time.Now().Add(time.Duration(e.delay.Load()))}
	})
	if err != nil {
		return nil, err
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case d := <-queue:
				select {
				case <-stop:
					return
				case <-time.After(time.Until(d.at)):
				}
				fn(d.ev)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			unsubscribe()
			close(stop)
			<-done
		})
	}, nil
}

// fenceDelay is how late instance B gets its events in TestCacheDelayedEvents.
const fenceDelay = 300 * time.Millisecond

// TestCacheDelayedEvents: instance B's events, fences included, arrive fenceDelay late
// while instance A logs a session out and increments another. With fences, every Load
// on B that starts MaxLag after A's write returned sees it, though the write's event is
// still on its way, and the Loads in between go to Redis (bypasses). Without fences
// (the events hide store.Fencer), B serves the old session past MaxLag: the check
// fails.
func TestCacheDelayedEvents(t *testing.T) {
	t.Parallel()
	for _, fenced := range []bool{true, false} {
		t.Run("fenced="+strconv.FormatBool(fenced), func(t *testing.T) {
			t.Parallel()
			const maxLag = 100 * time.Millisecond
			rdbA, rdbB := testenv.Redis(t), testenv.Redis(t)
			prefix := testenv.RedisPrefix(t, rdbA)
			a := redisstore.New(rdbA, redisstore.Config{Prefix: prefix})
			defer a.Close()
			rsB := redisstore.New(rdbB, redisstore.Config{Prefix: prefix})
			defer rsB.Close()
			delay := &atomic.Int64{}
			b, err := New(&delayed{Store: rsB, delay: delay, hideFence: !fenced}, time.Hour, Config{MaxLag: maxLag})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			// arrived records when each session's last event reached B's subscribers,
			// which get it after the cache.
			var mu sync.Mutex
			arrived := map[string]time.Time{}
			unsubscribe, err := b.Subscribe(func(ev store.Event) {
				mu.Lock()
				arrived[ev.Hash] = time.Now()
				mu.Unlock()
			})
			if err != nil {
				t.Fatal(err)
			}
			defer unsubscribe()
			eventIn := func(id string) bool {
				mu.Lock()
				defer mu.Unlock()
				_, ok := arrived[store.Hash(id)]
				return ok
			}
			ctx := context.Background()
			base := "cache-delayed-" + strconv.FormatInt(time.Now().UnixNano(), 36)

			// cachedOnB creates a session on A and has B cache it, with no delay.
			cachedOnB := func(id string) {
				t.Helper()
				delay.Store(0)
				if err := a.Create(ctx, id, store.Record{Fields: map[string]string{"n": "1"}}, time.Hour); err != nil {
					t.Fatal(err)
				}
				for deadline := time.Now().Add(10 * time.Second); !b.Serving(); time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("B's cache never served from memory")
					}
				}
				if _, err := b.Load(ctx, id, 0); err != nil {
					t.Fatal(err)
				}
				hits := b.Hits.Load()
				if _, err := b.Load(ctx, id, 0); err != nil {
					t.Fatal(err)
				}
				if b.Hits.Load() != hits+1 {
					t.Fatal("B did not serve the session from memory")
				}
				delay.Store(int64(fenceDelay))
			}

			// A logout on A.
			gone := base + "-gone"
			cachedOnB(gone)
			if err := a.Delete(ctx, gone); err != nil {
				t.Fatal(err)
			}
			acked := time.Now()
			// Within MaxLag, B may serve the old session or refuse it: both are what
			// the documentation promises.
			if _, err := b.Load(ctx, gone, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a Load within MaxLag of the logout: %v", err)
			}
			time.Sleep(time.Until(acked.Add(maxLag))) // the bound is the scenario
			bypasses := b.Bypasses.Load()
			rec, err := b.Load(ctx, gone, 0)
			if eventIn(gone) {
				t.Fatalf("the logout's event reached B within %v; the delay did not apply", time.Since(acked))
			}
			if fenced {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("a Load MaxLag after the logout on A: want store.ErrNotFound; got %v, %v", rec, err)
				}
				if b.Bypasses.Load() == bypasses {
					t.Fatal("the Load did not bypass the cache, though B's newest fence is older than MaxLag")
				}
			} else if err != nil {
				t.Fatalf("without fences, B serves the session from memory until the event arrives; got %v", err)
			}

			// An increment on A.
			counted := base + "-counted"
			cachedOnB(counted)
			if _, err := a.Incr(ctx, counted, "n", 1); err != nil {
				t.Fatal(err)
			}
			acked = time.Now()
			time.Sleep(time.Until(acked.Add(maxLag))) // the bound is the scenario
			rec, err = b.Load(ctx, counted, 0)
			if err != nil {
				t.Fatal(err)
			}
			if eventIn(counted) {
				t.Fatalf("the increment's event reached B within %v; the delay did not apply", time.Since(acked))
			}
			want := "2"
			if !fenced {
				want = "1" // stale: the event is still on its way
			}
			if got := rec.Fields["n"]; got != want {
				t.Fatalf("a Load MaxLag after the increment on A: n = %s, want %s", got, want)
			}

			// Once the events are in, B caches again, and serves what Redis holds.
			for deadline := time.Now().Add(10 * time.Second); !eventIn(counted); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the increment's event never reached B")
				}
			}
			if rec, err := b.Load(ctx, counted, 0); err != nil || rec.Fields["n"] != "2" {
				t.Fatalf("after the event: %v, %v", rec, err)
			}
		})
	}
}

// TestCacheFenceRate: a cache in use sends a fence every MaxLag/2, which a plain
// subscriber of another process receives; an idle cache sends none.
func TestCacheFenceRate(t *testing.T) {
	t.Parallel()
	const maxLag = 100 * time.Millisecond
	rdb := testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdb)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	defer rs.Close()
	c, err := New(rs, time.Hour, Config{MaxLag: maxLag})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.fenceIdle = int64(300 * time.Millisecond)
	other := redisstore.New(testenv.Redis(t), redisstore.Config{Prefix: prefix})
	defer other.Close()
	var fences atomic.Int64
	unsubscribe, err := other.Subscribe(func(ev store.Event) {
		if ev.Kind == store.EventFence {
			fences.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	waitServing(t, c)

	// In use: Serving reads the cache's state as a Load does, every millisecond.
	start, n0 := time.Now(), fences.Load()
	for time.Since(start) < time.Second {
		c.Serving()
		time.Sleep(time.Millisecond)
	}
	n := fences.Load() - n0
	elapsed := time.Since(start)
	// Fences are never closer than MaxLag/2: at most one per MaxLag/2 and one more.
	// A loaded machine may space them out, but not to half the rate.
	most := int64(elapsed/(maxLag/2)) + 1
	t.Logf("in use: %d fences in %v (at most %d)", n, elapsed, most)
	if n > most || n < most/2 {
		t.Errorf("in use: %d fences in %v; want about %d", n, elapsed, most)
	}

	// Idle: once fenceIdle has passed since the last use, no fence is sent.
	time.Sleep(time.Duration(c.fenceIdle) + maxLag) // idleness is the scenario
	n0 = fences.Load()
	time.Sleep(500 * time.Millisecond)
	if n := fences.Load() - n0; n != 0 {
		t.Errorf("idle: %d fences in 500ms; want 0", n)
	}
	// And the next use sends one at once: the cache serves again within a round trip
	// or so, not a tick.
	waitServing(t, c)
}
