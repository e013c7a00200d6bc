package store_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mpsession/mpsession/store"
)

func TestParsePosition(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want store.Position
		ok   bool
	}{
		{"", store.Position{}, true},
		{"a1B2.1", store.Position{Epoch: "a1B2", Offset: 1}, true},
		{"0123456789abcdef.18446744073709551615", store.Position{Epoch: "0123456789abcdef", Offset: 1<<64 - 1}, true},
		{"e.0", store.Position{Epoch: "e"}, true}, // before the epoch's first message
		{"e.01", store.Position{}, false},         // one way to write each
		{"e.00", store.Position{}, false},
		{"e.18446744073709551616", store.Position{}, false},
		{".1", store.Position{}, false},
		{"e.", store.Position{}, false},
		{"e1", store.Position{}, false},
		{"e-f.1", store.Position{}, false},
		{"e.+1", store.Position{}, false},
		{"e.1.2", store.Position{}, false},
		{"abcdefghijklmnopqrstuvwxyz0123456.1", store.Position{}, false}, // 33 bytes of epoch
	} {
		got, err := store.ParsePosition(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParsePosition(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, store.ErrPosition) {
			t.Errorf("ParsePosition(%q): error %v is not ErrPosition", tc.in, err)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("ParsePosition(%q).String() = %q", tc.in, got.String())
		}
	}
}

func TestKeptMessage(t *testing.T) {
	pos := store.Position{Epoch: "abc", Offset: 42}
	b := store.KeptMessage(pos, []byte("a b\x00"))
	if string(b) != "abc.42 a b\x00" {
		t.Fatalf("KeptMessage = %q", b)
	}
	got, msg, err := store.ParseKept(b)
	if err != nil || got != pos || string(msg) != "a b\x00" {
		t.Errorf("ParseKept(%q) = %v, %q, %v", b, got, msg, err)
	}
	for _, bad := range []string{"", " x", "abc.42", "abc.00 x", "zero position", ". x"} {
		if _, _, err := store.ParseKept([]byte(bad)); !errors.Is(err, store.ErrPosition) {
			t.Errorf("ParseKept(%q): want ErrPosition; got %v", bad, err)
		}
	}
}

// FuzzParseKept: whatever a listener receives, ParseKept returns a valid position and
// the rest of the input, or ErrPosition; what it accepts, KeptMessage writes back the
// same.
func FuzzParseKept(f *testing.F) {
	for _, seed := range []string{"abc.42 msg", "0123456789abcdef.1 {\"a\":1}", "e.1 ", "e.01 x", "", " ", "e.18446744073709551616 x", "\xff.1 x"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pos, msg, err := store.ParseKept(b)
		if err != nil {
			if !errors.Is(err, store.ErrPosition) {
				t.Fatalf("ParseKept(%q): error %v is not ErrPosition", b, err)
			}
			return
		}
		if pos.IsZero() || !store.ValidEpoch(pos.Epoch) {
			t.Fatalf("ParseKept(%q) accepted %v", b, pos)
		}
		if again := store.KeptMessage(pos, msg); !bytes.Equal(again, b) {
			t.Fatalf("ParseKept(%q) = %v, %q; KeptMessage writes %q", b, pos, msg, again)
		}
		if p2, err := store.ParsePosition(pos.String()); err != nil || p2 != pos {
			t.Fatalf("ParsePosition(%q) = %v, %v; want %v", pos.String(), p2, err, pos)
		}
	})
}
