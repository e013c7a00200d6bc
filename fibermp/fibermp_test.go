package fibermp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/goleak"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/wx/wxtest"
)

func TestMain(m *testing.M) {
	testenv.QuietRedisLog()
	goleak.VerifyTestMain(m, testenv.IgnoreFasthttp...)
}

// routes are the application routes the tests use.
func routes(app fiber.Router) {
	app.Get("/whoami", fibermp.Required(), func(c *fiber.Ctx) error {
		s := fibermp.Get(c)
		return c.JSON(fiber.Map{"openid": s.OpenID(), "unionid": s.UnionID(), "userInfo": s.UserInfo(), "uid": s.Get("uid")})
	})
	app.Post("/color", fibermp.Required(), func(c *fiber.Ctx) error {
		var body struct{ Color string }
		if err := c.BodyParser(&body); err != nil {
			return err
		}
		if err := fibermp.Get(c).Set("color", body.Color); err != nil {
			return err
		}
		return c.JSON(fiber.Map{"ok": true})
	})
	app.Get("/color", fibermp.Required(), func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"color": fibermp.Get(c).GetString("color")})
	})
	app.Post("/set/:k/:v", fibermp.Required(), func(c *fiber.Ctx) error {
		return fibermp.Get(c).Set(c.Params("k"), c.Params("v"))
	})
	app.Get("/get/:k", fibermp.Required(), func(c *fiber.Ctx) error {
		return c.JSON(fibermp.Get(c).Get(c.Params("k")))
	})
	app.Post("/incr", fibermp.Required(), func(c *fiber.Ctx) error {
		n, err := fibermp.Get(c).Incr("n", 1)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"n": n})
	})
	app.Post("/fail", fibermp.Required(), func(c *fiber.Ctx) error {
		if err := fibermp.Get(c).Set("color", "lost"); err != nil {
			return err
		}
		return fiber.NewError(fiber.StatusTeapot, "handler failed")
	})
	app.Get("/public", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"session": fibermp.Get(c) != nil})
	})
}

var (
	hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)
	hex40 = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// loginWafer logs openID in with the Wafer protocol and returns the session headers.
func loginWafer(t testing.TB, h *harness, openID string) map[string]string {
	t.Helper()
	r := h.do(t, "GET", "/login", map[string]string{"X-WX-Code": h.code(openID)}, "")
	var body struct {
		Magic   int `json:"F2C224D4-2BCE-4C64-AF9F-A6D872000D1A"`
		Session struct{ ID, Skey string }
	}
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != 200 || body.Magic != 1 {
		t.Fatalf("wafer login: status %d, body %s", r.status, r.body)
	}
	return map[string]string{"X-WX-Id": body.Session.ID, "X-WX-Skey": body.Session.Skey}
}

