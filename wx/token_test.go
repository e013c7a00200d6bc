package wx_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

func TestAccessTokenSources(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name         string
		source       wx.TokenSource
		used, unused string
		sourceName   string
	}{
		{"stable by default", wx.StableToken, wxtest.StableToken, wxtest.Token, "stable_token"},
		{"classic on request", wx.ClassicToken, wxtest.Token, wxtest.StableToken, "token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			c := newClient(t, fake, wx.Config{TokenSource: tt.source})
			first, err := c.AccessToken(ctx)
			if err != nil {
				t.Fatalf("AccessToken: %v", err)
			}
			for range 5 {
				tok, err := c.AccessToken(ctx)
				if err != nil || tok != first {
					t.Fatalf("want the cached token; got %q, %v", tok, err)
				}
			}
			if !fake.AccessTokenValid(first) {
				t.Errorf("want a token the server accepts")
			}
			if got := fake.Calls(tt.used); got != 1 {
				t.Errorf("want 1 %s call; got %d", tt.used, got)
			}
			if got := fake.Calls(tt.unused); got != 0 {
				t.Errorf("want 0 %s calls; got %d", tt.unused, got)
			}
			if got := tt.source.String(); got != tt.sourceName {
				t.Errorf("want %q; got %q", tt.sourceName, got)
			}
		})
	}
}

func TestAccessTokenOneFetchPerProcess(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	fake.Fail(wxtest.StableToken, wxtest.Fault{Latency: 100 * time.Millisecond})

	const n = 50
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok, err := c.AccessToken(context.Background())
			if err != nil {
				t.Errorf("AccessToken: %v", err)
			}
			tokens[i] = tok
		})
	}
	wg.Wait()
	for i, tok := range tokens {
		if tok != tokens[0] {
			t.Errorf("caller %d: want %q; got %q", i, tokens[0], tok)
		}
	}
	if got := fake.Calls(wxtest.StableToken); got != 1 {
		t.Errorf("want 1 stable_token call; got %d", got)
	}
}

func TestAccessTokenErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		fault    wxtest.Fault
		wantCode int
		wantHTTP int
	}{
		{"busy", wxtest.Fault{ErrCode: -1}, -1, 0},
		{"rate limited", wxtest.Fault{ErrCode: 45011}, 45011, 0},
		{"IP not whitelisted", wxtest.Fault{ErrCode: 40164, ErrMsg: "invalid ip 1.2.3.4, not in whitelist"}, 40164, 0},
		{"HTTP 500", wxtest.Fault{Status: 500}, 0, 500},
		{"not JSON", wxtest.Fault{Body: "upstream connect error"}, 0, 0},
		{"no expires_in", wxtest.Fault{Body: `{"access_token":"abc"}`}, 0, 0},
		{"empty access_token", wxtest.Fault{Body: `{"access_token":"","expires_in":7200}`}, 0, 0},
		{"negative expires_in", wxtest.Fault{Body: `{"access_token":"abc","expires_in":-5}`}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			c := newClient(t, fake, wx.Config{})
			fake.Fail(wxtest.StableToken, tt.fault)
			_, err := c.AccessToken(ctx)
			if err == nil {
				t.Fatal("want an error; got nil")
			}
			if !strings.HasPrefix(err.Error(), "wx: stable_token: ") || strings.Contains(err.Error(), testSecret) {
				t.Errorf("want a message naming stable_token, without the secret; got %q", err)
			}
			switch {
			case tt.wantCode != 0:
				if apiErr, ok := errors.AsType[*wx.APIError](err); !ok || apiErr.Code != tt.wantCode {
					t.Errorf("want errcode %d; got %v", tt.wantCode, err)
				}
			case tt.wantHTTP != 0:
				if httpErr, ok := errors.AsType[*wx.HTTPError](err); !ok || httpErr.StatusCode != tt.wantHTTP {
					t.Errorf("want HTTP %d; got %v", tt.wantHTTP, err)
				}
			default:
				if !errors.Is(err, wx.ErrMalformed) {
					t.Errorf("want ErrMalformed; got %v", err)
				}
			}
			// Failures are not cached: the next call fetches again.
			if _, err := c.AccessToken(ctx); err != nil {
				t.Errorf("after the fault: want a token; got %v", err)
			}
			if got := fake.Calls(wxtest.StableToken); got != 2 {
				t.Errorf("want 2 stable_token calls; got %d", got)
			}
		})
	}
}

