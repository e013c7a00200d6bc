package fibermp

import (
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/metrics"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/wx"
)

// Config defines the config for the middleware.
type Config struct {
	// Next defines a function to skip this middleware when it returns true.
	//
	// Optional. Default: nil
	Next func(c *fiber.Ctx) bool

	// AppID and AppSecret are the mini program's credentials, used to build a
	// *wx.Client when Client is nil.
	//
	// Required unless Client is set.
	AppID     string
	AppSecret string

	// Client calls the WeChat server API (jscode2session). Set it to share one client
	// (and its access-token cache) with the rest of the application, or to point it at
	// a wxtest server.
	//
	// Optional. Default: wx.New(wx.Config{AppID: AppID, AppSecret: AppSecret})
	Client *wx.Client

	// Store keeps the sessions. Use a shared store (store/redisstore) when several
	// processes serve the same clients. The Manager closes the default in-memory store
	// when it closes; a store passed here is the caller's to close, after the Manager.
	//
	// Optional. Default: memstore.New()
	Store store.Store

	// StoreTimeout bounds every call to the store made for a request or a socket: a
	// store that does not answer within it fails the request with 503 (the protocol's
	// "try again later", which keeps the client's session). For Redis, make the client
	// with ContextTimeoutEnabled: true, or go-redis ignores it (see redisstore).
	//
	// Optional. Default: 1 * time.Second
	StoreTimeout time.Duration

	// Protocol is the wire protocol spoken with clients: Token (plain JSON, bearer
	// tokens), Wafer (wafer-client-sdk) or Wafer2 (wafer2-client-sdk).
	//
	// Optional. Default: Token
	Protocol Protocol

	// QueryCredentials accepts Wafer credentials (X-WX-Id, X-WX-Skey, and the login's
	// X-WX-Code) from the query string when the headers lack them, as
	// wafer-node-session did for clients that cannot send headers. Credentials in
	// URLs end up in proxy and access logs, so leave it off unless such clients exist;
	// WebSocket upgrades never take them from the query (they use tickets).
	//
	// Optional. Default: false
	QueryCredentials bool

	// LoginPath is the path of the login endpoint. Any method is accepted for Wafer
	// and Wafer2, as their SDKs send GET; Token logins are POSTed JSON.
	//
	// Optional. Default: "/login"
	LoginPath string

	// LogoutPath is the path of the logout endpoint, which destroys the request's
	// session. Applications that want another logout (Session.DestroyAll, say) route
	// their own path.
	//
	// Optional. Default: "/logout"
	LogoutPath string

	// IdleTimeout is how long a session lives without being used. Every request that
	// carries the session extends it, without writing any field.
	//
	// Optional. Default: 2 * time.Hour
	IdleTimeout time.Duration

	// AbsoluteTimeout is the longest a session lives after login, however busy it is.
	// It must not be shorter than IdleTimeout.
	//
	// Optional. Default: 7 * 24 * time.Hour
	AbsoluteTimeout time.Duration

	// SingleSession makes a new login revoke the user's older sessions, so a user has
	// at most one session (and one set of live sockets) at a time.
	//
	// Optional. Default: false
	SingleSession bool

	// OnLogin runs after WeChat has confirmed the code and any user data was verified,
	// before the session is created. It may add fields (the application's own user id,
	// say) with l.Set, or reject the login by returning an error, whose message is sent
	// to the client in the protocol's login-failed reply. Concurrent logins with the
	// same code share one run.
	//
	// Optional. Default: nil
	OnLogin func(c *fiber.Ctx, l *Login) error

	// Metrics counts logins, refusals, store calls and (through wsauth) sockets and
	// events; see package metrics for how to export them.
	//
	// Optional. Default: nil (nothing counted)
	Metrics *metrics.Metrics

	// Cache keeps the sessions this process serves in memory, in front of a shared
	// store whose events reach every process (redisstore): a request whose session is
	// cached makes no store call, and a write makes one. Entries are dropped when the
	// store announces a change made elsewhere, and bypassed while the store cannot vouch
	// for its announcements; see CacheConfig for the bounds and the README for what it
	// changes. With the in-memory store it is ignored (sessions already are in memory);
	// NewManager returns an error for a store whose events do not reach every process
	// (fiberstore).
	//
	// Optional. Default: nil (every request loads its session from the store)
	Cache *CacheConfig

	// UserDataMaxAge rejects encrypted user data whose watermark is older than this.
	// Zero accepts any age.
	//
	// Optional. Default: 0
	UserDataMaxAge time.Duration
}