func TestWaferLogin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer}, routes)
	r := h.do(t, "GET", "/login", map[string]string{"x-wx-code": h.code("o-alice")}, "")
	if r.status != 200 {
		t.Fatalf("want 200; got %d %s", r.status, r.body)
	}
	// The exact shape wafer-client-sdk expects, member for member.
	re := regexp.MustCompile(`^\{"F2C224D4-2BCE-4C64-AF9F-A6D872000D1A":1,"session":\{"id":"([0-9a-f]{64})","skey":"([0-9a-f]{40})"\}\}$`)
	m := re.FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("login reply %s does not match %s", r.body, re)
	}
	hdr := map[string]string{"X-WX-Id": string(m[1]), "X-WX-Skey": string(m[2])}

	r = h.do(t, "GET", "/whoami", hdr, "")
	if got := r.json(t)["openid"]; got != "o-alice" {
		t.Errorf("want openid %q; got %v (%s)", "o-alice", got, r.body)
	}

	t.Run("no query credentials by default", func(t *testing.T) {
		r := h.do(t, "GET", "/whoami?x-wx-id="+hdr["X-WX-Id"]+"&X-WX-SKEY="+hdr["X-WX-Skey"], nil, "")
		if r.json(t)["openid"] != nil || r.json(t)["error"] != "ERR_INVALID_SESSION" {
			t.Errorf("want the credentials in the query ignored; got %d %s", r.status, r.body)
		}
	})
	t.Run("wrong skey", func(t *testing.T) {
		r := h.do(t, "GET", "/whoami", map[string]string{"X-WX-Id": hdr["X-WX-Id"], "X-WX-Skey": fmt.Sprintf("%040d", 0)}, "")
		want := `{"F2C224D4-2BCE-4C64-AF9F-A6D872000D1A":1,"error":"ERR_INVALID_SESSION","message":"session expired or unknown, log in again"}`
		if r.status != 200 || string(r.body) != want {
			t.Errorf("want 200 %s; got %d %s", want, r.status, r.body)
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		r := h.do(t, "GET", "/whoami", map[string]string{"X-WX-Id": fmt.Sprintf("%064d", 0), "X-WX-Skey": hdr["X-WX-Skey"]}, "")
		if r.status != 200 || r.json(t)["error"] != "ERR_INVALID_SESSION" {
			t.Errorf("want 200 ERR_INVALID_SESSION; got %d %s", r.status, r.body)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		for _, hd := range []map[string]string{
			{"X-WX-Id": "short", "X-WX-Skey": hdr["X-WX-Skey"]},
			{"X-WX-Id": hdr["X-WX-Id"]},
			{"X-WX-Skey": hdr["X-WX-Skey"]},
			{"X-WX-Id": hdr["X-WX-Id"] + "0", "X-WX-Skey": hdr["X-WX-Skey"]},
		} {
			r := h.do(t, "GET", "/whoami", hd, "")
			if r.status != 400 || r.json(t)["error"] != "ERR_INVALID_SESSION" || r.json(t)[fibermp.MagicID] != 1.0 {
				t.Errorf("%v: want 400 with the magic key and ERR_INVALID_SESSION; got %d %s", hd, r.status, r.body)
			}
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		r := h.do(t, "GET", "/public", nil, "")
		if r.status != 200 || string(r.body) != `{"session":false}` {
			t.Errorf("want 200 {\"session\":false}; got %d %s", r.status, r.body)
		}
		r = h.do(t, "GET", "/whoami", nil, "")
		if r.status != 200 || r.json(t)["error"] != "ERR_INVALID_SESSION" {
			t.Errorf("Required: want 200 ERR_INVALID_SESSION, as the wafer SDK expects; got %d %s", r.status, r.body)
		}
	})
	t.Run("normal replies carry no magic key", func(t *testing.T) {
		r := h.do(t, "GET", "/color", hdr, "")
		if _, ok := r.json(t)[fibermp.MagicID]; ok {
			t.Errorf("a normal reply holds the magic key: %s", r.body)
		}
	})
}

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	for _, p := range []fibermp.Protocol{fibermp.Wafer, fibermp.Wafer2, fibermp.Token} {
		t.Run(p.String(), func(t *testing.T) {
			h := newHarness(t, fibermp.Config{Protocol: p}, routes)
			login := func(code string) reply {
				if p == fibermp.Token {
					return h.do(t, "POST", "/login", map[string]string{"Content-Type": "application/json"}, `{"code":"`+code+`"}`)
				}
				return h.do(t, "GET", "/login", map[string]string{"X-WX-Code": code}, "")
			}
			check := func(name string, r reply, status int, msg string) {
				t.Helper()
				m := r.json(t)
				if r.status != status || m["error"] != "ERR_LOGIN_FAILED" {
					t.Errorf("%s: want %d ERR_LOGIN_FAILED; got %d %s", name, status, r.status, r.body)
				}
				if got, _ := m["message"].(string); !regexp.MustCompile(msg).MatchString(got) {
					t.Errorf("%s: want a message matching %q; got %q", name, msg, got)
				}
				switch p {
				case fibermp.Wafer:
					if m[fibermp.MagicID] != 1.0 {
						t.Errorf("%s: the wafer login failure lacks the magic key: %s", name, r.body)
					}
				case fibermp.Wafer2:
					if m["code"] != -1.0 {
						t.Errorf("%s: want code -1; got %s", name, r.body)
					}
				}
			}
			check("invalid code", login("no-such-code"), 401, "40029")
			code := h.code("o-bob")
			if r := login(code); r.status != 200 {
				t.Fatalf("first use of a code: want 200; got %d %s", r.status, r.body)
			}
			check("used code", login(code), 401, "40163")

			h.wx.Fail("jscode2session", wxtest.Fault{ErrCode: 45011})
			check("rate limited", login(h.code("o-bob")), 429, "45011")
			h.wx.Fail("jscode2session", wxtest.Fault{ErrCode: -1})
			check("busy", login(h.code("o-bob")), 503, "errcode -1")
			h.wx.Fail("jscode2session", wxtest.Fault{ErrCode: 40226})
			check("blocked", login(h.code("o-bob")), 403, "40226")
			h.wx.Fail("jscode2session", wxtest.Fault{Status: 502})
			check("http 5xx", login(h.code("o-bob")), 502, "502")
			h.wx.Fail("jscode2session", wxtest.Fault{Body: "<html>oops"})
			check("malformed body", login(h.code("o-bob")), 502, ".")
			// A reply that cannot be read may still hold a session_key: it must not
			// reach the client (h.do checks every reply for it).
			leaked := "tiihtNczf5v6AKRyjwEUhQ=="
			h.sessionKs = append(h.sessionKs, leaked)
			h.wx.Fail("jscode2session", wxtest.Fault{Body: `{"session_key":"` + leaked + `","openid":"o1","unionid":5}`})
			check("unreadable body with a session_key", login(h.code("o-bob")), 502, ".")

			var missing reply
			if p == fibermp.Token {
				missing = h.do(t, "POST", "/login", nil, `{"cod":"x"}`)
			} else {
				missing = h.do(t, "GET", "/login", nil, "")
			}
			check("missing code", missing, 400, "(?i)code")
			sessions, err := h.store.Sessions(context.Background(), "o-bob")
			if err != nil || len(sessions) != 1 {
				t.Errorf("want exactly the one session of the good login; got %d, %v", len(sessions), err)
			}
		})
	}
}

func TestWafer2Protocol(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer2}, routes)
	r := h.do(t, "GET", "/login", map[string]string{"X-WX-Code": h.code("o-carol")}, "")
	re := regexp.MustCompile(`^\{"code":0,"data":\{"skey":"([0-9a-f]{64})","userinfo":\{\},"time":(\d+)\}\}$`)
	m := re.FindSubmatch(r.body)
	if r.status != 200 || m == nil {
		t.Fatalf("login reply %d %s does not match %s", r.status, r.body, re)
	}
	if ts, _ := strconv.ParseInt(string(m[2]), 10, 64); time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		t.Errorf("time %d is not now", ts)
	}
	hdr := map[string]string{"X-WX-Skey": string(m[1])}
	if got := h.do(t, "GET", "/whoami", hdr, "").json(t)["openid"]; got != "o-carol" {
		t.Errorf("want openid o-carol; got %v", got)
	}
	r = h.do(t, "GET", "/whoami", map[string]string{"X-WX-Skey": fmt.Sprintf("%064d", 1)}, "")
	want := `{"code":-1,"error":"ERR_SKEY_INVALID","message":"session expired or unknown, log in again"}`
	if r.status != 401 || string(r.body) != want {
		t.Errorf("want 401 %s; got %d %s", want, r.status, r.body)
	}
}

