package fiberstore

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

var sampleRecords = []*record{
	{expires: 1, fields: map[string]string{}},
	{expires: 1700000000123, deadline: 1700000999000, indexed: 1700000500000, owner: "oABC-openid",
		fields: map[string]string{"name": `"Ann"`, "score": "7", "empty": "", "\xff": "\x00\x01"}},
	{expires: 1<<62 + 5, owner: strings.Repeat("o", 300), fields: map[string]string{"long": strings.Repeat("x", 70000)}},
}

func TestRecordRoundTrip(t *testing.T) {
	for _, want := range sampleRecords {
		got, err := decodeRecord(encodeRecord(want))
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !sameRecord(want, got) {
			t.Errorf("want %+v; got %+v", want, got)
		}
	}
}

func TestIndexRoundTrip(t *testing.T) {
	for _, want := range [][]entry{
		nil,
		{{hash: [32]byte{1}, until: 5}},
		{{hash: [32]byte{1}, until: 5}, {hash: [32]byte{2}, until: -3}, {hash: [32]byte{31: 9}, until: 1 << 60}},
	} {
		got, err := decodeIndex(encodeIndex(want))
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if len(want) != len(got) || (len(want) > 0 && !slices.Equal(want, got)) {
			t.Errorf("want %v; got %v", want, got)
		}
	}
}

func TestTicketRoundTrip(t *testing.T) {
	for _, v := range []string{"", "x", "\x00\xff" + strings.Repeat("v", 1000)} {
		exp, got, err := decodeTicket(encodeTicket(42, v))
		if err != nil || exp != 42 || got != v {
			t.Errorf("want 42 %q; got %d %q %v", v, exp, got, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := encodeRecord(sampleRecords[1])
	cases := map[string][]byte{
		"empty":            {},
		"one byte":         {kindSession},
		"wrong kind":       append([]byte{kindTicket}, valid[1:]...),
		"future version":   append([]byte{kindSession, 2}, valid[2:]...),
		"trailing byte":    append(bytes.Clone(valid), 0),
		"zero expiry":      {kindSession, version1, 0, 0, 0, 0, 0},
		"negative expiry":  {kindSession, version1, 1, 0, 0, 0, 0},
		"negative dead":    {kindSession, version1, 2, 1, 0, 0, 0},
		"count too large":  {kindSession, version1, 2, 0, 0, 0, 3, 1, 'a', 0},
		"owner too long":   {kindSession, version1, 2, 0, 0, 5, 'a'},
		"empty field name": {kindSession, version1, 2, 0, 0, 0, 1, 0, 0},
		"duplicate field":  {kindSession, version1, 2, 0, 0, 0, 2, 1, 'a', 0, 1, 'a', 0},
		"varint overflow":  {kindSession, version1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	}
	for i := range valid {
		cases["cut at "+string(rune('0'+i%10))+"/"+string(rune('a'+i/10))] = valid[:i]
	}
	for name, b := range cases {
		r, err := decodeRecord(b)
		if !errors.Is(err, ErrCorrupt) || r != nil {
			t.Errorf("%s: want nil and an error wrapping ErrCorrupt; got %+v and %v", name, r, err)
		}
	}

	idx := encodeIndex([]entry{{hash: [32]byte{1}, until: 5}, {hash: [32]byte{2}, until: 6}})
	for name, b := range map[string][]byte{
		"cut":             idx[:len(idx)-1],
		"trailing":        append(bytes.Clone(idx), 0),
		"listed twice":    encodeIndex([]entry{{hash: [32]byte{1}, until: 5}, {hash: [32]byte{1}, until: 6}}),
		"count too large": {kindOwner, version1, 0xff, 0x01},
	} {
		if _, err := decodeIndex(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("index %s: want an error wrapping ErrCorrupt; got %v", name, err)
		}
	}
	for name, b := range map[string][]byte{
		"no expiry":   {kindTicket, version1},
		"zero expiry": {kindTicket, version1, 0, 'v'},
		"session":     valid,
	} {
		if _, _, err := decodeTicket(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ticket %s: want an error wrapping ErrCorrupt; got %v", name, err)
		}
	}
}

// FuzzDecode feeds arbitrary bytes, as a shared or damaged backend might hold, to every
// decoder: each must return a value or an error wrapping ErrCorrupt, never panic, and
// what it accepts must survive encoding again.
func FuzzDecode(f *testing.F) {
	for _, r := range sampleRecords[:2] {
		f.Add(encodeRecord(r))
	}
	f.Add(encodeIndex([]entry{{hash: [32]byte{1}, until: 5}, {hash: [32]byte{2}, until: 1 << 50}}))
	f.Add(encodeTicket(1700000000000, "ticket value"))
	f.Add([]byte{})
	f.Add([]byte{kindSession, version1})
	f.Add([]byte{kindSession, version1, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte(`{"fields":{"a":"1"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRecord(b); err != nil {
			if !errors.Is(err, ErrCorrupt) || r != nil {
				t.Fatalf("decodeRecord: want nil and ErrCorrupt; got %+v and %v", r, err)
			}
		} else {
			again, err := decodeRecord(encodeRecord(r))
			if err != nil || !sameRecord(r, again) {
				t.Fatalf("record does not survive encoding: %+v -> %+v, %v", r, again, err)
			}
		}
		if idx, err := decodeIndex(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeIndex: want ErrCorrupt; got %v", err)
			}
		} else {
			again, err := decodeIndex(encodeIndex(idx))
			if err != nil || !slices.Equal(idx, again) {
				t.Fatalf("index does not survive encoding: %v -> %v, %v", idx, again, err)
			}
		}
		if exp, v, err := decodeTicket(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeTicket: want ErrCorrupt; got %v", err)
			}
		} else if exp2, v2, err := decodeTicket(encodeTicket(exp, v)); err != nil || exp2 != exp || v2 != v {
			t.Fatalf("ticket does not survive encoding")
		}
	})
}

func sameRecord(a, b *record) bool {
	return a.expires == b.expires && a.deadline == b.deadline && a.indexed == b.indexed &&
		a.owner == b.owner && maps.Equal(a.fields, b.fields)
}
