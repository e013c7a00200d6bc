package fibermp

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/internal/session"
)

// Errors returned by Session methods, on requests and on sockets alike.
var (
	// ErrEmptyKey is returned for an empty field name.
	ErrEmptyKey = session.ErrEmptyKey
	// ErrReservedKey is returned for a field name that starts with "." (fields this
	// package keeps for itself: openid, session_key, ...) or "\x00" (the store's).
	ErrReservedKey = session.ErrReservedKey
	// ErrNoField is returned by Decode when the field does not exist.
	ErrNoField = session.ErrNoField
	// ErrDestroyed is returned when a destroyed session is written to.
	ErrDestroyed = session.ErrDestroyed
	// ErrUnavailable is wrapped by the errors of Session methods whose store call
	// failed (unreachable, or no answer within Config.StoreTimeout), next to the
	// store's own error. A handler that returns such an error gets the middleware's
	// 503 reply, with a generic message and Retry-After, never the error's text.
	ErrUnavailable = session.ErrUnavailable
	// ErrLiveSession is returned by Regenerate on a socket's live session: new
	// credentials reach a client in an HTTP reply.
	ErrLiveSession = session.ErrRegenerateLive
)

// Session is a user's session: on a request, from Get; on a WebSocket, embedded in
// wsauth's live Handle. Both read and write fields with these methods and errors.
//
// On a request, reads see the session as it was loaded plus this request's own
// changes; Set and Delete are saved when the handler returns without an error, writing
// only the fields they named, so concurrent requests that change different fields
// never overwrite each other. Such a Session belongs to its request and must not be
// kept after the handler returns.
//
// On a socket the session is live: reads reflect changes made since by requests and
// other processes, and Set and Delete are written to the store at once.
//
// Everywhere, Incr, Destroy and DestroyAll take effect in the store at once, and a
// Session is safe for concurrent use. A store outage is returned as an error that wraps
// ErrUnavailable and the store's error: return it from the handler and the client gets
// a 503 that keeps its session. The field-name errors are ErrEmptyKey and
// ErrReservedKey.
type Session struct {
	st *session.State
}

// ID returns the session id. It is a secret: for the Wafer2 and Token protocols it is
// the credential the client sends, and for every protocol the key that seals the
// session's secrets at rest. Never log it.
func (s *Session) ID() string { return s.st.ID() }

// OpenID returns the user's openid, as jscode2session gave it.
func (s *Session) OpenID() string { return s.st.OpenID() }

// UnionID returns the user's unionid, or "" when the mini program is not bound to an
// Open Platform account.
func (s *Session) UnionID() string { return s.st.Reserved(session.FieldUnionID) }

// SessionKey returns the WeChat session_key, for decrypting data the client sends later
// (wx.getPhoneNumber's old encrypted form, wx.getWeRunData). It is never sent to clients.
func (s *Session) SessionKey() string { return s.st.Reserved(session.FieldSessionKey) }

// UserInfo returns the user data decrypted at login (JSON), or nil if the login sent
// none.
func (s *Session) UserInfo() json.RawMessage { return s.st.UserInfo() }

// CreatedAt returns when the user logged in.
func (s *Session) CreatedAt() time.Time { return s.st.CreatedAt() }

// ExpiresAt returns when the session expires unless it is used again, as of its last
// load.
func (s *Session) ExpiresAt() time.Time { return s.st.ExpiresAt() }

// Deadline returns when the session expires however busy it is (Config.AbsoluteTimeout
// after login).
func (s *Session) Deadline() time.Time { return s.st.Deadline() }

// Raw returns the JSON value of field key and whether it exists.
func (s *Session) Raw(key string) (json.RawMessage, bool) {
	v, ok := s.st.Raw(key)
	if !ok {
		return nil, false
	}
	return json.RawMessage(v), true
}

// Get returns the value of field key decoded from JSON (string, float64, bool, nil,
// []any or map[string]any), or nil if there is no such field.
func (s *Session) Get(key string) any {
	v, ok := s.st.Raw(key)
	if !ok {
		return nil
	}
	return session.Decoded(v)
}

// Decode decodes field key into v, as json.Unmarshal does. It returns an error that
// wraps ErrNoField if there is no such field.
func (s *Session) Decode(key string, v any) error {
	raw, ok := s.st.Raw(key)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoField, key)
	}
	return json.Unmarshal([]byte(raw), v)
}

// GetString returns the string in field key, or "" if it is missing or not a string.
func (s *Session) GetString(key string) string {
	v, _ := s.st.Raw(key)
	return session.String(v)
}

// GetInt returns the integer in field key, or 0 if it is missing or not an integer.
func (s *Session) GetInt(key string) int64 {
	v, _ := s.st.Raw(key)
	return session.Int(v)
}

// GetFloat returns the number in field key, or 0 if it is missing or not a number.
func (s *Session) GetFloat(key string) float64 {
	v, _ := s.st.Raw(key)
	return session.Float(v)
}

// GetBool returns the boolean in field key, or false if it is missing or not a boolean.
func (s *Session) GetBool(key string) bool {
	v, _ := s.st.Raw(key)
	return session.Bool(v)
}

// Keys returns the names of the application's fields, sorted.
func (s *Session) Keys() []string { return s.st.Keys() }

// Set sets field key to v encoded as JSON: on a request when the handler returns, on a
// socket at once.
func (s *Session) Set(key string, v any) error { return s.st.Set(key, v) }

// Delete removes field key: on a request when the handler returns, on a socket at once.
func (s *Session) Delete(key string) error { return s.st.Delete(key) }

// Incr adds delta to the integer in field key, in the store and at once, and returns
// the new value. It is exact however many requests and sockets increment the field at
// the same time. A missing field counts as 0; a field that holds anything but an
// integer gives an error wrapping store.ErrNotInteger.
func (s *Session) Incr(key string, delta int64) (int64, error) { return s.st.Incr(key, delta) }

// Destroy deletes the session from the store at once (a logout). Live sockets bound to
// it are closed, in every process that shares the store.
func (s *Session) Destroy() error { return s.st.Destroy() }

// DestroyAll deletes every session of the user, this one included ("log out
// everywhere"), and returns how many it deleted. Live sockets bound to them are closed,
// in every process that shares the store.
func (s *Session) DestroyAll() (int, error) { return s.st.DestroyAll() }

// Regenerate gives the session new credentials and deletes the old ones, keeping every
// field: use it when the privilege of a session changes. It copies the session as the
// store holds it now, with this request's pending changes, so that writes made by other
// requests and sockets since this request began are kept; a write that lands between
// the copy and the deletion of the old credentials (a few milliseconds) is lost, and
// sockets bound to the old credentials are closed. The new credentials reach the client
// in response headers (Wafer: X-WX-Id and X-WX-Skey; Wafer2: X-WX-Skey; Token:
// X-Session-Id); clients that do not read them have to log in again. On a socket's
// live session it returns ErrLiveSession.
func (s *Session) Regenerate(c *fiber.Ctx) error { return s.st.Regenerate(c) }
