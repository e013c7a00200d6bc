package wx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// assertNoSecrets fails if msg holds the AppSecret, a token, or a query carrying them.
func assertNoSecrets(t *testing.T, msg string, tokens ...string) {
	t.Helper()
	for _, s := range append([]string{testSecret, "secret=" + testSecret[:4], "access_token=" + firstOr(tokens)}, tokens...) {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("message holds %q: %s", s, msg)
		}
	}
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return "x"
	}
	return s[0]
}

func TestTransportErrorsHoldNoSecrets(t *testing.T) {
	ctx := context.Background()

	t.Run("connection refused, secret in the query", func(t *testing.T) {
		fake := wxtest.NewServer(testAppID, testSecret)
		code := fake.NewCode("o-alice")
		fake.Close()
		c := newClient(t, fake, wx.Config{})
		_, err := c.Code2Session(ctx, code)
		if err == nil {
			t.Fatal("want an error; got nil")
		}
		msg := err.Error()
		assertNoSecrets(t, msg)
		if strings.Contains(msg, code) || strings.Contains(msg, "?") {
			t.Errorf("message holds the query: %s", msg)
		}
		want := "wx: jscode2session: GET " + fake.URL + "/sns/jscode2session: "
		if !strings.HasPrefix(msg, want) {
			t.Errorf("want a message starting %q; got %q", want, msg)
		}
		if opErr, ok := errors.AsType[*net.OpError](err); !ok || opErr.Op != "dial" {
			t.Errorf("want the dial error kept for errors.As; got %T", errors.Unwrap(err))
		}
	})

	t.Run("timeout, token in the query", func(t *testing.T) {
		fake := newFake(t)
		c := newClient(t, fake, wx.Config{HTTPClient: newHTTPClient(t, 100*time.Millisecond)})
		tok, err := c.AccessToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fake.Fail(wxtest.PhoneNumber, wxtest.Fault{Latency: time.Second})
		_, err = c.PhoneNumber(ctx, fake.NewPhoneCode("o-alice"))
		if err == nil {
			t.Fatal("want a timeout; got nil")
		}
		assertNoSecrets(t, err.Error(), tok)
		if netErr, ok := errors.AsType[net.Error](err); !ok || !netErr.Timeout() {
			t.Errorf("want a net.Error timeout; got %v", err)
		}
		if !strings.HasPrefix(err.Error(), "wx: getuserphonenumber: POST ") {
			t.Errorf("want the op and method first; got %q", err)
		}
	})

	t.Run("context deadline", func(t *testing.T) {
		fake := newFake(t)
		c := newClient(t, fake, wx.Config{})
		fake.Fail(wxtest.Code2Session, wxtest.Fault{Latency: time.Second})
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := c.Code2Session(dctx, fake.NewCode("o-alice"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("want context.DeadlineExceeded; got %v", err)
		}
		assertNoSecrets(t, err.Error())
	})

	t.Run("hang-up", func(t *testing.T) {
		fake := newFake(t)
		c := newClient(t, fake, wx.Config{})
		fake.Fail(wxtest.StableToken, wxtest.Fault{Hangup: true})
		_, err := c.AccessToken(ctx)
		if err == nil {
			t.Fatal("want an error; got nil")
		}
		assertNoSecrets(t, err.Error())
		if !strings.HasPrefix(err.Error(), "wx: stable_token: POST ") {
			t.Errorf("want the op first; got %q", err)
		}
	})

	t.Run("transport that quotes the URL and body", func(t *testing.T) {
		fake := newFake(t)
		for _, source := range []wx.TokenSource{wx.StableToken, wx.ClassicToken} {
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				var body []byte
				if r.Body != nil {
					body, _ = io.ReadAll(r.Body)
				}
				return nil, fmt.Errorf("proxy refused %s with body %s", r.URL, body)
			})}
			c := newClient(t, fake, wx.Config{HTTPClient: hc, TokenSource: source})
			for _, call := range []func() error{
				func() error { _, err := c.AccessToken(ctx); return err },
				func() error { _, err := c.Code2Session(ctx, "some-code"); return err },
			} {
				err := call()
				if err == nil {
					t.Fatal("want an error; got nil")
				}
				assertNoSecrets(t, err.Error())
				if strings.Contains(err.Error(), "some-code") {
					t.Errorf("message holds the login code: %s", err)
				}
			}
		}
	})

	t.Run("business call through a transport that quotes the URL", func(t *testing.T) {
		fake := newFake(t)
		inner := newHTTPClient(t, 5*time.Second)
		var tok string
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if strings.Contains(r.URL.Path, "getuserphonenumber") {
				tok = r.URL.Query().Get("access_token")
				return nil, fmt.Errorf("proxy refused %s", r.URL)
			}
			return inner.Transport.RoundTrip(r)
		})}
		c := newClient(t, fake, wx.Config{HTTPClient: hc})
		_, err := c.PhoneNumber(ctx, fake.NewPhoneCode("o-alice"))
		if err == nil || tok == "" {
			t.Fatalf("want a transport error after a token fetch; got %v", err)
		}
		assertNoSecrets(t, err.Error(), tok)
	})

	t.Run("transport that quotes the URL percent-encoded", func(t *testing.T) {
		// A proxy that redirects to its login page, quoting the request URL in its query,
		// once or twice encoded.
		for _, times := range []int{1, 2} {
			fake := newFake(t)
			inner := newHTTPClient(t, 5*time.Second)
			var tok string
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if !strings.Contains(r.URL.Path, "getuserphonenumber") && !strings.Contains(r.URL.Path, "jscode2session") {
					return inner.Transport.RoundTrip(r)
				}
				tok = r.URL.Query().Get("access_token")
				next := r.URL.String()
				for range times {
					next = url.QueryEscape(next)
				}
				return nil, fmt.Errorf("redirected to https://proxy.example/login?next=%s", next)
			})}
			c := newClient(t, fake, wx.Config{HTTPClient: hc})
			_, err := c.PhoneNumber(ctx, fake.NewPhoneCode("o-alice"))
			if err == nil || tok == "" {
				t.Fatalf("want a transport error after a token fetch; got %v", err)
			}
			assertNoSecrets(t, err.Error(), tok)
			_, err = c.Code2Session(ctx, "login-code-0123456789")
			if err == nil {
				t.Fatal("want an error; got nil")
			}
			assertNoSecrets(t, err.Error())
			if strings.Contains(err.Error(), "login-code-0123456789") {
				t.Errorf("message holds the login code: %s", err)
			}
		}
	})

	t.Run("malformed body that echoes credentials", func(t *testing.T) {
		fake := newFake(t)
		c := newClient(t, fake, wx.Config{})
		fake.Fail(wxtest.StableToken, wxtest.Fault{Body: `<p>bad request secret=` + testSecret + `</p>`})
		_, err := c.AccessToken(ctx)
		if !errors.Is(err, wx.ErrMalformed) {
			t.Fatalf("want ErrMalformed; got %v", err)
		}
		assertNoSecrets(t, err.Error())
		if !strings.Contains(err.Error(), "<p>bad request") {
			t.Errorf("want the start of the body quoted; got %q", err)
		}
	})
}

