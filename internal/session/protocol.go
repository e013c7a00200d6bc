package session

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Protocol is a wire protocol; fibermp.Protocol has the same values.
type Protocol int

const (
	Token Protocol = iota
	Wafer
	Wafer2
)

func (p Protocol) String() string {
	switch p {
	case Wafer:
		return "wafer"
	case Wafer2:
		return "wafer2"
	case Token:
		return "token"
	}
	return "unknown"
}

// MagicID is the key wafer-client-sdk looks for in replies.
const MagicID = "F2C224D4-2BCE-4C64-AF9F-A6D872000D1A"

// Error codes of the replies.
const (
	ErrCodeInvalidSession  = "ERR_INVALID_SESSION"
	ErrCodeSkeyInvalid     = "ERR_SKEY_INVALID"
	ErrCodeLoginFailed     = "ERR_LOGIN_FAILED"
	ErrCodeUnavailable     = "ERR_SERVICE_UNAVAILABLE"
	ErrCodeTooLarge        = "ERR_SESSION_TOO_LARGE"
	ErrCodeForbiddenOrigin = "ERR_FORBIDDEN_ORIGIN"
	ErrCodeTooManySockets  = "ERR_TOO_MANY_SOCKETS"
)

// Header names.
const (
	HeaderCode          = "X-WX-Code"
	HeaderEncryptedData = "X-WX-Encrypted-Data"
	HeaderIV            = "X-WX-IV"
	HeaderRawData       = "X-WX-RawData"
	HeaderSignature     = "X-WX-Signature"
	HeaderID            = "X-WX-Id"
	HeaderSkey          = "X-WX-Skey"
	HeaderSessionID     = "X-Session-Id"
)

// Credentials are what a client presents: the session id (the store key) and, for
// Wafer, the separate secret skey.
type Credentials struct {
	ID, Skey string
}

// ErrMalformed is a credential that cannot be one this module issued.
var ErrMalformed = errors.New("fibermp: malformed credentials")

// Sizes of the random credentials, in bytes before encoding.
const (
	idBytes   = 32 // Wafer id: 64 hex; Wafer2 skey: 64 hex; Token: 43 base64url
	skeyBytes = 20 // Wafer skey: 40 hex, the length wafer clients have always seen
)

