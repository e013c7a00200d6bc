// Package storetest is the conformance suite for store.Store implementations.
//
// Every store in this module runs it, and a third-party store should too:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, storetest.Config{
//			New: func(t *testing.T, maxRecordBytes int) store.Store {
//				s := mystore.New(mystore.Config{MaxRecordBytes: maxRecordBytes})
//				t.Cleanup(func() { s.Close() })
//				return s
//			},
//		})
//	}
//
//	func BenchmarkStore(b *testing.B) {
//		s := mystore.New()
//		defer s.Close()
//		storetest.Bench(b, s)
//	}
//
// Run checks behaviour, not implementation: each named sub-test (Session/..., Owner/...,
// Check/..., Ticket/..., Event/..., Expiry/...) fails when the store breaks the part of
// the store.Store contract it names. Timing checks use idle timeouts of a few hundred
// milliseconds; when the machine stalls for so long that a check proves nothing, the
// check is retried with longer timeouts instead of failing. The suite takes about a
// second per store.
//
// Where the store.Store doc leaves a choice open, Run asks for what fibermp and wsauth
// rely on:
//
//   - Subscribe returns once the subscription is live: a write made after it returns,
//     in any process that shares the backend, reaches the subscriber.
//   - Each successful write sends exactly one event, and a write that fails sends none.
//   - An empty field name is refused (storekit.CheckField), as a reserved one is.
//   - Incr reads integers as Redis's HINCRBY does: an optional '-', then digits
//     without a leading zero, within int64 ("+5", "007", "-0" and " 5" are
//     store.ErrNotInteger), and an increment past int64 is store.ErrNotInteger.
//   - Incr of a new field counts the field's name and the digits of its value against
//     the limit, as Save would.
//   - DeleteOwner counts only the sessions it removed, not expired ones.
//   - Tickets and sessions are kept apart: a ticket and a session may share an id.
//   - Deadline round-trips to the millisecond; values are arbitrary bytes, and field
//     names any text that is not reserved.
package storetest

import (
	"crypto/rand"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

// Config describes the store under test.
type Config struct {
	// New returns a fresh, empty store whose record size limit is maxRecordBytes. It
	// registers cleanup (Close, and removing what the test wrote) with t.
	//
	// New is called once per sub-test, and from concurrent sub-tests unless Serial is
	// set, so stores that share a backend must not wipe it in New: the suite uses
	// random ids, owners and tickets, so a store over a shared backend needs no
	// isolation beyond that, only its own record size limit.
	//
	// Required.
	New func(t *testing.T, maxRecordBytes int) store.Store

	// CrossProcess returns a second store instance that shares the backend with s, the
	// way another process would (for a Redis store: a second client to the same
	// server), so that the suite checks that sessions, tickets and events cross
	// processes. It registers cleanup with t. nil for in-process stores.
	//
	// Optional. Default: nil
	CrossProcess func(t *testing.T, s store.Store) store.Store

	// SkipExpiryEvents is set for stores that cannot observe expiry and so never send
	// EventExpired. Stores that do send it are checked to send it at the latest when a
	// Load finds the session expired, within a few seconds.
	//
	// Optional. Default: false
	SkipExpiryEvents bool

	// ReadAfterEvent is set for stores that serve reads from a per-process cache kept
	// exact by events (fibermp's session cache): a write made through the second
	// instance is guaranteed in the first one's reads only once its event reached the
	// first. The cross-process checks then wait for that event before they read.
	//
	// Optional. Default: false
	ReadAfterEvent bool

	// Serial runs the timing sub-tests one after the other instead of concurrently.
	// They mostly sleep, so running them together saves seconds; set Serial when New
	// cannot be called from concurrent sub-tests.
	//
	// Optional. Default: false
	Serial bool
}

// Run runs the conformance suite against the store cfg describes, as named sub-tests of
// t. See the package doc.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	if cfg.New == nil {
		t.Fatal("storetest: Config.New is required")
	}
	s := &suite{cfg: cfg}
	groups := []struct {
		name     string
		parallel bool
		tests    []test
	}{
		{"Session", false, s.sessionTests()},
		{"Owner", false, s.ownerTests()},
		{"Check", false, s.checkTests()},
		{"Ticket", false, s.ticketTests()},
		{"Event", false, s.eventTests()},
		{"Expiry", !cfg.Serial, s.expiryTests()},
		{"Broker", false, s.brokerTests()},
		{"History", false, s.historyTests()},
		{"Presence", false, s.presenceTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			if g.name == "Event" && s.newStore(t).Capabilities().Events == nil {
				t.Skip("the store declares no events (Capabilities().Events is nil)")
			}
			if !g.parallel {
				for _, tt := range g.tests {
					t.Run(tt.name, tt.fn)
				}
				return
			}
			// Not t.Parallel: these tests sleep, and -parallel (GOMAXPROCS by
			// default) would make them take turns on a small machine.
			var wg sync.WaitGroup
			for _, tt := range g.tests {
				wg.Go(func() { t.Run(tt.name, tt.fn) })
			}
			wg.Wait()
		})
	}
}

