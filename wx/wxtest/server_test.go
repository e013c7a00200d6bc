package wxtest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testenv.IgnoreFasthttp...) // a test mounts the fake in Fiber
}

const (
	appID  = "wx4f4bc4dec97d474b"
	secret = "9f3c1ab27d4e8f60b5c2a1d0e9f87a6b"
)

func newServer(t *testing.T) *wxtest.Server {
	t.Helper()
	s := wxtest.NewServer(appID, secret)
	t.Cleanup(s.Close)
	return s
}

// reply is a decoded WeChat answer.
type reply struct {
	status int
	ctype  string
	raw    string
	fields map[string]any
}

func (r reply) errcode() int {
	n, _ := r.fields["errcode"].(float64)
	return int(n)
}

func (r reply) str(key string) string {
	s, _ := r.fields[key].(string)
	return s
}

var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}

// call sends one request to base+path and decodes the answer.
func call(t *testing.T, method, base, path string, q url.Values, body any) reply {
	t.Helper()
	t.Cleanup(httpClient.CloseIdleConnections)
	u := base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), raw: string(b)}
	json.Unmarshal(b, &r.fields)
	return r
}

func code2Session(t *testing.T, s *wxtest.Server, code string) reply {
	t.Helper()
	q := url.Values{"appid": {appID}, "secret": {secret}, "js_code": {code}, "grant_type": {"authorization_code"}}
	return call(t, http.MethodGet, s.URL, "/sns/jscode2session", q, nil)
}

func stableToken(t *testing.T, s *wxtest.Server, force bool) reply {
	t.Helper()
	body := map[string]any{"grant_type": "client_credential", "appid": appID, "secret": secret, "force_refresh": force}
	return call(t, http.MethodPost, s.URL, "/cgi-bin/stable_token", nil, body)
}

func classicToken(t *testing.T, s *wxtest.Server) reply {
	t.Helper()
	q := url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}}
	return call(t, http.MethodGet, s.URL, "/cgi-bin/token", q, nil)
}

// tokenCheck returns the errcode checksession answers for token (0: accepted).
func tokenCheck(t *testing.T, s *wxtest.Server, token string) int {
	t.Helper()
	key := s.AddUser(wxtest.User{OpenID: "o-probe", SessionKey: "HyVFkGl5F5OQWJZZaNzBBg=="}).SessionKey
	m := hmac.New(sha256.New, []byte(key))
	q := url.Values{"access_token": {token}, "openid": {"o-probe"}, "signature": {hex.EncodeToString(m.Sum(nil))}, "sig_method": {"hmac_sha256"}}
	return call(t, http.MethodGet, s.URL, "/wxa/checksession", q, nil).errcode()
}

func TestLoginCodes(t *testing.T) {
	s := newServer(t)
	s.AddUser(wxtest.User{OpenID: "o-alice", UnionID: "u-alice"})

	code := s.NewCode("o-alice")
	r := code2Session(t, s, code)
	if r.errcode() != 0 || r.str("openid") != "o-alice" || r.str("unionid") != "u-alice" || r.str("session_key") != s.User("o-alice").SessionKey {
		t.Fatalf("want openid, unionid and session_key; got %s", r.raw)
	}
	if !strings.HasPrefix(r.ctype, "text/plain") {
		t.Errorf("want WeChat's text/plain content type; got %q", r.ctype)
	}
	if _, ok := r.fields["errcode"]; ok {
		t.Errorf("want no errcode on success; got %s", r.raw)
	}

	tests := []struct {
		name string
		code func() string
		want int
	}{
		{"used", func() string { return code }, 40163},
		{"unknown", func() string { return "nope" }, 40029},
		{"empty", func() string { return "" }, 41008},
		{"expired", func() string { c := s.NewCode("o-alice"); s.Advance(wxtest.CodeLifetime); return c }, 40029},
		{"blocked", func() string { s.AddUser(wxtest.User{OpenID: "o-bad", Blocked: true}); return s.NewCode("o-bad") }, 40226},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := code2Session(t, s, tt.code()).errcode(); got != tt.want {
				t.Errorf("want errcode %d; got %d", tt.want, got)
			}
		})
	}
	t.Run("just before expiry", func(t *testing.T) {
		c := s.NewCode("o-alice")
		s.Advance(wxtest.CodeLifetime - time.Second)
		if got := code2Session(t, s, c).errcode(); got != 0 {
			t.Errorf("want 0; got %d", got)
		}
	})
	t.Run("new user from NewCode", func(t *testing.T) {
		r := code2Session(t, s, s.NewCode("o-new"))
		if r.str("openid") != "o-new" || s.User("o-new") == nil {
			t.Errorf("want o-new created; got %s", r.raw)
		}
	})
}