func TestAccessTokenContext(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	fake.Fail(wxtest.StableToken, wxtest.Fault{Latency: 300 * time.Millisecond})

	short, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	var shortErr error
	wg.Go(func() { _, shortErr = c.AccessToken(short) })
	waitCall(t, fake, wxtest.StableToken) // the fetch is under way
	tok, err := c.AccessToken(context.Background())
	wg.Wait()
	if !errors.Is(shortErr, context.DeadlineExceeded) {
		t.Errorf("short caller: want context.DeadlineExceeded; got %v", shortErr)
	}
	if err != nil || !fake.AccessTokenValid(tok) {
		t.Errorf("patient caller: want a valid token; got %q, %v", tok, err)
	}
	if got := fake.Calls(wxtest.StableToken); got != 1 {
		t.Errorf("want 1 stable_token call; got %d", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}

	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := c.PhoneNumber(cancelled, "code"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: want context.Canceled; got %v", err)
	}
	fresh := newClient(t, fake, wx.Config{})
	if _, err := fresh.AccessToken(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context, empty cache: want context.Canceled; got %v", err)
	}
	if got := fake.Calls(wxtest.StableToken); got != 1 {
		t.Errorf("cancelled context: want no fetch started; got %d stable_token calls", got)
	}
}

// TestTokenRejected covers the token errors on a business call: the Client drops the
// token it used (if still cached), fetches another without force_refresh, and retries
// once.
func TestTokenRejected(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		source wx.TokenSource
		reject func(*wxtest.Server)
		code   int
	}{
		{"40001 after a reset", wx.StableToken, (*wxtest.Server).InvalidateTokens, 40001},
		{"42001 expired", wx.StableToken, func(s *wxtest.Server) { s.Advance(wxtest.TokenLifetime) }, 42001},
		{"40001 classic", wx.ClassicToken, (*wxtest.Server).InvalidateTokens, 40001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			cache := wx.NewMemoryTokenCache()
			c := newClient(t, fake, wx.Config{TokenSource: tt.source, TokenCache: cache})
			old, err := c.AccessToken(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tt.reject(fake)

			info, err := c.PhoneNumber(ctx, fake.NewPhoneCode("o-alice"))
			if err != nil {
				t.Fatalf("PhoneNumber: want success after one retry; got %v", err)
			}
			if info.PurePhoneNumber != fake.User("o-alice").PhoneNumber {
				t.Errorf("want %q; got %q", fake.User("o-alice").PhoneNumber, info.PurePhoneNumber)
			}
			src := wxtest.StableToken
			if tt.source == wx.ClassicToken {
				src = wxtest.Token
			}
			if got := fake.Calls(wxtest.PhoneNumber); got != 2 {
				t.Errorf("want 2 getuserphonenumber calls; got %d", got)
			}
			if got := fake.Calls(src); got != 2 {
				t.Errorf("want 2 %s calls; got %d", src, got)
			}
			if got := fake.ForceRefreshes(); got != 0 {
				t.Errorf("want no force_refresh; got %d", got)
			}
			cached, _, _ := cache.Get(ctx, "access_token:"+tt.source.String()+":"+testAppID)
			if cached == old || !fake.AccessTokenValid(cached) {
				t.Errorf("want a new valid token cached; got the old one: %v", cached == old)
			}
		})
	}

	t.Run("rejected twice", func(t *testing.T) {
		fake := newFake(t)
		c := newClient(t, fake, wx.Config{})
		fake.Fail(wxtest.PhoneNumber, wxtest.Fault{ErrCode: 40014, Times: 2})
		_, err := c.PhoneNumber(ctx, fake.NewPhoneCode("o-alice"))
		if apiErr, ok := errors.AsType[*wx.APIError](err); !ok || !apiErr.TokenInvalid() {
			t.Errorf("want the token error back; got %v", err)
		}
		if got := fake.Calls(wxtest.PhoneNumber); got != 2 {
			t.Errorf("want exactly one retry (2 calls); got %d", got)
		}
		if got := fake.ForceRefreshes(); got != 0 {
			t.Errorf("want no force_refresh; got %d", got)
		}
	})
	t.Run("other errors are not retried", func(t *testing.T) {
		fake := newFake(t)
		c := newClient(t, fake, wx.Config{})
		fake.Fail(wxtest.PhoneNumber, wxtest.Fault{ErrCode: -1})
		if _, err := c.PhoneNumber(ctx, fake.NewPhoneCode("o-alice")); err == nil {
			t.Fatal("want an error; got nil")
		}
		if got := fake.Calls(wxtest.PhoneNumber); got != 1 {
			t.Errorf("want 1 call; got %d", got)
		}
	})
	t.Run("checksession retries too", func(t *testing.T) {
		fake := newFake(t)
		c := newClient(t, fake, wx.Config{})
		key := fake.AddUser(wxtest.User{OpenID: "o-alice"}).SessionKey
		fake.Fail(wxtest.CheckSession, wxtest.Fault{ErrCode: 42001})
		if err := c.CheckSessionKey(ctx, "o-alice", key); err != nil {
			t.Errorf("want nil after one retry; got %v", err)
		}
		if got := fake.Calls(wxtest.CheckSession); got != 2 {
			t.Errorf("want 2 checksession calls; got %d", got)
		}
	})
}

