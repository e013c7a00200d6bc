package wx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Client calls the WeChat server API for one mini program. It is safe for concurrent use;
// make one per AppID and keep it for the life of the process, since it caches the access
// token.
type Client struct {
	appID  string
	secret string
	base   string // BaseURL without a trailing slash
	shown  string // base as it may appear in error messages
	hc     *http.Client
	source TokenSource
	cache  TokenCache
	lock   TokenLocker
	margin time.Duration
	log    *slog.Logger

	tokenKey string // TokenCache key of this app's token
	lockKey  string // TokenLocker key guarding its fetch

	tokens singleflight.Group // one token fetch at a time
	codes  singleflight.Group // one exchange per login code at a time

	// last is the token this process fetched last. It is used only while TokenCache
	// fails, so that a cache outage does not turn every call into a token fetch.
	last atomic.Pointer[heldToken]
}

type heldToken struct {
	value   string
	expires time.Time
}

// maxBody bounds the replies read from WeChat; theirs are a few hundred bytes.
const maxBody = 1 << 20

// flightTimeout bounds a shared fetch (token or code exchange). The fetch runs on a
// context of its own, not the first caller's, so that one caller giving up does not fail
// the others waiting on it. Not even the caller's values are kept: a fasthttp request
// context, as Fiber hands out, must not be touched once its handler has returned.
const flightTimeout = 30 * time.Second

// New returns a Client for cfg, with ConfigDefault filling the zero fields. It returns an
// error if AppID or AppSecret is empty or BaseURL is not an http(s) URL.
func New(cfg Config) (*Client, error) {
	if cfg.AppID == "" {
		return nil, errors.New("wx: Config.AppID is required")
	}
	if cfg.AppSecret == "" {
		return nil, errors.New("wx: Config.AppSecret is required")
	}
	cfg = configDefault(cfg)
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("wx: Config.BaseURL %q is not an http(s) URL", cfg.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("wx: Config.BaseURL %q has a query or fragment", cfg.BaseURL)
	}
	key := "access_token:" + cfg.TokenSource.String() + ":" + cfg.AppID
	return &Client{
		appID:    cfg.AppID,
		secret:   cfg.AppSecret,
		base:     strings.TrimRight(cfg.BaseURL, "/"),
		shown:    strings.TrimRight(u.Redacted(), "/"),
		hc:       cfg.HTTPClient,
		source:   cfg.TokenSource,
		cache:    cfg.TokenCache,
		lock:     cfg.TokenLock,
		margin:   cfg.TokenMargin,
		log:      cfg.Logger,
		tokenKey: key,
		lockKey:  key + ":lock",
	}, nil
}

// AppID returns the AppID the Client was made for.
func (c *Client) AppID() string { return c.appID }

// do sends one request to WeChat and decodes the reply into out: in, if not nil, is sent
// as a JSON body. WeChat errcodes come back as *APIError.
func (c *Client) do(ctx context.Context, op, method, path string, query url.Values, in, out any) error {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("wx: %s: encoding request: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return c.transportError(op, method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(op, method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return c.transportError(op, method, path, fmt.Errorf("reading reply: %w", err))
	}
	return parseResponse(op, c.secret, resp.StatusCode, data, out)
}

// transportError describes a request that got no usable reply. net/http's *url.Error
// quotes the whole URL, query and all, so it is unwrapped and the URL shown without its
// query; the rest is scrubbed as well in case the cause quotes a URL of its own. The op
// stays outside the scrub, so that the message names its call even when scrub must drop
// all the rest.
func (c *Client) transportError(op, method, path string, err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	msg := fmt.Sprintf("%s %s%s: %v", method, c.shown, path, err)
	return &opError{msg: "wx: " + op + ": " + scrub(msg, c.secret), err: err}
}

// envelope is the part of every WeChat reply that reports errors.
type envelope struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// parseResponse turns a WeChat reply into out or an error: *HTTPError for a status other
// than 200, *APIError for a non-zero errcode, ErrMalformed for a body that is not a JSON
// object of out's shape. A nil out only checks the errcode.
func parseResponse(op, secret string, status int, body []byte, out any) error {
	if status != http.StatusOK {
		return &HTTPError{Op: op, StatusCode: status}
	}
	if len(body) > maxBody {
		return malformed(op, secret, fmt.Errorf("reply larger than %d bytes", maxBody), nil)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return malformed(op, secret, err, body)
	}
	if env.ErrCode != 0 {
		return &APIError{Op: op, Code: env.ErrCode, Msg: scrub(env.ErrMsg, secret)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return malformed(op, secret, err, body)
	}
	return nil
}

// malformed builds an ErrMalformed error. It quotes the start of body, scrubbed, only if
// quotable allows; pass nil to quote nothing.
func malformed(op, secret string, cause error, body []byte) error {
	msg := fmt.Sprintf("wx: %s: %v: %v", op, ErrMalformed, cause)
	if body != nil && quotable(op, body) {
		const show = 64
		b := body
		if len(b) > show {
			b = b[:show]
		}
		msg += fmt.Sprintf(" (body %q", scrub(string(b), secret))
		if len(body) > show {
			msg += "..."
		}
		msg += ")"
	}
	return &opError{msg: scrub(msg, secret), err: ErrMalformed}
}

// quotable reports whether an unreadable reply may be quoted in its error, which tells a
// proxy's error page apart from a change in WeChat's API. A jscode2session reply is never
// quoted: whatever its shape, it may hold the user's session_key. Nor is a reply that
// looks like JSON, from any API: it may hold a credential in a form scrub cannot see
// ("session\u005fkey"), and the decoding error already names the field at fault.
func quotable(op string, body []byte) bool {
	if op == code2SessionOp {
		return false
	}
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) == 0 || (b[0] != '{' && b[0] != '[')
}

// shared runs fn once for all concurrent callers passing the same key. fn runs on a
// context of its own (bounded by flightTimeout), and each caller returns as soon as its
// own ctx is done. Since fn may outlive its caller, key and whatever fn captures must be
// owned by the Client or copied (strings.Clone), never borrowed from the caller.
func shared[T any](ctx context.Context, g *singleflight.Group, key, op string, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if ctx.Err() != nil {
		return zero, fmt.Errorf("wx: %s: %w", op, context.Cause(ctx))
	}
	ch := g.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.Background(), flightTimeout)
		defer cancel()
		return fn(fctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(T), nil
	case <-ctx.Done():
		return zero, fmt.Errorf("wx: %s: %w", op, context.Cause(ctx))
	}
}
