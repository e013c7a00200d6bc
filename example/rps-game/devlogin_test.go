package main

import (
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mpsession/mpsession/wx/wxtest"
)

// With a real AppID and -dev-login, a code of the fake WeChat (GET /wxtest/code) logs
// in through the fake and a code of real WeChat (here a wxtest.Server standing in for
// it, with the real AppID and secret) through real WeChat; a code of neither is
// refused. A developer alone plays a bot.
func TestDevLogin(t *testing.T) {
	wechat := wxtest.NewServer("wx1234567890abcdef", "real-secret")
	t.Cleanup(wechat.Close)
	s := startServer(t, config{AppID: wechat.AppID(), Secret: "real-secret", WeChatURL: wechat.URL, DevLogin: true})
	if !strings.Contains(s.wechatName, "-dev-login") {
		t.Errorf("want the log to name -dev-login as the WeChat; got %q", s.wechatName)
	}

	dev := login(t, s, "o-dev") // through /wxtest/code, as the page and the bots do
	u := &user{t: t, base: s.url, http: dev.http}
	var l struct{ Token, OpenID string }
	u.do("POST", "/login", map[string]string{"code": wechat.NewCode("o-phone")}, http.StatusOK, &l)
	if l.OpenID != "o-phone" || l.Token == "" {
		t.Errorf("a real WeChat code: want a session for o-phone; got %+v", l)
	}
	u.do("POST", "/login", map[string]string{"code": "made-up"}, http.StatusUnauthorized, nil)

	c := dev.dial(false)
	c.send(clientMsg{Type: "queue", Opponent: "bot"})
	c.expect("queued")
	c.expect("matched")
}

// -dev-login is refused without a real AppID, and on an address other than loopback or
// behind a proxy unless -dev-login-anywhere.
func TestDevLoginRefused(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db := filepath.Join(t.TempDir(), "rps.db")
	for _, tc := range []struct {
		cfg  config
		want string // in the error; "" for none
	}{
		{config{Addr: "127.0.0.1:0", DevLogin: true}, "needs -appid"},
		{config{Addr: "0.0.0.0:0", AppID: "wx1234567890abcdef", Secret: "x", DevLogin: true}, "loopback only"},
		{config{Addr: "127.0.0.1:0", AppID: "wx1234567890abcdef", Secret: "x", DevLogin: true, Proxies: []string{"127.0.0.1"}}, "not behind -proxies"},
		{config{Addr: "127.0.0.1:0", AppID: "wx1234567890abcdef", Secret: "x", Bots: 1}, "-bots needs"},
		{config{Addr: "0.0.0.0:0", AppID: "wx1234567890abcdef", Secret: "x", DevLogin: true, DevLoginAnywhere: true}, ""},
	} {
		tc.cfg.DB, tc.cfg.Log = db, quiet
		s, err := start(tc.cfg)
		if err == nil {
			s.close()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: want it to start; got %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: want an error with %q; got %v", tc.cfg, tc.want, err)
		}
	}
}
