package wxtest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

func TestMountedThroughFiber(t *testing.T) {
	fake := wxtest.NewServer("wx0000000000000000", "s")
	defer fake.Close()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/wxtest/code", adaptor.HTTPHandler(fake.Handler())) // as wxtest's doc suggests
	base := testenv.Serve(t, app)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr} // one keep-alive connection: one fasthttp buffer
	code := func(id string) string {
		resp, err := hc.Get(base + "/wxtest/code?openid=" + id)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var c struct{ Code string }
		_ = json.NewDecoder(resp.Body).Decode(&c)
		return c.Code
	}
	c1 := code("bot-1")
	_ = code("bot-2")
	client, _ := wx.New(wx.Config{AppID: "wx0000000000000000", AppSecret: "s", BaseURL: fake.URL})
	s, err := client.Code2Session(context.Background(), c1)
	if err != nil {
		t.Fatal(err)
	}
	if s.OpenID != "bot-1" {
		t.Errorf("bot-1's code logs in as %q", s.OpenID)
	}
}
