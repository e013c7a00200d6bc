package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

// The expiry tests run concurrently (unless Config.Serial), as they mostly sleep. Each
// notes the clock around the calls it makes, and a check that a session is still alive
// counts only when the clock shows that it must be.

func (s *suite) expiryTests() []test {
	return []test{
		{"Idle", s.testExpiryIdle},
		{"ExtendByLoad", s.testExtend("Load", func(t *testing.T, st store.Store, id string, idle time.Duration) error {
			rec, err := st.Load(t.Context(), id, idle)
			if err == nil && rec == nil {
				t.Error("Load: want a record; got nil and a nil error")
			}
			return err
		})},
		{"ExtendByTouch", s.testExtend("Touch", func(t *testing.T, st store.Store, id string, idle time.Duration) error {
			return st.Touch(t.Context(), id, idle)
		})},
		{"ExtendBySave", s.testExtend("Save", func(t *testing.T, st store.Store, id string, idle time.Duration) error {
			return st.Save(t.Context(), id, store.Change{Set: map[string]string{"saved": "1"}}, idle)
		})},
		{"IncrKeepsExpiry", s.testIncrKeepsExpiry},
		{"Deadline", s.testDeadline},
		{"NoResurrect", s.testNoResurrect},
		{"CreateAgain", s.testCreateAgain},
		{"Sessions", s.testExpirySessions},
		{"Ticket", s.testExpiryTicket},
		{"Event", s.testExpiryEvent},
	}
}

// margin allows for stores that keep time to the millisecond.
const margin = 5 * time.Millisecond

// wantAlive fails the test unless err is nil, or reports false (inconclusive) when the
// call that returned err ended too late to be sure the session was still alive: after
// expires.
func wantAlive(t *testing.T, what string, err error, expires time.Time) bool {
	t.Helper()
	if errors.Is(err, store.ErrNotFound) && !time.Now().Before(expires.Add(-margin)) {
		return false
	}
	if err != nil {
		t.Errorf("%s: want nil error; got %v", what, err)
	}
	return true
}

// testExpiryIdle checks that a session expires after its idle timeout, and that a Load
// without touch does not keep it alive.
func (s *suite) testExpiryIdle(t *testing.T) {
	st := s.newStore(t)
	timed(t, func(t *testing.T, unit time.Duration) bool {
		id := newID("id")
		start := time.Now()
		create(t, st, id, store.Record{Fields: map[string]string{"a": "1"}}, unit)
		created := time.Now()

		sleepUntil(start.Add(unit / 2))
		_, err := st.Load(t.Context(), id, 0)
		if !wantAlive(t, "Load before the idle timeout", err, start.Add(unit)) {
			return false
		}
		sleepUntil(created.Add(unit + unit/3))
		wantGone(t, st, id, "after the idle timeout, though loaded without touch")
		return true
	})
}

// testExtend checks that extend, called halfway through the idle timeout, keeps the
// session alive past it, and for no longer than one more idle timeout.
func (s *suite) testExtend(name string, extend func(t *testing.T, st store.Store, id string, idle time.Duration) error) func(t *testing.T) {
	return func(t *testing.T) {
		st := s.newStore(t)
		timed(t, func(t *testing.T, unit time.Duration) bool {
			id := newID("id")
			start := time.Now()
			create(t, st, id, store.Record{}, unit)
			created := time.Now()

			sleepUntil(start.Add(unit / 2))
			extStart := time.Now()
			err := extend(t, st, id, unit)
			extEnd := time.Now()
			if !wantAlive(t, name+" before the idle timeout", err, start.Add(unit)) {
				return false
			}
			if err != nil {
				return true // failed
			}

			// Past the first timeout, before the extended one.
			sleepUntil(created.Add(unit + unit/4))
			_, err = st.Load(t.Context(), id, 0)
			if !wantAlive(t, "Load past the idle timeout "+name+" extended", err, extStart.Add(unit)) {
				return false
			}
			sleepUntil(extEnd.Add(unit + unit/3))
			wantGone(t, st, id, "after the idle timeout "+name+" extended")
			return true
		})
	}
}

