package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/store/storetest"
)

// memoryEventQueue is how many events Memory queues for its subscribers (see Memory).
const memoryEventQueue = 4096

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newMemory(t *testing.T, maxRecordBytes int) store.Store {
	// A short interval, so that the sweeper runs during the suite too.
	m := memstore.New(memstore.Config{MaxRecordBytes: maxRecordBytes, CleanupInterval: 50 * time.Millisecond})
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: want nil error; got %v", err)
		}
		if n := m.DroppedEvents(); n != 0 {
			t.Errorf("DroppedEvents: want 0; got %d", n)
		}
	})
	return m
}

func TestMemory(t *testing.T) {
	storetest.Run(t, storetest.Config{New: newMemory})
}

// TestMemoryNoSweep runs the suite with the default cleanup interval, so that expiry is
// found on access only.
func TestMemoryNoSweep(t *testing.T) {
	storetest.Run(t, storetest.Config{New: func(t *testing.T, maxRecordBytes int) store.Store {
		m := memstore.New(memstore.Config{MaxRecordBytes: maxRecordBytes})
		t.Cleanup(func() { m.Close() })
		return m
	}})
}

func TestMemoryClose(t *testing.T) {
	before := goleak.IgnoreCurrent()
	m := memstore.New(memstore.Config{CleanupInterval: time.Millisecond})
	if _, err := m.Subscribe(func(store.Event) {}); err != nil {
		t.Fatalf("Subscribe: want nil error; got %v", err)
	}
	for range 2 {
		if err := m.Close(); err != nil {
			t.Errorf("Close: want nil error; got %v", err)
		}
	}
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines left after Close: %v", err)
	}
	if _, err := m.Subscribe(func(store.Event) {}); err == nil {
		t.Error("Subscribe after Close: want an error; got nil")
	}
	// The data stays usable.
	ctx := context.Background()
	if err := m.Create(ctx, "id", store.Record{}, time.Hour); err != nil {
		t.Errorf("Create after Close: want nil error; got %v", err)
	}
	if _, err := m.Incr(ctx, "id", "n", 1); err != nil {
		t.Errorf("Incr after Close: want nil error; got %v", err)
	}
}

