package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

func (s *suite) eventTests() []test {
	return []test{
		{"Changed", s.testEventChanged},
		{"Revoked", s.testEventRevoked},
		{"Order", s.testEventOrder},
		{"Subscribers", s.testEventSubscribers},
		{"Unsubscribe", s.testEventUnsubscribe},
		{"NotOnFailure", s.testEventNotOnFailure},
		{"CrossProcess", s.testEventCrossProcess},
		{"Origin", s.testEventOrigin},
		{"Health", s.testEventHealth},
	}
}

// recorder keeps the events a subscriber receives, for the sessions a test is about.
type recorder struct {
	ch       chan store.Event
	overflow atomic.Bool
	unsub    func()
}

// subscribe subscribes a new recorder to st.
func subscribe(t *testing.T, st store.Store) *recorder {
	t.Helper()
	r := &recorder{ch: make(chan store.Event, 4096)}
	events := st.Capabilities().Events
	if events == nil {
		t.Fatal("Capabilities().Events is nil: the store sends no events")
	}
	unsub, err := events.Subscribe(func(e store.Event) {
		// A subscriber must not block.
		select {
		case r.ch <- e:
		default:
			r.overflow.Store(true)
		}
	})
	if err != nil {
		t.Fatalf("Subscribe: want nil error; got %v", err)
	}
	if unsub == nil {
		t.Fatal("Subscribe: want an unsubscribe function; got nil")
	}
	r.unsub = unsub
	t.Cleanup(func() {
		unsub()
		if r.overflow.Load() {
			t.Error("the test's subscriber fell more than 4096 events behind")
		}
	})
	return r
}

// next returns the next event about one of the sessions ids, skipping events about
// others (a shared backend carries other tests' events too).
func (r *recorder) next(t *testing.T, ids ...string) (store.Event, bool) {
	t.Helper()
	about := hashes(ids...)
	timeout := time.After(waitEvent)
	for {
		select {
		case e := <-r.ch:
			if slices.Contains(about, e.Hash) {
				return e, true
			}
		case <-timeout:
			return store.Event{}, false
		}
	}
}

// expect waits for the next event about one of ids and fails the test unless it is want
// (Fields compared as a set).
func (r *recorder) expect(t *testing.T, what string, want store.Event, ids ...string) {
	t.Helper()
	got, ok := r.next(t, ids...)
	if !ok {
		t.Fatalf("%s: want %s; got none within %v", what, show(want), waitEvent)
	}
	if got.Kind != want.Kind || got.Hash != want.Hash || !slices.Equal(sortedSet(got.Fields), sortedSet(want.Fields)) {
		t.Errorf("%s: want %s; got %s", what, show(want), show(got))
	}
}

// quiet fails the test if r holds an event about one of ids. Call it only after a later
// event has come through the same subscription, as events arrive in order.
func (r *recorder) quiet(t *testing.T, what string, ids ...string) {
	t.Helper()
	about := hashes(ids...)
	for {
		select {
		case e := <-r.ch:
			if slices.Contains(about, e.Hash) {
				t.Errorf("%s: want no event; got %s", what, show(e))
			}
		default:
			return
		}
	}
}

func show(e store.Event) string {
	h := e.Hash
	if len(h) > 8 {
		h = h[:8]
	}
	if e.Kind == store.EventChanged {
		return fmt.Sprintf("%v %s… %q", e.Kind, h, sortedSet(e.Fields))
	}
	return fmt.Sprintf("%v %s…", e.Kind, h)
}

func changed(id string, fields ...string) store.Event {
	return store.Event{Kind: store.EventChanged, Hash: store.Hash(id), Fields: fields}
}

