package session

import (
	"strings"
	"testing"
)

func TestSeal(t *testing.T) {
	id := strings.Repeat("ab", 32)
	sealed := Seal(id, FieldSessionKey, "tiihtNczf5v6AKRyjwEUhQ==")
	if strings.Contains(sealed, "tiihtNczf5v6AKRyjwEUhQ") {
		t.Fatalf("the sealed value holds the plain text: %s", sealed)
	}
	if again := Seal(id, FieldSessionKey, "tiihtNczf5v6AKRyjwEUhQ=="); again == sealed {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	if got, err := Unseal(id, FieldSessionKey, sealed); err != nil || got != "tiihtNczf5v6AKRyjwEUhQ==" {
		t.Errorf("unseal: got %q, %v", got, err)
	}
	i := len(sealed) / 2
	flip := byte('A')
	if sealed[i] == 'A' {
		flip = 'B'
	}
	tampered := sealed[:i] + string(flip) + sealed[i+1:]
	for name, tc := range map[string]struct{ id, field, sealed string }{
		"another session": {strings.Repeat("cd", 32), FieldSessionKey, sealed},
		"another field":   {id, FieldUserInfo, sealed},
		"tampered":        {id, FieldSessionKey, tampered},
		"clear text":      {id, FieldSessionKey, "tiihtNczf5v6AKRyjwEUhQ=="},
		"not base64":      {id, FieldSessionKey, "v1:!!"},
		"short":           {id, FieldSessionKey, "v1:AAAA"},
	} {
		if got, err := Unseal(tc.id, tc.field, tc.sealed); err == nil {
			t.Errorf("%s: want an error; got %q", name, got)
		}
	}
}

func TestSkeyMatches(t *testing.T) {
	skey := strings.Repeat("cd", 20)
	stored := HashSkey(skey)
	if !SkeyMatches(stored, skey) {
		t.Error("the skey does not match its own hash")
	}
	for _, other := range []string{"", strings.Repeat("cd", 19) + "ce", skey + "0"} {
		if SkeyMatches(stored, other) {
			t.Errorf("%q matches", other)
		}
	}
	if SkeyMatches(skey, skey) {
		t.Error("a clear skey in the store matches: only its hash may")
	}
}
