package main

import (
	"embed"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/mpsession/mpsession/fibermp"
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

// setNickname is POST /api/nickname {"nickname":"..."}. It changes one field, so it
// cannot overwrite a result a socket records at the same moment.
func setNickname(c *fiber.Ctx) error {
	var in struct{ Nickname string }
	if err := c.BodyParser(&in); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "want {\"nickname\":\"...\"}")
	}
	name := strings.TrimSpace(in.Nickname)
	if n := utf8.RuneCountInString(name); n < 1 || n > 24 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fiber.NewError(fiber.StatusBadRequest, "a nickname has 1 to 24 printable characters")
	}
	if err := fibermp.Get(c).Set(fieldNickname, name); err != nil {
		return err
	}
	return me(c)
}

// onLogin gives a new session its nickname.
func onLogin(_ *fiber.Ctx, l *fibermp.Login) error {
	name := l.OpenID
	if len(name) > 6 {
		name = name[len(name)-6:]
	}
	return l.Set(fieldNickname, "Player "+name)
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