// TestMemorySweep checks that the sweeper, not a read, removes an expired session and
// tells subscribers.
func TestMemorySweep(t *testing.T) {
	m := memstore.New(memstore.Config{CleanupInterval: 20 * time.Millisecond})
	defer m.Close()
	ctx := context.Background()
	events := make(chan store.Event, 16)
	if _, err := m.Subscribe(func(e store.Event) { events <- e }); err != nil {
		t.Fatalf("Subscribe: want nil error; got %v", err)
	}
	if err := m.Create(ctx, "short", store.Record{Owner: "o"}, 50*time.Millisecond); err != nil {
		t.Fatalf("Create: want nil error; got %v", err)
	}
	if err := m.Create(ctx, "long", store.Record{Owner: "o"}, time.Hour); err != nil {
		t.Fatalf("Create: want nil error; got %v", err)
	}
	if err := m.PutTicket(ctx, "ticket", "v", 50*time.Millisecond); err != nil {
		t.Fatalf("PutTicket: want nil error; got %v", err)
	}
	select {
	case e := <-events:
		want := store.Event{Kind: store.EventExpired, Hash: store.Hash("short")}
		if e.Kind != want.Kind || e.Hash != want.Hash {
			t.Errorf("want %v %s; got %v %s", want.Kind, want.Hash, e.Kind, e.Hash)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("want an EventExpired from the sweeper; got none within 5s")
	}
	got, err := m.Sessions(ctx, "o")
	if err != nil || len(got) != 1 || got[0] != store.Hash("long") {
		t.Errorf("Sessions after the sweep: want [%s] and nil error; got %q and %v", store.Hash("long"), got, err)
	}
}

// TestMemoryBlockedSubscriber checks that a subscriber that blocks stalls neither
// writers nor Close, and that Memory counts what it drops.
func TestMemoryBlockedSubscriber(t *testing.T) {
	m := memstore.New()
	ctx := context.Background()
	release := make(chan struct{})
	inside := make(chan struct{})
	entered := false // read and written only by the dispatcher, which calls fn
	if _, err := m.Subscribe(func(store.Event) {
		if !entered {
			entered = true
			close(inside)
		}
		<-release
	}); err != nil {
		t.Fatalf("Subscribe: want nil error; got %v", err)
	}
	if err := m.Create(ctx, "id", store.Record{}, time.Hour); err != nil {
		t.Fatalf("Create: want nil error; got %v", err)
	}
	const writes = 5000
	if _, err := m.Incr(ctx, "id", "n", 1); err != nil {
		t.Fatalf("Incr: want nil error; got %v", err)
	}
	waitInside(t, inside)
	done := make(chan error, 1)
	go func() {
		for range writes - 1 {
			if _, err := m.Incr(ctx, "id", "n", 1); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Incr: want nil error; got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writers stalled behind a blocked subscriber")
	}
	// One event is in the subscriber's hands and memoryEventQueue wait in the queue.
	if got, want := m.DroppedEvents(), uint64(writes-(memoryEventQueue+1)); got != want {
		t.Errorf("DroppedEvents: want %d; got %d", want, got)
	}
	close(release)
	if err := m.Close(); err != nil {
		t.Errorf("Close: want nil error; got %v", err)
	}
}

// waitInside waits until a subscriber has entered its first call, closing inside, so that
// the dispatcher holds that event rather than leave it in the queue: a test that then
// fills the queue knows how many events Memory drops.
func waitInside(t *testing.T, inside <-chan struct{}) {
	t.Helper()
	select {
	case <-inside:
	case <-time.After(5 * time.Second):
		t.Fatal("want the subscriber called with the first event; not called within 5s")
	}
}

// TestMemoryResyncAfterDrop checks that a subscriber that blocked long enough to lose
// events, among them the EventDeleted of a logout, gets every queued event, then one
// EventResync, then the events of later writes.
func TestMemoryResyncAfterDrop(t *testing.T) {
	m := memstore.New()
	defer m.Close()
	ctx := context.Background()
	release := make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release) // so that Close does not wait on the subscriber
		}
	}()
	events := make(chan store.Event, 2*memoryEventQueue)
	inside := make(chan struct{})
	entered := false // read and written only by the dispatcher, which calls fn
	if _, err := m.Subscribe(func(e store.Event) {
		if !entered {
			entered = true
			close(inside)
		}
		<-release
		events <- e
	}); err != nil {
		t.Fatalf("Subscribe: want nil error; got %v", err)
	}
	for _, id := range []string{"game", "logout"} {
		if err := m.Create(ctx, id, store.Record{}, time.Hour); err != nil {
			t.Fatalf("Create: want nil error; got %v", err)
		}
	}
	// One event in the subscriber's hands, memoryEventQueue in the queue, then drops.
	const writes = memoryEventQueue + 10
	if _, err := m.Incr(ctx, "game", "n", 1); err != nil {
		t.Fatalf("Incr: want nil error; got %v", err)
	}
	waitInside(t, inside)
	for range writes - 1 {
		if _, err := m.Incr(ctx, "game", "n", 1); err != nil {
			t.Fatalf("Incr: want nil error; got %v", err)
		}
	}
	if err := m.Delete(ctx, "logout"); err != nil {
		t.Fatalf("Delete: want nil error; got %v", err)
	}
	if got, want := m.DroppedEvents(), uint64(writes+1-(memoryEventQueue+1)); got != want {
		t.Fatalf("DroppedEvents: want %d; got %d", want, got)
	}
	close(release)

	next := func() store.Event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("want an event; got none within 5s")
			return store.Event{}
		}
	}
	for i := range memoryEventQueue + 1 {
		if e := next(); e.Kind != store.EventChanged || e.Hash != store.Hash("game") {
			t.Fatalf("event %d: want the queued %v of game; got %v %s", i, store.EventChanged, e.Kind, e.Hash)
		}
	}
	if e := next(); e.Kind != store.EventResync || e.Hash != "" || e.Fields != nil {
		t.Fatalf("after the queue: want %v with no hash; got %+v", store.EventResync, e)
	}
	if err := m.Save(ctx, "game", store.Change{Set: map[string]string{"round": "2"}}, 0); err != nil {
		t.Fatalf("Save: want nil error; got %v", err)
	}
	if e := next(); e.Kind != store.EventChanged || e.Hash != store.Hash("game") {
		t.Errorf("after the resync: want the next write's %v; got %v %s", store.EventChanged, e.Kind, e.Hash)
	}
	select {
	case e := <-events:
		t.Errorf("want one %v per run of drops; got another event: %v", store.EventResync, e.Kind)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestMemoryEventsLive checks the memory store's EventsLive: false before Subscribe, true
// once subscribed, false from a drop until the EventResync that follows it has been
// delivered (never true while it is being delivered), and false after Close.
func TestMemoryEventsLive(t *testing.T) {
	m := memstore.New()
	defer m.Close()
	health := m.Capabilities().Events
	ctx := context.Background()
	if health.EventsLive() {
		t.Error("EventsLive before Subscribe: want false; got true")
	}
	release := make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release) // so that Close does not wait on the subscriber
		}
	}()
	inside := make(chan struct{})
	resynced := make(chan bool, 1) // EventsLive as the subscriber saw it during the resync
	entered := false               // read and written only by the dispatcher, which calls fn
	if _, err := m.Subscribe(func(e store.Event) {
		if !entered {
			entered = true
			close(inside)
		}
		<-release
		if e.Kind == store.EventResync {
			resynced <- m.EventsLive()
		}
	}); err != nil {
		t.Fatalf("Subscribe: want nil error; got %v", err)
	}
	if !health.EventsLive() {
		t.Error("EventsLive after Subscribe: want true; got false")
	}
	if err := m.Create(ctx, "id", store.Record{}, time.Hour); err != nil {
		t.Fatalf("Create: want nil error; got %v", err)
	}
	if _, err := m.Incr(ctx, "id", "n", 1); err != nil {
		t.Fatalf("Incr: want nil error; got %v", err)
	}
	waitInside(t, inside)
	for range memoryEventQueue {
		if _, err := m.Incr(ctx, "id", "n", 1); err != nil {
			t.Fatalf("Incr: want nil error; got %v", err)
		}
	}
	if !health.EventsLive() {
		t.Error("EventsLive with a full queue and nothing dropped: want true; got false")
	}
	if _, err := m.Incr(ctx, "id", "n", 1); err != nil {
		t.Fatalf("Incr: want nil error; got %v", err)
	}
	if m.DroppedEvents() != 1 {
		t.Fatalf("DroppedEvents: want 1; got %d", m.DroppedEvents())
	}
	if health.EventsLive() {
		t.Error("EventsLive after a drop: want false; got true")
	}
	close(release)
	select {
	case live := <-resynced:
		if live {
			t.Error("EventsLive while the resync is delivered: want false; got true")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("want an %v after the drop; got none within 5s", store.EventResync)
	}
	// The dispatcher marks the resync done as soon as the subscriber returns.
	for deadline := time.Now().Add(5 * time.Second); !health.EventsLive(); {
		if time.Now().After(deadline) {
			t.Fatal("EventsLive after the resync: want true; got false for 5s")
		}
		runtime.Gosched()
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: want nil error; got %v", err)
	}
	if health.EventsLive() {
		t.Error("EventsLive after Close: want false; got true")
	}
}

