package wx

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// APIError is an error WeChat answered with: a reply whose errcode is not 0. Op names the
// call ("jscode2session", "stable_token", "getuserphonenumber", ...). Open it with
// errors.As and branch with its methods, or on Code for the rarer codes.
type APIError struct {
	// Op is the WeChat API that answered, named as in its URL path.
	Op string
	// Code is WeChat's errcode.
	Code int
	// Msg is WeChat's errmsg, scrubbed of credentials as every error message of this
	// package is: WeChat has echoed the parameters it was sent. It is still WeChat's
	// words, for logs; do not forward it to clients.
	Msg string
}

// Error returns "wx: <op>: errcode <code>: <msg>".
func (e *APIError) Error() string {
	return fmt.Sprintf("wx: %s: errcode %d: %s", e.Op, e.Code, e.Msg)
}

// Busy reports errcode -1: WeChat is busy; the same call may succeed a little later.
func (e *APIError) Busy() bool { return e.Code == -1 }

// InvalidCode reports errcode 40029: the login or phone code is unknown, malformed or
// expired (codes live 5 minutes). The client must get a new one.
func (e *APIError) InvalidCode() bool { return e.Code == 40029 }

// CodeUsed reports errcode 40163: the login code was already exchanged. Codes are single
// use; the client must call wx.login again.
func (e *APIError) CodeUsed() bool { return e.Code == 40163 }

// Blocked reports errcode 40226: WeChat refused the login of a high-risk user.
func (e *APIError) Blocked() bool { return e.Code == 40226 }

// RateLimited reports errcode 45011 (minute quota reached) or 45009 (daily quota reached).
func (e *APIError) RateLimited() bool { return e.Code == 45011 || e.Code == 45009 }

// TokenInvalid reports the access token errors: 40001 (invalid or not the latest), 40014
// (invalid) and 42001 (expired). The Client handles these itself for the calls it makes
// (drop the token, fetch another, retry once); callers see them only if the retry failed
// too.
func (e *APIError) TokenInvalid() bool {
	return e.Code == 40001 || e.Code == 40014 || e.Code == 42001
}

// InvalidSignature reports errcode 87009: CheckSessionKey's signature does not match, so
// the session_key is not (or no longer) the user's current one.
func (e *APIError) InvalidSignature() bool { return e.Code == 87009 }

// ErrMalformed is wrapped by the error returned when WeChat's reply cannot be read: a body
// that is not JSON, or JSON without the fields the call needs.
var ErrMalformed = errors.New("malformed response")

// HTTPError is returned when WeChat answers with an HTTP status other than 200. WeChat
// reports its own errors with status 200 and an errcode, so this means a proxy, a gateway
// or an outage stood in between.
type HTTPError struct {
	// Op is the WeChat API that was called.
	Op string
	// StatusCode is the HTTP status received.
	StatusCode int
}

// Error returns "wx: <op>: HTTP <status> <text>".
func (e *HTTPError) Error() string {
	return fmt.Sprintf("wx: %s: HTTP %d %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
}

// Errors from Decrypt. They mean the data sent by the mini program cannot be trusted; the
// request should be refused, not retried.
var (
	// ErrDecrypt means encryptedData, iv or the session key is malformed, or the data was
	// not encrypted with this session key (often: wx.login rotated the session key after
	// the data was obtained).
	ErrDecrypt = errors.New("wx: cannot decrypt")

	// ErrWatermark means the decrypted data has no watermark or was made for another AppID.
	ErrWatermark = errors.New("wx: watermark does not match")

	// ErrStale means the watermark timestamp is further from now than the allowed age.
	ErrStale = errors.New("wx: encrypted data too old")
)

// opError is every non-API failure of a call: a transport error or an unreadable reply.
// Its message is scrubbed of credentials, since the underlying error may quote a URL.
type opError struct {
	msg string
	err error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.err }

// secretParam matches credentials in a query string or a JSON body, quoted by %q or not:
// secret (AppSecret, appsecret), access_token, session_key, code and js_code, with the
// name and value a URL, a form ("+" for a space) or JSON puts between them.
var secretParam = regexp.MustCompile(`(?i)(secret|access_token|session_key|(?:\b|_)code)(=|\\?"[\s+]*:[\s+]*\\?")[^&\s"\\]*`)

// maxDecodes is how many layers of percent-encoding scrub peels off. A URL quoted in
// another URL's query is encoded twice; more than this is no accident.
const maxDecodes = 8

// scrub removes credentials from s: the values secretParam finds, and the literal AppSecret
// wherever it appears. Percent-encoding hides neither (access_token%3D..., %253d...): s is
// scrubbed, decoded and scrubbed again until decoding changes nothing, so the result is
// the decoded text. Scrubbing before each decoding catches a value that decoding would cut
// short (an encoded "&" in it). Text still encoded after maxDecodes layers is dropped whole.
func scrub(s, secret string) string {
	for range maxDecodes + 1 {
		s = secretParam.ReplaceAllString(s, "${1}${2}REDACTED")
		if len(secret) >= 6 {
			s = strings.ReplaceAll(s, secret, "REDACTED")
		}
		d := unescape(s)
		if d == s {
			return s
		}
		s = d
	}
	return "REDACTED (percent-encoded too many times)"
}

// unescape decodes the %XX escapes of printable ASCII, which is all a credential's name,
// value and separators are made of, and leaves the rest as it is: escapes of control
// characters, which must not reach a log line, of other bytes, and a % that starts no
// escape.
func unescape(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	b := []byte(s[:i])
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if c, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil && c >= ' ' && c <= '~' {
				b = append(b, byte(c))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}
