package fibermp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
)

type step struct {
	Step     string
	Logins   int
	Session  *struct{ ID, Skey string }
	Status   int
	Data     map[string]any
	UserInfo map[string]any
	Type     string
	Message  string
}

// TestClientSDKs runs the real wafer-client-sdk and wafer2-client-sdk from npm, under
// node, against the middleware: login, an authenticated request, a field set by one
// request and read by the next, a session ended behind the client's back (the SDK logs
// in again and retries once), and logout. The wafer SDK runs a second time against the
// middleware mounted under app.Group("/api"), where it logs in at /api/login.
func TestClientSDKs(t *testing.T) {
	t.Parallel()
	dir := testenv.NodeSDKs(t)
	for _, tc := range []struct {
		name, sdk, prefix string
		p                 fibermp.Protocol
	}{
		{"wafer", "wafer", "", fibermp.Wafer},
		{"wafer2", "wafer2", "", fibermp.Wafer2},
		{"wafer under a group", "wafer", "/api", fibermp.Wafer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const openID = "o-node"
			// The routes run in the server's goroutines, set up before h is known.
			var hp atomic.Pointer[harness]
			h := newHarnessAt(t, tc.prefix, fibermp.Config{Protocol: tc.p}, func(app fiber.Router) {
				// What the stub wx object asks the test for.
				app.Get("/_wx/code", func(c *fiber.Ctx) error {
					h := hp.Load()
					return c.JSON(fiber.Map{"code": h.code(openID)})
				})
				app.Get("/_wx/userinfo", func(c *fiber.Ctx) error {
					h := hp.Load()
					info := map[string]any{"nickName": "Node", "openId": openID}
					enc, iv := h.wx.EncryptUserInfo(openID, info)
					return c.JSON(fiber.Map{"encryptedData": enc, "iv": iv, "userInfo": info})
				})
				app.Post("/_wx/expire", func(c *fiber.Ctx) error {
					h := hp.Load()
					_, err := h.store.DeleteOwner(c.UserContext(), openID)
					return err
				})
				routes(app)
			})
			hp.Store(h)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "compat.js", tc.sdk, h.url)
			cmd.Dir = dir
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			steps := map[string]step{}
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				var s step
				if json.Unmarshal(sc.Bytes(), &s) == nil {
					steps[s.Step] = s
				}
			}
			if err != nil {
				t.Fatalf("node: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
			}

			login := steps["login"]
			if login.Session == nil || login.Logins != 1 {
				t.Fatalf("login: want a stored session after 1 wx.login; got %+v", login)
			}
			if tc.p == fibermp.Wafer && (!hex64.MatchString(login.Session.ID) || !hex40.MatchString(login.Session.Skey)) {
				t.Errorf("login: want a 64-hex id and a 40-hex skey; got %+v", login.Session)
			}
			if got := steps["whoami"].Data["openid"]; got != openID {
				t.Errorf("whoami: want openid %q; got %v", openID, steps["whoami"])
			}
			if got := steps["get"].Data["color"]; got != "teal" {
				t.Errorf("get: want the color the previous request set; got %v", steps["get"])
			}
			exp := steps["after-expire"]
			if exp.Data["openid"] != openID || exp.Logins != 2 || exp.Session == nil || exp.Session.Skey == login.Session.Skey {
				t.Errorf("after-expire: want one more login, a new session and the retried reply; got %+v", exp)
			}
			if lo := steps["logout"]; lo.Status != 200 || lo.Data["code"] != 0.0 {
				t.Errorf("logout: want 200 {\"code\":0}; got %+v", lo)
			}
			al := steps["after-logout"]
			if al.Data["openid"] != openID || al.Logins != 3 {
				t.Errorf("after-logout: want one more login and the retried reply; got %+v", al)
			}
			if n := h.wx.Calls("jscode2session"); n != al.Logins {
				t.Errorf("want one jscode2session call per wx.login (%d); got %d", al.Logins, n)
			}
		})
	}
}
