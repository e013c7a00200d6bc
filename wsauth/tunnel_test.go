package wsauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// tunnel speaks the wafer tunnel's packets: "ping" -> "pong", and a
// message:{"type":T,"content":C} is answered with an "echo" message that carries the
// socket's openid, read from its live session.
func tunnel(c *wsauth.Conn) {
	s := c.Session()
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		kind, content, _ := strings.Cut(string(msg), ":")
		switch kind {
		case "ping":
			_ = c.WriteMessage(fws.TextMessage, []byte("pong"))
		case "message":
			var m struct {
				Type    string          `json:"type"`
				Content json.RawMessage `json:"content"`
			}
			_ = json.Unmarshal([]byte(content), &m)
			reply, _ := json.Marshal(fiber.Map{"type": "echo", "content": fiber.Map{"openid": s.OpenID(), "got": m.Type, "content": m.Content}})
			_ = c.WriteMessage(fws.TextMessage, append([]byte("message:"), reply...))
		case "close":
			return
		}
	}
}

// TestSDKTunnel runs the Tunnel of the real wafer-client-sdk and wafer2-client-sdk
// (npm) under node against wsauth: the SDK asks the ticket endpoint for the socket URL,
// connects with the ticket, and its messages reach a handler that knows who it is.
func TestSDKTunnel(t *testing.T) {
	t.Parallel()
	dir := testenv.NodeSDKs(t)
	for _, tc := range []struct {
		sdk string
		p   fibermp.Protocol
	}{{"wafer", fibermp.Wafer}, {"wafer2", fibermp.Wafer2}} {
		t.Run(tc.sdk, func(t *testing.T) {
			wechat := wxtest.NewServer(appID, appSecret)
			t.Cleanup(wechat.Close)
			s := newServer(t, stores(t)["memory"](t), wechat, fibermp.Config{Protocol: tc.p}, func(app *app) {
				// What the stub wx object asks the test for.
				app.Get("/_wx/code", func(c *fiber.Ctx) error {
					return c.JSON(fiber.Map{"code": wechat.NewCode("o-tunnel")})
				})
				app.Get("/_wx/userinfo", func(c *fiber.Ctx) error {
					return c.JSON(fiber.Map{}) // no encrypted data: a code-only login
				})
				ws := app.ws(wsauth.Config{TicketURL: "/wafer-ws"})
				app.Get("/wafer-ws", ws.Upgrade(tunnel))
				app.Get("/wafer-tunnel", ws.Tickets())
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "--experimental-websocket", "--no-warnings", "tunnel.js", tc.sdk, s.url)
			cmd.Dir = dir
			cmd.Env = append(cmd.Environ(), "TUNNEL_PATH=/wafer-tunnel")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("node: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
			}
			var got struct {
				Echo struct {
					OpenID  string
					Got     string
					Content map[string]any
				}
			}
			if err := json.Unmarshal(bytes.TrimSpace(out), &got); err != nil {
				t.Fatalf("node printed %q: %v", out, err)
			}
			if got.Echo.OpenID != "o-tunnel" || got.Echo.Got != "hello" || got.Echo.Content["n"] != 1.0 {
				t.Errorf("want the echo of hello {n:1} from o-tunnel's socket; got %+v", got.Echo)
			}
		})
	}
}
