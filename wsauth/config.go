package wsauth

import (
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Config defines the config for the middleware.
type Config struct {
	// Next defines a function to skip this middleware when it returns true.
	//
	// Optional. Default: nil
	Next func(c *fiber.Ctx) bool

	// Origins lists the browser origins (scheme://host[:port]) allowed to open a socket,
	// against cross-site WebSocket hijacking. An upgrade that sends any other Origin is
	// refused with 403. Upgrades without an Origin header (mini programs, native apps)
	// are not browsers and pass on their credentials alone. "*" allows every origin.
	//
	// Optional. Default: nil (browsers refused)
	Origins []string

	// Protocol is the WebSocket subprotocol name browsers offer alongside their
	// credential: new WebSocket(url, [Protocol, credential]). The server echoes this
	// fixed name, never the credential, and removes the credential from the request
	// before the socket's handler can see it.
	//
	// Optional. Default: "mpsession"
	Protocol string

	// MaxSocketsPerSession caps the sockets one session may hold open, and
	// MaxSocketsPerUser those of one user (openid) across their sessions, so that one
	// account cannot take a process's capacity. An upgrade past a cap is refused with
	// 429 before anything is upgraded. The counts are per process (per fibermp
	// middleware): a user whose sockets land on N instances may hold N times as many.
	// Negative means no cap.
	//
	// Optional. Default: 4 and 16
	MaxSocketsPerSession int
	MaxSocketsPerUser    int
}

// TicketParam is the query parameter that carries a ticket (see Tickets).
const TicketParam = "ticket"

// ConfigDefault is the default config.
var ConfigDefault = Config{
	Protocol:             "mpsession",
	MaxSocketsPerSession: 4,
	MaxSocketsPerUser:    16,
}

func configDefault(config ...Config) Config {
	if len(config) < 1 {
		return ConfigDefault
	}
	cfg := config[0]
	if cfg.Protocol == "" {
		cfg.Protocol = ConfigDefault.Protocol
	}
	if cfg.MaxSocketsPerSession == 0 {
		cfg.MaxSocketsPerSession = ConfigDefault.MaxSocketsPerSession
	}
	if cfg.MaxSocketsPerUser == 0 {
		cfg.MaxSocketsPerUser = ConfigDefault.MaxSocketsPerUser
	}
	return cfg
}

// TicketConfig defines the config for the ticket endpoint (see Tickets).
type TicketConfig struct {
	// URL is the public URL of the WebSocket route the tickets open, as clients reach
	// it (e.g. "wss://game.example/ws" behind nginx). Set it in production.
	//
	// Optional. Default: ws://<Host header><Path>, wss:// when the request came over
	// TLS; X-Forwarded-Host and X-Forwarded-Proto are used only when the app sets
	// fiber.Config.EnableTrustedProxyCheck and the request came from a trusted proxy,
	// as any client can send them.
	URL string

	// Path is the WebSocket route the tickets open, e.g. "/ws".
	//
	// Required unless URL is set.
	Path string

	// TTL is how long a ticket may wait before it is used.
	//
	// Optional. Default: 30 * time.Second
	TTL time.Duration

	url *url.URL // URL, parsed
}

func ticketConfigDefault(cfg TicketConfig) TicketConfig {
	if cfg.URL != "" {
		u, err := url.Parse(cfg.URL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || u.RawQuery != "" {
			panic("wsauth: TicketConfig.URL must be a ws:// or wss:// URL without a query")
		}
		cfg.url = u
	} else if cfg.Path == "" {
		panic("wsauth: TicketConfig.Path or TicketConfig.URL is required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	return cfg
}