func TestCredentialsAndMethods(t *testing.T) {
	s := newServer(t)
	tests := []struct {
		name         string
		method, path string
		q            url.Values
		body         any
		want         int
	}{
		{"jscode2session wrong appid", "GET", "/sns/jscode2session", url.Values{"appid": {"wx0"}, "secret": {secret}, "js_code": {"c"}, "grant_type": {"authorization_code"}}, nil, 40013},
		{"jscode2session wrong secret", "GET", "/sns/jscode2session", url.Values{"appid": {appID}, "secret": {"x"}, "js_code": {"c"}, "grant_type": {"authorization_code"}}, nil, 40125},
		{"jscode2session wrong grant", "GET", "/sns/jscode2session", url.Values{"appid": {appID}, "secret": {secret}, "js_code": {"c"}, "grant_type": {"x"}}, nil, 40002},
		{"jscode2session POST", "POST", "/sns/jscode2session", nil, nil, 43001},
		{"stable_token GET", "GET", "/cgi-bin/stable_token", nil, nil, 43002},
		{"stable_token not JSON", "POST", "/cgi-bin/stable_token", nil, nil, 47001},
		{"stable_token wrong secret", "POST", "/cgi-bin/stable_token", nil, map[string]any{"grant_type": "client_credential", "appid": appID, "secret": "x"}, 40125},
		{"stable_token wrong grant", "POST", "/cgi-bin/stable_token", nil, map[string]any{"grant_type": "x", "appid": appID, "secret": secret}, 40002},
		{"token wrong appid", "GET", "/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {"wx0"}, "secret": {secret}}, nil, 40013},
		{"token POST", "POST", "/cgi-bin/token", nil, nil, 43001},
		{"phone GET", "GET", "/wxa/business/getuserphonenumber", nil, nil, 43002},
		{"phone no token", "POST", "/wxa/business/getuserphonenumber", nil, map[string]string{"code": "c"}, 41001},
		{"phone unknown token", "POST", "/wxa/business/getuserphonenumber", url.Values{"access_token": {"forged"}}, map[string]string{"code": "c"}, 40001},
		{"checksession no token", "GET", "/wxa/checksession", nil, nil, 41001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := call(t, tt.method, s.URL, tt.path, tt.q, tt.body).errcode(); got != tt.want {
				t.Errorf("want errcode %d; got %d", tt.want, got)
			}
		})
	}
}

func TestStableToken(t *testing.T) {
	s := newServer(t)
	first := stableToken(t, s, false)
	tok := first.str("access_token")
	if tok == "" || first.fields["expires_in"] != float64(7200) {
		t.Fatalf("want a token for 7200 s; got %s", first.raw)
	}

	// Normal mode: the same token, with what is left of its life.
	s.Advance(time.Hour)
	again := stableToken(t, s, false)
	if left, _ := again.fields["expires_in"].(float64); again.str("access_token") != tok || left < 3590 || left > 3600 {
		t.Errorf("want the same token with 3600 s left; got %s", again.raw)
	}

	// In its last 5 minutes, normal mode renews it; the old one works until it expires.
	s.Advance(time.Hour - wxtest.TokenOverlap)
	renewed := stableToken(t, s, false).str("access_token")
	if renewed == tok {
		t.Fatal("want a renewed token in the last 5 minutes")
	}
	if got := tokenCheck(t, s, tok); got != 0 {
		t.Errorf("old token in its overlap: want accepted; got %d", got)
	}
	s.Advance(wxtest.TokenOverlap)
	if got := tokenCheck(t, s, tok); got != 42001 {
		t.Errorf("old token past its life: want 42001; got %d", got)
	}
	if got := tokenCheck(t, s, renewed); got != 0 {
		t.Errorf("renewed token: want accepted; got %d", got)
	}
	if s.ForceRefreshes() != 0 || s.Calls(wxtest.StableToken) != 3 {
		t.Errorf("want 3 calls, no force; got %d, %d", s.Calls(wxtest.StableToken), s.ForceRefreshes())
	}
}