func TestTokenProtocol(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Token, IdleTimeout: time.Hour}, routes)
	r := h.do(t, "POST", "/login", map[string]string{"Content-Type": "application/json"}, `{"code":"`+h.code("o-dave")+`"}`)
	var body struct {
		Token     string
		ExpiresIn int64
		OpenID    string
	}
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != 200 || len(body.Token) != 43 || body.ExpiresIn != 3600 || body.OpenID != "o-dave" {
		t.Fatalf("login: got %d %s", r.status, r.body)
	}
	for name, hdr := range map[string]map[string]string{
		"bearer":       {"Authorization": "Bearer " + body.Token},
		"bearer case":  {"Authorization": "bearer " + body.Token},
		"X-Session-Id": {"X-Session-Id": body.Token},
	} {
		if got := h.do(t, "GET", "/whoami", hdr, "").json(t)["openid"]; got != "o-dave" {
			t.Errorf("%s: want openid o-dave; got %v", name, got)
		}
	}
	for name, tc := range map[string]struct {
		hdr    map[string]string
		status int
	}{
		"unknown token":  {map[string]string{"Authorization": "Bearer " + otherToken(body.Token)}, 401},
		"basic auth":     {map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 400},
		"short token":    {map[string]string{"X-Session-Id": "abc"}, 400},
		"empty bearer":   {map[string]string{"Authorization": "Bearer "}, 400},
		"bad characters": {map[string]string{"X-Session-Id": body.Token[:42] + "!"}, 400},
	} {
		r := h.do(t, "GET", "/whoami", tc.hdr, "")
		if r.status != tc.status || r.json(t)["error"] != "ERR_INVALID_SESSION" {
			t.Errorf("%s: want %d ERR_INVALID_SESSION; got %d %s", name, tc.status, r.status, r.body)
		}
	}
	for name, req := range map[string]struct{ method, body string }{
		"GET":        {"GET", ""},
		"not JSON":   {"POST", "code=abc"},
		"JSON array": {"POST", `["code"]`},
		"iv alone":   {"POST", `{"code":"c","iv":"x"}`},
		"huge code":  {"POST", `{"code":"` + string(make([]byte, 300)) + `"}`},
	} {
		r := h.do(t, req.method, "/login", map[string]string{"Content-Type": "application/json"}, req.body)
		if r.status != 400 || r.json(t)["error"] != "ERR_LOGIN_FAILED" {
			t.Errorf("%s: want 400 ERR_LOGIN_FAILED; got %d %s", name, r.status, r.body)
		}
	}
	r = h.do(t, "GET", "/logout", map[string]string{"Authorization": "Bearer " + body.Token}, "")
	if r.status != 204 {
		t.Errorf("logout: want 204; got %d %s", r.status, r.body)
	}
	if r := h.do(t, "GET", "/whoami", map[string]string{"Authorization": "Bearer " + body.Token}, ""); r.status != 401 {
		t.Errorf("after logout: want 401; got %d %s", r.status, r.body)
	}
}

