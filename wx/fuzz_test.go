package wx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mpsession/mpsession/wx/wxtest"
)

// fuzzVector reads the official decrypt vector for seeds; fuzzing without it would miss
// the one real ciphertext.
func fuzzVector(f *testing.F) (appID, key, data, iv string) {
	b, err := os.ReadFile("testdata/wechat-vectors.json")
	if err != nil {
		f.Fatalf("official WeChat vectors missing: %v", err)
	}
	var v struct {
		Decrypt struct {
			AppID, SessionKey, IV, EncryptedData string
		}
	}
	if err := json.Unmarshal(b, &v); err != nil {
		f.Fatal(err)
	}
	d := v.Decrypt
	return d.AppID, d.SessionKey, d.EncryptedData, d.IV
}

// FuzzDecrypt feeds Decrypt arbitrary base64 strings: it must never panic, and must
// return the plaintext only with a matching watermark.
func FuzzDecrypt(f *testing.F) {
	appID, key, data, iv := fuzzVector(f)
	f.Add(key, data, iv)
	f.Add(key, data[:len(data)-4], iv)
	f.Add(key, strings.TrimRight(data, "="), strings.TrimRight(iv, "="))
	f.Add("", "", "")
	f.Add(key, "AAAA", iv)
	f.Add(key, strings.Repeat("A", 24), iv)
	f.Add("AAAAAAAAAAAAAAAAAAAAAA==", data, iv)
	f.Add(key, data, "AAAAAAAAAAAAAAAAAAAAAA==")
	wkey := "HyVFkGl5F5OQWJZZaNzBBg=="
	d, i := wxtest.Encrypt(wkey, []byte(`{"watermark":{"appid":"`+appID+`","timestamp":1}}`))
	f.Add(wkey, d, i)
	d, i = wxtest.Encrypt(wkey, []byte(`{"watermark":"x"}`))
	f.Add(wkey, d, i)
	d, i = wxtest.Encrypt(wkey, nil)
	f.Add(wkey, d, i)

	f.Fuzz(func(t *testing.T, sessionKey, encryptedData, iv string) {
		pt, err := Decrypt(appID, sessionKey, encryptedData, iv, 0)
		if err != nil {
			if pt != nil {
				t.Errorf("want no plaintext with an error; got %q", pt)
			}
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrWatermark) {
				t.Errorf("want ErrDecrypt or ErrWatermark; got %v", err)
			}
			return
		}
		checkWatermark(t, appID, pt)
	})
}

