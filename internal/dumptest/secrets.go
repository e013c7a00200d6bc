package dumptest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// A Secret is a value a store must not hold in any form its reader could use.
type Secret struct {
	Name  string // what it is, for messages: "the WeChat session_key of o-ann"
	Value string
}

// An Entry is one thing a store holds (a key name, a hash field, a row's column),
// and where it is, for messages.
type Entry struct {
	Where string
	Data  []byte
}

// An Encoding is one form a secret could be written in.
type Encoding struct {
	Name string // "raw", "hex", "base64url unpadded", ...
	Text []byte
}

// Encodings returns the forms value could be written in: raw, hex in lower and upper
// case, base64 in the standard and URL alphabets with and without padding, and the part
// of its base64 that is the same wherever it sits in a longer encoded blob (it starts
// at one of three byte offsets modulo 3). A value that is itself hex or base64 text (an
// id, a key) is also looked for as the bytes it decodes to, in the same forms.
func Encodings(value string) []Encoding {
	var out []Encoding
	seen := map[string]bool{}
	add := func(name string, text []byte) {
		if len(text) > 0 && !seen[string(text)] {
			seen[string(text)] = true
			out = append(out, Encoding{name, text})
		}
	}
	forms := func(prefix string, b []byte) {
		add(prefix+"raw", b)
		add(prefix+"hex", []byte(hex.EncodeToString(b)))
		add(prefix+"HEX", []byte(strings.ToUpper(hex.EncodeToString(b))))
		for _, e := range []struct {
			name string
			enc  *base64.Encoding
		}{{"base64", base64.StdEncoding}, {"base64url", base64.URLEncoding}} {
			add(prefix+e.name, []byte(e.enc.EncodeToString(b)))
			add(prefix+e.name+" unpadded", []byte(e.enc.WithPadding(base64.NoPadding).EncodeToString(b)))
			for off := range 3 {
				// The characters made of value's bits alone, when value starts off
				// bytes past a multiple of 3 in an encoded blob.
				enc := e.enc.EncodeToString(append(make([]byte, off), b...))
				add(prefix+e.name+" inside a blob", []byte(enc[(8*off+5)/6:8*(off+len(b))/6]))
			}
		}
	}
	forms("", []byte(value))
	for _, dec := range []func(string) ([]byte, error){
		hex.DecodeString,
		base64.StdEncoding.DecodeString,
		base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString,
		base64.RawURLEncoding.DecodeString,
	} {
		if b, err := dec(value); err == nil && len(b) >= 8 {
			forms("decoded, ", b)
		}
	}
	return out
}

// Check fails the test for each entry of dump that holds one of secrets in one of
// its Encodings, naming the secret, the form and where it is. Secrets shorter than 8
// bytes fail the test: they would match by chance.
func Check(tb testing.TB, dump []Entry, secrets []Secret) {
	tb.Helper()
	for _, s := range secrets {
		if len(s.Value) < 8 {
			tb.Fatalf("dumptest.Check: %s (%q) is too short to look for", s.Name, s.Value)
		}
		encs := Encodings(s.Value)
		for _, e := range dump {
			for _, enc := range encs {
				if i := bytes.Index(e.Data, enc.Text); i >= 0 {
					tb.Errorf("%s holds %s %q (%s) at byte %d: %s", e.Where, s.Name, s.Value, enc.Name, i, excerpt(e.Data, i, len(enc.Text)))
					break // one message per secret and place
				}
			}
		}
	}
}

// Holds reports whether some entry of dump holds text as is: a test checks with it
// that its dump does see what the store keeps.
func Holds(dump []Entry, text string) bool {
	for _, e := range dump {
		if bytes.Contains(e.Data, []byte(text)) {
			return true
		}
	}
	return false
}

// excerpt quotes the part of b around the n bytes at i.
func excerpt(b []byte, i, n int) string {
	const around = 24
	start, end := max(i-around, 0), min(i+n+around, len(b))
	q := fmt.Sprintf("%q", b[start:end])
	if start > 0 {
		q = "…" + q
	}
	if end < len(b) {
		q += "…"
	}
	return q
}