func TestUserData(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer}, routes)
	info := map[string]any{"nickName": "Erin", "openId": "o-erin", "unionId": "u-erin"}
	h.wx.AddUser(wxtest.User{OpenID: "o-erin", UnionID: "u-erin"})
	h.wx.AddUser(wxtest.User{OpenID: "o-mallory"})
	login := func(openID string, hdr map[string]string) reply {
		hdr["X-WX-Code"] = h.code(openID)
		return h.do(t, "GET", "/login", hdr, "")
	}
	t.Run("verified and stored", func(t *testing.T) {
		enc, iv := h.wx.EncryptUserInfo("o-erin", info)
		r := login("o-erin", map[string]string{"X-WX-Encrypted-Data": enc, "X-WX-IV": iv})
		var body struct {
			Session  struct{ ID, Skey string }
			UserInfo map[string]any
		}
		if err := json.Unmarshal(r.body, &body); err != nil || body.UserInfo["nickName"] != "Erin" {
			t.Fatalf("want the user info in the login reply; got %d %s", r.status, r.body)
		}
		who := h.do(t, "GET", "/whoami", map[string]string{"X-WX-Id": body.Session.ID, "X-WX-Skey": body.Session.Skey}, "").json(t)
		if ui, _ := who["userInfo"].(map[string]any); ui["nickName"] != "Erin" {
			t.Errorf("want the stored user info; got %v", who)
		}
	})
	t.Run("encrypted with another session_key", func(t *testing.T) {
		enc, iv := h.wx.EncryptUserInfo("o-erin", info)
		h.wx.RotateSessionKey("o-erin")
		r := login("o-erin", map[string]string{"X-WX-Encrypted-Data": enc, "X-WX-IV": iv})
		if r.status != 400 || r.json(t)["error"] != "ERR_LOGIN_FAILED" {
			t.Errorf("want 400 ERR_LOGIN_FAILED; got %d %s", r.status, r.body)
		}
	})
	t.Run("another user's data", func(t *testing.T) {
		enc, iv := h.wx.EncryptUserInfo("o-mallory", map[string]any{"openId": "o-mallory"})
		// Encrypted for mallory's session_key, which this login's code does not have:
		// either the decryption or the openid check refuses it.
		r := login("o-frank", map[string]string{"X-WX-Encrypted-Data": enc, "X-WX-IV": iv})
		if r.status != 400 {
			t.Errorf("want 400; got %d %s", r.status, r.body)
		}
	})
	t.Run("signature", func(t *testing.T) {
		raw := `{"nickName":"Erin"}`
		sig := h.wx.SignRawData("o-erin", raw)
		r := login("o-erin", map[string]string{"X-WX-RawData": raw, "X-WX-Signature": sig})
		if r.status != 200 {
			t.Errorf("good signature: want 200; got %d %s", r.status, r.body)
		}
		r = login("o-erin", map[string]string{"X-WX-RawData": raw, "X-WX-Signature": fmt.Sprintf("%040d", 0)})
		if r.status != 400 || r.json(t)["error"] != "ERR_LOGIN_FAILED" {
			t.Errorf("bad signature: want 400 ERR_LOGIN_FAILED; got %d %s", r.status, r.body)
		}
	})
}

func TestOnLogin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, OnLogin: func(c *fiber.Ctx, l *fibermp.Login) error {
		if l.OpenID == "o-banned" {
			return errors.New("this account is suspended")
		}
		return l.Set("uid", 42)
	}}, routes)
	hdr := loginWafer(t, h, "o-gina")
	if got := h.do(t, "GET", "/whoami", hdr, "").json(t)["uid"]; got != 42.0 {
		t.Errorf("want uid 42 added by OnLogin; got %v", got)
	}
	r := h.do(t, "GET", "/login", map[string]string{"X-WX-Code": h.code("o-banned")}, "")
	if r.status != 403 || r.json(t)["message"] != "this account is suspended" {
		t.Errorf("want 403 with the hook's message; got %d %s", r.status, r.body)
	}
	if s, _ := h.store.Sessions(context.Background(), "o-banned"); len(s) != 0 {
		t.Errorf("a rejected login created %d sessions", len(s))
	}
}

