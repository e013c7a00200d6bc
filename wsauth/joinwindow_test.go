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
// upgrade's load, before the handle is registered for events.
type changeAfterLoad struct {
	store.Store
	armed  atomic.Bool
	delete bool
}

func (s *changeAfterLoad) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	rec, err := s.Store.Load(ctx, id, touch)
	if err == nil && touch > 0 && s.armed.CompareAndSwap(true, false) {
		if s.delete {
			_ = s.Store.Delete(context.Background(), id)
		} else {
			_ = s.Store.Save(context.Background(), id, store.Change{Set: map[string]string{"x": `"new"`}}, 0)
		}
		time.Sleep(50 * time.Millisecond) // the event is delivered before the handle joins
	}
	return rec, err
}

// TestChangeBetweenLoadAndAttach: a change or logout that lands between the upgrade's
// load and the handle's registration is not missed.
func TestChangeBetweenLoadAndAttach(t *testing.T) {
	for _, del := range []bool{false, true} {
		mem := memstore.New()
		t.Cleanup(func() { _ = mem.Close() })
		st := &changeAfterLoad{Store: mem, delete: del}
		s := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Token})
		tok := s.login(t, "o-win")
		keep := mustDial(t, s.wsURL(""), bearer(s.login(t, "o-other"))) // the registry exists
		_ = keep
		s.post(t, "/set/x/old", tok)
		st.armed.Store(true)
		conn := mustDial(t, s.wsURL(""), bearer(tok))
		time.Sleep(200 * time.Millisecond)
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
