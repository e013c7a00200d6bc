package fibermp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/storage/memory/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store/fiberstore"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// TestNewManagerErrors: a config no request could work with fails at construction,
// with an error that names the field.
func TestNewManagerErrors(t *testing.T) {
	t.Parallel()
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	client, err := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: wechat.URL})
	if err != nil {
		t.Fatal(err)
	}
	backend := memory.New()
	t.Cleanup(func() { _ = backend.Close() })
	local := fiberstore.New(backend)
	t.Cleanup(func() { _ = local.Close() })
	for _, tc := range []struct {
		name string
		cfg  []fibermp.Config
		want string
	}{
		{"no config", nil, "Config.AppID"},
		{"no credentials", []fibermp.Config{{}}, "Config.AppID"},
		{"absolute shorter than idle", []fibermp.Config{{Client: client, IdleTimeout: time.Hour, AbsoluteTimeout: time.Minute}}, "AbsoluteTimeout"},
		{"unknown protocol", []fibermp.Config{{Client: client, Protocol: 7}}, "Protocol"},
		{"cache on events of one process", []fibermp.Config{{Client: client, Store: local, Cache: &fibermp.CacheConfig{}}}, "Cache"},
		{"negative cache bound", []fibermp.Config{{Client: client, Cache: &fibermp.CacheConfig{MaxEntries: -1}}}, "Cache"},
		{"cache lag under 10ms", []fibermp.Config{{Client: client, Cache: &fibermp.CacheConfig{MaxLag: time.Nanosecond}}}, "MaxLag"},
	} {
		m, err := fibermp.NewManager(tc.cfg...)
		if err == nil {
			_ = m.Close(context.Background())
			t.Errorf("%s: want an error; got none", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error naming %s; got %v", tc.name, tc.want, err)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("New without credentials: want a panic")
			}
		}()
		fibermp.New()
	}()
}

// TestDefaults: a Manager made with nothing but a WeChat client speaks Token and keeps
// its sessions in a store of its own, which its Close closes.
func TestDefaults(t *testing.T) {
	t.Parallel()
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	client, err := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: wechat.URL})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := fibermp.NewManager(fibermp.Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New()
	app.Use(mp.Handler())
	app.Get("/me", mp.Required(), func(c *fiber.Ctx) error { return c.SendString(fibermp.Get(c).OpenID()) })
	do := func(req *http.Request) (int, string) {
		t.Helper()
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(`{"code":"`+wechat.NewCode("o-default")+`"}`))
	req.Header.Set("Content-Type", "application/json")
	status, body := do(req)
	var login struct{ Token string }
	if err := json.Unmarshal([]byte(body), &login); status != 200 || err != nil || login.Token == "" {
		t.Fatalf("POST {code} to a default Manager: want 200 and a token; got %d %s", status, body)
	}
	req = httptest.NewRequest("GET", "/me", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	if status, body := do(req); status != 200 || body != "o-default" {
		t.Errorf("GET /me: want 200 o-default; got %d %s", status, body)
	}
	if err := mp.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
