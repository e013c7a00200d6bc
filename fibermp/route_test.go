package fibermp_test

import (
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// TestMiddlewareOnRoute: on the login route itself (not app.Use), the middleware still
// answers the login path.
func TestMiddlewareOnRoute(t *testing.T) {
	t.Parallel()
	fake := wxtest.NewServer(appID, appSecret)
	defer fake.Close()
	client, _ := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: fake.URL})
	sessions := memstore.New()
	defer sessions.Close()
	mw := fibermp.New(fibermp.Config{Protocol: fibermp.Wafer, Client: client, Store: sessions})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.All("/login", mw)
	app.Get("/me", mw, fibermp.Required(), func(c *fiber.Ctx) error { return c.SendString(fibermp.Get(c).OpenID()) })
	h := &harness{wx: fake, url: testenv.Serve(t, app)}
	r := h.do(t, "GET", "/login", map[string]string{"X-WX-Code": fake.NewCode("o-r")}, "")
	if r.status != 200 {
		t.Errorf("login route with the middleware on it: want 200; got %d %s", r.status, r.body)
	}
}
