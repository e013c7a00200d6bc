package wx_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     wx.Config
		wantErr string
	}{
		{"ok", wx.Config{AppID: "wx1", AppSecret: "s"}, ""},
		{"no appid", wx.Config{AppSecret: "s"}, "wx: Config.AppID is required"},
		{"no secret", wx.Config{AppID: "wx1"}, "wx: Config.AppSecret is required"},
		{"relative base URL", wx.Config{AppID: "wx1", AppSecret: "s", BaseURL: "api.weixin.qq.com"}, "not an http(s) URL"},
		{"ftp base URL", wx.Config{AppID: "wx1", AppSecret: "s", BaseURL: "ftp://x"}, "not an http(s) URL"},
		{"base URL with query", wx.Config{AppID: "wx1", AppSecret: "s", BaseURL: "https://x/?a=1"}, "has a query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := wx.New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || c.AppID() != tt.cfg.AppID {
					t.Errorf("want a client for %q; got %v", tt.cfg.AppID, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("want error containing %q; got %v", tt.wantErr, err)
			}
		})
	}
}

func TestCode2Session(t *testing.T) {
	ctx := context.Background()
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	alice := fake.AddUser(wxtest.User{OpenID: "o-alice", UnionID: "u-alice"})

	t.Run("ok", func(t *testing.T) {
		s, err := c.Code2Session(ctx, fake.NewCode("o-alice"))
		if err != nil {
			t.Fatalf("Code2Session: %v", err)
		}
		want := wx.Session{OpenID: "o-alice", SessionKey: alice.SessionKey, UnionID: "u-alice"}
		if *s != want {
			t.Errorf("want %+v; got %+v", want, *s)
		}
	})
	t.Run("new user without unionid", func(t *testing.T) {
		s, err := c.Code2Session(ctx, fake.NewCode("o-bob"))
		if err != nil {
			t.Fatalf("Code2Session: %v", err)
		}
		if s.OpenID != "o-bob" || s.UnionID != "" || s.SessionKey != fake.User("o-bob").SessionKey {
			t.Errorf("want o-bob with its session key and no unionid; got %+v", *s)
		}
	})
	t.Run("session key rotated", func(t *testing.T) {
		key := fake.RotateSessionKey("o-alice")
		s, err := c.Code2Session(ctx, fake.NewCode("o-alice"))
		if err != nil {
			t.Fatalf("Code2Session: %v", err)
		}
		if s.SessionKey != key {
			t.Errorf("want %q; got %q", key, s.SessionKey)
		}
	})
	t.Run("empty code is not sent", func(t *testing.T) {
		before := fake.Calls(wxtest.Code2Session)
		if _, err := c.Code2Session(ctx, ""); err == nil {
			t.Errorf("want an error; got nil")
		}
		if got := fake.Calls(wxtest.Code2Session); got != before {
			t.Errorf("want %d calls; got %d", before, got)
		}
	})
}