func TestStableTokenForceRefresh(t *testing.T) {
	s := newServer(t)
	tok := stableToken(t, s, false).str("access_token")

	forced := stableToken(t, s, true)
	newTok := forced.str("access_token")
	if newTok == "" || newTok == tok {
		t.Fatalf("want a new token; got %s", forced.raw)
	}
	if got := tokenCheck(t, s, tok); got != 40001 {
		t.Errorf("token replaced by force: want 40001; got %d", got)
	}
	if got := stableToken(t, s, true).errcode(); got != 45011 {
		t.Errorf("second force within 30 s: want 45011; got %d", got)
	}
	if got := stableToken(t, s, false).str("access_token"); got != newTok {
		t.Errorf("normal mode after force: want the forced token")
	}
	accepted := 1
	for range 30 {
		s.Advance(wxtest.ForceRefreshInterval)
		if stableToken(t, s, true).errcode() == 0 {
			accepted++
		}
	}
	if accepted != wxtest.ForceRefreshPerDay {
		t.Errorf("want %d forced refreshes a day; got %d", wxtest.ForceRefreshPerDay, accepted)
	}
	if got := stableToken(t, s, true).errcode(); got != 45009 && got != 45011 {
		t.Errorf("want a quota error; got %d", got)
	}
	s.Advance(24 * time.Hour)
	if got := stableToken(t, s, true).errcode(); got != 0 {
		t.Errorf("next day: want 0; got %d", got)
	}
	if got := s.ForceRefreshes(); got != 34 {
		t.Errorf("want 34 force requests counted; got %d", got)
	}
}

func TestClassicToken(t *testing.T) {
	s := newServer(t)
	stable := stableToken(t, s, false).str("access_token")
	first := classicToken(t, s).str("access_token")
	second := classicToken(t, s).str("access_token")
	if first == "" || first == second {
		t.Fatalf("want a new token each call; got %q, %q", first, second)
	}
	if got := tokenCheck(t, s, first); got != 0 {
		t.Errorf("replaced token within 5 minutes: want accepted; got %d", got)
	}
	s.Advance(wxtest.TokenOverlap)
	if got := tokenCheck(t, s, first); got != 40001 {
		t.Errorf("replaced token after 5 minutes: want 40001; got %d", got)
	}
	if got := tokenCheck(t, s, second); got != 0 {
		t.Errorf("latest token: want accepted; got %d", got)
	}
	if got := tokenCheck(t, s, stable); got != 0 {
		t.Errorf("stable token is apart from classic ones: want accepted; got %d", got)
	}
	s.InvalidateTokens()
	for _, tok := range []string{second, stable} {
		if got := tokenCheck(t, s, tok); got != 40001 {
			t.Errorf("after InvalidateTokens: want 40001; got %d", got)
		}
	}
	if got := stableToken(t, s, false).str("access_token"); got == stable || !s.AccessTokenValid(got) {
		t.Errorf("after InvalidateTokens: want a new stable token")
	}
}

func TestCheckSession(t *testing.T) {
	s := newServer(t)
	key := s.AddUser(wxtest.User{OpenID: "o-alice"}).SessionKey
	tok := stableToken(t, s, false).str("access_token")
	sign := func(k string) string {
		m := hmac.New(sha256.New, []byte(k))
		return hex.EncodeToString(m.Sum(nil))
	}
	tests := []struct {
		name                string
		openid, sig, method string
		want                int
	}{
		{"valid", "o-alice", sign(key), "hmac_sha256", 0},
		{"decoded key bytes", "o-alice", sign(string(mustDecode(t, key))), "hmac_sha256", 87009},
		{"other method", "o-alice", sign(key), "sha1", 87009},
		{"unknown user", "o-nobody", sign(key), "hmac_sha256", 87009},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"access_token": {tok}, "openid": {tt.openid}, "signature": {tt.sig}, "sig_method": {tt.method}}
			if got := call(t, "GET", s.URL, "/wxa/checksession", q, nil).errcode(); got != tt.want {
				t.Errorf("want errcode %d; got %d", tt.want, got)
			}
		})
	}
	newKey := s.RotateSessionKey("o-alice")
	q := url.Values{"access_token": {tok}, "openid": {"o-alice"}, "sig_method": {"hmac_sha256"}}
	q.Set("signature", sign(key))
	if got := call(t, "GET", s.URL, "/wxa/checksession", q, nil).errcode(); got != 87009 {
		t.Errorf("rotated: old key want 87009; got %d", got)
	}
	q.Set("signature", sign(newKey))
	if got := call(t, "GET", s.URL, "/wxa/checksession", q, nil).errcode(); got != 0 {
		t.Errorf("rotated: new key want 0; got %d", got)
	}
}

