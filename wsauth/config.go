package wsauth

import (
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
}

// TicketParam is the query parameter that carries a ticket (see Tickets).
const TicketParam = "ticket"

// ConfigDefault is the default config.
var ConfigDefault = Config{
	Protocol: "mpsession",
}

func configDefault(config ...Config) Config {
	if len(config) < 1 {
		return ConfigDefault
	}
	cfg := config[0]
	if cfg.Protocol == "" {
		cfg.Protocol = ConfigDefault.Protocol
	}
	return cfg
}

// TicketConfig defines the config for the ticket endpoint (see Tickets).
type TicketConfig struct {
	// Path is the WebSocket route the tickets open, e.g. "/ws".
	//
	// Required.
	Path string

	// TTL is how long a ticket may wait before it is used.
	//
	// Optional. Default: 30 * time.Second
	TTL time.Duration
}

func ticketConfigDefault(cfg TicketConfig) TicketConfig {
	if cfg.Path == "" {
		panic("wsauth: TicketConfig.Path is required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	return cfg
}
