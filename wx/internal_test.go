package wx

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTokenTTL(t *testing.T) {
	tests := []struct {
		name         string
		life, margin time.Duration
		want         time.Duration
	}{
		{"fresh token", 7200 * time.Second, 5 * time.Minute, 6900 * time.Second},
		{"stable token near its end", 345 * time.Second, 5 * time.Minute, 45 * time.Second},
		{"margin bigger than life", 300 * time.Second, 5 * time.Minute, 30 * time.Second},
		{"huge margin", 7200 * time.Second, 3 * time.Hour, 720 * time.Second},
		{"tiny life", 2 * time.Second, 5 * time.Minute, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tokenTTL(tt.life, tt.margin); got != tt.want {
				t.Errorf("want %s; got %s", tt.want, got)
			}
		})
	}
}

func TestDefaultHTTPClient(t *testing.T) {
	c, err := New(Config{AppID: "wx1", AppSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.hc.Timeout != 10*time.Second {
		t.Errorf("want a 10s timeout; got %s", c.hc.Timeout)
	}
	tr, ok := c.hc.Transport.(*http.Transport)
	if !ok || tr.TLSHandshakeTimeout == 0 || tr.ResponseHeaderTimeout == 0 {
		t.Errorf("want a transport with handshake and header timeouts; got %#v", c.hc.Transport)
	}
	other, _ := New(Config{AppID: "wx2", AppSecret: "s"})
	if other.hc != c.hc {
		t.Errorf("want Clients without an HTTPClient to share one connection pool")
	}
	if c.source != StableToken || c.margin != 5*time.Minute || c.base != "https://api.weixin.qq.com" {
		t.Errorf("want the documented defaults; got %v %s %s", c.source, c.margin, c.base)
	}
}

func TestParseResponse(t *testing.T) {
	type out struct {
		A string `json:"a"`
	}
	tests := []struct {
		name   string
		status int
		body   string
		want   string // "" = no error; else a substring of the error
		is     error
		code   int
	}{
		{"ok", 200, `{"a":"x"}`, "", nil, 0},
		{"ok with errcode 0", 200, `{"errcode":0,"errmsg":"ok","a":"x"}`, "", nil, 0},
		{"errcode", 200, `{"errcode":40029,"errmsg":"invalid code"}`, "wx: op: errcode 40029: invalid code", nil, 40029},
		{"errcode and data", 200, `{"errcode":-1,"a":"x"}`, "errcode -1", nil, -1},
		{"HTML", 200, `<html>`, "wx: op: malformed response: invalid character", ErrMalformed, 0},
		{"empty", 200, ``, "malformed response", ErrMalformed, 0},
		{"wrong type", 200, `{"a":1}`, "malformed response", ErrMalformed, 0},
		{"errcode float", 200, `{"errcode":1.5}`, "malformed response", ErrMalformed, 0},
		{"too large", 200, `{"a":"` + strings.Repeat("x", maxBody) + `"}`, "larger than", ErrMalformed, 0},
		{"HTTP 500", 500, `{"a":"x"}`, "wx: op: HTTP 500 Internal Server Error", nil, 0},
		{"secret echoed", 200, `<p>{"secret":"abcdefgh12345678", "a":`, `\"secret\":\"REDACTED\"`, ErrMalformed, 0},
		{"token echoed", 200, `<p>access_token=T0K3N&a=`, `access_token=REDACTED&a=`, ErrMalformed, 0},
		{"session key echoed", 200, `<p>{"session_key":"tiihtNczf5v6AKRyjwEUhQ==", "a":`, `\"session_key\":\"REDACTED\"`, ErrMalformed, 0},
		{"errmsg echoes a token", 200, `{"errcode":40001,"errmsg":"invalid credential, access_token%3DT0K3N, rid: 1"}`, "wx: op: errcode 40001: invalid credential, access_token=REDACTED rid: 1", nil, 40001},
		{"errmsg echoes a code", 200, `{"errcode":40029,"errmsg":"invalid code, hints: [ js_code%253dC0D3 ]"}`, "errcode 40029: invalid code, hints: [ js_code=REDACTED ]", nil, 40029},
		{"errmsg echoes the secret", 200, `{"errcode":40125,"errmsg":"invalid appsecret abcdefgh%312345678"}`, "errcode 40125: invalid appsecret REDACTED", nil, 40125},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o out
			err := parseResponse("op", "abcdefgh12345678", tt.status, []byte(tt.body), &o)
			if tt.want == "" {
				if err != nil || o.A != "x" {
					t.Errorf("want a=x, nil; got %q, %v", o.A, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want an error containing %q; got %v", tt.want, err)
			}
			if strings.Contains(err.Error(), "abcdefgh12345678") {
				t.Errorf("error holds the secret: %v", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("want errors.Is %v; got %v", tt.is, err)
			}
			if apiErr, ok := errors.AsType[*APIError](err); ok != (tt.code != 0) || (ok && apiErr.Code != tt.code) {
				t.Errorf("want errcode %d; got %v", tt.code, err)
			}
		})
	}
}

func TestParseResponseQuotesOnlyHarmlessBodies(t *testing.T) {
	const key = "tiihtNczf5v6AKRyjwEUhQ=="
	tests := []struct {
		name, op, body string
		quoted         bool
	}{
		{"HTML page", "stable_token", `<html>502 Bad Gateway</html>`, true},
		{"empty", "op", ``, true},
		{"JSON object", "op", `{"a":1,"b":"visible"}`, false},
		{"JSON object after spaces", "op", " \r\n\t{\"b\":\"visible\"", false},
		{"JSON array", "op", `["visible"]`, false},
		{"escaped key", "op", `{"session\u005fkey":"` + key + `","a":1}`, false},
		{"jscode2session HTML page", "jscode2session", `<html>visible</html>`, false},
		{"jscode2session wrong type", "jscode2session", `{"session_key":"` + key + `","openid":"o1","unionid":5}`, false},
		{"jscode2session text", "jscode2session", `visible session_key=` + key, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out struct {
				A       string `json:"a"`
				UnionID string `json:"unionid"`
			}
			err := parseResponse(tt.op, "abcdefgh12345678", 200, []byte(tt.body), &out)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("want ErrMalformed; got %v", err)
			}
			msg := err.Error()
			if got := strings.Contains(msg, "(body "); got != tt.quoted {
				t.Errorf("want body quoted %v; got %q", tt.quoted, msg)
			}
			if !tt.quoted && strings.Contains(msg, "visible") {
				t.Errorf("want no part of the body; got %q", msg)
			}
			if strings.Contains(msg, key) {
				t.Errorf("error holds the session_key: %q", msg)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	tests := []struct{ in, want string }{
		{"GET /x?appid=wx1&secret=abc&js_code=c1", "GET /x?appid=wx1&secret=REDACTED&js_code=REDACTED"},
		{"/y?access_token=T0k3n&openid=o", "/y?access_token=REDACTED&openid=o"},
		{`{"secret": "s3cr3t", "appid":"wx"}`, `{"secret": "REDACTED", "appid":"wx"}`},
		{"plain mention of s3cr3tvalue here", "plain mention of REDACTED here"},
		{`{"openid":"o1","session_key":"tiihtNczf5v6AKRyjwEUhQ=="}`, `{"openid":"o1","session_key":"REDACTED"}`},
		{`{\"Session_Key\": \"tiihtNczf5v6AKRyjwEUhQ==\"}`, `{\"Session_Key\": \"REDACTED\"}`},
		{"?openid=o1&session_key=tiihtNczf5v6AKRyjwEUhQ==&x=1", "?openid=o1&session_key=REDACTED&x=1"},
		{"/sns/x?code=c1&errcode=1", "/sns/x?code=REDACTED&errcode=1"},
		{`{"code": "c1", "errcode":"1"}`, `{"code": "REDACTED", "errcode":"1"}`},

		// Percent-encoded, as a URL quoted inside another URL or a form is.
		{"/y?access_token%3DT0k3n%26openid%3Do", "/y?access_token=REDACTED&openid=o"},
		{"/y?ACCESS_TOKEN%3dT0k3n", "/y?ACCESS_TOKEN=REDACTED"},
		{"next=%2Fy%253Faccess_token%253DT0k3n%2526openid%253Do", "next=/y?access_token=REDACTED&openid=o"},
		{"next=js_code%25253dc0d3", "next=js_code=REDACTED"},
		{"%61ccess%5Ftoken=T0k3n&x=1", "access_token=REDACTED&x=1"},
		{"access_token=T0k%26en&x=1", "access_token=REDACTED&x=1"},
		{"access_token%3D%54%30k%33n", "access_token=REDACTED"},
		{"body=%7B%22secret%22%3A+%22abc%22%7D", `body={"secret":+"REDACTED"}`},
		{"%22session_key%22%3A%20%22tiihtNczf5v6AKRyjwEUhQ%3D%3D%22", `"session_key": "REDACTED"`},
		{"key s3cr%33tvalue and s3cr%25%33%33tvalue", "key REDACTED and REDACTED"},
		{"100% sure: %zz, %0A and %E4%BD%A0 stay", "100% sure: %zz, %0A and %E4%BD%A0 stay"},
		{encodeTimes("access_token=T0k3n", 8), "access_token=REDACTED"},
		{encodeTimes("access_token=T0k3n", 9), "REDACTED (percent-encoded too many times)"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := scrub(tt.in, "s3cr3tvalue"); got != tt.want {
				t.Errorf("want %q; got %q", tt.want, got)
			}
		})
	}
}

// encodeTimes percent-encodes s's "=" n times over.
func encodeTimes(s string, n int) string {
	for range n {
		s = strings.ReplaceAll(strings.ReplaceAll(s, "%", "%25"), "=", "%3D")
	}
	return s
}

func TestUnpad(t *testing.T) {
	block := func(tail ...byte) []byte {
		b := make([]byte, 16-len(tail), 16)
		for i := range b {
			b[i] = 'x'
		}
		return append(b, tail...)
	}
	full := make([]byte, 16)
	for i := range full {
		full[i] = 16
	}
	tests := []struct {
		name    string
		in      []byte
		wantLen int
		ok      bool
	}{
		{"one pad byte", block(1), 15, true},
		{"three pad bytes", block(3, 3, 3), 13, true},
		{"whole block of padding", full, 0, true},
		{"zero", block(0), 0, false},
		{"seventeen", block(17), 0, false},
		{"255", block(255), 0, false},
		{"mismatch", block(2, 3, 3), 0, false},
		{"claims more than present", block('x', 2), 0, false},
		{"empty", nil, 0, false},
		{"not a block", []byte{1, 1, 1}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := unpad(tt.in)
			if ok != tt.ok || (ok && len(got) != tt.wantLen) {
				t.Errorf("want %d bytes, %v; got %d bytes, %v", tt.wantLen, tt.ok, len(got), ok)
			}
		})
	}
}
