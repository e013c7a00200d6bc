package fibermp_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// A mini-program backend with a login endpoint and a counter kept in the session. The
// fake WeChat server stands in for api.weixin.qq.com.
func Example() {
	wechat := wxtest.NewServer("wx0123456789abcdef", "secret")
	defer wechat.Close()
	client, _ := wx.New(wx.Config{AppID: "wx0123456789abcdef", AppSecret: "secret", BaseURL: wechat.URL})
	sessions := memstore.New()
	defer sessions.Close()

	app := fiber.New()
	app.Use(fibermp.New(fibermp.Config{Client: client, Store: sessions, Protocol: fibermp.Token}))
	app.Post("/score", fibermp.Required(), func(c *fiber.Ctx) error {
		n, err := fibermp.Get(c).Incr("score", 10)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"openid": fibermp.Get(c).OpenID(), "score": n})
	})

	// The client logs in with the code wx.login gave it...
	req := httptest.NewRequest("POST", "/login", strings.NewReader(`{"code":"`+wechat.NewCode("o-player")+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, _ := app.Test(req)
	var login struct{ Token string }
	_ = decode(resp.Body, &login)

	// ...and sends the token with every request.
	for i := 0; i < 2; i++ {
		req = httptest.NewRequest("POST", "/score", nil)
		req.Header.Set("Authorization", "Bearer "+login.Token)
		resp, _ = app.Test(req)
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(string(body))
	}
	// Output:
	// {"openid":"o-player","score":10}
	// {"openid":"o-player","score":20}
}

// OnLogin links the WeChat user to the application's own account, or turns them away.
func ExampleConfig_onLogin() {
	cfg := fibermp.Config{
		AppID:     "wx0123456789abcdef",
		AppSecret: "secret",
		OnLogin: func(c *fiber.Ctx, l *fibermp.Login) error {
			uid, banned := lookupUser(l.OpenID) // the application's database
			if banned {
				return fmt.Errorf("account %d is suspended", uid)
			}
			return l.Set("uid", uid)
		},
	}
	app := fiber.New()
	app.Use(fibermp.New(cfg))
}

func lookupUser(openID string) (uid int64, banned bool) { return 1, false }

func decode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
