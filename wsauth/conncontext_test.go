package wsauth_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/wsauth"
)

// TestConnContext: a socket's Context is done when the server closes the socket, when
// its session ends, and when its handler returns, and not before.
func TestConnContext(t *testing.T) {
	t.Parallel()
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	ctxs := make(chan context.Context, 4)
	s := newServer(t, st, nil, fibermp.Config{}, func(a *app) {
		a.Get("/ctx", a.ws(uncapped).Upgrade(func(c *wsauth.Conn) {
			ctx := c.Context()
			ctxs <- ctx
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				switch string(msg) {
				case "close":
					_ = c.CloseWith(4100, "asked")
				case "return":
					return
				}
			}
		}))
	})
	url := s.wsURL("")[:len(s.wsURL(""))-len("/ws")] + "/ctx"
	token := s.login(t, "o-ctx")
	done := func(what string, ctx context.Context) {
		t.Helper()
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the socket's Context is not done", what)
		}
	}
	for _, how := range []string{"close", "return", "logout"} {
		conn := mustDial(t, url, bearer(token))
		ctx := <-ctxs
		if ctx.Err() != nil {
			t.Fatalf("%s: the Context of an open socket is done: %v", how, ctx.Err())
		}
		switch how {
		case "logout":
			if code := s.post(t, "/logout", token); code != 204 {
				t.Fatalf("logout: %d", code)
			}
			token = s.login(t, "o-ctx")
		default:
			if err := conn.WriteMessage(1, []byte(how)); err != nil {
				t.Fatal(err)
			}
		}
		done(how, ctx)
		_ = conn.Close()
	}
}