func TestConcurrentLoginsShareOneExchange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer}, routes)
	h.wx.Fail("jscode2session", wxtest.Fault{Latency: 200 * time.Millisecond})
	code := h.code("o-hank")
	var wg sync.WaitGroup
	replies := make([]reply, 2)
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = h.do(t, "GET", "/login", map[string]string{"X-WX-Code": code}, "")
		}()
	}
	wg.Wait()
	for i, r := range replies {
		if r.status != 200 || !hex64.MatchString(fmt.Sprint(r.json(t)["session"].(map[string]any)["id"])) {
			t.Errorf("login %d: want a session; got %d %s", i, r.status, r.body)
		}
	}
	if n := h.wx.Calls("jscode2session"); n != 1 {
		t.Errorf("want 1 jscode2session call; got %d", n)
	}
}

func TestSingleSession(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, SingleSession: true}, routes)
	first := loginWafer(t, h, "o-ivy")
	second := loginWafer(t, h, "o-ivy")
	if r := h.do(t, "GET", "/whoami", first, ""); r.json(t)["error"] != "ERR_INVALID_SESSION" {
		t.Errorf("the older session: want ERR_INVALID_SESSION; got %s", r.body)
	}
	if r := h.do(t, "GET", "/whoami", second, ""); r.json(t)["openid"] != "o-ivy" {
		t.Errorf("the newer session: want it alive; got %s", r.body)
	}
}

func TestFieldsPersist(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer}, routes)
	hdr := loginWafer(t, h, "o-jack")
	h.do(t, "POST", "/color", map[string]string{"X-WX-Id": hdr["X-WX-Id"], "X-WX-Skey": hdr["X-WX-Skey"], "Content-Type": "application/json"}, `{"color":"teal"}`)
	if got := h.do(t, "GET", "/color", hdr, "").json(t)["color"]; got != "teal" {
		t.Errorf("want teal; got %v", got)
	}
	t.Run("a failed handler saves nothing", func(t *testing.T) {
		if r := h.do(t, "POST", "/fail", hdr, ""); r.status != fiber.StatusTeapot {
			t.Errorf("want 418; got %d", r.status)
		}
		if got := h.do(t, "GET", "/color", hdr, "").json(t)["color"]; got != "teal" {
			t.Errorf("want teal; got %v", got)
		}
	})
	t.Run("reserved names", func(t *testing.T) {
		if r := h.do(t, "POST", "/set/.openid/x", hdr, ""); r.status != 500 {
			t.Errorf("want the handler's error; got %d %s", r.status, r.body)
		}
		if got := h.do(t, "GET", "/whoami", hdr, "").json(t)["openid"]; got != "o-jack" {
			t.Errorf("want the openid untouched; got %v", got)
		}
	})
}

// Two requests changing different fields of one session at the same time must both
// persist, and concurrent increments must be exact.
func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	for name, st := range map[string]func(t *testing.T) store.Store{
		"memory": func(t *testing.T) store.Store {
			m := memstore.New()
			t.Cleanup(func() { _ = m.Close() })
			return m
		},
		"redis": func(t *testing.T) store.Store { s, _ := redisStore(t); return s },
	} {
		t.Run(name, func(t *testing.T) { testConcurrentWrites(t, st(t)) })
	}
}

func testConcurrentWrites(t *testing.T, st store.Store) {
	// Both requests have loaded the session before either saves: a store or a
	// middleware that wrote whole records would lose one field every round.
	var mu sync.Mutex
	var arrived int
	release := make(chan struct{})
	// This test is about lost updates, not latency: 50 requests at once under the race
	// detector on a busy machine may wait longer than the default StoreTimeout (1 s)
	// for one of go-redis's connections, and a 503 would be no lost update.
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, Store: st, StoreTimeout: 30 * time.Second}, func(app fiber.Router) {
		routes(app)
		app.Post("/both/:k/:v", fibermp.Required(), func(c *fiber.Ctx) error {
			mu.Lock()
			arrived++
			if arrived == 2 {
				arrived = 0
				close(release)
			}
			wait := release
			mu.Unlock()
			select {
			case <-wait:
			case <-time.After(5 * time.Second):
				return fiber.NewError(fiber.StatusGatewayTimeout, "the other request never came")
			}
			return fibermp.Get(c).Set(c.Params("k"), c.Params("v"))
		})
	})
	hdr := loginWafer(t, h, "o-kim")
	for round := 0; round < 20; round++ {
		mu.Lock()
		release = make(chan struct{})
		mu.Unlock()
		var wg sync.WaitGroup
		for _, k := range []string{"a", "b"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := h.do(t, "POST", fmt.Sprintf("/both/%s/%d", k, round), hdr, ""); r.status != 200 {
					t.Errorf("round %d: set %s: %d %s", round, k, r.status, r.body)
				}
			}()
		}
		wg.Wait()
		for _, k := range []string{"a", "b"} {
			if got := h.do(t, "GET", "/get/"+k, hdr, "").json2(t); got != strconv.Itoa(round) {
				t.Fatalf("round %d: field %s: want %d; got %v", round, k, round, got)
			}
		}
	}

	const n = 1000
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if r := h.do(t, "POST", "/incr", hdr, ""); r.status != 200 {
				t.Errorf("incr: %d %s", r.status, r.body)
			}
		}()
	}
	wg.Wait()
	if got := h.do(t, "GET", "/get/n", hdr, "").json2(t); got != float64(n) {
		t.Errorf("want %d; got %v", n, got)
	}
}