func mustDecode(t *testing.T, key string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(b) != 16 {
		t.Fatalf("bad key %q", key)
	}
	return b
}

func TestPhoneNumber(t *testing.T) {
	s := newServer(t)
	s.AddUser(wxtest.User{OpenID: "o-alice", PhoneNumber: "13800138000"})
	tok := stableToken(t, s, false).str("access_token")
	q := url.Values{"access_token": {tok}}
	code := s.NewPhoneCode("o-alice")

	r := call(t, "POST", s.URL, "/wxa/business/getuserphonenumber", q, map[string]string{"code": code})
	info, _ := r.fields["phone_info"].(map[string]any)
	if r.errcode() != 0 || info["purePhoneNumber"] != "13800138000" || info["countryCode"] != "86" {
		t.Fatalf("want the number with countryCode \"86\"; got %s", r.raw)
	}
	if wm, _ := info["watermark"].(map[string]any); wm["appid"] != appID {
		t.Errorf("want watermark appid %q; got %v", appID, info["watermark"])
	}
	if got := call(t, "POST", s.URL, "/wxa/business/getuserphonenumber", q, map[string]string{"code": code}).errcode(); got != 40029 {
		t.Errorf("used code: want 40029; got %d", got)
	}
	s.NumericCountryCode(true)
	r = call(t, "POST", s.URL, "/wxa/business/getuserphonenumber", q, map[string]string{"code": s.NewPhoneCode("o-alice")})
	if !strings.Contains(r.raw, `"countryCode":86`) {
		t.Errorf("want a numeric countryCode; got %s", r.raw)
	}
	expired := s.NewPhoneCode("o-alice")
	s.Advance(wxtest.CodeLifetime)
	if got := call(t, "POST", s.URL, "/wxa/business/getuserphonenumber", q, map[string]string{"code": expired}).errcode(); got != 40029 {
		t.Errorf("expired code: want 40029; got %d", got)
	}
}

func TestFaults(t *testing.T) {
	s := newServer(t)
	tok := stableToken(t, s, false).str("access_token")
	s.ResetCalls()

	s.Fail(wxtest.StableToken, wxtest.Fault{ErrCode: 45011})
	s.Fail(wxtest.StableToken, wxtest.Fault{ErrCode: -1, ErrMsg: "busy now", Times: 2})
	s.Fail(wxtest.StableToken, wxtest.Fault{Status: 502})
	s.Fail(wxtest.StableToken, wxtest.Fault{Status: 503, Body: "{not json"})
	s.Fail(wxtest.StableToken, wxtest.Fault{Body: "<html>oops</html>"})

	want := []struct {
		status  int
		errcode int
		raw     string
	}{
		{200, 45011, ""},
		{200, -1, `{"errcode":-1,"errmsg":"busy now"}`},
		{200, -1, ""},
		{502, 0, ""},
		{503, 0, "{not json"},
		{200, 0, "<html>oops</html>"},
	}
	for i, w := range want {
		r := stableToken(t, s, false)
		if r.status != w.status || r.errcode() != w.errcode || (w.raw != "" && r.raw != w.raw) {
			t.Errorf("request %d: want %d/%d/%q; got %d/%d/%q", i, w.status, w.errcode, w.raw, r.status, r.errcode(), r.raw)
		}
	}
	if r := stableToken(t, s, false); r.str("access_token") != tok {
		t.Errorf("faults used up: want the normal answer; got %s", r.raw)
	}
	if got := s.Calls(wxtest.StableToken); got != 7 {
		t.Errorf("want 7 calls counted, faults included; got %d", got)
	}

	t.Run("until cleared", func(t *testing.T) {
		s.Fail(wxtest.Code2Session, wxtest.Fault{ErrCode: -1, Times: -1})
		for range 3 {
			if got := code2Session(t, s, "x").errcode(); got != -1 {
				t.Errorf("want -1; got %d", got)
			}
		}
		s.ClearFaults()
		if got := code2Session(t, s, "x").errcode(); got != 40029 {
			t.Errorf("after ClearFaults: want 40029; got %d", got)
		}
	})
	t.Run("latency", func(t *testing.T) {
		s.Fail(wxtest.Token, wxtest.Fault{Latency: 150 * time.Millisecond})
		start := time.Now()
		r := classicToken(t, s)
		if d := time.Since(start); d < 150*time.Millisecond || r.str("access_token") == "" {
			t.Errorf("want a normal answer after 150ms; got %s after %s", r.raw, d)
		}
	})
	t.Run("latency cut short by the client", func(t *testing.T) {
		s.Fail(wxtest.Token, wxtest.Fault{Latency: 10 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/cgi-bin/token", nil)
		if _, err := httpClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("want the client's deadline; got %v", err)
		}
	})
	t.Run("hang-up", func(t *testing.T) {
		s.Fail(wxtest.PhoneNumber, wxtest.Fault{Hangup: true})
		req, _ := http.NewRequest("POST", s.URL+"/wxa/business/getuserphonenumber", strings.NewReader("{}"))
		if resp, err := httpClient.Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("want a transport error; got HTTP %d", resp.StatusCode)
		}
	})
	t.Run("unknown endpoint panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Errorf("want a panic")
			}
		}()
		s.Fail("jscode2sesion", wxtest.Fault{ErrCode: -1})
	})
}