// TestTokenDroppedOnlyIfStillCached: client A's request fails with a token that client B
// has already replaced in the shared cache; A must keep B's token, not fetch another.
func TestTokenDroppedOnlyIfStillCached(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testDropOnlyIfStillCached(t, wx.NewMemoryTokenCache())
	})
	t.Run("redis", func(t *testing.T) {
		rdb, prefix := redisForTest(t)
		testDropOnlyIfStillCached(t, wx.NewRedisTokenCache(rdb, prefix))
	})
}

func testDropOnlyIfStillCached(t *testing.T, cache wx.TokenCache) {
	ctx := context.Background()
	fake := newFake(t)
	a := newClient(t, fake, wx.Config{TokenCache: cache})
	b := newClient(t, fake, wx.Config{TokenCache: cache})
	old, err := a.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A's phone request is held by the server while the token is reset and B recovers.
	fake.Fail(wxtest.PhoneNumber, wxtest.Fault{Latency: 300 * time.Millisecond})
	var wg sync.WaitGroup
	var aErr error
	wg.Go(func() { _, aErr = a.PhoneNumber(ctx, fake.NewPhoneCode("o-a")) })
	waitCall(t, fake, wxtest.PhoneNumber)
	fake.InvalidateTokens()
	if _, err := b.PhoneNumber(ctx, fake.NewPhoneCode("o-b")); err != nil {
		t.Fatalf("B: %v", err)
	}
	fresh, err := b.AccessToken(ctx)
	if err != nil || fresh == old {
		t.Fatalf("B: want a new token; got %v", err)
	}
	wg.Wait()
	if aErr != nil {
		t.Errorf("A: want success with B's token; got %v", aErr)
	}
	if got := fake.Calls(wxtest.StableToken); got != 2 {
		t.Errorf("want 2 stable_token calls (A's first, B's after the reset); got %d", got)
	}
	if tok, _ := a.AccessToken(ctx); tok != fresh {
		t.Errorf("want B's token still cached")
	}
	if got := fake.Calls(wxtest.PhoneNumber); got != 4 {
		t.Errorf("want 4 getuserphonenumber calls (2 each); got %d", got)
	}
	if got := fake.ForceRefreshes(); got != 0 {
		t.Errorf("want no force_refresh; got %d", got)
	}
}

// flakyCache is a TokenCache whose every method fails while down is set.
type flakyCache struct {
	*wx.MemoryTokenCache
	down atomic.Bool
}

var errCacheDown = errors.New("cache down")

func (f *flakyCache) Get(ctx context.Context, key string) (string, bool, error) {
	if f.down.Load() {
		return "", false, errCacheDown
	}
	return f.MemoryTokenCache.Get(ctx, key)
}

func (f *flakyCache) Set(ctx context.Context, key, token string, ttl time.Duration) error {
	if f.down.Load() {
		return errCacheDown
	}
	return f.MemoryTokenCache.Set(ctx, key, token, ttl)
}

func (f *flakyCache) CompareAndDelete(ctx context.Context, key, token string) (bool, error) {
	if f.down.Load() {
		return false, errCacheDown
	}
	return f.MemoryTokenCache.CompareAndDelete(ctx, key, token)
}