// json2 decodes any JSON value.
func (r reply) json2(t testing.TB) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("reply is not JSON: %v: %q", err, r.body)
	}
	return v
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	// Durations leave slack for a loaded machine: the requests come well inside the
	// idle timeout, the checks well after it.
	const idle, absolute = 900 * time.Millisecond, 2500 * time.Millisecond
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, IdleTimeout: idle, AbsoluteTimeout: absolute}, routes)
	hdr := loginWafer(t, h, "o-lee")
	// Each request extends the idle timeout: stay busy past one idle period.
	for i := 0; i < 4; i++ {
		time.Sleep(idle / 3)
		if r := h.do(t, "GET", "/whoami", hdr, ""); r.json(t)["openid"] != "o-lee" {
			t.Fatalf("request %d: want the session alive; got %s", i, r.body)
		}
	}
	time.Sleep(idle + 300*time.Millisecond)
	if r := h.do(t, "GET", "/whoami", hdr, ""); r.json(t)["error"] != "ERR_INVALID_SESSION" {
		t.Errorf("after the idle timeout: want ERR_INVALID_SESSION; got %s", r.body)
	}

	hdr = loginWafer(t, h, "o-lee")
	deadline := time.Now().Add(absolute)
	for time.Now().Before(deadline.Add(-idle / 2)) {
		h.do(t, "GET", "/whoami", hdr, "")
		time.Sleep(idle / 4)
	}
	time.Sleep(time.Until(deadline) + 200*time.Millisecond)
	if r := h.do(t, "GET", "/whoami", hdr, ""); r.json(t)["error"] != "ERR_INVALID_SESSION" {
		t.Errorf("after the absolute timeout: want ERR_INVALID_SESSION; got %s", r.body)
	}
}

func TestStoreOutage(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	defer mem.Close()
	broken := &switchStore{Store: mem}
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, Store: broken}, routes)
	hdr := loginWafer(t, h, "o-max")

	broken.set(errDown)
	for _, path := range []string{"/whoami", "/login"} {
		hd := hdr
		if path == "/login" {
			hd = map[string]string{"X-WX-Code": h.code("o-max")}
		}
		r := h.do(t, "GET", path, hd, "")
		want := `{"error":"ERR_SERVICE_UNAVAILABLE","message":"session store unavailable"}`
		if r.status != 503 || string(r.body) != want {
			t.Errorf("%s: want 503 %s; got %d %s", path, want, r.status, r.body)
		}
	}
	broken.set(nil)
	if r := h.do(t, "GET", "/whoami", hdr, ""); r.json(t)["openid"] != "o-max" {
		t.Errorf("after the outage: want the session back; got %s", r.body)
	}

	// A save that fails after the handler ran must not look like success.
	broken.failSave = true
	r := h.do(t, "POST", "/color", map[string]string{"X-WX-Id": hdr["X-WX-Id"], "X-WX-Skey": hdr["X-WX-Skey"], "Content-Type": "application/json"}, `{"color":"red"}`)
	if r.status != 503 {
		t.Errorf("failed save: want 503; got %d %s", r.status, r.body)
	}
	broken.failSave = false

	// A handler that returns a Session method's store error gets the same 503, without
	// the error's text.
	broken.failIncr = true
	r = h.do(t, "POST", "/incr", hdr, "")
	want := `{"error":"ERR_SERVICE_UNAVAILABLE","message":"session store unavailable"}`
	if r.status != 503 || string(r.body) != want || r.header.Get("Retry-After") != "1" {
		t.Errorf("failed incr: want 503 %s with Retry-After; got %d %s %v", want, r.status, r.body, r.header)
	}
}