// testEventChanged checks the events of Save, Incr and Delete, in order.
func (s *suite) testEventChanged(t *testing.T) {
	st := s.newStore(t)
	id := newID("id")
	create(t, st, id, store.Record{Fields: map[string]string{"c": "3"}}, hour)
	r := subscribe(t, st)

	save(t, st, id, store.Change{Set: map[string]string{"a": "1", "b": "2"}, Delete: []string{"c"}})
	if _, err := st.Incr(t.Context(), id, "n", 1); err != nil {
		t.Fatalf("Incr: want nil error; got %v", err)
	}
	if err := st.Delete(t.Context(), id); err != nil {
		t.Fatalf("Delete: want nil error; got %v", err)
	}
	r.expect(t, "event of Save", changed(id, "a", "b", "c"), id)
	r.expect(t, "event of Incr", changed(id, "n"), id)
	r.expect(t, "event of Delete", store.Event{Kind: store.EventDeleted, Hash: store.Hash(id)}, id)

	// Each write sends one event: the next is about another session.
	marker := newID("marker")
	create(t, st, marker, store.Record{}, hour)
	save(t, st, marker, store.Change{Set: map[string]string{"done": "1"}})
	r.expect(t, "the event after them", changed(marker, "done"), id, marker)
}

func (s *suite) testEventRevoked(t *testing.T) {
	st := s.newStore(t)
	owner := newID("owner")
	ids := []string{newID("id"), newID("id"), newID("id")}
	for _, id := range ids {
		create(t, st, id, store.Record{Owner: owner}, hour)
	}
	r := subscribe(t, st)
	if n, err := st.DeleteOwner(t.Context(), owner, ids[0]); err != nil || n != 2 {
		t.Fatalf("DeleteOwner: want 2 and nil error; got %d and %v", n, err)
	}
	var got []string
	for range 2 {
		e, ok := r.next(t, ids...)
		if !ok {
			t.Fatalf("events of DeleteOwner: want 2 %v; got %d within %v", store.EventRevoked, len(got), waitEvent)
		}
		if e.Kind != store.EventRevoked {
			t.Errorf("event of DeleteOwner: want %v; got %v", store.EventRevoked, e.Kind)
		}
		got = append(got, e.Hash)
	}
	wantSet(t, "sessions revoked", hashes(ids[1:]...), got)
}

// testEventOrder checks that a subscriber receives a session's events in the order of
// the writes. The recorder keeps every Event as delivered until all the writes are
// done, so a store that reused a Fields array for a later event fails here too (and the
// race detector reports it).
func (s *suite) testEventOrder(t *testing.T) {
	st := s.newStore(t)
	id := newID("id")
	create(t, st, id, store.Record{}, hour)
	r := subscribe(t, st)
	const n = 50
	for i := range n {
		save(t, st, id, store.Change{Set: map[string]string{fmt.Sprintf("f%02d", i): "v"}})
	}
	for i := range n {
		r.expect(t, fmt.Sprintf("event #%d", i+1), changed(id, fmt.Sprintf("f%02d", i)), id)
	}
}

func (s *suite) testEventSubscribers(t *testing.T) {
	st := s.newStore(t)
	id := newID("id")
	create(t, st, id, store.Record{}, hour)
	rs := []*recorder{subscribe(t, st), subscribe(t, st), subscribe(t, st)}
	save(t, st, id, store.Change{Set: map[string]string{"a": "1"}})
	if err := st.Delete(t.Context(), id); err != nil {
		t.Fatalf("Delete: want nil error; got %v", err)
	}
	for i, r := range rs {
		r.expect(t, fmt.Sprintf("subscriber #%d, event of Save", i+1), changed(id, "a"), id)
		r.expect(t, fmt.Sprintf("subscriber #%d, event of Delete", i+1), store.Event{Kind: store.EventDeleted, Hash: store.Hash(id)}, id)
	}
}

func (s *suite) testEventUnsubscribe(t *testing.T) {
	st := s.newStore(t)
	id := newID("id")
	create(t, st, id, store.Record{}, hour)
	a, b := subscribe(t, st), subscribe(t, st)
	save(t, st, id, store.Change{Set: map[string]string{"a": "1"}})
	a.expect(t, "event before unsubscribe", changed(id, "a"), id)
	b.expect(t, "event before unsubscribe", changed(id, "a"), id)

	a.unsub()
	a.unsub() // safe to call more than once
	save(t, st, id, store.Change{Set: map[string]string{"b": "2"}})
	save(t, st, id, store.Change{Set: map[string]string{"c": "3"}})
	b.expect(t, "event of the other subscriber", changed(id, "b"), id)
	b.expect(t, "event of the other subscriber", changed(id, "c"), id)
	// b has the last event, so a would have had the first by now.
	a.quiet(t, "after unsubscribe", id)
}

