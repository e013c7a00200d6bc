package redisstore

import (
	"crypto/rand"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/redis/go-redis/v9"
)

// healthWatch subscribes to a store and polls its EventsLive from a goroutine. It keeps
// in one log, in the order they happened, the readings where EventsLive changed and the
// resyncs the subscriber received, so that a test can check that EventsLive never reads
// true again after reading false before a resync has been delivered.
type healthWatch struct {
	s      *Store
	events chan store.Event // the events other than resyncs

	// mu orders the log. The poller holds it from its reading to its entry, so that
	// a resync entry never lands between the two.
	mu  sync.Mutex
	log []healthEntry

	polls    atomic.Int64
	armed    atomic.Bool   // the test has cut the subscription off
	dead     chan struct{} // closed at the first false reading once armed
	deadOnce sync.Once
	resynced chan struct{} // closed when the first resync has been delivered
	resyncs  atomic.Int64
}

type healthEntry struct {
	what string // "live" or "dead" (readings), "resync" (delivered)
	at   time.Time
}

// watchHealth subscribes w to s and starts the poller, which stops when the test ends.
func watchHealth(t *testing.T, s *Store) *healthWatch {
	t.Helper()
	w := &healthWatch{
		s:        s,
		events:   make(chan store.Event, 1024),
		dead:     make(chan struct{}),
		resynced: make(chan struct{}),
	}
	unsubscribe, err := s.Subscribe(w.receive)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go w.poll(stop, done)
	t.Cleanup(func() {
		close(stop)
		<-done
		unsubscribe()
	})
	return w
}

// receive is the subscriber. It holds a resync until the poller has read EventsLive
// false and polled 20 times more, so that a true reading during the resync, when the
// store must still report false, would be caught.
func (w *healthWatch) receive(ev store.Event) {
	if ev.Kind != store.EventResync {
		select {
		case w.events <- ev:
		default:
		}
		return
	}
	select {
	case <-w.dead:
	case <-time.After(5 * time.Second): // the test fails on the missing false reading
	}
	n := w.polls.Load()
	for deadline := time.Now().Add(500 * time.Millisecond); w.polls.Load() < n+20 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Microsecond)
	}
	w.mu.Lock()
	w.log = append(w.log, healthEntry{"resync", time.Now()})
	w.mu.Unlock()
	if w.resyncs.Add(1) == 1 {
		close(w.resynced)
	}
}