// TestUnavailableError checks what a handler sees when the store fails under a
// Session method: an error that wraps ErrUnavailable and the store's, and none for the
// store's answers (a field that is no integer).
func TestUnavailableError(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	defer mem.Close()
	broken := &switchStore{Store: mem}
	errs := make(chan error, 2)
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, Store: broken}, func(app fiber.Router) {
		app.Post("/try", fibermp.Required(), func(c *fiber.Ctx) error {
			_, err := fibermp.Get(c).Incr("n", 1)
			errs <- err
			return c.SendStatus(fiber.StatusNoContent)
		})
		app.Post("/text", fibermp.Required(), func(c *fiber.Ctx) error {
			_ = fibermp.Get(c).Set("n", "text")
			return nil
		})
	})
	hdr := loginWafer(t, h, "o-errs")
	broken.failIncr = true
	h.do(t, "POST", "/try", hdr, "")
	if err := <-errs; !errors.Is(err, fibermp.ErrUnavailable) || !errors.Is(err, errDown) {
		t.Errorf("store down: want an error wrapping ErrUnavailable and the store's; got %v", err)
	}
	broken.failIncr = false
	h.do(t, "POST", "/text", hdr, "")
	h.do(t, "POST", "/try", hdr, "")
	if err := <-errs; errors.Is(err, fibermp.ErrUnavailable) || !errors.Is(err, store.ErrNotInteger) {
		t.Errorf("not an integer: want store.ErrNotInteger and no ErrUnavailable; got %v", err)
	}
}

// switchStore fails when told to.
type switchStore struct {
	store.Store
	mu       sync.Mutex
	err      error
	failSave bool
	failIncr bool
}

func (s *switchStore) set(err error) { s.mu.Lock(); s.err = err; s.mu.Unlock() }
func (s *switchStore) get() error    { s.mu.Lock(); defer s.mu.Unlock(); return s.err }

func (s *switchStore) Create(ctx context.Context, id string, r store.Record, idle time.Duration) error {
	if err := s.get(); err != nil {
		return err
	}
	return s.Store.Create(ctx, id, r, idle)
}
func (s *switchStore) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	if err := s.get(); err != nil {
		return nil, err
	}
	return s.Store.Load(ctx, id, touch)
}
func (s *switchStore) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	if s.failIncr {
		return 0, errDown
	}
	return s.Store.Incr(ctx, id, field, delta)
}
func (s *switchStore) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	if s.failSave {
		return errDown
	}
	return s.Store.Save(ctx, id, ch, idle)
}

func TestLogout(t *testing.T) {
	t.Parallel()
	for _, p := range []fibermp.Protocol{fibermp.Wafer, fibermp.Wafer2} {
		t.Run(p.String(), func(t *testing.T) {
			h := newHarness(t, fibermp.Config{Protocol: p}, routes)
			var hdr map[string]string
			if p == fibermp.Wafer {
				hdr = loginWafer(t, h, "o-ned")
			} else {
				r := h.do(t, "GET", "/login", map[string]string{"X-WX-Code": h.code("o-ned")}, "")
				hdr = map[string]string{"X-WX-Skey": r.json(t)["data"].(map[string]any)["skey"].(string)}
			}
			r := h.do(t, "POST", "/logout", hdr, "")
			if r.status != 200 || string(r.body) != `{"code":0}` {
				t.Errorf("want 200 {\"code\":0}; got %d %s", r.status, r.body)
			}
			if s, _ := h.store.Sessions(context.Background(), "o-ned"); len(s) != 0 {
				t.Errorf("want no session left; got %d", len(s))
			}
			// Logging out twice, or without a session, is not an error.
			if r := h.do(t, "POST", "/logout", hdr, ""); r.status != 200 {
				t.Errorf("second logout: want 200; got %d %s", r.status, r.body)
			}
		})
	}
}

func TestNext(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, Next: func(c *fiber.Ctx) bool { return c.Path() == "/public" }}, routes)
	r := h.do(t, "GET", "/public", map[string]string{"X-WX-Id": "bad", "X-WX-Skey": "bad"}, "")
	if r.status != 200 || string(r.body) != `{"session":false}` {
		t.Errorf("skipped route: want 200 {\"session\":false}; got %d %s", r.status, r.body)
	}
}

