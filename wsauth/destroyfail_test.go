package wsauth_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	fws "github.com/gofiber/contrib/websocket"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/wsauth"
)

type flakyDelete struct {
	store.Store
	fail atomic.Bool
}

func (f *flakyDelete) Delete(ctx context.Context, id string) error {
	if f.fail.Load() {
		return errors.New("dial tcp 10.0.0.7:6379: connection refused")
	}
	return f.Store.Delete(ctx, id)
}

// TestDestroyFailureKeepsEvents: a Handle.Destroy that fails returns, and the store's
// events keep closing other sockets on logout.
func TestDestroyFailureKeepsEvents(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	st := &flakyDelete{Store: mem}
	s := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Token}, func(app *app) {
		app.Get("/destroyer", app.ws(wsauth.Config{}).Upgrade(func(c *wsauth.Conn) {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				err := c.Session().Destroy()
				_ = c.WriteMessage(fws.TextMessage, []byte("destroy: "+errString(err)))
			}
		}))
	})
	a, b := s.login(t, "o-a"), s.login(t, "o-b")
	ca := mustDial(t, "ws"+s.url[4:]+"/destroyer", bearer(a))
	cb := mustDial(t, s.wsURL(""), bearer(b))
	if got := call(t, cb, "who"); got != "o-b" {
		t.Fatal(got)
	}
	st.fail.Store(true)
	_ = ca.WriteMessage(1, []byte("destroy"))
	_ = ca.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := ca.ReadMessage(); err != nil {
		t.Errorf("Handle.Destroy with the store failing never returned: %v", err)
	}
	st.fail.Store(false)
	// A change event for A, which would block the events on A's lock if the failed
	// Destroy kept it, then B's logout: the store delivers them in that order.
	s.post(t, "/set/x/1", a)
	s.post(t, "/logout-all", b)
	if code, reason := closeCode(cb, 2*time.Second); code != wsauth.CloseRevoked {
		t.Errorf("B's socket after B's logout: want close %d; got %d %q", wsauth.CloseRevoked, code, reason)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