// testEventNotOnFailure checks that writes that fail send no event.
func (s *suite) testEventNotOnFailure(t *testing.T) {
	st := s.newStoreLimit(t, smallLimit)
	ctx := t.Context()
	id, gone, marker := newID("id"), newID("gone"), newID("marker")
	create(t, st, id, store.Record{Fields: map[string]string{"s": "abc", "max": "9223372036854775807"}}, hour)
	create(t, st, marker, store.Record{}, hour)
	r := subscribe(t, st)

	if err := st.Save(ctx, gone, store.Change{Set: map[string]string{"a": "1"}}, hour); err == nil {
		t.Fatal("Save of an unknown session: want an error; got nil")
	}
	if _, err := st.Incr(ctx, gone, "n", 1); err == nil {
		t.Fatal("Incr of an unknown session: want an error; got nil")
	}
	if _, err := st.Incr(ctx, id, "s", 1); err == nil {
		t.Fatal("Incr of a string: want an error; got nil")
	}
	if _, err := st.Incr(ctx, id, "max", 1); err == nil {
		t.Fatal("Incr past the int64 maximum: want an error; got nil")
	}
	if _, err := st.Incr(ctx, id, strings.Repeat("n", smallLimit), 1); err == nil {
		t.Fatal("Incr of a new field past the limit: want an error; got nil")
	}
	if err := st.Save(ctx, id, store.Change{Set: map[string]string{"big": string(make([]byte, smallLimit))}}, hour); err == nil {
		t.Fatal("Save past the limit: want an error; got nil")
	}
	if err := st.Save(ctx, id, store.Change{Set: map[string]string{store.ReservedPrefix + "x": "1"}}, hour); err == nil {
		t.Fatal("Save of a reserved field: want an error; got nil")
	}
	save(t, st, marker, store.Change{Set: map[string]string{"done": "1"}})
	r.expect(t, "the first event after failed writes", changed(marker, "done"), id, gone, marker)
	r.quiet(t, "after failed writes", id, gone)
}

func (s *suite) testEventCrossProcess(t *testing.T) {
	st := s.newStore(t)
	st2 := s.second(t, st)
	owner := newID("owner")
	id, other := newID("id"), newID("id")
	create(t, st, id, store.Record{Owner: owner}, hour)
	create(t, st, other, store.Record{Owner: owner}, hour)
	r, r2 := subscribe(t, st), subscribe(t, st2)

	save(t, st, id, store.Change{Set: map[string]string{"a": "1"}})
	r2.expect(t, "event of a Save on the other instance", changed(id, "a"), id, other)
	save(t, st2, id, store.Change{Set: map[string]string{"b": "2"}})
	r.expect(t, "event of a Save on the other instance", changed(id, "a"), id, other)
	r.expect(t, "event of a Save on the other instance", changed(id, "b"), id, other)
	if _, err := st.Incr(t.Context(), id, "n", 1); err != nil {
		t.Fatalf("Incr: want nil error; got %v", err)
	}
	r2.expect(t, "event of Save on the same instance", changed(id, "b"), id, other)
	r2.expect(t, "event of Incr on the other instance", changed(id, "n"), id, other)
	if err := st.Delete(t.Context(), id); err != nil {
		t.Fatalf("Delete: want nil error; got %v", err)
	}
	r2.expect(t, "event of Delete on the other instance", store.Event{Kind: store.EventDeleted, Hash: store.Hash(id)}, id, other)
	if _, err := st.DeleteOwner(t.Context(), owner); err != nil {
		t.Fatalf("DeleteOwner: want nil error; got %v", err)
	}
	r2.expect(t, "event of DeleteOwner on the other instance", store.Event{Kind: store.EventRevoked, Hash: store.Hash(other)}, id, other)
}

