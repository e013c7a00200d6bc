package session

import (
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/mpsession/mpsession/internal/testenv"
)

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
			testenv.WithCtx(func(r *fasthttp.Request) {
				r.SetRequestURI("/x?" + query)
				r.Header.Set(HeaderID, id)
				r.Header.Set(HeaderSkey, skey)
				r.Header.Set(fiber.HeaderAuthorization, auth)
				r.Header.Set(HeaderSessionID, sessionID)
			}, func(c *fiber.Ctx) {
				cr, ok, err := ReadCredentials(c, p, true)
				if !ok || err != nil {
					return
				}
				if _, err := ParseCredential(p, cr.String()); err != nil {
					t.Errorf("%s: accepted %+v, which is no credential it issues: %v", p, cr, err)
				}
			})
		}
	})
}