// CacheConfig bounds the session cache (Config.Cache). Zero fields take their
// defaults.
type CacheConfig struct {
	// MaxEntries is the most sessions kept; the least recently used go first.
	//
	// Optional. Default: 100000
	MaxEntries int

	// MaxAge is the longest a session is served from memory before it is loaded
	// again, whatever the events say.
	//
	// Optional. Default: 5 * time.Minute
	MaxAge time.Duration

	// Renew is the longest a cached read goes without extending the session's idle
	// timeout in the store: reads from memory extend it in the background, in batches,
	// at most once per Renew per session, so a session may expire in the store up to
	// Renew earlier than IdleTimeout after its last read.
	//
	// Optional. Default: IdleTimeout / 10
	Renew time.Duration

	// MaxLag bounds how long a process may serve a session from memory after another
	// process changed it: a change, logout or revocation acknowledged at time X is seen
	// by every request that starts at X + MaxLag or later, in every process, however
	// loaded the processes, Redis or the network are. A request that starts within
	// MaxLag of X may still be served the session as it was. The cache keeps the bound
	// by publishing a marker (a fence) every MaxLag/2 on the store's events channel and
	// serving from memory only while its last fence came back within MaxLag: a slow
	// Redis or subscription makes it serve less from memory, never staler. It holds
	// for stores whose events implement store.Fencer (redisstore on one Redis or a
	// Sentinel group; not on a Cluster, where nothing bounds the window but MaxAge).
	// Each busy process sends 2/MaxLag fences a second, and each reaches every process.
	// At least 10 * time.Millisecond.
	//
	// Optional. Default: 100 * time.Millisecond
	MaxLag time.Duration
}

// ConfigDefault is the default config. AppID and AppSecret (or Client) have no default.
var ConfigDefault = Config{
	Protocol:        Token,
	LoginPath:       "/login",
	LogoutPath:      "/logout",
	IdleTimeout:     2 * time.Hour,
	AbsoluteTimeout: 7 * 24 * time.Hour,
	StoreTimeout:    time.Second,
}

// configDefault fills the zero fields of the first config with the defaults, and
// returns an error for a config no request could work with.
func configDefault(config ...Config) (Config, error) {
	var cfg Config
	if len(config) > 0 {
		cfg = config[0]
	}
	if cfg.LoginPath == "" {
		cfg.LoginPath = ConfigDefault.LoginPath
	}
	if cfg.LogoutPath == "" {
		cfg.LogoutPath = ConfigDefault.LogoutPath
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = ConfigDefault.IdleTimeout
	}
	if cfg.AbsoluteTimeout <= 0 {
		cfg.AbsoluteTimeout = ConfigDefault.AbsoluteTimeout
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = ConfigDefault.StoreTimeout
	}
	if cfg.AbsoluteTimeout < cfg.IdleTimeout {
		return cfg, errors.New("fibermp: Config.AbsoluteTimeout is shorter than Config.IdleTimeout")
	}
	if cfg.Protocol < Token || cfg.Protocol > Wafer2 {
		return cfg, fmt.Errorf("fibermp: unknown Config.Protocol %d", cfg.Protocol)
	}
	if cfg.Client == nil {
		if cfg.AppID == "" && cfg.AppSecret == "" {
			return cfg, errors.New("fibermp: Config.AppID and Config.AppSecret, or Config.Client, are required " +
				"(for local development, a Client whose BaseURL is a wxtest.Server's URL)")
		}
		c, err := wx.New(wx.Config{AppID: cfg.AppID, AppSecret: cfg.AppSecret})
		if err != nil {
			return cfg, fmt.Errorf("fibermp: %w", err)
		}
		cfg.Client = c
	}
	if cfg.Cache != nil && (cfg.Cache.MaxEntries < 0 || cfg.Cache.MaxAge < 0 || cfg.Cache.Renew < 0 || cfg.Cache.MaxLag < 0) {
		return cfg, errors.New("fibermp: Config.Cache: MaxEntries, MaxAge, Renew and MaxLag must not be negative")
	}
	if cfg.Cache != nil && cfg.Cache.MaxLag > 0 && cfg.Cache.MaxLag < 10*time.Millisecond {
		return cfg, errors.New("fibermp: Config.Cache: MaxLag must be at least 10ms (a fence goes out every MaxLag/2)")
	}
	return cfg, nil
}
