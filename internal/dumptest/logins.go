package dumptest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// Logins runs against st what puts secrets in a store, with each protocol: a login
// that sends encrypted user info for a user with a unionid, a Regenerate, and a
// WebSocket ticket. It returns the secrets, and a field value the application set in
// clear, which a dump must show (or it did not read the sessions).
func Logins(t testing.TB, st store.Store) (secrets []Secret, clear string) {
	t.Helper()
	const appID, appSecret = "wx0123456789abcdef", "dump-secret-0123456789abcdef0123"
	fake := wxtest.NewServer(appID, appSecret)
	t.Cleanup(fake.Close)
	client, err := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	clear = "in-clear-" + rand.Text()
	secret := func(name, value string) { secrets = append(secrets, Secret{Name: name, Value: value}) }

	for _, p := range []fibermp.Protocol{fibermp.Wafer, fibermp.Wafer2, fibermp.Token} {
		// app.Test rather than a listener: the stores' TestMain allows no goroutine
		// left behind, and a fasthttp listener leaves its worker pool's cleaner.
		app := fiber.New(fiber.Config{DisableStartupMessage: true, DisableDefaultDate: true})
		mp, err := fibermp.NewManager(fibermp.Config{Client: client, Store: st, Protocol: p})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = mp.Close(context.Background()) })
		ws, err := wsauth.NewServer(mp, wsauth.Config{TicketURL: "/ws"})
		if err != nil {
			t.Fatal(err)
		}
		app.Use(mp.Handler())
		app.Get("/whoami", fibermp.Required(), func(c *fiber.Ctx) error {
			s := fibermp.Get(c)
			return c.JSON(fiber.Map{"unionid": s.UnionID(), "userInfo": s.UserInfo()})
		})
		app.Post("/note", fibermp.Required(), func(c *fiber.Ctx) error { return fibermp.Get(c).Set("note", clear) })
		app.Post("/regenerate", fibermp.Required(), func(c *fiber.Ctx) error { return fibermp.Get(c).Regenerate(c) })
		app.Get("/ticket", fibermp.Required(), ws.Tickets())

		openID, unionID := "o-dump-"+p.String(), "UNION-"+p.String()+"-"+rand.Text()
		// No value contains another protocol's: a leak of wafer2's would be reported
		// as wafer's too.
		nick, avatar := p.String()+"-NICK-7f3a", "https://thirdwx.qlogo.cn/mmopen/AVATAR-c41d-"+p.String()+"/132"
		sessionKey := fake.AddUser(wxtest.User{OpenID: openID, UnionID: unionID}).SessionKey
		// The openid is not a secret: it names the owner index, and the store may keep
		// it (fiberstore and redisstore keep it in the session record).
		secret("the WeChat session_key of "+openID, sessionKey)
		secret("the unionid of "+openID, unionID)
		secret("the nickName of "+openID, nick)
		secret("the avatarUrl of "+openID, avatar)

		// credentials names as secrets the credentials in a reply's body or headers,
		// and returns the request headers that present them.
		credentials := func(name string, r reply) map[string]string {
			var body struct {
				Session struct{ ID, Skey string } // Wafer login
				Data    struct{ Skey string }     // Wafer2 login
				Token   string                    // Token login
			}
			_ = json.Unmarshal(r.body, &body)
			if cmp.Or(body.Session.ID, body.Data.Skey, body.Token, r.header.Get(fibermp.HeaderSkey), r.header.Get(fibermp.HeaderSessionID)) == "" {
				t.Fatalf("%s: no credentials in the reply: %v %s", name, r.header, r.body)
			}
			switch p {
			case fibermp.Wafer:
				id, skey := cmp.Or(body.Session.ID, r.header.Get(fibermp.HeaderID)), cmp.Or(body.Session.Skey, r.header.Get(fibermp.HeaderSkey))
				secret("the Wafer id of "+name, id)
				secret("the Wafer skey of "+name, skey)
				return map[string]string{fibermp.HeaderID: id, fibermp.HeaderSkey: skey}
			case fibermp.Wafer2:
				skey := cmp.Or(body.Data.Skey, r.header.Get(fibermp.HeaderSkey))
				secret("the Wafer2 skey of "+name, skey)
				return map[string]string{fibermp.HeaderSkey: skey}
			default:
				token := cmp.Or(body.Token, r.header.Get(fibermp.HeaderSessionID))
				secret("the token of "+name, token)
				return map[string]string{"Authorization": "Bearer " + token}
			}
		}
		login := func(name string) map[string]string {
			enc, iv := fake.EncryptUserInfo(openID, map[string]any{"nickName": nick, "avatarUrl": avatar})
			code := fake.NewCode(openID)
			if p == fibermp.Token {
				body, _ := json.Marshal(map[string]string{"code": code, "encryptedData": enc, "iv": iv})
				return credentials(name, do(t, app, "POST", "/login", map[string]string{"Content-Type": "application/json"}, string(body)))
			}
			return credentials(name, do(t, app, "GET", "/login", map[string]string{
				fibermp.HeaderCode: code, fibermp.HeaderEncryptedData: enc, fibermp.HeaderIV: iv,
			}, ""))
		}

		first := login(p.String() + " session 1")
		do(t, app, "POST", "/note", first, "")
		regenerated := credentials(p.String()+" session 2 after Regenerate",
			do(t, app, "POST", "/regenerate", login(p.String()+" session 2"), ""))
		r := do(t, app, "GET", "/ticket", first, "")
		var ticketReply struct {
			URL  string
			Data struct{ ConnectURL string }
		}
		_ = json.Unmarshal(r.body, &ticketReply)
		u, err := url.Parse(cmp.Or(ticketReply.URL, ticketReply.Data.ConnectURL))
		if err != nil || u.Query().Get(wsauth.TicketParam) == "" {
			t.Fatalf("%s: want a socket URL with a ticket; got %s", p, r.body)
		}
		secret("the ticket of "+p.String()+" session 1", u.Query().Get(wsauth.TicketParam))

		// The sealed fields open: the live sessions still give their user info back.
		for name, hdr := range map[string]map[string]string{"session 1": first, "session 2 after Regenerate": regenerated} {
			var who struct {
				UnionID  string
				UserInfo struct{ NickName, AvatarURL string }
			}
			if err := json.Unmarshal(do(t, app, "GET", "/whoami", hdr, "").body, &who); err != nil ||
				who.UnionID != unionID || who.UserInfo.NickName != nick || who.UserInfo.AvatarURL != avatar {
				t.Errorf("%s %s: want unionid %q, nickName %q and avatarUrl %q back; got %+v (%v)", p, name, unionID, nick, avatar, who, err)
			}
		}
	}
	return secrets, clear
}

// A reply is what do read of a response.
type reply struct {
	header http.Header
	body   []byte
}

// do sends a request through app and fails the test unless it succeeds.
func do(t testing.TB, app *fiber.App, method, path string, header map[string]string, body string) reply {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := app.Test(req, 10_000)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	// Wafer answers an invalid session 200, with an "error" member.
	var failed struct{ Error any }
	if resp.StatusCode/100 != 2 || json.Unmarshal(b, &failed) == nil && failed.Error != nil {
		t.Fatalf("%s %s: want success; got %d %s", method, path, resp.StatusCode, b)
	}
	return reply{header: resp.Header, body: b}
}
