package wx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Token lock timing. The lock is held while one process fetches; it expires by itself
// if that process dies, and waiting processes poll the cache meanwhile.
const (
	lockTTL  = 10 * time.Second
	lockPoll = 20 * time.Millisecond
)

// AccessToken returns a valid access token for the server APIs that need one, from
// TokenCache if it holds one and from WeChat otherwise (stable_token by default; see
// TokenSource). Concurrent callers in one process share one fetch, and processes sharing a
// TokenLock share one fetch between them. It never asks WeChat to force a refresh.
//
// Most applications will not need it: the Client's own calls, and Call, get the token
// themselves and handle its rejection.
func (c *Client) AccessToken(ctx context.Context) (string, error) {
	tok, found, err := c.cache.Get(ctx, c.tokenKey)
	switch {
	case err == nil && found:
		return tok, nil
	case err != nil:
		if ctx.Err() != nil {
			return "", fmt.Errorf("wx: %s: %w", c.source, context.Cause(ctx))
		}
		c.log.Warn("wx: token cache failed", "err", err)
		if t := c.last.Load(); t != nil && time.Now().Before(t.expires) {
			return t.value, nil
		}
	}
	return shared(ctx, &c.tokens, c.tokenKey, c.source.String(), c.fetchToken)
}

// DropAccessToken removes token from TokenCache if it is still the cached one, so that the
// next AccessToken fetches another. A newer token that another caller put there is left
// alone. Call it when a WeChat API rejects a token you got from AccessToken (errcodes
// 40001, 40014, 42001; see APIError.TokenInvalid).
func (c *Client) DropAccessToken(ctx context.Context, token string) error {
	if t := c.last.Load(); t != nil && t.value == token {
		c.last.CompareAndSwap(t, nil)
	}
	if _, err := c.cache.CompareAndDelete(ctx, c.tokenKey, token); err != nil {
		return fmt.Errorf("wx: dropping access token: %w", err)
	}
	return nil
}

// Call calls a WeChat server API that takes an access token, for the APIs this package
// does not wrap. path is the URL path ("/wxa/msg_sec_check"); query gets the
// access_token added; in, if not nil, is sent as a JSON body; out, if not nil, receives
// the JSON reply. An errcode is returned as *APIError. If WeChat rejects the token
// (APIError.TokenInvalid), Call drops it, fetches another and retries once.
func (c *Client) Call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	op := path[strings.LastIndex(path, "/")+1:]
	tok, err := c.AccessToken(ctx)
	if err != nil {
		return err
	}
	err = c.callWithToken(ctx, op, method, path, query, tok, in, out)
	apiErr, ok := errors.AsType[*APIError](err)
	if !ok || !apiErr.TokenInvalid() {
		return err
	}
	c.log.Info("wx: access token rejected; fetching another", "op", op, "errcode", apiErr.Code)
	if derr := c.DropAccessToken(ctx, tok); derr != nil {
		c.log.Warn("wx: could not drop the rejected access token", "err", derr)
	}
	fresh, ferr := c.AccessToken(ctx)
	if ferr != nil {
		return ferr
	}
	return c.callWithToken(ctx, op, method, path, query, fresh, in, out)
}

func (c *Client) callWithToken(ctx context.Context, op, method, path string, query url.Values, tok string, in, out any) error {
	q := make(url.Values, len(query)+1)
	for k, v := range query {
		q[k] = v
	}
	q.Set("access_token", tok)
	return c.do(ctx, op, method, path, q, in, out)
}

// cached looks in TokenCache; a cache failure counts as a miss.
func (c *Client) cached(ctx context.Context) (string, bool) {
	tok, found, err := c.cache.Get(ctx, c.tokenKey)
	if err != nil {
		c.log.Warn("wx: token cache failed", "err", err)
		return "", false
	}
	return tok, found
}

