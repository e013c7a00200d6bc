package wx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Session is what WeChat answers for a login code.
type Session struct {
	// OpenID identifies the user within this mini program.
	OpenID string `json:"openid"`
	// SessionKey decrypts the user's encryptedData and signs rawData. It must never leave
	// the server.
	SessionKey string `json:"session_key"`
	// UnionID identifies the user across the apps of one Open Platform account; empty
	// unless the mini program is bound to one.
	UnionID string `json:"unionid"`
}

// code2SessionOp names jscode2session in errors; its replies are never quoted (see quotable).
const code2SessionOp = "jscode2session"

// Code2Session exchanges a login code from wx.login for the user's openid and session_key
// (GET sns/jscode2session; no access token needed).
//
// Codes are single use and live 5 minutes. Concurrent calls with the same code share one
// exchange, so a client that sends its login request twice does not get 40163 for the
// second. WeChat's refusals are *APIError: InvalidCode, CodeUsed, Blocked, RateLimited and
// Busy tell the usual ones apart.
func (c *Client) Code2Session(ctx context.Context, code string) (*Session, error) {
	const op = code2SessionOp
	if code == "" {
		return nil, errors.New("wx: jscode2session: empty code")
	}
	// The exchange may outlive this call (see shared), and code may live in a buffer the
	// caller reuses once it returns (fasthttp's zero-copy strings, c.Query in Fiber).
	code = strings.Clone(code)
	return shared(ctx, &c.codes, code, op, func(ctx context.Context) (*Session, error) {
		q := url.Values{
			"appid":      {c.appID},
			"secret":     {c.secret},
			"js_code":    {code},
			"grant_type": {"authorization_code"},
		}
		var s Session
		if err := c.do(ctx, op, http.MethodGet, "/sns/jscode2session", q, nil, &s); err != nil {
			return nil, err
		}
		if s.OpenID == "" || s.SessionKey == "" {
			return nil, &opError{msg: fmt.Sprintf("wx: %s: %v: no openid or session_key", op, ErrMalformed), err: ErrMalformed}
		}
		return &s, nil
	})
}

// CheckSessionKey asks WeChat whether sessionKey is still the user's current session_key
// (GET wxa/checksession, signed with HMACSignature(sessionKey, "")). It returns nil if it
// is, and an *APIError whose InvalidSignature is true if it is not: the user logged in
// again elsewhere or the key expired, and data encrypted with it cannot be trusted.
func (c *Client) CheckSessionKey(ctx context.Context, openID, sessionKey string) error {
	if openID == "" || sessionKey == "" {
		return errors.New("wx: checksession: empty openid or session key")
	}
	q := url.Values{
		"openid":     {openID},
		"signature":  {HMACSignature(sessionKey, nil)},
		"sig_method": {"hmac_sha256"},
	}
	return c.Call(ctx, http.MethodGet, "/wxa/checksession", q, nil, nil)
}