func TestHandlerMounted(t *testing.T) {
	s := wxtest.New(appID, secret)
	if s.URL != "" {
		t.Errorf("want no URL for an unstarted server; got %q", s.URL)
	}
	mux := http.NewServeMux()
	mux.Handle("/wechat/", http.StripPrefix("/wechat", s.Handler()))
	dev := httptest.NewServer(mux)
	defer dev.Close()
	defer s.Close()

	r := call(t, "GET", dev.URL, "/wechat/wxtest/code", url.Values{"openid": {"o-dev"}}, nil)
	code := r.str("code")
	if code == "" || r.str("openid") != "o-dev" {
		t.Fatalf("want a code for o-dev; got %s", r.raw)
	}
	r = call(t, "GET", dev.URL, "/wxtest/code", nil, nil) // not mounted here
	if r.status != http.StatusNotFound {
		t.Errorf("want 404 outside the mount; got %d", r.status)
	}

	c, err := wx.New(wx.Config{AppID: appID, AppSecret: secret, BaseURL: dev.URL + "/wechat/", HTTPClient: httpClient})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := c.Code2Session(context.Background(), code)
	if err != nil || sess.OpenID != "o-dev" {
		t.Errorf("want o-dev through the mounted handler; got %v, %v", sess, err)
	}
	anon := call(t, "POST", dev.URL, "/wechat/wxtest/code", nil, nil)
	if id := anon.str("openid"); len(id) != 28 || s.User(id) == nil {
		t.Errorf("want a new 28-character openid; got %s", anon.raw)
	}
}

func TestEncryptUserInfo(t *testing.T) {
	s := newServer(t)
	s.AddUser(wxtest.User{OpenID: "o-alice", UnionID: "u-alice"})
	key := s.User("o-alice").SessionKey
	data, iv := s.EncryptUserInfo("o-alice", map[string]any{"nickName": "Alice", "openId": "o-claimed"})
	plain, err := wx.Decrypt(appID, key, data, iv, time.Minute)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	var doc map[string]any
	json.Unmarshal(plain, &doc)
	if doc["openId"] != "o-claimed" || doc["unionId"] != "u-alice" || doc["nickName"] != "Alice" {
		t.Errorf("want the given openId kept and unionId added; got %s", plain)
	}
	sig := s.SignRawData("o-alice", `{"nickName":"Alice"}`)
	if !wx.VerifySignature(`{"nickName":"Alice"}`, key, sig) {
		t.Errorf("want a signature wx accepts")
	}
	t.Run("unknown user panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Errorf("want a panic")
			}
		}()
		s.EncryptUserInfo("o-nobody", nil)
	})
}

func TestConcurrentUse(t *testing.T) {
	s := newServer(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			code := s.NewCode("o-user")
			if got := code2Session(t, s, code).errcode(); got != 0 {
				t.Errorf("%d: want 0; got %d", i, got)
			}
			stableToken(t, s, false)
			s.Advance(time.Second)
			s.Calls(wxtest.StableToken)
		})
	}
	wg.Wait()
	if got := s.Calls(wxtest.Code2Session); got != 20 {
		t.Errorf("want 20; got %d", got)
	}
}
