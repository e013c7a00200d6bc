package wsauth

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/session"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
)

// TestMissedEvents: a handle joining the registry learns what happened to its session
// since the upgrade loaded it, and asks for a reload when the registry cannot tell.
func TestMissedEvents(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
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
	r := &registry{handles: map[string][]*Handle{}, owners: map[string]int{}, created: time.Now(), srv: &Server{eng: eng}}
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

// TestDeadlines: the registry's one expiry timer ends each handle at its session's
// absolute deadline, earliest first, and a handle that ends first leaves the queue.
func TestDeadlines(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	eng := &session.Engine{Store: mem, Idle: time.Hour}
	r := &registry{handles: map[string][]*Handle{}, owners: map[string]int{}, created: time.Now(), srv: &Server{eng: eng}}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.expiry != nil {
			r.expiry.Stop()
		}
	})
	now := time.Now()
	handle := func(id string, in time.Duration) *Handle {
		rec := &store.Record{Fields: map[string]string{}, Owner: "o-" + id}
		ctx, cancel := context.WithCancel(context.Background())
		h := &Handle{st: eng.NewState(context.Background(), session.Credentials{ID: id}, rec), hash: store.Hash(id), reg: r, ctx: ctx, cancel: cancel}
		if in != 0 {
			h.deadline = now.Add(in)
		}
		r.add(h)
		return h
	}
	// checkQueue checks that the queue is a heap whose handles know their places.
	checkQueue := func(when string) {
		t.Helper()
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, h := range r.deadlines {
			if h.queued != i+1 {
				t.Fatalf("%s: handle %d of the queue thinks it is at %d", when, i, h.queued-1)
			}
			if i > 0 && r.deadlines[(i-1)/2].deadline.After(h.deadline) {
				t.Fatalf("%s: handle %d is due before its parent", when, i)
			}
		}
	}

	// Many handles, due in an hour or more, half of which end first.
	rng := rand.New(rand.NewPCG(1, 2))
	var many []*Handle
	for i := range 500 {
		many = append(many, handle(fmt.Sprintf("many-%d", i), time.Hour+time.Duration(rng.IntN(1000))*time.Second))
	}
	checkQueue("after 500 joined")
	for _, i := range rng.Perm(len(many))[:250] {
		many[i].end(ErrClosed)
		if many[i].queued != 0 {
			t.Fatalf("an ended handle is still queued at %d", many[i].queued-1)
		}
	}
	checkQueue("after 250 left")

	none := handle("none", 0)
	soon := handle("soon", 50*time.Millisecond)
	past := handle("past", -time.Second)
	closed := handle("closed", 40*time.Millisecond)
	closed.end(ErrClosed)
	if none.queued != 0 {
		t.Errorf("a handle without a deadline is queued")
	}
	for _, h := range []*Handle{past, soon} {
		select {
		case <-h.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not ended 10 s after its deadline", h.st.ID())
		}
		if err := h.Err(); err != ErrExpired {
			t.Errorf("%s: want %v; got %v", h.st.ID(), ErrExpired, err)
		}
	}
	if err := closed.Err(); err != ErrClosed {
		t.Errorf("closed: want %v; got %v", ErrClosed, err)
	}
	if err := none.Err(); err != nil {
		t.Errorf("none: want no end; got %v", err)
	}
	checkQueue("after the expiries")
	r.mu.Lock()
	left := len(r.deadlines)
	r.mu.Unlock()
	if left != 250 {
		t.Errorf("want the 250 handles due in an hour queued; got %d", left)
	}
	for _, h := range append(many, none) {
		h.end(ErrClosed)
	}
	checkQueue("at the end")
}
