package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// web is the page: no build step, no npm.
//
//go:embed web
var web embed.FS

// me is GET /api/me: who the session belongs to and its record. Every request reads
// the session from the store, so a result a socket has just written shows at once.
func me(c *fiber.Ctx) error {
	s := fibermp.Get(c)
	return c.JSON(struct {
		OpenID   string `json:"openid"`
		Nickname string `json:"nickname"`
		record
	}{s.OpenID(), s.GetString(fieldNickname), readRecord(s)})
}

// setNickname is POST /api/nickname {"nickname":"..."}. The name goes to the database,
// then to the session; it changes one field there, so it cannot overwrite a result a
// socket records at the same moment.
func setNickname(recs *records) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in struct{ Nickname string }
		if err := c.BodyParser(&in); err != nil {
			return fiber.NewError(fiber.StatusBadRequest, "want {\"nickname\":\"...\"}")
		}
		name := strings.TrimSpace(in.Nickname)
		if n := utf8.RuneCountInString(name); n < 1 || n > 24 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
			return fiber.NewError(fiber.StatusBadRequest, "a nickname has 1 to 24 printable characters")
		}
		s := fibermp.Get(c)
		ctx, cancel := context.WithTimeout(c.UserContext(), dbTimeout)
		defer cancel()
		if err := recs.rename(ctx, s.OpenID(), name); err != nil {
			return err
		}
		if err := s.Set(fieldNickname, name); err != nil {
			return err
		}
		return me(c)
	}
}

// dbTimeout bounds a request's or a match's database work.
const dbTimeout = 5 * time.Second

// onLogin gives a new session its player's record from the database, so that logging
// in again, on any instance or after a restart, goes on from it. A player the database
// does not know starts at 0-0-0 with a name made from their openid.
func onLogin(recs *records, log *slog.Logger) func(*fiber.Ctx, *fibermp.Login) error {
	return func(c *fiber.Ctx, l *fibermp.Login) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), dbTimeout)
		defer cancel()
		st, err := recs.get(ctx, l.OpenID)
		switch {
		case errors.Is(err, errNoRecord):
			name := l.OpenID
			if len(name) > 6 {
				name = name[len(name)-6:]
			}
			return l.Set(fieldNickname, "玩家"+name) // "player": the audience reads Chinese
		case err != nil:
			// A session at 0-0-0 would show a record the database contradicts.
			log.Error("rps: login refused", "openid", l.OpenID, "err", err)
			return fiber.NewError(fiber.StatusServiceUnavailable, "player records are unavailable, try again later")
		}
		for k, v := range map[string]any{fieldNickname: st.Nickname, fieldWins: st.Wins, fieldLosses: st.Losses, fieldDraws: st.Draws} {
			if err := l.Set(k, v); err != nil {
				return err
			}
		}
		return nil
	}
}

// leaderboard is GET /api/leaderboard: the ten players with the most wins. It is public,
// so it names players by nickname only; with a session, "me" marks the asker's line.
func leaderboard(recs *records) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), dbTimeout)
		defer cancel()
		top, err := recs.top(ctx, 10)
		if err != nil {
			return err
		}
		if s := fibermp.Get(c); s != nil { // a player asks: mark their line, by openid
			for i := range top {
				top[i].Me = top[i].openid == s.OpenID()
			}
		}
		return c.JSON(fiber.Map{"players": top})
	}
}

// online is GET /api/online: how many players have a socket open now, and how many
// sockets, on every instance sharing the store (wsauth's presence of lobbyRoom, which
// every socket joins). It is public and names nobody. Reading the room costs a read of
// all its members, so the count is read at most once per every per instance, by one
// request while the others wait for it.
func online(hub *wsauth.Hub, every time.Duration) fiber.Handler {
	var (
		mu      sync.Mutex
		at      time.Time
		players int
		sockets int
	)
	return func(c *fiber.Ctx) error {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) >= every {
			ctx, cancel := context.WithTimeout(c.UserContext(), dbTimeout)
			defer cancel()
			p, err := hub.Presence(ctx, lobbyRoom)
			if err != nil {
				return err
			}
			at, players, sockets = time.Now(), len(p.Users), p.Sockets
		}
		return c.JSON(fiber.Map{"players": players, "sockets": sockets})
	}
}

// mountWeChat serves the fake WeChat under /wxtest: its API for the server's own
// wx.Client (BaseURL .../wxtest), and GET /wxtest/code?openid=X, which hands the page
// and the bots a login code. Development only: it logs anyone in as anyone.
func mountWeChat(app *fiber.App, fake *wxtest.Server) {
	h := fake.Handler()
	// The fake serves its code helper at /wxtest/code itself, and WeChat's API at
	// /sns/..., /cgi-bin/..., which the prefix is stripped for.
	app.Get("/wxtest/code", adaptor.HTTPHandler(h))
	app.All("/wxtest/*", adaptor.HTTPHandler(http.StripPrefix("/wxtest", h)))
}

// serveWeb serves the embedded page and its script.
func serveWeb(app *fiber.App) {
	// Browsers ask for /favicon.ico whatever the page links: send them to the icon.
	app.Get("/favicon.ico", func(c *fiber.Ctx) error { return c.Redirect("/favicon.svg", fiber.StatusMovedPermanently) })
	app.Use(filesystem.New(filesystem.Config{Root: http.FS(web), PathPrefix: "web", Index: "index.html"}))
}

// jsonError answers the routes' errors in the shape of the Token protocol's:
// {"error":"<CODE>","message":"..."}.
func jsonError(c *fiber.Ctx, err error) error {
	status, code, msg := fiber.StatusInternalServerError, "ERR_INTERNAL", "internal error"
	var e *fiber.Error
	if errors.As(err, &e) {
		status, msg = e.Code, e.Message
		switch {
		case status == fiber.StatusNotFound:
			code = "ERR_NOT_FOUND"
		case status < 500:
			code = "ERR_BAD_REQUEST"
		}
	}
	return c.Status(status).JSON(fiber.Map{"error": code, "message": msg})
}

func itoa(n int) string { return strconv.Itoa(n) }

// tooManyLogins answers a login past the per-IP limit.
func tooManyLogins(c *fiber.Ctx) error {
	c.Set(fiber.HeaderRetryAfter, "60")
	return c.Status(fiber.StatusTooManyRequests).JSON(fiber.Map{"error": "ERR_TOO_MANY_LOGINS", "message": "too many logins from this address, try again in a minute"})
}

// devLogin is the WeChat transport of -dev-login: a login code (jscode2session) goes to
// the fake WeChat first, and logs in through it when the fake issued it (GET
// /wxtest/code); any other code, and every other call, goes on to real WeChat.
type devLogin struct {
	fake          http.Handler
	appID, secret string // the fake's
	next          http.RoundTripper
}

func (d devLogin) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path != "/sns/jscode2session" {
		return d.next.RoundTrip(r)
	}
	q := r.URL.Query()
	q.Set("appid", d.appID)
	q.Set("secret", d.secret)
	u := *r.URL
	u.RawQuery = q.Encode()
	fr := r.Clone(r.Context())
	fr.URL, fr.RequestURI = &u, u.RequestURI()
	rec := httptest.NewRecorder()
	d.fake.ServeHTTP(rec, fr)
	var reply struct {
		ErrCode int `json:"errcode"`
	}
	if json.Unmarshal(rec.Body.Bytes(), &reply) == nil && reply.ErrCode == 40029 { // not a code of the fake's
		return d.next.RoundTrip(r)
	}
	return rec.Result(), nil
}
