package wsauth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/wsauth"
)

// Handle's doc: after the session ends, "a write then returns Err's error".
// TestWriteAfterLogout: a write on a handle whose session ended returns why it ended.
func TestWriteAfterLogout(t *testing.T) {
	t.Parallel()
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			waiting := make(chan struct{})
			got := make(chan [2]error, 1)
			s := newServer(t, mk(t), nil, fibermp.Config{Protocol: fibermp.Token}, func(app *app) {
				app.Get("/waiter", app.ws(wsauth.Config{}).Upgrade(func(c *wsauth.Conn) {
					h := c.Session()
					close(waiting)
					<-h.Done()
					got <- [2]error{h.Set("x", 1), h.Err()}
				}))
			})
			tok := s.login(t, "o-w")
			_ = mustDial(t, "ws"+s.url[4:]+"/waiter", bearer(tok))
			<-waiting // the handler holds the live handle
			s.post(t, "/logout-all", tok)
			select {
			case e := <-got:
				if !errors.Is(e[0], e[1]) {
					t.Errorf("want Set's error to be Err's (%v); got %v", e[1], e[0])
				}
			case <-time.After(3 * time.Second):
				t.Fatal("handle did not end")
			}
		})
	}
}
