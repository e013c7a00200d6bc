package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Hash returns the lowercase hex SHA-256 of a session id or ticket. Stores key their
// storage by it, and events name sessions by it.
func Hash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// ExpiresAt returns min(now+idle, deadline), ignoring a zero deadline. Store
// implementations use it so that every store computes expiry the same way.
func ExpiresAt(now time.Time, idle time.Duration, deadline time.Time) time.Time {
	exp := now.Add(idle)
	if !deadline.IsZero() && deadline.Before(exp) {
		return deadline
	}
	return exp
}

// CheckID returns ErrEmptyID if id is empty. Store implementations call it first.
func CheckID(id string) error {
	if id == "" {
		return ErrEmptyID
	}
	return nil
}

// ErrEmptyField is returned for an empty field name.
var ErrEmptyField = errors.New("store: empty field name")

// CheckField returns ErrEmptyField or ErrReservedField if name is empty or reserved.
func CheckField(name string) error {
	if name == "" {
		return ErrEmptyField
	}
	if strings.HasPrefix(name, ReservedPrefix) {
		return fmt.Errorf("%w: %q", ErrReservedField, name)
	}
	return nil
}

// CheckChange checks every field name in ch (see CheckField).
func CheckChange(ch Change) error {
	for k := range ch.Set {
		if err := CheckField(k); err != nil {
			return err
		}
	}
	for _, k := range ch.Delete {
		if err := CheckField(k); err != nil {
			return err
		}
	}
	return nil
}

// Size returns the number of bytes a record's fields take: the sum of the lengths of
// names and values. Stores compare it with their limit.
func Size(fields map[string]string) int {
	n := 0
	for k, v := range fields {
		n += len(k) + len(v)
	}
	return n
}

// TooLarge returns an error wrapping ErrTooLarge that says by how much.
func TooLarge(size, limit int) error {
	return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, limit)
}

// ParseInteger reads s as Redis reads a hash value in HINCRBY (string2ll in its
// util.c): an optional '-', then decimal digits without a leading zero ("0" alone is
// zero), within int64. strconv.ParseInt also takes "+5", "007" and "-0", which Redis
// refuses.
func ParseInteger(s string) (int64, bool) {
	if s == "0" {
		return 0, true
	}
	digits := strings.TrimPrefix(s, "-")
	// 20 bytes hold "-9223372036854775808"; longer is never an int64.
	if len(s) > 20 || digits == "" || digits[0] < '1' || digits[0] > '9' {
		return 0, false
	}
	for i := 1; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64) // now only the range can fail
	return n, err == nil
}
