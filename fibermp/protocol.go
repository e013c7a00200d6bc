package fibermp

import "github.com/mpsession/mpsession/internal/session"

// Protocol is a wire protocol spoken with mini-program clients.
type Protocol int

const (
	// Token is a plain JSON protocol for new clients and web pages: login by POSTing
	// {"code":...}, later requests with "Authorization: Bearer <token>" or X-Session-Id.
	// It is the default.
	Token Protocol = iota
	// Wafer is the protocol of wafer-client-sdk (and the wafer-node-session and
	// mp-session-koa2 servers): login with X-WX-Code, later requests with X-WX-Id and
	// X-WX-Skey, errors in an envelope marked by the SDK's magic key.
	Wafer
	// Wafer2 is the protocol of wafer2-client-sdk: login with X-WX-Code, later requests
	// with X-WX-Skey, replies {"code":0,"data":...} and {"code":-1,"error":...}.
	Wafer2
)

func (p Protocol) String() string { return session.Protocol(p).String() }

// MagicID is the key wafer-client-sdk looks for in replies: any reply that carries it
// makes the client drop its session, so it appears in login replies and session errors
// only, never in a normal reply.
const MagicID = session.MagicID // "F2C224D4-2BCE-4C64-AF9F-A6D872000D1A"

// Error codes sent in the "error" member of error replies.
const (
	ErrCodeInvalidSession  = session.ErrCodeInvalidSession  // "ERR_INVALID_SESSION": Wafer, Token: log in again
	ErrCodeSkeyInvalid     = session.ErrCodeSkeyInvalid     // "ERR_SKEY_INVALID": Wafer2: log in again
	ErrCodeLoginFailed     = session.ErrCodeLoginFailed     // "ERR_LOGIN_FAILED": the login was refused
	ErrCodeUnavailable     = session.ErrCodeUnavailable     // "ERR_SERVICE_UNAVAILABLE": store or WeChat down; keep the session
	ErrCodeTooLarge        = session.ErrCodeTooLarge        // "ERR_SESSION_TOO_LARGE": a change would pass the store's size limit
	ErrCodeForbiddenOrigin = session.ErrCodeForbiddenOrigin // "ERR_FORBIDDEN_ORIGIN": a browser socket from an origin not allowed (wsauth)
	ErrCodeTooManySockets  = session.ErrCodeTooManySockets  // "ERR_TOO_MANY_SOCKETS": a socket past wsauth's caps
)

// Header names. Fiber matches header names case-insensitively; on a socket,
// contrib/websocket's Conn.Headers needs fasthttp's spelling ("X-Wx-Id").
const (
	HeaderCode          = session.HeaderCode          // "X-WX-Code"
	HeaderEncryptedData = session.HeaderEncryptedData // "X-WX-Encrypted-Data"
	HeaderIV            = session.HeaderIV            // "X-WX-IV"
	HeaderRawData       = session.HeaderRawData       // "X-WX-RawData"
	HeaderSignature     = session.HeaderSignature     // "X-WX-Signature"
	HeaderID            = session.HeaderID            // "X-WX-Id"
	HeaderSkey          = session.HeaderSkey          // "X-WX-Skey"
	HeaderSessionID     = session.HeaderSessionID     // "X-Session-Id"
)