// fetchToken runs once per process at a time (see AccessToken). It looks in the cache
// again, since the previous fetch may have just stored a token, then fetches, under
// TokenLock if there is one.
func (c *Client) fetchToken(ctx context.Context) (string, error) {
	if tok, ok := c.cached(ctx); ok {
		return tok, nil
	}
	if c.lock == nil {
		return c.fetchAndStore(ctx)
	}
	for {
		unlock, ok, err := c.lock.TryLock(ctx, c.lockKey, lockTTL)
		if err != nil {
			if ctx.Err() != nil {
				return "", fmt.Errorf("wx: %s: waiting for the token lock: %w", c.source, context.Cause(ctx))
			}
			// Without the lock processes may fetch side by side; that costs requests,
			// while refusing to fetch would stop every API call.
			c.log.Warn("wx: token lock failed; fetching without it", "err", err)
			return c.fetchAndStore(ctx)
		}
		if ok {
			defer func() {
				uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				defer cancel()
				if err := unlock(uctx); err != nil {
					c.log.Warn("wx: token lock release failed; it will expire", "err", err)
				}
			}()
			if tok, ok := c.cached(ctx); ok {
				return tok, nil
			}
			return c.fetchAndStore(ctx)
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("wx: %s: waiting for the token lock: %w", c.source, context.Cause(ctx))
		case <-t.C:
		}
		if tok, ok := c.cached(ctx); ok {
			return tok, nil
		}
	}
}

// fetchAndStore gets a token from WeChat and caches it. A cache failure is logged, not
// returned: the token is good, and failing here would make the next call fetch again.
func (c *Client) fetchAndStore(ctx context.Context) (string, error) {
	tok, ttl, err := c.requestToken(ctx)
	if err != nil {
		return "", err
	}
	c.last.Store(&heldToken{value: tok, expires: time.Now().Add(ttl)})
	if err := c.cache.Set(ctx, c.tokenKey, tok, ttl); err != nil {
		c.log.Warn("wx: token cache failed; token not shared", "err", err)
	}
	c.log.Info("wx: access token fetched", "source", c.source.String(), "cached_for", ttl)
	return tok, nil
}

// tokenReply is the answer of both token APIs.
type tokenReply struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// requestToken asks WeChat for a token and returns it with how long to cache it.
func (c *Client) requestToken(ctx context.Context) (string, time.Duration, error) {
	op := c.source.String()
	var r tokenReply
	var err error
	if c.source == ClassicToken {
		q := url.Values{
			"grant_type": {"client_credential"},
			"appid":      {c.appID},
			"secret":     {c.secret},
		}
		err = c.do(ctx, op, http.MethodGet, "/cgi-bin/token", q, nil, &r)
	} else {
		in := struct {
			GrantType    string `json:"grant_type"`
			AppID        string `json:"appid"`
			Secret       string `json:"secret"`
			ForceRefresh bool   `json:"force_refresh"`
		}{"client_credential", c.appID, c.secret, false}
		err = c.do(ctx, op, http.MethodPost, "/cgi-bin/stable_token", nil, in, &r)
	}
	if err != nil {
		return "", 0, err
	}
	if r.AccessToken == "" || r.ExpiresIn <= 0 {
		return "", 0, &opError{msg: fmt.Sprintf("wx: %s: %v: no access_token or expires_in", op, ErrMalformed), err: ErrMalformed}
	}
	return r.AccessToken, tokenTTL(time.Duration(r.ExpiresIn)*time.Second, c.margin), nil
}

// tokenTTL is how long to cache a token that WeChat says lives for life. stable_token
// returns the remaining life of the current token, which can be as little as 5 minutes,
// so the margin cannot simply be subtracted.
func tokenTTL(life, margin time.Duration) time.Duration {
	ttl := life - margin
	if least := life / 10; ttl < least {
		ttl = least
	}
	if ttl < time.Second {
		ttl = time.Second
	}
	return ttl
}