// FuzzDecryptPlaintext encrypts arbitrary plaintext properly and decrypts it: the result
// must be the plaintext itself, or an error; well-formed data must come through.
func FuzzDecryptPlaintext(f *testing.F) {
	const appID = "wx4f4bc4dec97d474b"
	const key = "tiihtNczf5v6AKRyjwEUhQ=="
	f.Add([]byte(`{"watermark":{"appid":"wx4f4bc4dec97d474b","timestamp":1477314187}}`))
	f.Add([]byte(`{"openId":"o","watermark":{"appid":"wx4f4bc4dec97d474b"}}`))
	f.Add([]byte(`{"watermark":{"appid":"wx0000000000000000"}}`))
	f.Add([]byte(`{"watermark":{"appid":1}}`))
	f.Add([]byte(`{"WATERMARK":{"APPID":"wx4f4bc4dec97d474b"}}`))
	f.Add([]byte(`{"watermark":{"appid":"wx4f4bc4dec97d474b"},"watermark":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Add(bytes.Repeat([]byte{16}, 16))

	f.Fuzz(func(t *testing.T, plaintext []byte) {
		data, iv := wxtest.Encrypt(key, plaintext)
		pt, err := Decrypt(appID, key, data, iv, 0)
		if err != nil {
			if errors.Is(err, ErrDecrypt) && json.Valid(plaintext) && len(plaintext) > 0 && plaintext[0] == '{' {
				t.Errorf("a JSON object failed to decrypt: %v", err)
			}
			return
		}
		if !bytes.Equal(pt, plaintext) {
			t.Errorf("want %q; got %q", plaintext, pt)
		}
		checkWatermark(t, appID, pt)
	})
}

func checkWatermark(t *testing.T, appID string, pt []byte) {
	t.Helper()
	var doc struct {
		Watermark Watermark `json:"watermark"`
	}
	if err := json.Unmarshal(pt, &doc); err != nil || doc.Watermark.AppID != appID {
		t.Errorf("accepted plaintext without watermark appid %q: %q (%v)", appID, pt, err)
	}
}

// FuzzParseResponse feeds arbitrary replies to the parser for every reply type and every
// API: it must never panic, must fail on any status but 200, and must never quote the
// secret or a session_key the reply holds. Around each reply it also plants a credential,
// in one of the encodings plants lists (the fuzzer picks), where an error may quote it: in
// a page a proxy sent and in WeChat's errmsg. It must not survive into the error, encoded
// or not.
func FuzzParseResponse(f *testing.F) {
	const secret = "9f3c1ab27d4e8f60b5c2a1d0e9f87a6b"
	const key = "tiihtNczf5v6AKRyjwEUhQ=="
	seeds := []string{
		`{"openid":"o","session_key":"k","unionid":"u"}`,
		`{"errcode":40029,"errmsg":"invalid code"}`,
		`{"errcode":-1,"errmsg":"system error"}`,
		`{"access_token":"T","expires_in":7200}`,
		`{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"1","purePhoneNumber":"1","countryCode":86,"watermark":{"timestamp":1,"appid":"wx"}}}`,
		`{"phone_info":{"phoneNumber":"1","countryCode":"86"}}`,
		`{"phone_info":{"countryCode":1e400}}`,
		`{"errcode":"0"}`,
		`{"errcode":1e3}`,
		`<html><body>502</body></html>`,
		`{"secret":"` + secret + `"`,
		``,
		`null`,
		`{"session_key":"` + key + `","openid":"o1","unionid":5}`,
		`{"session_key":"` + key + `","openid":"o1"`,
		`{"session\u005fkey":"` + key + `","expires_in":"x"}`,
		`{"session_key":"\u0074iihtNczf5v6AKRyjwEUhQ==","errcode":"x"}`,
		` [{"session_key":"` + key + `"},1e400]`,
		`{"phone_info":{"countryCode":{"session_key":"` + key + `"}}}`,
		`<p>{"session_key" : "` + key + `"</p>`,
		`<p>session_key=` + key + `&openid=o1</p>`,
		`<p>SESSION_KEY=` + key + `</p>`,
		`<p>access_token%3D` + planted + `</p>`,
		`{"errcode":40001,"errmsg":"invalid credential, access_token%253d` + planted + `"}`,
		`{"errcode":40029,"errmsg":"invalid code, hints: [ req_id: 1 ] js_code%3D` + planted + `"}`,
		`%25`,
		`%2`,
		`secret":`,
		`%%32%35%32%35%33%44`,
	}
	all := plants()
	for i, s := range seeds {
		f.Add(200, []byte(s), uint8(i))
	}
	for i := range all {
		f.Add(200, []byte(`<p>x</p>`), uint8(i))
	}
	f.Add(502, []byte(`{"errcode":0}`), uint8(0))

	ops := []string{"jscode2session", "stable_token", "token", "checksession", "getuserphonenumber", "op"}
	f.Fuzz(func(t *testing.T, status int, body []byte, plant uint8) {
		keys := sessionKeys(body)
		outs := []any{new(Session), new(tokenReply), new(phoneReply), nil}
		for _, op := range ops {
			for _, out := range outs {
				err := parseResponse(op, secret, status, body, out)
				if err == nil {
					if status != 200 {
						t.Fatalf("status %d accepted", status)
					}
					if p, ok := out.(*phoneReply); ok {
						if info, err := p.info(); err == nil && info.PhoneNumber == "" {
							t.Errorf("empty phone number accepted")
						}
					}
					continue
				}
				msg := err.Error()
				if strings.Contains(msg, secret) {
					t.Errorf("error quotes the secret: %s", msg)
				}
				for _, k := range keys {
					if strings.Contains(msg, k) {
						t.Errorf("%s: error quotes session_key %q: %s", op, k, msg)
					}
				}
				if !strings.HasPrefix(msg, "wx: "+op+": ") {
					t.Errorf("want the op first; got %q", msg)
				}
				_, isAPI := errors.AsType[*APIError](err)
				_, isHTTP := errors.AsType[*HTTPError](err)
				if !isAPI && !isHTTP && !errors.Is(err, ErrMalformed) {
					t.Errorf("unexpected error kind %T: %v", err, err)
				}
			}
		}

		// The value planted must come from the plant alone.
		if strings.Contains(decodeAll(string(body)), planted) {
			return
		}
		// " & " ends whatever the reply left open (a key waiting for its value, an
		// escape waiting for its digits), so that the plant stands on its own.
		p, text := all[int(plant)%len(all)], string(body)
		replies := map[string][]byte{
			"stable_token":   []byte(p + " & " + text),
			"jscode2session": errmsgReply(text + " & " + p + " & " + text),
		}
		for op, reply := range replies {
			err := parseResponse(op, secret, 200, reply, nil)
			if err == nil {
				t.Fatalf("%s: reply %q accepted", op, reply)
			}
			if msg := err.Error(); strings.Contains(decodeAll(msg), planted) {
				t.Errorf("%s: error quotes the value planted as %q: %s", op, p, msg)
			}
		}
	})
}

// planted is the credential value plants carry; nothing else in an error may hold it.
const planted = "Pl4nt3dV4lu3"

// plants returns planted under every name scrub knows, in the forms a URL, a form or a
// JSON body gives it: plain, percent-encoded once or more, with upper or lower case hex,
// with the name or the value encoded too.
func plants() []string {
	var out []string
	for _, name := range []string{"secret", "access_token", "js_code", "code", "session_key", "Access_Token"} {
		member := `"` + name + `": "` + planted + `"`
		out = append(out,
			name+"="+planted,
			name+"%3D"+planted,
			name+"%3d"+planted,
			name+"%253D"+planted,
			name+"%25253d"+planted,
			encodeAll(name, "%%%02X")+"%3D"+planted,
			encodeAll(name, "%%25%02x")+"%253d"+encodeAll(planted, "%%25%02X"),
			name+"="+encodeAll(planted, "%%%02x"),
			member,
			strings.ReplaceAll(member, `"`, `\"`),
			url.QueryEscape(member),
			url.PathEscape(url.QueryEscape(member)),
		)
	}
	return out
}

// encodeAll percent-encodes every byte of s with format ("%%%02X": once, upper case).
func encodeAll(s, format string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, format, s[i])
	}
	return b.String()
}

// errmsgReply is WeChat's answer with errcode 40029 and errmsg msg.
func errmsgReply(msg string) []byte {
	b, err := json.Marshal(map[string]any{"errcode": 40029, "errmsg": msg})
	if err != nil {
		panic(err)
	}
	return b
}

var escape = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)

