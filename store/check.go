package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// Hash returns the lowercase hex SHA-256 of a session id or ticket. Stores key their
// storage by it, and events name sessions by it.
func Hash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// ErrEmptyField is returned for an empty field name.
var ErrEmptyField = errors.New("store: empty field name")
