package wsauth

import (
	"context"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/session"
	"github.com/mpsession/mpsession/store"
)

// TestMissedEvents: a handle joining the registry learns what happened to its session
// since the upgrade loaded it, and asks for a reload when the registry cannot tell.
func TestMissedEvents(t *testing.T) {
	mem := store.NewMemory()
	t.Cleanup(func() { _ = mem.Close() })
	eng := &session.Engine{Store: mem, Idle: time.Hour}
	handle := func(id string) *Handle {
		rec := &store.Record{Fields: map[string]string{}, Owner: "o-" + id}
		return &Handle{st: eng.NewState(context.Background(), session.Credentials{ID: id}, rec), hash: store.Hash(id)}
	}
	event := func(r *registry, kind store.EventKind, id string) {
		r.onEvent(store.Event{Kind: kind, Hash: store.Hash(id)})
	}

	early := handle("early") // loaded before the registry subscribed
	r := &registry{handles: map[string]map[*Handle]struct{}{}, owners: map[string]int{}, created: time.Now(), key: eng}
	if got := r.add(early); got != store.EventResync {
		t.Errorf("loaded before the subscription: want %v; got %v", store.EventResync, got)
	}

	time.Sleep(time.Millisecond)
	event(r, store.EventChanged, "quiet") // before the next loads
	time.Sleep(time.Millisecond)
	quiet, changed, ended := handle("quiet"), handle("changed"), handle("ended")
	event(r, store.EventChanged, "other")
	event(r, store.EventChanged, "changed")
	event(r, store.EventChanged, "ended")
	event(r, store.EventDeleted, "ended")
	for _, tc := range []struct {
		h    *Handle
		want store.EventKind
	}{{quiet, 0}, {changed, store.EventChanged}, {ended, store.EventDeleted}} {
		if got := r.add(tc.h); got != tc.want {
			t.Errorf("%s: want %v; got %v", tc.h.st.ID(), tc.want, got)
		}
	}

	busy := handle("busy")
	for i := 0; i < recentEvents; i++ {
		event(r, store.EventChanged, "someone-else")
	}
	if got := r.add(busy); got != store.EventResync {
		t.Errorf("more events than remembered since the load: want %v; got %v", store.EventResync, got)
	}
}