func (s *suite) testIncrKeepsExpiry(t *testing.T) {
	st := s.newStore(t)
	timed(t, func(t *testing.T, unit time.Duration) bool {
		id := newID("id")
		start := time.Now()
		create(t, st, id, store.Record{}, unit)
		created := time.Now()

		sleepUntil(start.Add(unit / 2))
		_, err := st.Incr(t.Context(), id, "n", 1)
		if !wantAlive(t, "Incr before the idle timeout", err, start.Add(unit)) {
			return false
		}
		sleepUntil(created.Add(unit + unit/3))
		wantGone(t, st, id, "after the idle timeout, though incremented")
		return true
	})
}

// testDeadline checks that no extension takes a session past its deadline.
func (s *suite) testDeadline(t *testing.T) {
	st := s.newStore(t)
	timed(t, func(t *testing.T, unit time.Duration) bool {
		id := newID("id")
		deadline := time.Now().Add(unit).Truncate(time.Millisecond)
		create(t, st, id, store.Record{Deadline: deadline}, hour)

		checkExpiresAt := func(what string, rec *store.Record) {
			t.Helper()
			if d := rec.Deadline.Sub(deadline).Abs(); d > time.Millisecond {
				t.Errorf("%s: Deadline: want %v; got %v", what, deadline, rec.Deadline)
			}
			if rec.ExpiresAt.After(deadline.Add(time.Millisecond)) || rec.ExpiresAt.Before(deadline.Add(-unit/3)) {
				t.Errorf("%s: ExpiresAt: want %v, the deadline; got %v", what, deadline, rec.ExpiresAt)
			}
		}
		rec, err := st.Load(t.Context(), id, hour)
		if !wantAlive(t, "Load with touch before the deadline", err, deadline) {
			return false
		}
		checkExpiresAt("Load with touch", rec)
		err = st.Touch(t.Context(), id, hour)
		if !wantAlive(t, "Touch before the deadline", err, deadline) {
			return false
		}
		err = st.Save(t.Context(), id, store.Change{Set: map[string]string{"a": "1"}}, hour)
		if !wantAlive(t, "Save before the deadline", err, deadline) {
			return false
		}
		rec, err = st.Load(t.Context(), id, 0)
		if !wantAlive(t, "Load before the deadline", err, deadline) {
			return false
		}
		checkExpiresAt("Load after Touch and Save", rec)

		sleepUntil(deadline.Add(unit / 3))
		_, err = st.Load(t.Context(), id, hour)
		wantErr(t, "Load with touch after the deadline", store.ErrNotFound, err)
		wantErr(t, "Touch after the deadline", store.ErrNotFound, st.Touch(t.Context(), id, hour))
		wantGone(t, st, id, "after the deadline")
		return true
	})
}

// testNoResurrect checks that no write brings back an expired session.
func (s *suite) testNoResurrect(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	id, owner := newID("id"), newID("owner")
	create(t, st, id, store.Record{Fields: map[string]string{"a": "1"}, Owner: owner}, 200*time.Millisecond)
	created := time.Now()
	sleepUntil(created.Add(300 * time.Millisecond))

	err := st.Save(ctx, id, store.Change{Set: map[string]string{"a": "2"}}, hour)
	wantErr(t, "Save of an expired session", store.ErrNotFound, err)
	_, err = st.Incr(ctx, id, "n", 1)
	wantErr(t, "Incr of an expired session", store.ErrNotFound, err)
	wantErr(t, "Touch of an expired session", store.ErrNotFound, st.Touch(ctx, id, hour))
	wantGone(t, st, id, "after writes to an expired session")
	got, err := st.Sessions(ctx, owner)
	if err != nil || len(got) != 0 {
		t.Errorf("Sessions after writes to an expired session: want [] and nil error; got %q and %v", got, err)
	}
}

