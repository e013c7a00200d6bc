package wsauth_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/wsauth"
)

// changeAfterLoad lets another writer change (or delete) the session right after the
// upgrade's load, and waits until the write's event has been delivered, before the
// handle is registered for events.
type changeAfterLoad struct {
	store.Store
	armed     atomic.Bool
	delete    bool
	delivered chan struct{} // a value when the write's event has been delivered
}

// afterLoad is the origin of changeAfterLoad's writes.
const afterLoad = "after-load"

func (s *changeAfterLoad) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	rec, err := s.Store.Load(ctx, id, touch)
	if err == nil && touch > 0 && s.armed.CompareAndSwap(true, false) {
		w := s.Store.Capabilities().Events.From(afterLoad)
		if s.delete {
			_ = w.Delete(context.Background(), id)
		} else {
			_ = w.Save(context.Background(), id, store.Change{Set: map[string]string{"x": `"new"`}}, 0)
		}
		select {
		case <-s.delivered:
		case <-time.After(5 * time.Second): // the test fails on what the handle reads
		}
	}
	return rec, err
}

// TestChangeBetweenLoadAndAttach: a change or logout that lands between the upgrade's
// load and the handle's registration is not missed.
func TestChangeBetweenLoadAndAttach(t *testing.T) {
	t.Parallel()
	for _, del := range []bool{false, true} {
		mem := memstore.New()
		t.Cleanup(func() { _ = mem.Close() })
		st := &changeAfterLoad{Store: mem, delete: del, delivered: make(chan struct{}, 1)}
		s := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Token})
		tok := s.login(t, "o-win")
		keep := mustDial(t, s.wsURL(""), bearer(s.login(t, "o-other"))) // the registry exists
		_ = keep
		// Subscribed after the registry: the store calls it once the registry has had
		// the event.
		unsubscribe, err := mem.Subscribe(func(ev store.Event) {
			if ev.Origin == afterLoad {
				st.delivered <- struct{}{}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(unsubscribe)
		s.post(t, "/set/x/old", tok)
		st.armed.Store(true)
		conn := mustDial(t, s.wsURL(""), bearer(tok))
		if !del {
			if got := call(t, conn, "get x"); got != `"new"` {
				t.Errorf("a change made between the upgrade's load and the handle's registration: the live handle reads %s, the store holds \"new\"", got)
			}
			continue
		}
		if code, _ := closeCode(conn, 2*time.Second); code != wsauth.CloseLoggedOut {
			t.Errorf("session logged out between the upgrade's load and registration: socket not closed within 2 s (code %d)", code)
		}
	}
}
