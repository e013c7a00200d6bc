package wx

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// TokenSource selects the WeChat API the Client gets access tokens from.
type TokenSource int

const (
	// StableToken is POST cgi-bin/stable_token in normal mode (force_refresh false). While
	// a token is valid every caller gets the same one, so several processes, or a test
	// and a production server, do not invalidate each other's tokens. The default.
	StableToken TokenSource = iota

	// ClassicToken is GET cgi-bin/token. Every fetch makes a new token and invalidates
	// the previous one about 5 minutes later, so every process of the app must share one
	// TokenCache. Use it only where stable_token is not available.
	ClassicToken
)

// String returns the API name: "stable_token" or "token".
func (s TokenSource) String() string {
	if s == ClassicToken {
		return "token"
	}
	return "stable_token"
}

// Config configures a Client.
type Config struct {
	// AppID is the mini program's AppID.
	//
	// Required.
	AppID string

	// AppSecret is the mini program's AppSecret. It is sent only to WeChat and never
	// appears in an error or a log line.
	//
	// Required.
	AppSecret string

	// BaseURL is the root of the WeChat server API. Tests and local development point it
	// at a wxtest server.
	//
	// Optional. Default: "https://api.weixin.qq.com"
	BaseURL string

	// HTTPClient sends the requests. Contexts passed to the Client's methods are honoured
	// whatever the client; its Timeout bounds each request.
	//
	// Optional. Default: a client shared by all Clients without one, with a 10 s overall
	// timeout, 5 s to connect and 5 s for the TLS handshake, keeping idle connections
	// for reuse.
	HTTPClient *http.Client

	// TokenSource selects stable_token or the classic cgi-bin/token.
	//
	// Optional. Default: StableToken
	TokenSource TokenSource

	// TokenCache holds the access token between calls. Share one (Redis, see
	// NewRedisTokenCache) between the processes of an app so they fetch tokens once for
	// all of them.
	//
	// Optional. Default: an in-memory cache private to the Client.
	TokenCache TokenCache

	// TokenLock, when set, allows one token fetch at a time across every process that
	// shares it: a process takes the lock, looks in TokenCache again, and fetches only if
	// the token is still missing; the others wait for the token to appear. Within one
	// process, concurrent callers always share one fetch. With StableToken the lock saves
	// requests; with ClassicToken it also keeps processes from invalidating each other's
	// fresh tokens. *RedisTokenCache implements it.
	//
	// Optional. Default: nil (one fetch at a time per process).
	TokenLock TokenLocker

	// TokenMargin is how long before WeChat's expiry the cached token is dropped, so that
	// a token is never used in its last moments. The cache keeps a token for at least a
	// tenth of its lifetime, whatever the margin.
	//
	// Optional. Default: 5 minutes
	TokenMargin time.Duration

	// Logger receives a few lines about token fetches, token retries and cache failures.
	// Tokens, secrets and URLs holding them are never logged.
	//
	// Optional. Default: discard
	Logger *slog.Logger
}

// ConfigDefault holds the defaults New fills in for zero Config fields.
var ConfigDefault = Config{
	BaseURL:     "https://api.weixin.qq.com",
	TokenSource: StableToken,
	TokenMargin: 5 * time.Minute,
}

func configDefault(cfg Config) Config {
	if cfg.BaseURL == "" {
		cfg.BaseURL = ConfigDefault.BaseURL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = defaultHTTPClient()
	}
	if cfg.TokenCache == nil {
		cfg.TokenCache = NewMemoryTokenCache()
	}
	if cfg.TokenMargin <= 0 {
		cfg.TokenMargin = ConfigDefault.TokenMargin
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// defaultHTTPClient is shared so that Clients for several apps reuse one connection pool.
var defaultHTTPClient = sync.OnceValue(func() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   32,
		},
	}
})