// testCreateAgain checks that an expired session's id can be used again.
func (s *suite) testCreateAgain(t *testing.T) {
	st := s.newStore(t)
	id, owner1, owner2 := newID("id"), newID("owner"), newID("owner")
	create(t, st, id, store.Record{Fields: map[string]string{"a": "1"}, Owner: owner1}, 200*time.Millisecond)
	sleepUntil(time.Now().Add(300 * time.Millisecond))

	create(t, st, id, store.Record{Fields: map[string]string{"b": "2"}, Owner: owner2}, hour)
	rec := load(t, st, id)
	wantFields(t, "Load of a session created over an expired one", map[string]string{"b": "2"}, rec.Fields)
	if rec.Owner != owner2 {
		t.Errorf("Owner: want %q; got %q", owner2, rec.Owner)
	}
	got, err := st.Sessions(t.Context(), owner1)
	if err != nil || len(got) != 0 {
		t.Errorf("Sessions of the expired session's owner: want [] and nil error; got %q and %v", got, err)
	}
	got, err = st.Sessions(t.Context(), owner2)
	if err != nil {
		t.Fatalf("Sessions: want nil error; got %v", err)
	}
	wantSet(t, "Sessions of the new session's owner", hashes(id), got)
}

// testExpirySessions checks that expired sessions drop out of the owner index, and that
// DeleteOwner counts live sessions only.
func (s *suite) testExpirySessions(t *testing.T) {
	st := s.newStore(t)
	timed(t, func(t *testing.T, unit time.Duration) bool {
		owner1, owner2 := newID("owner"), newID("owner")
		short1, long1 := newID("short"), newID("long")
		start := time.Now()
		create(t, st, short1, store.Record{Owner: owner1}, unit)
		create(t, st, long1, store.Record{Owner: owner1}, hour)
		create(t, st, newID("short"), store.Record{Owner: owner2}, unit)
		long2 := newID("long")
		create(t, st, long2, store.Record{Owner: owner2}, hour)
		created := time.Now()

		got, err := st.Sessions(t.Context(), owner1)
		if err != nil {
			t.Fatalf("Sessions: want nil error; got %v", err)
		}
		if time.Since(start) >= unit-margin {
			return false
		}
		wantSet(t, "Sessions before the idle timeout", hashes(short1, long1), got)

		sleepUntil(created.Add(unit + unit/3))
		got, err = st.Sessions(t.Context(), owner1)
		if err != nil {
			t.Fatalf("Sessions: want nil error; got %v", err)
		}
		wantSet(t, "Sessions after the idle timeout", hashes(long1), got)
		n, err := st.DeleteOwner(t.Context(), owner2)
		if err != nil || n != 1 {
			t.Errorf("DeleteOwner of an owner with an expired session: want 1 (live sessions only) and nil error; got %d and %v", n, err)
		}
		wantGone(t, st, long2, "after DeleteOwner")
		return true
	})
}

func (s *suite) testExpiryTicket(t *testing.T) {
	st := s.newStore(t)
	timed(t, func(t *testing.T, unit time.Duration) bool {
		early, late := newID("ticket"), newID("ticket")
		start := time.Now()
		for _, ticket := range []string{early, late} {
			if err := st.PutTicket(t.Context(), ticket, "v", unit); err != nil {
				t.Fatalf("PutTicket: want nil error; got %v", err)
			}
		}
		put := time.Now()

		sleepUntil(start.Add(unit / 2))
		got, err := st.TakeTicket(t.Context(), early)
		if !wantAlive(t, "TakeTicket before the ticket expired", err, start.Add(unit)) {
			return false
		}
		if err == nil && got != "v" {
			t.Errorf("TakeTicket: want %q; got %q", "v", got)
		}
		sleepUntil(put.Add(unit + unit/3))
		_, err = st.TakeTicket(t.Context(), late)
		wantErr(t, "TakeTicket after the ticket expired", store.ErrNotFound, err)
		return true
	})
}

// testExpiryEvent checks that the store sends EventExpired, at the latest when a Load
// finds the session expired.
func (s *suite) testExpiryEvent(t *testing.T) {
	if s.cfg.SkipExpiryEvents {
		t.Skip("Config.SkipExpiryEvents: the store does not send EventExpired")
	}
	st := s.newStore(t)
	r := subscribe(t, st)
	id := newID("id")
	create(t, st, id, store.Record{}, 200*time.Millisecond)
	sleepUntil(time.Now().Add(300 * time.Millisecond))
	wantGone(t, st, id, "after the idle timeout")
	r.expect(t, "event of expiry", store.Event{Kind: store.EventExpired, Hash: store.Hash(id)}, id)
}
