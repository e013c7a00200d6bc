package wsauth

import (
	"strings"
	"testing"
)

// FuzzSubprotocol feeds arbitrary Sec-WebSocket-Protocol values to the credential
// reader: it must never panic, and what it returns must be one offered entry, never
// the fixed name, never empty, never holding a separator.
func FuzzSubprotocol(f *testing.F) {
	f.Add("mpsession, abc")
	f.Add("abc,mpsession")
	f.Add("mpsession")
	f.Add(" , ,mpsession,,x,y")
	f.Add("chat, superchat")
	f.Add("mpsession,\x00\xff")
	f.Fuzz(func(t *testing.T, offered string) {
		cred, ok := subprotocolCredential(offered, "mpsession")
		if !ok {
			return
		}
		if cred == "" || cred == "mpsession" || strings.Contains(cred, ",") || cred != strings.TrimSpace(cred) {
			t.Errorf("offered %q: got credential %q", offered, cred)
		}
		if !strings.Contains(offered, cred) {
			t.Errorf("offered %q: credential %q was not offered", offered, cred)
		}
	})
}
