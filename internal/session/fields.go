package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2/utils"

	"github.com/mpsession/mpsession/store"
)

// The errors of field names and values, exported by fibermp under the same names.
var (
	ErrEmptyKey    = errors.New("fibermp: empty field name")
	ErrReservedKey = errors.New("fibermp: reserved field name")
	ErrNoField     = errors.New("fibermp: no such field")
	ErrDestroyed   = errors.New("fibermp: session destroyed")
	ErrUnavailable = errors.New("fibermp: session store unavailable")
)

// ReservedPrefix starts the names of the fields this module keeps for itself. Names
// that start with store.ReservedPrefix are refused too: the store keeps those.
const ReservedPrefix = "."

// Reserved fields.
const (
	FieldOpenID     = ".openid"
	FieldUnionID    = ".unionid"
	FieldSessionKey = ".session_key"
	FieldSkey       = ".skey"
	FieldUserInfo   = ".userinfo"
	FieldCreated    = ".created"
)

// CheckKey returns an error if key is not a name the application may write or read.
func CheckKey(key string) error {
	if key == "" {
		return ErrEmptyKey
	}
	if strings.HasPrefix(key, ReservedPrefix) || strings.HasPrefix(key, store.ReservedPrefix) {
		return fmt.Errorf("%w: %q", ErrReservedKey, key)
	}
	return nil
}

// EncodeField checks key and encodes v as the field's JSON value. The returned name is
// safe to keep after the request: it is copied out of fasthttp's buffers.
func EncodeField(key string, v any) (name, value string, err error) {
	if err := CheckKey(key); err != nil {
		return "", "", err
	}
	value, err = encodeValue(v)
	if err != nil {
		return "", "", fmt.Errorf("fibermp: set %q: %w", key, err)
	}
	return utils.CopyString(key), value, nil
}

// encodeValue encodes v as JSON, without reflection for the common kinds.
func encodeValue(v any) (string, error) {
	switch x := v.(type) {
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.RawMessage:
		if !json.Valid(x) {
			return "", errors.New("invalid JSON")
		}
		return string(x), nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// The getters below read one JSON value as the application asked for it. A missing
// field, or one of another type, gives the zero value.

// Decoded returns raw decoded from JSON, or nil.
func Decoded(raw string) any {
	var v any
	if json.Unmarshal([]byte(raw), &v) != nil {
		return nil
	}
	return v
}

// String returns the string in raw, or "".
func String(raw string) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	if !strings.ContainsRune(raw, '\\') {
		return raw[1 : len(raw)-1]
	}
	var v string
	_ = json.Unmarshal([]byte(raw), &v)
	return v
}

// Int returns the integer in raw, or 0.
func Int(raw string) int64 {
	n, _ := strconv.ParseInt(raw, 10, 64)
	return n
}

// Float returns the number in raw, or 0.
func Float(raw string) float64 {
	x, _ := strconv.ParseFloat(raw, 64)
	return x
}

// Bool returns the boolean in raw, or false.
func Bool(raw string) bool { return raw == "true" }
