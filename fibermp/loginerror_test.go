package fibermp_test

import (
	"strings"
	"testing"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// WeChat's errmsg is for the server's logs: it has echoed request parameters and holds
// request ids. A refused login tells the client the errcode and fixed words, nothing else.
func TestLoginErrorHoldsNoErrmsg(t *testing.T) {
	t.Parallel()
	const errmsg = "leaked text, rid: 6523f0e1-7c2a, hints: [ req_id: HiddenReqID ] js_code=EchoedCode"
	tests := []struct {
		code   int
		status int
		want   string
	}{
		{40029, 401, "errcode 40029: invalid login code"},
		{40163, 401, "errcode 40163: login code already used"},
		{45011, 429, "errcode 45011: too many logins, try again later"},
		{45009, 429, "errcode 45009: too many logins, try again later"},
		{-1, 503, "errcode -1: WeChat is busy"},
		{40226, 403, "errcode 40226: WeChat refused the login"},
		{40013, 502, "errcode 40013: WeChat refused the login"},
	}
	for _, p := range []fibermp.Protocol{fibermp.Wafer, fibermp.Token} {
		h := newHarness(t, fibermp.Config{Protocol: p}, nil)
		for _, tt := range tests {
			t.Run(p.String()+"/"+tt.want, func(t *testing.T) {
				h.wx.Fail(wxtest.Code2Session, wxtest.Fault{ErrCode: tt.code, ErrMsg: errmsg})
				code := h.code("o-alice")
				var r reply
				if p == fibermp.Token {
					r = h.do(t, "POST", "/login", map[string]string{"Content-Type": "application/json"}, `{"code":"`+code+`"}`)
				} else {
					r = h.do(t, "GET", "/login", map[string]string{"X-WX-Code": code}, "")
				}
				if got, _ := r.json(t)["message"].(string); r.status != tt.status || got != tt.want {
					t.Errorf("want %d %q; got %d %q", tt.status, tt.want, r.status, got)
				}
				for _, part := range []string{"leaked", "rid", "6523f0e1", "HiddenReqID", "EchoedCode", "js_code", code} {
					if strings.Contains(string(r.body), part) {
						t.Errorf("reply holds %q of WeChat's errmsg or the request: %s", part, r.body)
					}
				}
			})
		}
	}
}
