package fibermp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// withCtx runs fn with a Fiber context for a request built by build.
func withCtx(build func(r *fasthttp.Request), fn func(c *fiber.Ctx)) {
	app := fiber.New()
	fctx := &fasthttp.RequestCtx{}
	build(&fctx.Request)
	c := app.AcquireCtx(fctx)
	defer app.ReleaseCtx(c)
	fn(c)
}

// FuzzCredentials feeds arbitrary session headers and query strings to the credential
// readers of every protocol: they must never panic, and whatever they accept must be a
// credential this package could have issued.
func FuzzCredentials(f *testing.F) {
	id, skey := strings.Repeat("ab", 32), strings.Repeat("cd", 20)
	token := strings.Repeat("A", 43)
	f.Add(id, skey, "", "", "")
	f.Add(id, "", "Bearer "+token, token, "X-WX-Id="+id+"&x-wx-skey="+skey)
	f.Add("", "", "bearer "+token, "", "x-wx-id=%zz&X-WX-SKEY")
	f.Add(strings.ToUpper(id), skey+"0", "Basic x", token+"=", "X-WX-Id=a=b")
	f.Add("\x00", "é", "Bearer", "", "&&=&")
	f.Fuzz(func(t *testing.T, id, skey, auth, sessionID, query string) {
		for _, p := range []Protocol{Wafer, Wafer2, Token} {
			withCtx(func(r *fasthttp.Request) {
				r.SetRequestURI("/x?" + query)
				r.Header.Set(HeaderID, id)
				r.Header.Set(HeaderSkey, skey)
				r.Header.Set(fiber.HeaderAuthorization, auth)
				r.Header.Set(HeaderSessionID, sessionID)
			}, func(c *fiber.Ctx) {
				cr, ok, err := readCredentials(c, p)
				if !ok || err != nil {
					return
				}
				if _, err := parseCredential(p, joinCredential(cr)); err != nil {
					t.Errorf("%s: accepted %+v, which is no credential it issues: %v", p, cr, err)
				}
			})
		}
	})
}

func joinCredential(cr credentials) string {
	if cr.skey != "" {
		return cr.id + "." + cr.skey
	}
	return cr.id
}

// FuzzLogin feeds arbitrary login requests to the login reader: it must never panic,
// and what it accepts must be a well-formed login.
func FuzzLogin(f *testing.F) {
	f.Add(`{"code":"abc"}`, "abc", "", "")
	f.Add(`{"code":"abc","encryptedData":"x","iv":"y","rawData":"{}","signature":"s"}`, "", "enc", "iv")
	f.Add(`{"code":`, "a\x00b", "", "iv")
	f.Add(`[]`, strings.Repeat("c", 300), "", "")
	f.Add(`{"code":1}`, "", "", "")
	f.Add(`null`, "x", "\xff", "\xfe")
	f.Fuzz(func(t *testing.T, body, code, enc, iv string) {
		for _, p := range []Protocol{Wafer, Wafer2, Token} {
			withCtx(func(r *fasthttp.Request) {
				r.Header.SetMethod(fiber.MethodPost)
				r.SetRequestURI("/login")
				r.SetBodyString(body)
				r.Header.Set(HeaderCode, code)
				r.Header.Set(HeaderEncryptedData, enc)
				r.Header.Set(HeaderIV, iv)
			}, func(c *fiber.Ctx) {
				req, err := readLogin(c, p)
				if err != nil {
					if err.Error() == "" {
						t.Errorf("%s: an error without a message", p)
					}
					return
				}
				if req.Code == "" || len(req.Code) > maxCodeLen || (req.EncryptedData == "") != (req.IV == "") {
					t.Errorf("%s: accepted a malformed login %+v", p, req)
				}
				if p == Token && !json.Valid([]byte(body)) {
					t.Errorf("accepted a body that is not JSON: %q", body)
				}
			})
		}
	})
}