func TestCode2SessionErrors(t *testing.T) {
	ctx := context.Background()
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	fake.AddUser(wxtest.User{OpenID: "o-blocked", Blocked: true})

	expiredCode := fake.NewCode("o-alice")
	fake.Advance(wxtest.CodeLifetime)
	usedCode := fake.NewCode("o-alice")
	if _, err := c.Code2Session(ctx, usedCode); err != nil {
		t.Fatalf("first exchange: %v", err)
	}

	tests := []struct {
		name  string
		code  string
		fault *wxtest.Fault
		want  int
		is    func(*wx.APIError) bool
		msg   string
	}{
		{"unknown code", "no-such-code", nil, 40029, (*wx.APIError).InvalidCode, "wx: jscode2session: errcode 40029: invalid code"},
		{"used code", usedCode, nil, 40163, (*wx.APIError).CodeUsed, "wx: jscode2session: errcode 40163: code been used"},
		{"expired code", expiredCode, nil, 40029, (*wx.APIError).InvalidCode, ""},
		{"blocked user", fake.NewCode("o-blocked"), nil, 40226, (*wx.APIError).Blocked, ""},
		{"rate limited", fake.NewCode("o-alice"), &wxtest.Fault{ErrCode: 45011}, 45011, (*wx.APIError).RateLimited, ""},
		{"busy", fake.NewCode("o-alice"), &wxtest.Fault{ErrCode: -1}, -1, (*wx.APIError).Busy, "wx: jscode2session: errcode -1: system error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != nil {
				fake.Fail(wxtest.Code2Session, *tt.fault)
			}
			_, err := c.Code2Session(ctx, tt.code)
			apiErr, ok := errors.AsType[*wx.APIError](err)
			if !ok {
				t.Fatalf("want *wx.APIError; got %T %v", err, err)
			}
			if apiErr.Code != tt.want || !tt.is(apiErr) || apiErr.Op != "jscode2session" {
				t.Errorf("want errcode %d from jscode2session; got %+v", tt.want, apiErr)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("want %q; got %q", tt.msg, err.Error())
			}
		})
	}

	t.Run("code survives a fault", func(t *testing.T) {
		code := fake.NewCode("o-alice")
		fake.Fail(wxtest.Code2Session, wxtest.Fault{ErrCode: -1})
		if _, err := c.Code2Session(ctx, code); err == nil {
			t.Fatal("want the injected error; got nil")
		}
		if _, err := c.Code2Session(ctx, code); err != nil {
			t.Errorf("retry: want nil; got %v", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		bad := newClient(t, fake, wx.Config{AppSecret: "00000000000000000000000000000000"})
		_, err := bad.Code2Session(ctx, fake.NewCode("o-alice"))
		if apiErr, ok := errors.AsType[*wx.APIError](err); !ok || apiErr.Code != 40125 {
			t.Errorf("want errcode 40125; got %v", err)
		}
	})
	t.Run("wrong appid", func(t *testing.T) {
		bad := newClient(t, fake, wx.Config{AppID: "wx0000000000000000"})
		_, err := bad.Code2Session(ctx, fake.NewCode("o-alice"))
		if apiErr, ok := errors.AsType[*wx.APIError](err); !ok || apiErr.Code != 40013 {
			t.Errorf("want errcode 40013; got %v", err)
		}
	})
}

func TestCode2SessionReplies(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		fault    wxtest.Fault
		wantMalf bool
		status   int
	}{
		{"HTML error page", wxtest.Fault{Body: "<html>502 Bad Gateway</html>"}, true, 0},
		{"truncated JSON", wxtest.Fault{Body: `{"openid":"o-x","session_key":`}, true, 0},
		{"no session_key", wxtest.Fault{Body: `{"openid":"o-x"}`}, true, 0},
		{"errcode as string", wxtest.Fault{Body: `{"errcode":"40029"}`}, true, 0},
		{"JSON array", wxtest.Fault{Body: `[]`}, true, 0},
		{"empty body", wxtest.Fault{Body: " "}, true, 0},
		{"HTTP 502", wxtest.Fault{Status: 502}, false, 502},
		{"HTTP 503 with JSON", wxtest.Fault{Status: 503, Body: `{"errcode":0}`}, false, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			c := newClient(t, fake, wx.Config{})
			fake.Fail(wxtest.Code2Session, tt.fault)
			_, err := c.Code2Session(ctx, fake.NewCode("o-x"))
			if err == nil {
				t.Fatal("want an error; got nil")
			}
			if !strings.HasPrefix(err.Error(), "wx: jscode2session: ") {
				t.Errorf("want the op in %q", err)
			}
			if tt.wantMalf && !errors.Is(err, wx.ErrMalformed) {
				t.Errorf("want ErrMalformed; got %v", err)
			}
			if tt.status != 0 {
				httpErr, ok := errors.AsType[*wx.HTTPError](err)
				if !ok || httpErr.StatusCode != tt.status {
					t.Errorf("want *wx.HTTPError %d; got %T %v", tt.status, err, err)
				}
			}
		})
	}
}

