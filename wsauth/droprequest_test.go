package wsauth_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/wsauth"
)

// TestUpgradeRequestDropped: once a socket is up, wsauth lets go of the upgrade
// request's buffers, which fasthttp would keep for the socket's life. The handler still
// sees what contrib/websocket copied from the request (headers, query, params, IP),
// and the app serves requests as before on the RequestCtxs that come back to
// fasthttp's pool emptied.
func TestUpgradeRequestDropped(t *testing.T) {
	t.Parallel()
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{Protocol: fibermp.Token}, func(app *app) {
		app.Get("/seen/:room", app.ws(uncapped).Upgrade(func(c *wsauth.Conn) {
			seen := strings.Join([]string{c.Headers("User-Agent"), c.Headers("X-Game"), c.Query("q"), c.Params("room"), c.IP(), c.Session().OpenID()}, "|")
			if c.WriteMessage(fws.TextMessage, []byte(seen)) != nil {
				return
			}
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}))
		app.Post("/echo/:k", func(c *fiber.Ctx) error {
			return c.SendString(c.Params("k") + "|" + c.Get("X-Game") + "|" + c.Query("q") + "|" + string(c.Body()))
		})
	})
	token := s.login(t, "o-dropped")
	// A connection per request: each takes a RequestCtx from fasthttp's pool, among
	// them those the sockets emptied.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	wsBase := "ws" + strings.TrimPrefix(s.url, "http")
	for i := range 50 {
		h := bearer(token)
		h.Set("User-Agent", fmt.Sprintf("ua-%d", i))
		h.Set("X-Game", fmt.Sprintf("g-%d", i))
		conn := mustDial(t, fmt.Sprintf("%s/seen/r%d?q=q%d", wsBase, i, i), h)
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("ua-%d|g-%d|q%d|r%d|127.0.0.1|o-dropped", i, i, i, i); string(msg) != want {
			t.Fatalf("the handler saw %q; want %q", msg, want)
		}
		_ = conn.Close()

		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/echo/k%d?q=q%d", s.url, i, i), strings.NewReader(fmt.Sprintf("body-%d", i)))
		req.Header.Set("X-Game", fmt.Sprintf("g-%d", i))
		resp, err := fresh.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("k%d|g-%d|q%d|body-%d", i, i, i, i); err != nil || resp.StatusCode != http.StatusOK || string(body) != want {
			t.Fatalf("POST /echo: HTTP %d %q (%v); want 200 %q", resp.StatusCode, body, err, want)
		}
	}
	fresh.CloseIdleConnections()
	waitHandles(t, 0)
}
