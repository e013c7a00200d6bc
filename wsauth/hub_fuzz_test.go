package wsauth

import (
	"bytes"
	"testing"
)

// FuzzDecodeFrame feeds arbitrary payloads, as another process (or anything that can
// publish on the store's channels) could, to the hub's frame reader: it must never
// panic, must refuse what is too short to carry a hub id, and must give back exactly
// what encodeFrame wrote.
func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("short"))
	f.Add([]byte("12345678"))
	f.Add([]byte("12345678hello"))
	f.Add(append(bytes.Repeat([]byte{0xff}, hubIDLen), 0, 1, 2))
	f.Fuzz(func(t *testing.T, frame []byte) {
		id, msg, ok := decodeFrame(frame)
		if ok != (len(frame) >= hubIDLen) {
			t.Fatalf("%d bytes: ok %v", len(frame), ok)
		}
		if !ok {
			return
		}
		if again := encodeFrame(id, msg); !bytes.Equal(again, frame) {
			t.Fatalf("round trip: want %q; got %q", frame, again)
		}
		if mine := encodeFrame(id, frame); !bytes.Equal(mine[hubIDLen:], frame) {
			t.Fatalf("encode: message %q not kept", frame)
		}
	})
}