func (w *healthWatch) poll(stop, done chan struct{}) {
	defer close(done)
	last := ""
	for {
		select {
		case <-stop:
			return
		default:
		}
		w.mu.Lock()
		now := "dead"
		if w.s.EventsLive() {
			now = "live"
		}
		if now != last {
			w.log = append(w.log, healthEntry{now, time.Now()})
			last = now
		}
		w.mu.Unlock()
		w.polls.Add(1)
		if now == "dead" && w.armed.Load() {
			w.deadOnce.Do(func() { close(w.dead) })
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// arm tells w that the subscription is about to be cut off.
func (w *healthWatch) arm() { w.armed.Store(true) }

// waitDead waits for the first false reading since arm and returns its time.
func (w *healthWatch) waitDead(t *testing.T, limit time.Duration) time.Time {
	t.Helper()
	select {
	case <-w.dead:
	case <-time.After(limit):
		t.Fatalf("EventsLive: want false; still true after %v", limit)
	}
	return w.first(t, "dead", time.Time{})
}

// waitResync waits for the first resync to be delivered and returns its time.
func (w *healthWatch) waitResync(t *testing.T, limit time.Duration) time.Time {
	t.Helper()
	select {
	case <-w.resynced:
	case <-time.After(limit):
		t.Fatalf("want a %v event; got none within %v", store.EventResync, limit)
	}
	return w.first(t, "resync", time.Time{})
}

// waitLive waits for a true reading after after, and returns its time.
func (w *healthWatch) waitLive(t *testing.T, after time.Time, limit time.Duration) time.Time {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(time.Millisecond) {
		if at := w.first(nil, "live", after); !at.IsZero() {
			return at
		}
		if time.Now().After(deadline) {
			t.Fatalf("EventsLive: want true again; still false %v after the resync", limit)
		}
	}
}

// first returns the time of the first entry what after after, or the zero time (then
// failing t, unless nil).
func (w *healthWatch) first(t *testing.T, what string, after time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.log {
		if e.what == what && e.at.After(after) {
			return e.at
		}
	}
	if t != nil {
		t.Helper()
		t.Fatalf("no %q in the log %v", what, w.log)
	}
	return time.Time{}
}

// check fails the test if EventsLive read true after reading false without a resync
// delivered in between.
func (w *healthWatch) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	owed := false // read false, and no resync since
	for i, e := range w.log {
		switch e.what {
		case "dead":
			owed = true
		case "resync":
			owed = false
		case "live":
			if owed {
				t.Errorf("EventsLive read true (entry %d of %v) after reading false, before a %v was delivered",
					i, w.log, store.EventResync)
			}
		}
	}
}

// TestEventsLiveKill kills the store's pub/sub connection (CLIENT KILL ... TYPE pubsub,
// of that one connection: the Redis is shared) and checks that EventsLive turns false
// at once, that a resync is delivered while it is false, that it turns true only after
// that, and that events flow again.
func TestEventsLiveKill(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			name := "mpsession-test-" + rand.Text()
			var c redis.UniversalClient
			var admins []*redis.Client
			switch b.name {
			case "Single":
				c = newClient(t, func(o *redis.Options) { o.ClientName = name })
				admins = []*redis.Client{newClient(t)}
			case "Cluster":
				addrs := clusterAddrs(t)
				cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ClientName: name})
				t.Cleanup(func() { cc.Close() })
				c = cc
				for _, addr := range addrs {
					admin := redis.NewClient(&redis.Options{Addr: addr})
					t.Cleanup(func() { admin.Close() })
					admins = append(admins, admin)
				}
			}
			s := newStore(t, c, Config{})
			if s.EventsLive() {
				t.Error("EventsLive before Subscribe: want false; got true")
			}
			w := watchHealth(t, s)
			if !s.EventsLive() {
				t.Error("EventsLive after Subscribe: want true; got false")
			}
			id := "id-" + rand.Text()
			if err := s.Create(t.Context(), id, store.Record{}, time.Hour); err != nil {
				t.Fatal(err)
			}
			waitEventFlow(t, s, id, w.events, 5*time.Second)
			if n := w.resyncs.Load(); n != 0 {
				t.Fatalf("resyncs before the kill: want 0; got %d", n)
			}

			var admin *redis.Client // the node that holds the subscription
			var conns []string
			for _, a := range admins {
				if ids := pubsubConns(t, a, name); len(ids) > 0 {
					admin, conns = a, append(conns, ids...)
				}
			}
			if len(conns) != 1 {
				t.Fatalf("pub/sub connections named %s: want 1; got %d", name, len(conns))
			}
			w.arm()
			killed := time.Now()
			n, err := admin.Do(t.Context(), "CLIENT", "KILL", "ID", conns[0], "TYPE", "pubsub").Int()
			if err != nil || n != 1 {
				t.Fatalf("CLIENT KILL ID %s TYPE pubsub: want 1 and nil error; got %d and %v", conns[0], n, err)
			}
			dead := w.waitDead(t, 5*time.Second)
			resync := w.waitResync(t, 10*time.Second)
			live := w.waitLive(t, resync, 10*time.Second)
			w.check(t)
			t.Logf("after the kill: EventsLive false at %v, resync delivered at %v, EventsLive true at %v",
				dead.Sub(killed), resync.Sub(killed), live.Sub(killed))
			// Redis closes the connection at once, and the loop reads the error.
			if took := dead.Sub(killed); took > 2*time.Second {
				t.Errorf("EventsLive turned false %v after the kill; want within 2s", took)
			}
			took := waitEventFlow(t, s, id, w.events, 10*time.Second)
			t.Logf("events flow %v after EventsLive turned true", took)
			if !s.EventsLive() {
				t.Error("EventsLive once events flow: want true; got false")
			}
		})
	}
}

