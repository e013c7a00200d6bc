package fiberstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Blob format, version 1. Every blob starts with a kind byte and a version byte; integers
// are Go varints (encoding/binary), times are Unix milliseconds, strings are a uvarint
// length followed by the bytes.
//
//	session  'S' 1  expires  deadline(0=none)  indexed(0=none)  owner  nfields  (name value)*
//	owner    'O' 1  n  (sha256[32] until)*
//	ticket   'T' 1  expires  value(the rest of the blob)
//
// "indexed" is the expiry bound last written to the owner's index entry, so a write knows
// whether the index must be told about a later expiry. An owner entry's "until" is an upper
// bound on that session's expiry. A blob never holds a session id, an owner's index never
// holds the owner (its key holds the owner's hash).
const (
	kindSession = 'S'
	kindOwner   = 'O'
	kindTicket  = 'T'
	version1    = 1
)

// ErrCorrupt is wrapped by the error returned when a blob read from the backend cannot be
// decoded: it was written by something else, cut short, or damaged. The store never panics
// on such a blob and never mistakes it for a missing one; Delete removes a corrupt session.
var ErrCorrupt = errors.New("corrupt blob")

func corrupt(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, a...)...)
}

// record is a session as its blob holds it.
type record struct {
	expires  int64 // Unix ms
	deadline int64 // Unix ms, 0 for none
	indexed  int64 // Unix ms, 0 when not indexed
	owner    string
	fields   map[string]string
}

func (r *record) expired(now int64) bool { return now >= r.expires }

func appendRecord(b []byte, r *record) []byte {
	b = append(b, kindSession, version1)
	b = binary.AppendVarint(b, r.expires)
	b = binary.AppendVarint(b, r.deadline)
	b = binary.AppendVarint(b, r.indexed)
	b = appendString(b, r.owner)
	b = binary.AppendUvarint(b, uint64(len(r.fields)))
	for k, v := range r.fields {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return b
}

// recordSize is an upper bound on the encoded size, to allocate once.
func recordSize(r *record) int {
	n := 2 + 3*binary.MaxVarintLen64 + 2*binary.MaxVarintLen64 + len(r.owner)
	for k, v := range r.fields {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	return n
}

func encodeRecord(r *record) []byte { return appendRecord(make([]byte, 0, recordSize(r)), r) }

func decodeRecord(b []byte) (*record, error) {
	d := decoder{b: b}
	if err := d.header(kindSession, "session record"); err != nil {
		return nil, err
	}
	r := &record{
		expires:  d.varint(),
		deadline: d.varint(),
		indexed:  d.varint(),
		owner:    d.string(),
	}
	n := d.count(2) // a field takes at least two length bytes
	if d.err != nil {
		return nil, d.fail("session record")
	}
	if r.expires <= 0 || r.deadline < 0 || r.indexed < 0 {
		return nil, corrupt("session record: bad time")
	}
	r.fields = make(map[string]string, n)
	for range n {
		k, v := d.string(), d.string()
		if d.err != nil {
			return nil, d.fail("session record")
		}
		if k == "" {
			return nil, corrupt("session record: empty field name")
		}
		if _, dup := r.fields[k]; dup {
			return nil, corrupt("session record: field %q twice", k)
		}
		r.fields[k] = v
	}
	if err := d.end("session record"); err != nil {
		return nil, err
	}
	return r, nil
}

// entry is one session in an owner's index.
type entry struct {
	hash  [32]byte
	until int64 // Unix ms; the session expires no later than this
}

func encodeIndex(idx []entry) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(idx)*(32+binary.MaxVarintLen64))
	b = append(b, kindOwner, version1)
	b = binary.AppendUvarint(b, uint64(len(idx)))
	for _, e := range idx {
		b = append(b, e.hash[:]...)
		b = binary.AppendVarint(b, e.until)
	}
	return b
}

func decodeIndex(b []byte) ([]entry, error) {
	d := decoder{b: b}
	if err := d.header(kindOwner, "owner index"); err != nil {
		return nil, err
	}
	n := d.count(33)
	if d.err != nil {
		return nil, d.fail("owner index")
	}
	idx := make([]entry, n)
	for i := range idx {
		copy(idx[i].hash[:], d.bytes(32))
		idx[i].until = d.varint()
		if d.err != nil {
			return nil, d.fail("owner index")
		}
	}
	if err := d.end("owner index"); err != nil {
		return nil, err
	}
	sorted := make([]entry, n)
	copy(sorted, idx)
	sort.Slice(sorted, func(i, j int) bool { return string(sorted[i].hash[:]) < string(sorted[j].hash[:]) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].hash == sorted[i-1].hash {
			return nil, corrupt("owner index: session listed twice")
		}
	}
	return idx, nil
}

func encodeTicket(expires int64, value string) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(value))
	b = append(b, kindTicket, version1)
	b = binary.AppendVarint(b, expires)
	return append(b, value...)
}

func decodeTicket(b []byte) (expires int64, value string, err error) {
	d := decoder{b: b}
	if err := d.header(kindTicket, "ticket"); err != nil {
		return 0, "", err
	}
	expires = d.varint()
	if d.err != nil {
		return 0, "", d.fail("ticket")
	}
	if expires <= 0 {
		return 0, "", corrupt("ticket: bad time")
	}
	return expires, string(d.b[d.pos:]), nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads a blob front to back. The first problem sticks in err and later reads
// return zero values, so callers check once per step. Strings are cut from one copy of
// the blob, one allocation for all of them.
type decoder struct {
	b   []byte
	s   string // the blob as a string, made on the first string read
	pos int
	err error
}

var errTruncated = errors.New("truncated")

func (d *decoder) header(kind byte, what string) error {
	switch {
	case len(d.b) < 2:
		return corrupt("%s: truncated header", what)
	case d.b[0] != kind:
		return corrupt("%s: kind %#x, want %q", what, d.b[0], kind)
	case d.b[1] != version1:
		return corrupt("%s: unsupported version %d", what, d.b[1])
	}
	d.pos = 2
	return nil
}

func (d *decoder) rest() int { return len(d.b) - d.pos }

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.pos:])
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.pos += n
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.pos += n
	return v
}

// count reads an item count and rejects one the rest of the blob cannot hold, so a
// damaged count never makes a huge allocation.
func (d *decoder) count(minItemBytes int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(d.rest()/minItemBytes) {
		d.err = fmt.Errorf("count %d larger than the blob", n)
	}
	return int(n)
}

// skip advances over n bytes and returns where they start.
func (d *decoder) skip(n uint64) int {
	if d.err != nil {
		return 0
	}
	if n > uint64(d.rest()) {
		d.err = errTruncated
		return 0
	}
	at := d.pos
	d.pos += int(n)
	return at
}

func (d *decoder) bytes(n uint64) []byte {
	at := d.skip(n)
	if d.err != nil {
		return nil
	}
	return d.b[at:d.pos]
}

func (d *decoder) string() string {
	at := d.skip(d.uvarint())
	if d.err != nil || at == d.pos {
		return ""
	}
	if d.s == "" {
		d.s = string(d.b)
	}
	return d.s[at:d.pos]
}

func (d *decoder) fail(what string) error { return corrupt("%s: %v", what, d.err) }

func (d *decoder) end(what string) error {
	if d.rest() != 0 {
		return corrupt("%s: %d trailing bytes", what, d.rest())
	}
	return nil
}