// testEventOrigin checks that the events of writes made through Events.From carry the
// origin, in this process and, when the store has a CrossProcess, in the other; that
// the events of writes made through the store carry none; and that From refuses an
// origin that cannot be carried.
func (s *suite) testEventOrigin(t *testing.T) {
	st := s.newStore(t)
	for _, bad := range []string{"", "o 1", strings.Repeat("o", 65), "o\n"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("From(%q): want a panic", bad)
				}
			}()
			st.Capabilities().Events.From(bad)
		}()
	}
	rs := []*recorder{subscribe(t, st)}
	if s.cfg.CrossProcess != nil {
		rs = append(rs, subscribe(t, s.second(t, st)))
	}
	owner := newID("owner")
	id, other := newID("id"), newID("id")
	create(t, st, id, store.Record{Owner: owner}, hour)
	create(t, st, other, store.Record{Owner: owner}, hour)
	bg := t.Context()
	from := func(origin string) store.Store { return st.Capabilities().Events.From(origin) }
	o1 := from("o1")
	writes := []struct {
		name   string
		write  func() error
		kind   store.EventKind
		id     string
		origin string
	}{
		{"Save with origin o1", func() error {
			return o1.Save(bg, id, store.Change{Set: map[string]string{"a": "1"}}, hour)
		}, store.EventChanged, id, "o1"},
		{"Save without origin", func() error {
			return st.Save(bg, id, store.Change{Set: map[string]string{"a": "2"}}, hour)
		}, store.EventChanged, id, ""},
		{"Incr with origin o1", func() error { _, err := o1.Incr(bg, id, "n", 1); return err },
			store.EventChanged, id, "o1"},
		{"Incr without origin", func() error { _, err := st.Incr(bg, id, "n", 1); return err },
			store.EventChanged, id, ""},
		{"Save with the longest origin", func() error {
			return from(strings.Repeat("~", 64)).Save(bg, id, store.Change{Set: map[string]string{"b": "1"}}, hour)
		}, store.EventChanged, id, strings.Repeat("~", 64)},
		{"Delete with origin o1", func() error { return o1.Delete(bg, id) }, store.EventDeleted, id, "o1"},
		{"DeleteOwner with origin #@:", func() error {
			_, err := from("#@:").DeleteOwner(bg, owner)
			return err
		}, store.EventRevoked, other, "#@:"},
	}
	for _, w := range writes {
		if err := w.write(); err != nil {
			t.Fatalf("%s: want nil error; got %v", w.name, err)
		}
		for i, r := range rs {
			what := w.name
			if i > 0 {
				what += ", on the other instance"
			}
			got, ok := r.next(t, id, other)
			switch {
			case !ok:
				t.Fatalf("%s: want a %v event; got none within %v", what, w.kind, waitEvent)
			case got.Kind != w.kind || got.Hash != store.Hash(w.id):
				t.Errorf("%s: want a %v event about %s; got %s", what, w.kind, w.id, show(got))
			case got.Origin != w.origin:
				t.Errorf("%s: want origin %q; got %q", what, w.origin, got.Origin)
			}
		}
	}
}

// testEventHealth checks EventsLive: for Shared events, false before the first
// Subscribe, true once subscribed, and false after Close; for events that are not
// Shared, false always.
func (s *suite) testEventHealth(t *testing.T) {
	st := s.newStore(t)
	health := st.Capabilities().Events
	if !health.Shared() {
		subscribe(t, st)
		if health.EventsLive() {
			t.Error("EventsLive of events that are not Shared: want false; got true")
		}
		return
	}
	if health.EventsLive() {
		t.Error("EventsLive before Subscribe: want false; got true")
	}
	r := subscribe(t, st)
	// A store may take a moment to prove its subscription live.
	for deadline := time.Now().Add(waitEvent); !health.EventsLive(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("EventsLive after Subscribe: want true; got false for %v", waitEvent)
		}
	}
	// Events flow while it is live.
	id := newID("id")
	create(t, st, id, store.Record{}, hour)
	save(t, st, id, store.Change{Set: map[string]string{"a": "1"}})
	r.expect(t, "event while EventsLive", changed(id, "a"), id)
	if err := st.Close(); err != nil {
		t.Fatalf("Close: want nil error; got %v", err)
	}
	if health.EventsLive() {
		t.Error("EventsLive after Close: want false; got true")
	}
}