func TestRegenerate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer}, func(app fiber.Router) {
		routes(app)
		app.Post("/regenerate", fibermp.Required(), func(c *fiber.Ctx) error {
			s := fibermp.Get(c)
			if err := s.Set("pending", "kept"); err != nil {
				return err
			}
			return s.Regenerate(c)
		})
	})
	old := loginWafer(t, h, "o-rita")
	h.do(t, "POST", "/set/color/teal", old, "")
	r := h.do(t, "POST", "/regenerate", old, "")
	fresh := map[string]string{"X-WX-Id": r.header.Get("X-WX-Id"), "X-WX-Skey": r.header.Get("X-WX-Skey")}
	if r.status != 200 || !hex64.MatchString(fresh["X-WX-Id"]) || !hex40.MatchString(fresh["X-WX-Skey"]) || fresh["X-WX-Id"] == old["X-WX-Id"] {
		t.Fatalf("want new credentials in the headers; got %d %v", r.status, r.header)
	}
	if r := h.do(t, "GET", "/whoami", old, ""); r.json(t)["error"] != "ERR_INVALID_SESSION" {
		t.Errorf("the old credentials: want ERR_INVALID_SESSION; got %s", r.body)
	}
	for k, want := range map[string]string{"color": "teal", "pending": "kept"} {
		if got := h.do(t, "GET", "/get/"+k, fresh, "").json2(t); got != want {
			t.Errorf("field %s after Regenerate: want %q; got %v", k, want, got)
		}
	}
	if got := h.do(t, "GET", "/whoami", fresh, "").json(t)["openid"]; got != "o-rita" {
		t.Errorf("want the openid kept; got %v", got)
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	mem := memstore.New(memstore.Config{MaxRecordBytes: 1024})
	defer mem.Close()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, Store: mem}, routes)
	hdr := loginWafer(t, h, "o-sam")
	r := h.do(t, "POST", "/set/big/"+strings.Repeat("x", 1500), hdr, "")
	if r.status != 413 || r.json(t)["error"] != fibermp.ErrCodeTooLarge || r.header.Get("Retry-After") != "" {
		t.Errorf("want 413 %s without Retry-After; got %d %v %s", fibermp.ErrCodeTooLarge, r.status, r.header, r.body)
	}
	if got := h.do(t, "GET", "/get/big", hdr, "").json2(t); got != nil {
		t.Errorf("the field was written: %v", got)
	}
}

// TestMounted logs in and out with the middleware under a Group and in a mounted
// sub-app: LoginPath and LogoutPath are matched below the prefix, and a path that only
// looks like them is the application's.
func TestMounted(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"/api", "/api/v1", "mount:/api"} {
		t.Run(prefix, func(t *testing.T) {
			h := newHarnessAt(t, prefix, fibermp.Config{Protocol: fibermp.Token}, routes)
			r := h.do(t, "POST", "/login", nil, `{"code":"`+h.code("o-mounted")+`"}`)
			token, _ := r.json(t)["token"].(string)
			if r.status != 200 || token == "" {
				t.Fatalf("login at %s/login: want 200 and a token; got %d %s", prefix, r.status, r.body)
			}
			auth := map[string]string{"Authorization": "Bearer " + token}
			if got := h.do(t, "GET", "/whoami", auth, "").json(t)["openid"]; got != "o-mounted" {
				t.Errorf("whoami: want o-mounted; got %v", got)
			}
			if r := h.do(t, "POST", "/logout", auth, ""); r.status != 204 {
				t.Errorf("logout: want 204; got %d %s", r.status, r.body)
			}
			if r := h.do(t, "GET", "/whoami", auth, ""); r.status != 401 {
				t.Errorf("after logout: want 401; got %d %s", r.status, r.body)
			}
		})
	}
	// At the root, /api/login is not the login path.
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Token}, routes)
	if r := h.do(t, "POST", "/api/login", nil, `{"code":"`+h.code("o-root")+`"}`); r.status != 404 {
		t.Errorf("POST /api/login at the root: want 404; got %d %s", r.status, r.body)
	}
}

// TestQueryCredentials: with Config.QueryCredentials, Wafer credentials and the login
// code may come in the query string, matched case-insensitively, except on a WebSocket
// upgrade, which never takes them from the URL.
func TestQueryCredentials(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, QueryCredentials: true}, routes)
	r := h.do(t, "GET", "/login?x-wx-code="+h.code("o-query"), nil, "")
	session, _ := r.json(t)["session"].(map[string]any)
	if r.status != 200 || session == nil {
		t.Fatalf("login with the code in the query: got %d %s", r.status, r.body)
	}
	q := "?x-wx-id=" + session["id"].(string) + "&X-WX-SKEY=" + session["skey"].(string)
	if got := h.do(t, "GET", "/whoami"+q, nil, "").json(t)["openid"]; got != "o-query" {
		t.Errorf("query credentials: want openid o-query; got %v", got)
	}
	upgrade := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
	if r := h.do(t, "GET", "/whoami"+q, upgrade, ""); r.status != 401 {
		t.Errorf("query credentials on an upgrade: want 401; got %d %s", r.status, r.body)
	}
}

// otherToken returns a well-formed token that differs from token in its last character.
func otherToken(token string) string {
	if token[len(token)-1] == 'A' {
		return token[:len(token)-1] + "B"
	}
	return token[:len(token)-1] + "A"
}