func (f *flakyCache) TryLock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, bool, error) {
	if f.down.Load() {
		return nil, false, errCacheDown
	}
	return f.MemoryTokenCache.TryLock(ctx, key, ttl)
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTokenCacheOutage(t *testing.T) {
	ctx := context.Background()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := newFake(t)
	cache := &flakyCache{MemoryTokenCache: wx.NewMemoryTokenCache()}
	c := newClient(t, fake, wx.Config{TokenCache: cache, TokenLock: cache, Logger: logger})

	first, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cache.down.Store(true)
	for range 5 {
		tok, err := c.AccessToken(ctx)
		if err != nil || tok != first {
			t.Fatalf("cache down: want the process's token; got %q, %v", tok, err)
		}
	}
	if got := fake.Calls(wxtest.StableToken); got != 1 {
		t.Errorf("cache down: want no new fetch; got %d stable_token calls", got)
	}

	// A rejected token is forgotten even while the cache is down.
	fake.InvalidateTokens()
	if _, err := c.PhoneNumber(ctx, fake.NewPhoneCode("o-alice")); err != nil {
		t.Fatalf("PhoneNumber with the cache down: %v", err)
	}
	second, err := c.AccessToken(ctx)
	if err != nil || second == first || !fake.AccessTokenValid(second) {
		t.Errorf("want a new valid token; got %v", err)
	}
	if got := fake.Calls(wxtest.StableToken); got != 2 {
		t.Errorf("want 2 stable_token calls; got %d", got)
	}

	out := logs.String()
	if !strings.Contains(out, "cache down") {
		t.Errorf("want the cache failure logged; got %s", out)
	}
	for _, secret := range []string{testSecret, first, second} {
		if strings.Contains(out, secret) {
			t.Errorf("logs hold a secret or token: %s", out)
		}
	}
}

func TestTokenSharedLockInProcess(t *testing.T) {
	fake := newFake(t)
	cache := wx.NewMemoryTokenCache()
	fake.Fail(wxtest.StableToken, wxtest.Fault{Latency: 100 * time.Millisecond, Times: -1})
	clients := make([]*wx.Client, 10)
	for i := range clients {
		clients[i] = newClient(t, fake, wx.Config{TokenCache: cache, TokenLock: cache})
	}
	tokens := concurrentTokens(t, clients)
	for i, tok := range tokens {
		if tok != tokens[0] {
			t.Errorf("client %d: want %q; got %q", i, tokens[0], tok)
		}
	}
	if got := fake.Calls(wxtest.StableToken); got != 1 {
		t.Errorf("want 1 stable_token call; got %d", got)
	}
}

// concurrentTokens asks every client for a token at the same moment.
func concurrentTokens(t *testing.T, clients []*wx.Client) []string {
	t.Helper()
	tokens := make([]string, len(clients))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			<-start
			tok, err := c.AccessToken(context.Background())
			if err != nil {
				t.Errorf("client %d: %v", i, err)
			}
			tokens[i] = tok
		})
	}
	close(start)
	wg.Wait()
	return tokens
}

func TestTokenLockOutage(t *testing.T) {
	fake := newFake(t)
	cache := &flakyCache{MemoryTokenCache: wx.NewMemoryTokenCache()}
	lock := &flakyCache{MemoryTokenCache: wx.NewMemoryTokenCache()}
	lock.down.Store(true)
	c := newClient(t, fake, wx.Config{TokenCache: cache, TokenLock: lock})
	if _, err := c.AccessToken(context.Background()); err != nil {
		t.Errorf("lock down: want a token all the same; got %v", err)
	}
}

func TestCall(t *testing.T) {
	ctx := context.Background()
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	key := fake.AddUser(wxtest.User{OpenID: "o-alice"}).SessionKey
	q := url.Values{"openid": {"o-alice"}, "signature": {wx.HMACSignature(key, nil)}, "sig_method": {"hmac_sha256"}}
	var out struct {
		ErrMsg string `json:"errmsg"`
	}
	if err := c.Call(ctx, http.MethodGet, "/wxa/checksession", q, nil, &out); err != nil || out.ErrMsg != "ok" {
		t.Errorf("want errmsg ok; got %q, %v", out.ErrMsg, err)
	}
	if q.Has("access_token") {
		t.Errorf("Call changed the caller's query")
	}
	err := c.Call(ctx, http.MethodGet, "/wxa/no_such_api", nil, nil, nil)
	if httpErr, ok := errors.AsType[*wx.HTTPError](err); !ok || httpErr.StatusCode != 404 || httpErr.Op != "no_such_api" {
		t.Errorf("want HTTP 404 from no_such_api; got %v", err)
	}
}