// TestMemoryOrigin checks that every event of a write made through Events.From carries
// its origin, and that events of other writes and of expiry carry none.
func TestMemoryOrigin(t *testing.T) {
	m := memstore.New()
	defer m.Close()
	events := make(chan store.Event, 16)
	if _, err := m.Subscribe(func(e store.Event) { events <- e }); err != nil {
		t.Fatalf("Subscribe: want nil error; got %v", err)
	}
	bg := context.Background()
	ctx := bg
	o := m.Capabilities().Events.From("cache-1")
	for _, id := range []string{"a", "b"} {
		if err := m.Create(bg, id, store.Record{Owner: "o"}, time.Hour); err != nil {
			t.Fatalf("Create: want nil error; got %v", err)
		}
	}
	if err := m.Create(bg, "short", store.Record{}, time.Millisecond); err != nil {
		t.Fatalf("Create: want nil error; got %v", err)
	}
	time.Sleep(2 * time.Millisecond) // so that "short" has expired: the clock, not an event
	writes := []struct {
		name string
		do   func() error
		want store.Event
	}{
		{"Save", func() error { return o.Save(ctx, "a", store.Change{Set: map[string]string{"f": "1"}}, 0) },
			store.Event{Kind: store.EventChanged, Hash: store.Hash("a"), Origin: "cache-1"}},
		{"Incr", func() error { _, err := o.Incr(ctx, "a", "n", 1); return err },
			store.Event{Kind: store.EventChanged, Hash: store.Hash("a"), Origin: "cache-1"}},
		{"Save without origin", func() error { return m.Save(bg, "a", store.Change{Delete: []string{"f"}}, 0) },
			store.Event{Kind: store.EventChanged, Hash: store.Hash("a")}},
		{"Delete", func() error { return o.Delete(ctx, "a") },
			store.Event{Kind: store.EventDeleted, Hash: store.Hash("a"), Origin: "cache-1"}},
		{"DeleteOwner", func() error { _, err := o.DeleteOwner(ctx, "o"); return err },
			store.Event{Kind: store.EventRevoked, Hash: store.Hash("b"), Origin: "cache-1"}},
		{"Load of an expired session", func() error {
			if _, err := m.Load(ctx, "short", time.Hour); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("want %v; got %v", store.ErrNotFound, err)
			}
			return nil
		}, store.Event{Kind: store.EventExpired, Hash: store.Hash("short")}},
	}
	for _, w := range writes {
		if err := w.do(); err != nil {
			t.Fatalf("%s: want nil error; got %v", w.name, err)
		}
		select {
		case e := <-events:
			if e.Kind != w.want.Kind || e.Hash != w.want.Hash || e.Origin != w.want.Origin {
				t.Errorf("%s: want %v event with origin %q; got %v with %q", w.name, w.want.Kind, w.want.Origin, e.Kind, e.Origin)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: want an event; got none within 5s", w.name)
		}
	}
}

