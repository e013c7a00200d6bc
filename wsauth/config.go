package wsauth

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Config defines the config of a Server: who may open a socket, how many, how each
// socket is run, and where tickets lead.
type Config struct {
	// Next defines a function to skip the server on an upgrade route when it returns
	// true: the route's next handler runs instead.
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

	// MaxSocketsPerSession caps the sockets one session may hold open on this Server,
	// and MaxSocketsPerUser those of one user (openid) across their sessions, so that
	// one account cannot take a process's capacity. An upgrade past a cap is refused
	// with 429 before anything is upgraded. The counts are per Server (per process): a
	// user whose sockets land on N instances may hold N times as many. Negative caps
	// are refused by NewServer.
	//
	// Optional. Default: 4 and 16
	MaxSocketsPerSession int
	MaxSocketsPerUser    int

	// ReadLimit is the largest message the peer may send; a larger one closes the
	// socket with 1009 (message too big).
	//
	// Optional. Default: 64 << 10
	ReadLimit int64

	// PingInterval is how often a ping frame is sent. Below 60 s it also keeps proxies
	// such as nginx (proxy_read_timeout 60 s) from closing a quiet socket.
	//
	// Optional. Default: 25 * time.Second
	PingInterval time.Duration

	// ReadTimeout closes the socket when nothing, not even a pong, arrives for this
	// long: the peer is gone.
	//
	// Optional. Default: 60 * time.Second
	ReadTimeout time.Duration

	// WriteTimeout bounds every write.
	//
	// Optional. Default: 10 * time.Second
	WriteTimeout time.Duration

	// History keeps the Hub's messages to each user, session and room for a while, so
	// that a client that reconnects receives those it missed, on any instance (see
	// "Recovery" in the package doc). It needs a store that keeps histories (memstore,
	// redisstore). nil: off, at no cost.
	//
	// Optional. Default: nil
	History *HistoryConfig

	// Presence keeps who is in each room across the processes sharing the store
	// (Hub.Presence), at one store round trip per Join (which waits for it) and Leave,
	// one more with Events, and optionally tells the room of joins and leaves. It needs a store that keeps presence (memstore,
	// redisstore). nil: off, at no cost.
	//
	// Optional. Default: nil
	Presence *PresenceConfig

	// QueueSize is how many messages from the Hub (ToUser, ToSession, ToRoom) may wait
	// to be written to one socket. A socket whose queue is full when another message
	// comes is closed with CloseTooSlow, so that a client that stopped reading holds
	// neither memory nor the other sockets up.
	//
	// Optional. Default: 256
	QueueSize int

	// ReadBufferSize and WriteBufferSize are the sizes of a socket's read and write
	// buffers (contrib/websocket's). For many idle sockets, 128 and a WriteBufferPool
	// save about 2 KiB a socket (see the package doc).
	//
	// Optional. Default: 1024 and 1024
	ReadBufferSize  int
	WriteBufferSize int

	// WriteBufferPool, when set, lends sockets their write buffer while a message is
	// written, instead of each socket keeping one. Use one pool per WriteBufferSize.
	//
	// Optional. Default: nil
	WriteBufferPool *sync.Pool

	// TicketURL is the URL of the socket route the tickets of Tickets open. A ws:// or
	// wss:// URL is used as it is, as clients reach it (e.g. "wss://game.example/ws"
	// behind nginx): set it in production. A path ("/ws") is completed with this
	// server's host as the request reached it, wss:// when it came over TLS;
	// X-Forwarded-Host and X-Forwarded-Proto count only when the app sets
	// fiber.Config.EnableTrustedProxyCheck and the request came from a trusted proxy,
	// as any client can send them.
	//
	// Required for Tickets.
	TicketURL string

	// TicketTTL is how long a ticket may wait before it is used.
	//
	// Optional. Default: 30 * time.Second
	TicketTTL time.Duration

	ticketURL *url.URL // TicketURL, parsed
}

// TicketParam is the query parameter that carries a ticket (see Server.Tickets).
const TicketParam = "ticket"

// ConfigDefault is the default config.
var ConfigDefault = Config{
	Protocol:             "mpsession",
	MaxSocketsPerSession: 4,
	MaxSocketsPerUser:    16,
	ReadLimit:            64 << 10,
	PingInterval:         25 * time.Second,
	ReadTimeout:          60 * time.Second,
	WriteTimeout:         10 * time.Second,
	QueueSize:            256,
	TicketTTL:            30 * time.Second,
}

// configDefault fills the zero fields of the first config with the defaults, and
// returns an error for a config no socket could work with.
func configDefault(config ...Config) (Config, error) {
	var cfg Config
	if len(config) > 0 {
		cfg = config[0]
	}
	if cfg.MaxSocketsPerSession < 0 || cfg.MaxSocketsPerUser < 0 {
		return cfg, errors.New("wsauth: Config.MaxSocketsPerSession and MaxSocketsPerUser must not be negative")
	}
	if cfg.ReadLimit < 0 || cfg.PingInterval < 0 || cfg.ReadTimeout < 0 || cfg.WriteTimeout < 0 ||
		cfg.QueueSize < 0 || cfg.ReadBufferSize < 0 || cfg.WriteBufferSize < 0 || cfg.TicketTTL < 0 {
		return cfg, errors.New("wsauth: Config: sizes and durations must not be negative")
	}
	history, err := historyDefault(cfg.History)
	if err != nil {
		return cfg, err
	}
	cfg.History = history
	if strings.ContainsAny(cfg.Protocol, ", \t") {
		return cfg, fmt.Errorf("wsauth: Config.Protocol %q is not a subprotocol name", cfg.Protocol)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.MaxSocketsPerSession, ConfigDefault.MaxSocketsPerSession)
	def(&cfg.MaxSocketsPerUser, ConfigDefault.MaxSocketsPerUser)
	def(&cfg.QueueSize, ConfigDefault.QueueSize)
	if cfg.Protocol == "" {
		cfg.Protocol = ConfigDefault.Protocol
	}
	if cfg.ReadLimit == 0 {
		cfg.ReadLimit = ConfigDefault.ReadLimit
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = ConfigDefault.PingInterval
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = ConfigDefault.ReadTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = ConfigDefault.WriteTimeout
	}
	if cfg.TicketTTL == 0 {
		cfg.TicketTTL = ConfigDefault.TicketTTL
	}
	if cfg.TicketURL != "" {
		u, err := url.Parse(cfg.TicketURL)
		switch {
		case err != nil || u.RawQuery != "" || u.Fragment != "":
			return cfg, errors.New("wsauth: Config.TicketURL must be a ws:// or wss:// URL or a path, without a query")
		case u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/"):
		case (u.Scheme == "ws" || u.Scheme == "wss") && u.Host != "":
		default:
			return cfg, errors.New("wsauth: Config.TicketURL must be a ws:// or wss:// URL or a path, without a query")
		}
		cfg.ticketURL = u
	}
	return cfg, nil
}