type test struct {
	name string
	fn   func(t *testing.T)
}

type suite struct {
	cfg Config
}

// newStore returns a fresh store with the default record size limit.
func (s *suite) newStore(t *testing.T) store.Store {
	t.Helper()
	return s.newStoreLimit(t, store.DefaultMaxRecordBytes)
}

func (s *suite) newStoreLimit(t *testing.T, maxRecordBytes int) store.Store {
	t.Helper()
	st := s.cfg.New(t, maxRecordBytes)
	if st == nil {
		t.Fatal("storetest: Config.New returned nil")
	}
	return st
}

// second returns a second instance sharing st's backend, or skips the test.
func (s *suite) second(t *testing.T, st store.Store) store.Store {
	t.Helper()
	if s.cfg.CrossProcess == nil {
		t.Skip("Config.CrossProcess is nil: the store is in-process")
	}
	st2 := s.cfg.CrossProcess(t, st)
	if st2 == nil {
		t.Fatal("storetest: Config.CrossProcess returned nil")
	}
	return st2
}

// newID returns a random id, so that tests on a shared backend never collide.
func newID(prefix string) string {
	return "storetest-" + prefix + "-" + rand.Text()
}

// waitEvent bounds every wait for an event. It is long because a loaded machine may
// take a while; a passing test never waits for it.
const waitEvent = 5 * time.Second

// hour is an idle timeout long enough never to expire during a test.
const hour = time.Hour

func create(t *testing.T, st store.Store, id string, rec store.Record, idle time.Duration) {
	t.Helper()
	if err := st.Create(t.Context(), id, rec, idle); err != nil {
		t.Fatalf("Create(%q): want nil error; got %v", id, err)
	}
}

func load(t *testing.T, st store.Store, id string) *store.Record {
	t.Helper()
	rec, err := st.Load(t.Context(), id, 0)
	if err != nil {
		t.Fatalf("Load(%q): want nil error; got %v", id, err)
	}
	if rec == nil {
		t.Fatalf("Load(%q): want a record; got nil and a nil error", id)
	}
	return rec
}

func save(t *testing.T, st store.Store, id string, ch store.Change) {
	t.Helper()
	if err := st.Save(t.Context(), id, ch, hour); err != nil {
		t.Fatalf("Save(%q): want nil error; got %v", id, err)
	}
}

// wantErr fails the test unless errors.Is(err, want).
func wantErr(t *testing.T, what string, want, err error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: want %v; got %v", what, want, err)
	}
}

// wantGone fails the test unless Load reports the session as not found.
func wantGone(t *testing.T, st store.Store, id, what string) {
	t.Helper()
	rec, err := st.Load(t.Context(), id, 0)
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load %s: want %v; got %v", what, store.ErrNotFound, err)
	}
	if rec != nil {
		t.Errorf("Load %s: want a nil record; got %+v", what, rec)
	}
}

// wantFields fails the test unless a loaded session's fields are exactly want.
func wantFields(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	if !maps.Equal(want, got) {
		t.Errorf("%s: want fields %q; got %q", what, want, got)
	}
}

// wantSet fails the test unless got holds the same strings as want, in any order.
func wantSet(t *testing.T, what string, want, got []string) {
	t.Helper()
	w, g := sortedSet(want), sortedSet(got)
	if !slices.Equal(w, g) {
		t.Errorf("%s: want %q; got %q", what, w, g)
	}
}

func sortedSet(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func hashes(ids ...string) []string {
	h := make([]string, len(ids))
	for i, id := range ids {
		h[i] = store.Hash(id)
	}
	return h
}

// sleepUntil sleeps until tm.
func sleepUntil(tm time.Time) {
	time.Sleep(time.Until(tm))
}

// timed runs check, a test of timing that uses unit as its time unit (the idle timeout
// of its sessions). check returns false when the machine stalled for so long that the
// check proves nothing: say a session expired before the test got to touch it, which
// the check tells from the clock, never from the store's answer. timed then tries again
// with a doubled unit, and after the last try skips the test rather than fail it for a
// slow machine.
func timed(t *testing.T, check func(t *testing.T, unit time.Duration) bool) {
	t.Helper()
	const tries = 3
	unit := 300 * time.Millisecond
	for i := range tries {
		if check(t, unit) || t.Failed() {
			return
		}
		if i < tries-1 {
			t.Logf("the machine stalled for longer than %v; trying again with a unit of %v", unit, 2*unit)
			unit *= 2
		}
	}
	t.Skipf("the machine stalled on every try (last unit %v); timing not checked", unit)
}