// TestMemoryConfig checks the defaults and that the limit applies.
func TestMemoryConfig(t *testing.T) {
	ctx := context.Background()
	m := memstore.New()
	defer m.Close()
	big := string(make([]byte, store.DefaultMaxRecordBytes))
	err := m.Create(ctx, "id", store.Record{Fields: map[string]string{"f": big}}, time.Hour)
	if !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("Create over the default limit: want %v; got %v", store.ErrTooLarge, err)
	}

	small := memstore.New(memstore.Config{MaxRecordBytes: 10})
	defer small.Close()
	if err := small.Create(ctx, "id", store.Record{Fields: map[string]string{"f": "999999999"}}, time.Hour); err != nil {
		t.Fatalf("Create at the limit: want nil error; got %v", err)
	}
	_, err = small.Incr(ctx, "id", "f", 1)
	if !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("Incr past the limit: want %v; got %v", store.ErrTooLarge, err)
	}
}

func TestMemoryInvalid(t *testing.T) {
	ctx := context.Background()
	m := memstore.New()
	defer m.Close()
	if err := m.Create(ctx, "id", store.Record{}, 0); err == nil {
		t.Error("Create with a zero idle timeout: want an error; got nil")
	}
	if err := m.Create(ctx, "id", store.Record{}, time.Hour); err != nil {
		t.Fatalf("Create: want nil error; got %v", err)
	}
	if err := m.Touch(ctx, "id", -time.Second); err == nil {
		t.Error("Touch with a negative idle timeout: want an error; got nil")
	}
	if err := m.PutTicket(ctx, "t", "v", 0); err == nil {
		t.Error("PutTicket with a zero ttl: want an error; got nil")
	}
	if _, err := m.Subscribe(nil); err == nil {
		t.Error("Subscribe(nil): want an error; got nil")
	}
	if err := m.Save(ctx, "id", store.Change{Set: map[string]string{"n": "9223372036854775807"}}, 0); err != nil {
		t.Fatalf("Save: want nil error; got %v", err)
	}
	if _, err := m.Incr(ctx, "id", "n", 1); !errors.Is(err, store.ErrNotInteger) {
		t.Errorf("Incr past the int64 range: want %v; got %v", store.ErrNotInteger, err)
	}
	rec, err := m.Load(ctx, "id", 0)
	if err != nil || rec.Fields["n"] != "9223372036854775807" {
		t.Errorf("Load after an overflowing Incr: want n=9223372036854775807; got %v, %v", rec, err)
	}
}