func TestCode2SessionErrorsHoldNoSessionKey(t *testing.T) {
	const key = "tiihtNczf5v6AKRyjwEUhQ=="
	bodies := map[string]string{
		"unionid of the wrong type": `{"session_key":"` + key + `","openid":"o1","unionid":5}`,
		"truncated":                 `{"session_key":"` + key + `","openid":"o1"`,
		"escaped key":               `{"session\u005fkey":"` + key + `","openid":1}`,
		"prefixed by a proxy":       `<!-- cached -->{"session_key":"` + key + `","openid":"o1"}`,
		"query form":                `session_key=` + key + `&openid=o1`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			fake := newFake(t)
			c := newClient(t, fake, wx.Config{})
			fake.Fail(wxtest.Code2Session, wxtest.Fault{Body: body})
			_, err := c.Code2Session(context.Background(), fake.NewCode("o1"))
			if !errors.Is(err, wx.ErrMalformed) {
				t.Fatalf("want ErrMalformed; got %v", err)
			}
			if strings.Contains(err.Error(), key) {
				t.Errorf("error holds the session_key: %s", err)
			}
		})
	}
}

// TestCode2SessionCopiesCode passes the code as a string over a buffer that the caller
// reuses once it has returned, as fasthttp's zero-copy strings are: the exchange that
// goes on must keep using the code, and later callers must still share it.
func TestCode2SessionCopiesCode(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	code := fake.NewCode("o-alice")
	fake.Fail(wxtest.Code2Session, wxtest.Fault{Latency: 300 * time.Millisecond})

	buf := []byte(code)
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Code2Session(short, unsafe.String(&buf[0], len(buf))); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("short caller: want context.DeadlineExceeded; got %v", err)
	}
	for i := range buf {
		buf[i] = 'x' // the next request reuses the buffer
	}
	s, err := c.Code2Session(context.Background(), code)
	if err != nil || s.OpenID != "o-alice" {
		t.Errorf("want o-alice; got %v, %v", s, err)
	}
	if got := fake.Calls(wxtest.Code2Session); got != 1 {
		t.Errorf("want the second caller to share the running exchange (1 call); got %d", got)
	}
}

func TestCode2SessionSharesConcurrentExchanges(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	code := fake.NewCode("o-alice")
	fake.Fail(wxtest.Code2Session, wxtest.Fault{Latency: 200 * time.Millisecond})

	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			s, err := c.Code2Session(context.Background(), code)
			if err == nil && s.OpenID != "o-alice" {
				err = errors.New("wrong openid " + s.OpenID)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("want nil; got %v", err)
		}
	}
	if got := fake.Calls(wxtest.Code2Session); got != 1 {
		t.Errorf("want 1 jscode2session call; got %d", got)
	}
}

func TestCode2SessionContext(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	code := fake.NewCode("o-alice")
	fake.Fail(wxtest.Code2Session, wxtest.Fault{Latency: 300 * time.Millisecond})

	// The first caller gives up; the second, waiting on the same exchange, still gets it.
	short, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var shortErr error
	wg.Go(func() { _, shortErr = c.Code2Session(short, code) })
	waitCall(t, fake, wxtest.Code2Session) // the exchange is under way
	s, err := c.Code2Session(context.Background(), code)
	wg.Wait()
	if !errors.Is(shortErr, context.DeadlineExceeded) {
		t.Errorf("short caller: want context.DeadlineExceeded; got %v", shortErr)
	}
	if err != nil || s.OpenID != "o-alice" {
		t.Errorf("patient caller: want o-alice; got %v, %v", s, err)
	}
}

func TestCheckSessionKey(t *testing.T) {
	ctx := context.Background()
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	key := fake.AddUser(wxtest.User{OpenID: "o-alice"}).SessionKey

	if err := c.CheckSessionKey(ctx, "o-alice", key); err != nil {
		t.Errorf("current key: want nil; got %v", err)
	}
	fake.RotateSessionKey("o-alice")
	err := c.CheckSessionKey(ctx, "o-alice", key)
	if apiErr, ok := errors.AsType[*wx.APIError](err); !ok || !apiErr.InvalidSignature() || apiErr.Op != "checksession" {
		t.Errorf("rotated key: want errcode 87009 from checksession; got %v", err)
	}
	if err := c.CheckSessionKey(ctx, "o-nobody", key); err == nil {
		t.Errorf("unknown user: want an error; got nil")
	}
	if err := c.CheckSessionKey(ctx, "", key); err == nil {
		t.Errorf("empty openid: want an error; got nil")
	}
	if got := fake.Calls(wxtest.StableToken); got != 1 {
		t.Errorf("want 1 stable_token call for all checks; got %d", got)
	}
}
