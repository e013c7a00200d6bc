package fibermp

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Protocol is a wire protocol spoken with mini-program clients.
type Protocol int

const (
	// Wafer is the protocol of wafer-client-sdk (and the wafer-node-session and
	// mp-session-koa2 servers): login with X-WX-Code, later requests with X-WX-Id and
	// X-WX-Skey, errors in an envelope marked by the SDK's magic key.
	Wafer Protocol = iota
	// Wafer2 is the protocol of wafer2-client-sdk: login with X-WX-Code, later requests
	// with X-WX-Skey, replies {"code":0,"data":...} and {"code":-1,"error":...}.
	Wafer2
	// Token is a plain JSON protocol for new clients and web pages: login by POSTing
	// {"code":...}, later requests with "Authorization: Bearer <token>" or X-Session-Id.
	Token
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

// MagicID is the key wafer-client-sdk looks for in replies: any reply that carries it
// makes the client drop its session, so it appears in login replies and session errors
// only, never in a normal reply.
const MagicID = "F2C224D4-2BCE-4C64-AF9F-A6D872000D1A"

// Error codes sent in the "error" member of error replies.
const (
	ErrCodeInvalidSession = "ERR_INVALID_SESSION"     // Wafer, Token: log in again
	ErrCodeSkeyInvalid    = "ERR_SKEY_INVALID"        // Wafer2: log in again
	ErrCodeLoginFailed    = "ERR_LOGIN_FAILED"        // the login was refused
	ErrCodeUnavailable    = "ERR_SERVICE_UNAVAILABLE" // store or WeChat down; keep the session
	ErrCodeTooLarge       = "ERR_SESSION_TOO_LARGE"   // a change would pass the store's size limit
)

// Header names. Fiber matches header names case-insensitively.
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

// credentials are what a client presents: the session id (the store key) and, for
// Wafer, the separate secret skey.
type credentials struct {
	id, skey string
}

// Sizes of the random credentials, in bytes before encoding.
const (
	idBytes   = 32 // Wafer id: 64 hex; Wafer2 skey: 64 hex; Token: 43 base64url
	skeyBytes = 20 // Wafer skey: 40 hex, the length wafer clients have always seen
)

func newCredentials(p Protocol) credentials {
	switch p {
	case Wafer:
		return credentials{id: randomHex(idBytes), skey: randomHex(skeyBytes)}
	case Wafer2:
		return credentials{id: randomHex(idBytes)}
	default:
		b := make([]byte, idBytes)
		_, _ = rand.Read(b) // never fails (crypto/rand documents it)
		return credentials{id: base64.RawURLEncoding.EncodeToString(b)}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// readCredentials returns the request's credentials; ok is false when it carries none.
// A credential that is present but cannot be one this module issued gives errMalformed.
func readCredentials(c *fiber.Ctx, p Protocol) (cr credentials, ok bool, err error) {
	switch p {
	case Wafer:
		cr.id = param(c, HeaderID)
		cr.skey = param(c, HeaderSkey)
		if cr.id == "" && cr.skey == "" {
			return cr, false, nil
		}
		if !isHex(cr.id, 2*idBytes) || !isHex(cr.skey, 2*skeyBytes) {
			return cr, true, errMalformed
		}
	case Wafer2:
		cr.id = c.Get(HeaderSkey)
		if cr.id == "" {
			return cr, false, nil
		}
		if !isHex(cr.id, 2*idBytes) {
			return cr, true, errMalformed
		}
	default:
		cr.id = c.Get(HeaderSessionID)
		if auth := c.Get(fiber.HeaderAuthorization); cr.id == "" && auth != "" {
			const bearer = "Bearer "
			if len(auth) <= len(bearer) || !strings.EqualFold(auth[:len(bearer)], bearer) {
				return cr, true, errMalformed
			}
			cr.id = auth[len(bearer):]
		}
		if cr.id == "" {
			return cr, false, nil
		}
		if !isToken(cr.id) {
			return cr, true, errMalformed
		}
	}
	return cr, true, nil
}

// param reads a Wafer parameter from the headers, falling back to the query string with
// the name matched case-insensitively, as wafer-node-session does for clients that
// cannot send headers.
func param(c *fiber.Ctx, name string) string {
	if v := c.Get(name); v != "" {
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

// loginReply answers a successful login.
func loginReply(c *fiber.Ctx, p Protocol, s *Session, userInfo json.RawMessage) error {
	switch p {
	case Wafer:
		return c.JSON(waferSession{Magic: 1, Session: waferCreds{ID: s.cred.id, Skey: s.cred.skey}, UserInfo: userInfo})
	case Wafer2:
		if len(userInfo) == 0 {
			// wafer2-client-sdk requires a truthy userinfo: an empty object is one.
			userInfo = json.RawMessage(`{}`)
		}
		return c.JSON(wafer2Login{Data: wafer2Data{Skey: s.cred.id, UserInfo: userInfo, Time: s.created.Unix()}})
	default:
		return c.JSON(tokenLogin{Token: s.cred.id, ExpiresIn: int64(s.mw.cfg.IdleTimeout.Seconds()), OpenID: s.OpenID()})
	}
}

// invalidSession answers a request whose session is unknown, expired or malformed: the
// client drops its session, logs in again and retries once.
func invalidSession(c *fiber.Ctx, p Protocol, status int, msg string) error {
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

// loginFailed answers a refused login. No session was created.
func loginFailed(c *fiber.Ctx, p Protocol, status int, msg string) error {
	switch p {
	case Wafer:
		return c.Status(status).JSON(waferError{Magic: 1, Error: ErrCodeLoginFailed, Message: msg})
	case Wafer2:
		return c.Status(status).JSON(wafer2Error{Code: -1, Error: ErrCodeLoginFailed, Message: msg})
	default:
		return c.Status(status).JSON(plainError{Error: ErrCodeLoginFailed, Message: msg})
	}
}

// unavailable answers when the store cannot be reached. It never carries the Wafer
// magic key nor Wafer2's code -1, so clients keep their sessions and retry later
// instead of all logging in again at once.
func unavailable(c *fiber.Ctx, msg string) error {
	c.Set(fiber.HeaderRetryAfter, "1")
	return c.Status(fiber.StatusServiceUnavailable).JSON(plainError{Error: ErrCodeUnavailable, Message: msg})
}

// loggedOut answers the logout endpoint.
func loggedOut(c *fiber.Ctx, p Protocol) error {
	switch p {
	case Token:
		return c.SendStatus(fiber.StatusNoContent)
	default:
		return c.JSON(fiber.Map{"code": 0})
	}
}

// Credential returns the session's credentials as one string, for transports that
// carry a single opaque value (a WebSocket subprotocol, a ticket): the Wafer id and skey
// joined by a dot, the Wafer2 skey, or the token. It is a secret: never log it.
func (s *Session) Credential() string {
	if s.cred.skey != "" {
		return s.cred.id + "." + s.cred.skey
	}
	return s.cred.id
}

// parseCredential reads what Session.Credential wrote.
func parseCredential(p Protocol, v string) (credentials, error) {
	var cr credentials
	switch p {
	case Wafer:
		id, skey, ok := strings.Cut(v, ".")
		if !ok || !isHex(id, 2*idBytes) || !isHex(skey, 2*skeyBytes) {
			return cr, errMalformed
		}
		cr.id, cr.skey = id, skey
	case Wafer2:
		if !isHex(v, 2*idBytes) {
			return cr, errMalformed
		}
		cr.id = v
	default:
		if !isToken(v) {
			return cr, errMalformed
		}
		cr.id = v
	}
	return cr, nil
}