// NewCredentials returns fresh random credentials of protocol p.
func NewCredentials(p Protocol) Credentials {
	switch p {
	case Wafer:
		return Credentials{ID: randomHex(idBytes), Skey: randomHex(skeyBytes)}
	case Wafer2:
		return Credentials{ID: randomHex(idBytes)}
	default:
		b := make([]byte, idBytes)
		_, _ = rand.Read(b) // never fails (crypto/rand documents it)
		return Credentials{ID: base64.RawURLEncoding.EncodeToString(b)}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ReadCredentials returns the request's credentials from the protocol's headers (and,
// for Wafer when query is true, the query string); ok is false when it carries none. A
// credential that is present but malformed gives ErrMalformed. The strings point into
// fasthttp's buffers.
func ReadCredentials(c *fiber.Ctx, p Protocol, query bool) (cr Credentials, ok bool, err error) {
	switch p {
	case Wafer:
		cr.ID = Param(c, HeaderID, query)
		cr.Skey = Param(c, HeaderSkey, query)
		if cr.ID == "" && cr.Skey == "" {
			return cr, false, nil
		}
		if !isHex(cr.ID, 2*idBytes) || !isHex(cr.Skey, 2*skeyBytes) {
			return cr, true, ErrMalformed
		}
	case Wafer2:
		cr.ID = c.Get(HeaderSkey)
		if cr.ID == "" {
			return cr, false, nil
		}
		if !isHex(cr.ID, 2*idBytes) {
			return cr, true, ErrMalformed
		}
	default:
		cr.ID = c.Get(HeaderSessionID)
		if auth := c.Get(fiber.HeaderAuthorization); cr.ID == "" && auth != "" {
			const bearer = "Bearer "
			if len(auth) <= len(bearer) || !strings.EqualFold(auth[:len(bearer)], bearer) {
				return cr, true, ErrMalformed
			}
			cr.ID = auth[len(bearer):]
		}
		if cr.ID == "" {
			return cr, false, nil
		}
		if !isToken(cr.ID) {
			return cr, true, ErrMalformed
		}
	}
	return cr, true, nil
}

// Param reads a Wafer parameter from the headers and, when query is true, falls back to
// the query string with the name matched case-insensitively, as wafer-node-session
// does for clients that cannot send headers.
func Param(c *fiber.Ctx, name string, query bool) string {
	if v := c.Get(name); v != "" || !query {
		return v
	}
	var v string
	c.Context().QueryArgs().VisitAll(func(key, value []byte) {
		if v == "" && strings.EqualFold(string(key), name) {
			v = string(value)
		}
	})
	return v
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isToken(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(idBytes) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// String joins the credentials into one opaque value, for transports that carry one (a
// WebSocket subprotocol, a ticket): the Wafer id and skey joined by a dot, the Wafer2
// skey, or the token. It is a secret.
func (cr Credentials) String() string {
	if cr.Skey != "" {
		return cr.ID + "." + cr.Skey
	}
	return cr.ID
}

// ParseCredential reads what Credentials.String wrote.
func ParseCredential(p Protocol, v string) (Credentials, error) {
	var cr Credentials
	switch p {
	case Wafer:
		id, skey, ok := strings.Cut(v, ".")
		if !ok || !isHex(id, 2*idBytes) || !isHex(skey, 2*skeyBytes) {
			return cr, ErrMalformed
		}
		cr.ID, cr.Skey = id, skey
	case Wafer2:
		if !isHex(v, 2*idBytes) {
			return cr, ErrMalformed
		}
		cr.ID = v
	default:
		if !isToken(v) {
			return cr, ErrMalformed
		}
		cr.ID = v
	}
	return cr, nil
}

// Reply bodies. Member order is part of the wire format.
type (
	waferSession struct {
		Magic    int             `json:"F2C224D4-2BCE-4C64-AF9F-A6D872000D1A"`
		Session  waferCreds      `json:"session"`
		UserInfo json.RawMessage `json:"userInfo,omitempty"`
	}
	waferCreds struct {
		ID   string `json:"id"`
		Skey string `json:"skey"`
	}
	waferError struct {
		Magic   int    `json:"F2C224D4-2BCE-4C64-AF9F-A6D872000D1A"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	wafer2Login struct {
		Code int        `json:"code"`
		Data wafer2Data `json:"data"`
	}
	wafer2Data struct {
		Skey     string          `json:"skey"`
		UserInfo json.RawMessage `json:"userinfo"`
		Time     int64           `json:"time"`
	}
	wafer2Error struct {
		Code    int    `json:"code"`
		Error   string `json:"error"`
		Message string `json:"message,omitempty"`
	}
	tokenLogin struct {
		Token     string `json:"token"`
		ExpiresIn int64  `json:"expiresIn"`
		OpenID    string `json:"openid"`
	}
	plainError struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
)

// LoginReply answers a successful login.
func LoginReply(c *fiber.Ctx, p Protocol, s *State, expiresIn int64, userInfo json.RawMessage) error {
	switch p {
	case Wafer:
		return c.JSON(waferSession{Magic: 1, Session: waferCreds{ID: s.cred.ID, Skey: s.cred.Skey}, UserInfo: userInfo})
	case Wafer2:
		if len(userInfo) == 0 {
			// wafer2-client-sdk requires a truthy userinfo: an empty object is one.
			userInfo = json.RawMessage(`{}`)
		}
		return c.JSON(wafer2Login{Data: wafer2Data{Skey: s.cred.ID, UserInfo: userInfo, Time: s.created.Unix()}})
	default:
		return c.JSON(tokenLogin{Token: s.cred.ID, ExpiresIn: expiresIn, OpenID: s.owner})
	}
}

// InvalidStatus is the HTTP status of an invalid-session reply: 200, which the Wafer
// SDK expects (Wafer2 and Token replies set their own), except on a WebSocket upgrade,
// whose refusal must say so by its status because clients see no body.
func InvalidStatus(c *fiber.Ctx) int {
	if IsUpgrade(c) {
		return fiber.StatusUnauthorized
	}
	return fiber.StatusOK
}

// IsUpgrade reports whether c asks for a WebSocket: its Upgrade header lists
// "websocket", as the upgrader reads it (Connection aside, so no variant of the request
// escapes the rules for upgrades).
func IsUpgrade(c *fiber.Ctx) bool {
	for _, token := range strings.Split(c.Get(fiber.HeaderUpgrade), ",") {
		if strings.EqualFold(strings.TrimSpace(token), "websocket") {
			return true
		}
	}
	return false
}

// InvalidSession answers a request whose session is unknown, expired or malformed: the
// client drops its session, logs in again and retries once.
func InvalidSession(c *fiber.Ctx, p Protocol, status int, msg string) error {
	switch p {
	case Wafer:
		return c.Status(status).JSON(waferError{Magic: 1, Error: ErrCodeInvalidSession, Message: msg})
	case Wafer2:
		// wafer2-client-sdk logs in again on code -1 or on HTTP 401.
		return c.Status(fiber.StatusUnauthorized).JSON(wafer2Error{Code: -1, Error: ErrCodeSkeyInvalid, Message: msg})
	default:
		if status == fiber.StatusOK {
			status = fiber.StatusUnauthorized
		}
		return c.Status(status).JSON(plainError{Error: ErrCodeInvalidSession, Message: msg})
	}
}

// LoginFailed answers a refused login. No session was created.
func LoginFailed(c *fiber.Ctx, p Protocol, status int, msg string) error {
	switch p {
	case Wafer:
		return c.Status(status).JSON(waferError{Magic: 1, Error: ErrCodeLoginFailed, Message: msg})
	case Wafer2:
		return c.Status(status).JSON(wafer2Error{Code: -1, Error: ErrCodeLoginFailed, Message: msg})
	default:
		return c.Status(status).JSON(plainError{Error: ErrCodeLoginFailed, Message: msg})
	}
}

// Unavailable answers when the store cannot be reached. It never carries the Wafer
// magic key nor Wafer2's code -1, so clients keep their sessions and retry later
// instead of all logging in again at once.
func Unavailable(c *fiber.Ctx, msg string) error {
	c.Set(fiber.HeaderRetryAfter, "1")
	return c.Status(fiber.StatusServiceUnavailable).JSON(plainError{Error: ErrCodeUnavailable, Message: msg})
}

// TooLarge answers a change that would pass the store's size limit: not an outage,
// since retrying would fail the same way.
func TooLarge(c *fiber.Ctx, msg string) error {
	return c.Status(fiber.StatusRequestEntityTooLarge).JSON(plainError{Error: ErrCodeTooLarge, Message: msg})
}

// ForbiddenOrigin refuses a browser upgrade from an origin that is not allowed.
func ForbiddenOrigin(c *fiber.Ctx) error {
	return c.Status(fiber.StatusForbidden).JSON(plainError{Error: ErrCodeForbiddenOrigin, Message: "origin not allowed"})
}

// TooManySockets refuses an upgrade past a socket cap.
func TooManySockets(c *fiber.Ctx) error {
	c.Set(fiber.HeaderRetryAfter, "5")
	return c.Status(fiber.StatusTooManyRequests).JSON(plainError{Error: ErrCodeTooManySockets, Message: "too many open sockets for this session or user"})
}

// LoggedOut answers the logout endpoint.
func LoggedOut(c *fiber.Ctx, p Protocol) error {
	if p == Token {
		return c.SendStatus(fiber.StatusNoContent)
	}
	return c.JSON(fiber.Map{"code": 0})
}