// WeChat's errmsg has echoed what it was sent: it is scrubbed like any other text.
func TestAPIErrorHoldsNoSecrets(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	code := fake.NewCode("o-alice")
	encoded := strings.ReplaceAll(url.QueryEscape(url.QueryEscape("secret="+testSecret)), "2", "%32")
	fake.Fail(wxtest.Code2Session, wxtest.Fault{
		ErrCode: 40029,
		ErrMsg:  "invalid code, rid: 6523f0e1, hints: [ js_code%3D" + code + " " + encoded + " ]",
	})
	_, err := c.Code2Session(context.Background(), code)
	apiErr, ok := errors.AsType[*wx.APIError](err)
	if !ok || !apiErr.InvalidCode() {
		t.Fatalf("want errcode 40029; got %v", err)
	}
	for _, msg := range []string{err.Error(), apiErr.Msg} {
		assertNoSecrets(t, msg)
		if strings.Contains(msg, code) {
			t.Errorf("message holds the login code: %s", msg)
		}
	}
	if want := "wx: jscode2session: errcode 40029: invalid code, rid: 6523f0e1, hints: [ js_code=REDACTED secret=REDACTED ]"; err.Error() != want {
		t.Errorf("want %q; got %q", want, err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestAPIErrorHelpers(t *testing.T) {
	tests := []struct {
		code int
		want string // the helper that must be true; the others must be false
	}{
		{-1, "Busy"},
		{40029, "InvalidCode"},
		{40163, "CodeUsed"},
		{40226, "Blocked"},
		{45011, "RateLimited"},
		{45009, "RateLimited"},
		{40001, "TokenInvalid"},
		{40014, "TokenInvalid"},
		{42001, "TokenInvalid"},
		{87009, "InvalidSignature"},
		{40013, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			e := &wx.APIError{Op: "op", Code: tt.code, Msg: "m"}
			helpers := map[string]bool{
				"Busy":             e.Busy(),
				"InvalidCode":      e.InvalidCode(),
				"CodeUsed":         e.CodeUsed(),
				"Blocked":          e.Blocked(),
				"RateLimited":      e.RateLimited(),
				"TokenInvalid":     e.TokenInvalid(),
				"InvalidSignature": e.InvalidSignature(),
			}
			for name, got := range helpers {
				if want := name == tt.want; got != want {
					t.Errorf("%s: want %v; got %v", name, want, got)
				}
			}
			if got, want := e.Error(), fmt.Sprintf("wx: op: errcode %d: m", tt.code); got != want {
				t.Errorf("want %q; got %q", want, got)
			}
		})
	}
	if got, want := (&wx.HTTPError{Op: "token", StatusCode: 502}).Error(), "wx: token: HTTP 502 Bad Gateway"; got != want {
		t.Errorf("want %q; got %q", want, got)
	}
}