// TestMemorySetAndDelete checks that a field both set and deleted in one Change is
// deleted, and that the size is counted so.
func TestMemorySetAndDelete(t *testing.T) {
	ctx := context.Background()
	m := memstore.New(memstore.Config{MaxRecordBytes: 10})
	defer m.Close()
	if err := m.Create(ctx, "id", store.Record{Fields: map[string]string{"a": "123456789"}}, time.Hour); err != nil {
		t.Fatalf("Create: want nil error; got %v", err)
	}
	ch := store.Change{Set: map[string]string{"a": "x", "b": "12345678"}, Delete: []string{"a", "a"}}
	if err := m.Save(ctx, "id", ch, 0); err != nil {
		t.Fatalf("Save: want nil error; got %v", err)
	}
	rec, err := m.Load(ctx, "id", 0)
	if err != nil {
		t.Fatalf("Load: want nil error; got %v", err)
	}
	if len(rec.Fields) != 1 || rec.Fields["b"] != "12345678" {
		t.Errorf("want fields map[b:12345678]; got %v", rec.Fields)
	}
	// 9 bytes used, so one more byte fits and two do not.
	if err := m.Save(ctx, "id", store.Change{Set: map[string]string{"c": ""}}, 0); err != nil {
		t.Errorf("Save to the limit: want nil error; got %v", err)
	}
	err = m.Save(ctx, "id", store.Change{Set: map[string]string{"d": ""}}, 0)
	if !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("Save past the limit: want %v; got %v", store.ErrTooLarge, err)
	}
}

func BenchmarkMemory(b *testing.B) {
	m := memstore.New()
	defer m.Close()
	storetest.Bench(b, m)
}

// The events of a write made through Events.From carry its origin, so that whoever
// made the write can tell its own events from others'.
func ExampleStore_Capabilities() {
	m := memstore.New()
	defer m.Close()
	events := make(chan store.Event, 2)
	if _, err := m.Subscribe(func(ev store.Event) { events <- ev }); err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	_ = m.Create(ctx, "session-id", store.Record{}, time.Hour)
	_, _ = m.Capabilities().Events.From("cache-1").Incr(ctx, "session-id", "n", 1)
	_, _ = m.Incr(ctx, "session-id", "n", 1)
	for range 2 {
		ev := <-events
		fmt.Printf("%v %q\n", ev.Kind, ev.Origin)
	}
	fmt.Println(m.EventsLive())
	// Output:
	// changed "cache-1"
	// changed ""
	// true
}