// decodeAll decodes every percent escape in s, again and again until none is left.
func decodeAll(s string) string {
	for {
		d := escape.ReplaceAllStringFunc(s, func(e string) string {
			b, _ := strconv.ParseUint(e[1:], 16, 8)
			return string([]byte{byte(b)})
		})
		if d == s {
			return s
		}
		s = d
	}
}

// keyLike matches what a session_key looks like: padded base64 (WeChat's are 24
// characters). Shorter or unpadded values could occur in an error's own words, so
// only these are looked for.
var keyLike = regexp.MustCompile(`^[A-Za-z0-9+/]{8,}={1,2}$`)

// keyInText finds session_key values in text that is not JSON, in the query and JSON
// forms a proxy might echo.
var keyInText = regexp.MustCompile(`(?i)session_key(?:=|"\s*:\s*")([A-Za-z0-9+/]{8,}={1,2})`)

// sessionKeys returns the session_key values in body that look like keys: every JSON
// value under a session_key member, at any depth, as far as the body decodes, and the
// values keyInText finds.
func sessionKeys(body []byte) []string {
	var keys []string
	for _, m := range keyInText.FindAllSubmatch(body, -1) {
		keys = append(keys, string(m[1]))
	}
	type level struct {
		object, wantKey bool
		key             string
	}
	var stack []level
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return keys
		}
		var top *level
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, level{object: tok == json.Delim('{'), wantKey: true})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if top != nil && top.object && top.wantKey {
				top.key, top.wantKey = tok.(string), false
				continue
			}
			if s, ok := tok.(string); ok && top != nil && top.object && top.key == "session_key" && keyLike.MatchString(s) {
				keys = append(keys, s)
			}
		}
		// A value ended: its object, if any, wants the next key.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
}
