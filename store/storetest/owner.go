package storetest

import (
	"testing"

	"github.com/mpsession/mpsession/store"
)

func (s *suite) ownerTests() []test {
	return []test{
		{"Sessions", s.testSessions},
		{"DeleteOwner", s.testDeleteOwner},
		{"UnknownOwner", s.testUnknownOwner},
	}
}

func (s *suite) testSessions(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	ownerA, ownerB := newID("owner"), newID("owner")
	a := []string{newID("a"), newID("a"), newID("a")}
	b := newID("b")
	for _, id := range a {
		create(t, st, id, store.Record{Owner: ownerA}, hour)
	}
	create(t, st, b, store.Record{Owner: ownerB}, hour)
	create(t, st, newID("none"), store.Record{}, hour)

	sessions := func(owner string) []string {
		t.Helper()
		got, err := st.Sessions(ctx, owner)
		if err != nil {
			t.Fatalf("Sessions: want nil error; got %v", err)
		}
		return got
	}
	wantSet(t, "Sessions of owner A", hashes(a...), sessions(ownerA))
	wantSet(t, "Sessions of owner B", hashes(b), sessions(ownerB))

	if err := st.Delete(ctx, a[1]); err != nil {
		t.Fatalf("Delete: want nil error; got %v", err)
	}
	wantSet(t, "Sessions of owner A after Delete", hashes(a[0], a[2]), sessions(ownerA))
}

func (s *suite) testDeleteOwner(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	ownerA, ownerB := newID("owner"), newID("owner")
	a := []string{newID("a"), newID("a"), newID("a"), newID("a")}
	b := newID("b")
	for _, id := range a {
		create(t, st, id, store.Record{Fields: map[string]string{"v": id}, Owner: ownerA}, hour)
	}
	create(t, st, b, store.Record{Owner: ownerB}, hour)

	// keep names ids, and ids of other owners' sessions are left alone.
	n, err := st.DeleteOwner(ctx, ownerA, a[1], b, newID("unknown"))
	if err != nil || n != 3 {
		t.Errorf("DeleteOwner keeping one: want 3 and nil error; got %d and %v", n, err)
	}
	for _, id := range []string{a[0], a[2], a[3]} {
		wantGone(t, st, id, "of a session DeleteOwner removed")
	}
	wantFields(t, "Load of the session DeleteOwner kept", map[string]string{"v": a[1]}, load(t, st, a[1]).Fields)
	load(t, st, b)
	got, err := st.Sessions(ctx, ownerA)
	if err != nil {
		t.Fatalf("Sessions: want nil error; got %v", err)
	}
	wantSet(t, "Sessions after DeleteOwner", hashes(a[1]), got)

	n, err = st.DeleteOwner(ctx, ownerA)
	if err != nil || n != 1 {
		t.Errorf("DeleteOwner keeping none: want 1 and nil error; got %d and %v", n, err)
	}
	wantGone(t, st, a[1], "after DeleteOwner keeping none")
	got, err = st.Sessions(ctx, ownerA)
	if err != nil || len(got) != 0 {
		t.Errorf("Sessions after DeleteOwner keeping none: want [] and nil error; got %q and %v", got, err)
	}
	got, err = st.Sessions(ctx, ownerB)
	if err != nil {
		t.Fatalf("Sessions: want nil error; got %v", err)
	}
	wantSet(t, "Sessions of another owner after DeleteOwner", hashes(b), got)
}

func (s *suite) testUnknownOwner(t *testing.T) {
	st := s.newStore(t)
	owner := newID("owner")
	got, err := st.Sessions(t.Context(), owner)
	if err != nil || len(got) != 0 {
		t.Errorf("Sessions of an unknown owner: want [] and nil error; got %q and %v", got, err)
	}
	n, err := st.DeleteOwner(t.Context(), owner)
	if err != nil || n != 0 {
		t.Errorf("DeleteOwner of an unknown owner: want 0 and nil error; got %d and %v", n, err)
	}
}
