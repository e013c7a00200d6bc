package fibermp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/mpsession/mpsession/internal/session"
	"github.com/mpsession/mpsession/internal/testenv"
)

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
		for _, p := range []session.Protocol{session.Wafer, session.Wafer2, session.Token} {
			testenv.WithCtx(func(r *fasthttp.Request) {
				r.Header.SetMethod(fiber.MethodPost)
				r.SetRequestURI("/login")
				r.SetBodyString(body)
				r.Header.Set(HeaderCode, code)
				r.Header.Set(HeaderEncryptedData, enc)
				r.Header.Set(HeaderIV, iv)
			}, func(c *fiber.Ctx) {
				req, err := readLogin(c, p, true)
				if err != nil {
					if err.Error() == "" {
						t.Errorf("%s: an error without a message", p)
					}
					return
				}
				if req.Code == "" || len(req.Code) > maxCodeLen || (req.EncryptedData == "") != (req.IV == "") {
					t.Errorf("%s: accepted a malformed login %+v", p, req)
				}
				if p == session.Token && !json.Valid([]byte(body)) {
					t.Errorf("accepted a body that is not JSON: %q", body)
				}
			})
		}
	})
}