// TestEventsLivePause pauses Redis (SIGSTOP: the connection stays open, nothing
// answers) and checks that EventsLive turns false once the health check has gone
// unanswered for a second, and that after Resume a resync is delivered before it turns
// true again.
func TestEventsLivePause(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	s := New(c, Config{Prefix: newPrefix()})
	t.Cleanup(func() { s.Close() })
	w := watchHealth(t, s)
	id := "id-" + rand.Text()
	if err := s.Create(t.Context(), id, store.Record{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitEventFlow(t, s, id, w.events, 5*time.Second)

	w.arm()
	srv.Pause(t)
	paused := time.Now()
	dead := w.waitDead(t, 10*time.Second)
	t.Logf("EventsLive false %v after the pause", dead.Sub(paused))
	// The last pong came at most pingInterval before the pause, and the bound is a
	// second: about 0.75 to 1 s, and more only when the machine stalls.
	if took := dead.Sub(paused); took > 3*time.Second {
		t.Errorf("EventsLive turned false %v after the pause; want about 1s (at most 3s)", took)
	}
	// Nothing comes while Redis is paused: no resync, however long it lasts.
	select {
	case <-w.resynced:
		t.Fatalf("a %v while Redis is paused", store.EventResync)
	case <-time.After(2 * liveBound):
	}
	if s.EventsLive() {
		t.Error("EventsLive while Redis is paused: want false; got true")
	}

	srv.Resume(t)
	resumed := time.Now()
	resync := w.waitResync(t, 10*time.Second)
	live := w.waitLive(t, resync, 10*time.Second)
	w.check(t)
	t.Logf("after Resume: resync delivered at %v, EventsLive true at %v", resync.Sub(resumed), live.Sub(resumed))
	if took := live.Sub(resumed); took > 3*time.Second {
		t.Errorf("EventsLive true %v after Resume; want within a ping interval or so (at most 3s)", took)
	}
	took := waitEventFlow(t, s, id, w.events, 10*time.Second)
	t.Logf("events flow %v after EventsLive turned true", took)
}

// TestEventOriginAcrossStores checks that a second Store, with its own client, as in
// another process, receives the origin of the writes made through the first one's view
// (Events.From), and none with those made through the first one itself.
func TestEventOriginAcrossStores(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			first := newStore(t, b.client(t), Config{})
			second := newStore(t, b.client(t), Config{Prefix: first.prefix})
			events := make(chan store.Event, 1024)
			unsubscribe, err := second.Subscribe(func(ev store.Event) { events <- ev })
			if err != nil {
				t.Fatal(err)
			}
			defer unsubscribe()
			ctx := t.Context()
			withOrigin := first.Capabilities().Events.From("process-1/cache")
			id, other := "id-"+rand.Text(), "id-"+rand.Text()
			for _, x := range []string{id, other} {
				if err := first.Create(ctx, x, store.Record{Owner: "owner-" + id}, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			next := func(what string, kind store.EventKind, about, origin string) {
				t.Helper()
				select {
				case ev := <-events:
					if ev.Kind != kind || ev.Hash != store.Hash(about) || ev.Origin != origin {
						t.Errorf("%s: want %v with origin %q; got %v with origin %q", what, kind, origin, ev.Kind, ev.Origin)
					}
					if ev.At.IsZero() {
						t.Errorf("%s: want the time of the write; got none", what)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: want an event; got none within 5s", what)
				}
			}
			if err := withOrigin.Save(ctx, id, store.Change{Set: map[string]string{"a": "1"}}, time.Hour); err != nil {
				t.Fatal(err)
			}
			next("Save with an origin", store.EventChanged, id, "process-1/cache")
			if _, err := first.Incr(ctx, id, "n", 1); err != nil {
				t.Fatal(err)
			}
			next("Incr without one", store.EventChanged, id, "")
			if _, err := withOrigin.Incr(ctx, id, "n", 1); err != nil {
				t.Fatal(err)
			}
			next("Incr with an origin", store.EventChanged, id, "process-1/cache")
			if err := withOrigin.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			next("Delete with an origin", store.EventDeleted, id, "process-1/cache")
			if _, err := withOrigin.DeleteOwner(ctx, "owner-"+id); err != nil {
				t.Fatal(err)
			}
			next("DeleteOwner with an origin", store.EventRevoked, other, "process-1/cache")
		})
	}
}

// TestCapabilities checks what the store declares, and that closing a view (Events.From)
// closes nothing: the store's subscription stays live and its events flow.
func TestCapabilities(t *testing.T) {
	t.Parallel()
	s := newStore(t, newClient(t), Config{})
	c := s.Capabilities()
	if c.InProcess || c.Events == nil || !c.Events.Shared() || c.Broker == nil {
		t.Fatalf("Capabilities: want events, shared, and a broker, not in process; got %+v", c)
	}
	if c.Broker != store.Broker(s) {
		t.Errorf("Capabilities: want the store as its broker; got %T", c.Broker)
	}
	w := watchHealth(t, s)
	if !c.Events.EventsLive() {
		t.Error("Events.EventsLive after Subscribe: want true; got false")
	}
	unsubscribe, err := c.Events.Subscribe(func(store.Event) {})
	if err != nil {
		t.Fatalf("Events.Subscribe: %v", err)
	}
	unsubscribe()
	view := c.Events.From("o")
	if err := view.Close(); err != nil {
		t.Errorf("Close of a view: want nil; got %v", err)
	}
	if !s.EventsLive() {
		t.Error("EventsLive after a view's Close: want true; got false")
	}
	id := "id-" + rand.Text()
	if err := view.Create(t.Context(), id, store.Record{}, time.Hour); err != nil {
		t.Fatalf("Create through a closed view: %v", err)
	}
	waitEventFlow(t, s, id, w.events, 5*time.Second)
}

// TestCloseStopsEvents checks that Close ends the receive loop and the writer,
// and that EventsLive reports false after it.
func TestCloseStopsEvents(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := New(b.client(t), Config{Prefix: newPrefix()})
			if _, err := s.Subscribe(func(store.Event) {}); err != nil {
				t.Fatal(err)
			}
			if n := eventGoroutines(); n != 2 {
				t.Errorf("goroutines of a subscribed store: want 2; got %d", n)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Close returns once both goroutines are done (their WaitGroup); each may
			// still be between its deferred Done and its return for a moment.
			deadline := time.Now().Add(5 * time.Second)
			for eventGoroutines() != 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if n := eventGoroutines(); n != 0 {
				t.Errorf("goroutines after Close: want 0; got %d", n)
			}
			if s.EventsLive() {
				t.Error("EventsLive after Close: want false; got true")
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: want nil error; got %v", err)
			}
		})
	}
}

// eventGoroutines counts the goroutines that a Store's startEvents started: the receive
// loop and the writer. TestCloseStopsEvents, which counts them, does not run in
// parallel: no other test runs meanwhile, so it counts its own.
func eventGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "\ncreated by github.com/mpsession/mpsession/store/redisstore.(*Store).startEvents") {
			n++
		}
	}
	return n
}

// BenchmarkEventsLive measures what a cache pays to ask, on every read, whether it may
// serve from memory.
func BenchmarkEventsLive(b *testing.B) {
	s := newStore(b, newClient(b), Config{})
	if _, err := s.Subscribe(func(store.Event) {}); err != nil {
		b.Fatal(err)
	}
	var stale atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !s.EventsLive() {
				stale.Add(1) // the machine stalled the loop for a second: no failure
			}
		}
	})
	b.ReportMetric(float64(stale.Load()), "false-readings")
}
