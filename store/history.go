package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// History is implemented by Brokers that also keep each topic's recent messages, so
// that a listener that missed some (a client whose socket dropped and came back, on
// this process or another) can read them again: redisstore keeps them in a Redis
// stream per topic, memstore in memory. wsauth's Hub uses it when its History is on.
//
// A topic's history is a sequence of epochs. An epoch starts with the first message
// kept on a topic, or when the backend lost the history (a Redis restart); within an
// epoch, messages have the offsets 1, 2, 3, ... with no gap. Retention drops the oldest
// messages; Since reports when one a caller asked for is gone, so that a caller never
// misses a message without being told.
type History interface {
	// PublishKept publishes msg on topic to the listeners of the Broker, as Publish
	// does, and keeps it in topic's history, in one round trip to the backend. It
	// returns msg's position. Listeners receive KeptMessage(pos, msg), not msg:
	// ParseKept splits it. The backend orders the messages kept on one topic, and every
	// listener receives them in the order of their offsets (one may miss some while
	// its process is disconnected: the gap in the offsets shows it).
	//
	// keep bounds the history: PublishKept drops the messages beyond the newest
	// keep.Size and those older than keep.Age. The epoch and the last offset of a topic
	// are kept for a day after its last message, so that a caller who missed nothing
	// learns it even after the messages themselves were dropped.
	PublishKept(ctx context.Context, topic string, msg []byte, keep Retention) (Position, error)

	// Since returns the messages kept on topic after the position after, oldest first,
	// at most limit of them, with last, the position of topic's newest message (the
	// zero Position when the topic has no history, or offset 0 of an epoch with no
	// message yet).
	//
	// complete reports whether msgs start right after after: no message between after
	// and msgs was dropped or lost. When len(msgs) == limit there may be more: call
	// again from the last one. complete is false when after's epoch is not the
	// history's (the history was lost, or started over), when retention dropped a
	// message after after, or when after is beyond last.
	//
	// For the zero after, Since returns no message, last, and true: a caller with no
	// position learns where the history stands. A topic with no history then gets one,
	// an epoch with no message yet, and last is its offset 0: every message kept after
	// can be read from that position, and a history lost meanwhile is told.
	Since(ctx context.Context, topic string, after Position, limit int) (msgs []Kept, last Position, complete bool, err error)
}

// Retention bounds a topic's history: the newest Size messages, none older than Age.
type Retention struct {
	Size int
	Age  time.Duration
}

// Check returns an error unless both bounds are positive.
func (r Retention) Check() error {
	if r.Size <= 0 || r.Age <= 0 {
		return fmt.Errorf("store: retention needs a positive size and age; got %d, %v", r.Size, r.Age)
	}
	return nil
}

// Kept is a message of a topic's history.
type Kept struct {
	Pos Position
	Msg []byte
}

// MaxEpochBytes is the longest epoch a Position holds.
const MaxEpochBytes = 32

// Position is where a message stands in its topic's history: the history's epoch and
// the message's offset in it. The zero Position is before every message.
type Position struct {
	Epoch  string // 1 to MaxEpochBytes characters of [0-9A-Za-z]; "" only in the zero Position
	Offset uint64 // 1 for the epoch's first message; 0 before it
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p == Position{} }

// String returns p as ParsePosition reads it: "epoch.offset", or "" for the zero
// Position.
func (p Position) String() string {
	if p.IsZero() {
		return ""
	}
	return p.Epoch + "." + strconv.FormatUint(p.Offset, 10)
}

// ErrPosition is returned by ParsePosition and ParseKept for a malformed position.
var ErrPosition = errors.New("store: malformed history position")

// ParsePosition reads a position written by Position.String. The empty string is the
// zero Position.
func ParsePosition(s string) (Position, error) {
	if s == "" {
		return Position{}, nil
	}
	epoch, offset, ok := strings.Cut(s, ".")
	if !ok || !ValidEpoch(epoch) || offset == "" || offset[0] == '0' && offset != "0" || len(offset) > 20 {
		return Position{}, ErrPosition
	}
	for i := 0; i < len(offset); i++ {
		if offset[i] < '0' || offset[i] > '9' {
			return Position{}, ErrPosition
		}
	}
	n, err := strconv.ParseUint(offset, 10, 64)
	if err != nil {
		return Position{}, ErrPosition
	}
	return Position{Epoch: epoch, Offset: n}, nil
}

// ValidEpoch reports whether e can be a Position's epoch.
func ValidEpoch(e string) bool {
	if e == "" || len(e) > MaxEpochBytes {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// KeptMessage returns what the listeners of a topic receive for a message that
// PublishKept kept at pos: the position, a space, then the message.
func KeptMessage(pos Position, msg []byte) []byte {
	p := pos.String()
	b := make([]byte, 0, len(p)+1+len(msg))
	b = append(b, p...)
	b = append(b, ' ')
	return append(b, msg...)
}

// ParseKept splits what a listener received for a kept message into its position and
// the message (which shares b's memory). It returns ErrPosition for anything else.
func ParseKept(b []byte) (Position, []byte, error) {
	i := bytes.IndexByte(b, ' ')
	if i <= 0 || i > MaxEpochBytes+1+20 {
		return Position{}, nil, ErrPosition
	}
	pos, err := ParsePosition(string(b[:i]))
	if err != nil {
		return Position{}, nil, err
	}
	return pos, b[i+1:], nil
}
