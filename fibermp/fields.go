package fibermp

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2/utils"

	"github.com/mpsession/mpsession/store"
)

// Fields reads a session's application fields as JSON values. Session embeds it, and so
// does wsauth's live socket handle, so both read fields the same way.
type Fields struct {
	lookup func(key string) (string, bool)
}

// NewFields returns Fields that read through lookup, which returns a field's JSON
// value. It is for packages that build on this one.
func NewFields(lookup func(key string) (value string, ok bool)) Fields {
	return Fields{lookup: lookup}
}

// Raw returns the JSON value of field key and whether it exists.
func (f Fields) Raw(key string) (json.RawMessage, bool) {
	if strings.HasPrefix(key, ReservedPrefix) || f.lookup == nil {
		return nil, false
	}
	v, ok := f.lookup(key)
	return json.RawMessage(v), ok
}

// Get returns the value of field key decoded from JSON (string, float64, bool, nil,
// []any or map[string]any), or nil if there is no such field.
func (f Fields) Get(key string) any {
	raw, ok := f.Raw(key)
	if !ok {
		return nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return v
}

// Decode decodes field key into v, as json.Unmarshal does. It returns ErrNoField if
// there is no such field.
func (f Fields) Decode(key string, v any) error {
	raw, ok := f.Raw(key)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoField, key)
	}
	return json.Unmarshal(raw, v)
}

// GetString returns the string in field key, or "" if it is missing or not a string.
func (f Fields) GetString(key string) string {
	raw, ok := f.Raw(key)
	if !ok || len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	if !strings.ContainsRune(string(raw), '\\') {
		return string(raw[1 : len(raw)-1])
	}
	var v string
	_ = json.Unmarshal(raw, &v)
	return v
}

// GetInt returns the integer in field key, or 0 if it is missing or not an integer.
func (f Fields) GetInt(key string) int64 {
	raw, _ := f.Raw(key)
	n, _ := strconv.ParseInt(string(raw), 10, 64)
	return n
}

// GetFloat returns the number in field key, or 0 if it is missing or not a number.
func (f Fields) GetFloat(key string) float64 {
	raw, _ := f.Raw(key)
	x, _ := strconv.ParseFloat(string(raw), 64)
	return x
}

// GetBool returns the boolean in field key, or false if it is missing or not a boolean.
func (f Fields) GetBool(key string) bool {
	raw, _ := f.Raw(key)
	return string(raw) == "true"
}

// EncodeField checks that key may be written by the application and encodes v as the
// field's JSON value. The returned name is safe to keep after the request: it is copied
// out of fasthttp's buffers (c.Params, say). Session.Set and wsauth use it.
func EncodeField(key string, v any) (name, value string, err error) {
	if err := checkKey(key); err != nil {
		return "", "", err
	}
	value, err = encodeValue(v)
	if err != nil {
		return "", "", fmt.Errorf("fibermp: set %q: %w", key, err)
	}
	return utils.CopyString(key), value, nil
}

// CheckKey returns an error if key is not a name the application may write.
func CheckKey(key string) error { return checkKey(key) }

func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("fibermp: empty field name")
	}
	if strings.HasPrefix(key, ReservedPrefix) || strings.HasPrefix(key, store.ReservedPrefix) {
		return fmt.Errorf("%w: %q", ErrReservedKey, key)
	}
	return nil
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
