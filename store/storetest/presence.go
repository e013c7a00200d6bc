package storetest

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

// presenceTests check store.Presence, for stores that implement it; for the others
// they pass at once.
func (s *suite) presenceTests() []test {
	return []test{
		{"AddListRemove", s.testPresenceAddListRemove},
		{"Bad", s.testPresenceBad},
	}
}

// presences returns the store under test's Presence and a second one sharing its
// backend (the same for in-process stores); ok is false when the store keeps none.
func (s *suite) presences(t *testing.T) (a, b store.Presence, ok bool) {
	t.Helper()
	st := s.newStore(t)
	p := st.Capabilities().Presence
	if p == nil {
		t.Logf("%T keeps no presence (Capabilities().Presence is nil): nothing to check", st)
		return nil, nil, false
	}
	if s.cfg.CrossProcess == nil {
		return p, p, true
	}
	p2 := s.cfg.CrossProcess(t, st).Capabilities().Presence
	if p2 == nil {
		t.Fatal("storetest: the CrossProcess store keeps no presence, but the store does")
	}
	return p, p2, true
}

// testPresenceAddListRemove: members added by two processes are listed by both, until
// removed; a room nobody is in lists none.
func (s *suite) testPresenceAddListRemove(t *testing.T) {
	a, b, ok := s.presences(t)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	room := newTopic("presence")
	list := func(p store.Presence, want map[string]string, what string) {
		t.Helper()
		got, err := p.PresenceList(ctx, room)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: want %v; got %v", what, want, got)
		}
	}
	list(a, map[string]string{}, "an empty room")
	for _, step := range []struct {
		p             store.Presence
		member, value string
	}{{a, "s1", "o-ann"}, {a, "s2", "o-ann"}, {b, "s3", "o-bob"}} {
		if err := step.p.PresenceAdd(ctx, room, step.member, step.value); err != nil {
			t.Fatal(err)
		}
	}
	all := map[string]string{"s1": "o-ann", "s2": "o-ann", "s3": "o-bob"}
	list(a, all, "three members, from the first process")
	list(b, all, "three members, from the second process")
	if err := a.PresenceAdd(ctx, room, "s1", "o-ann"); err != nil {
		t.Fatal(err)
	}
	list(b, all, "a member added twice")
	if err := a.PresenceRemove(ctx, room, "s2"); err != nil {
		t.Fatal(err)
	}
	if err := b.PresenceRemove(ctx, room, "nobody"); err != nil {
		t.Fatal(err)
	}
	list(b, map[string]string{"s1": "o-ann", "s3": "o-bob"}, "after a member left")
	for _, m := range []struct {
		p      store.Presence
		member string
	}{{a, "s1"}, {b, "s3"}} {
		if err := m.p.PresenceRemove(ctx, room, m.member); err != nil {
			t.Fatal(err)
		}
	}
	list(a, map[string]string{}, "after everyone left")
}

// testPresenceBad: bad rooms and members are refused.
func (s *suite) testPresenceBad(t *testing.T) {
	a, _, ok := s.presences(t)
	if !ok {
		return
	}
	ctx := context.Background()
	if err := a.PresenceAdd(ctx, "", "m", "v"); err == nil {
		t.Error("PresenceAdd to an empty room: want an error")
	}
	if err := a.PresenceAdd(ctx, newTopic("bad"), "", "v"); err == nil {
		t.Error("PresenceAdd of an empty member: want an error")
	}
	if _, err := a.PresenceList(ctx, ""); err == nil {
		t.Error("PresenceList of an empty room: want an error")
	}
}
