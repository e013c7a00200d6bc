package wsauth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/internal/session"
)

// Tickets returns the handler of an HTTP endpoint that lets a logged-in client open a
// socket with a URL alone: app.Get("/tunnel", ws.Tickets()). It stores a single-use
// ticket, valid for Config.TicketTTL in every process sharing the store, and answers
// with the socket's URL:
//
//	Wafer, Token: {"url":"wss://host/ws?ticket=..."}   (what wafer-client-sdk's Tunnel expects)
//	Wafer2:       {"code":0,"data":{"connectUrl":"wss://host/ws?ticket=..."}}
//
// Requests without a valid session get the protocol's invalid-session reply, so the
// SDKs log in and retry; the route needs nothing before it. The URL is built from
// Config.TicketURL (see there), never from headers a client could set to send the
// ticket elsewhere. Tickets panics when Config.TicketURL is not set, as a route is
// mounted once, at startup.
func (s *Server) Tickets() fiber.Handler {
	if s.cfg.ticketURL == nil {
		panic("wsauth: Tickets needs Config.TicketURL, the socket route the tickets open (\"/ws\")")
	}
	eng, cfg := s.eng, &s.cfg
	return func(c *fiber.Ctx) error {
		st, err, _ := s.requestSession(c)
		switch {
		case errors.Is(err, session.ErrInvalid):
			return session.InvalidSession(c, eng.Protocol, fiber.StatusUnauthorized, "invalid or expired session")
		case err != nil:
			return session.Unavailable(c, "session store unavailable")
		case st == nil:
			return session.InvalidSession(c, eng.Protocol, fiber.StatusUnauthorized, "login required")
		}
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		ticket := base64.RawURLEncoding.EncodeToString(b)
		if err := eng.Store.PutTicket(c.UserContext(), ticket, session.Seal(ticket, ticketName, st.Credentials().String()), cfg.TicketTTL); err != nil {
			return session.Unavailable(c, "session store unavailable")
		}
		u := socketURL(cfg.ticketURL, c)
		u.RawQuery = url.Values{TicketParam: {ticket}}.Encode()
		if eng.Protocol == session.Wafer2 {
			return c.JSON(fiber.Map{"code": 0, "data": fiber.Map{"connectUrl": u.String()}})
		}
		return c.JSON(fiber.Map{"url": u.String()})
	}
}

// socketURL is where a ticket is used: the configured URL, or this server as the
// request reached it.
func socketURL(configured *url.URL, c *fiber.Ctx) url.URL {
	if configured.Host != "" {
		return *configured
	}
	u := url.URL{Scheme: "ws", Host: string(c.Request().Host()), Path: configured.Path}
	if c.Context().IsTLS() {
		u.Scheme = "wss"
	}
	// X-Forwarded-Host and -Proto count only from a proxy the app trusts: Fiber
	// trusts every sender unless EnableTrustedProxyCheck is on.
	if c.App().Config().EnableTrustedProxyCheck && c.IsProxyTrusted() {
		u.Host = c.Hostname()
		if c.Protocol() == "https" {
			u.Scheme = "wss"
		}
	}
	return u
}

// ticketName is what a ticket's value is sealed as: the session credential, under a
// key derived from the ticket itself. The store keys tickets by SHA-256 of the ticket,
// which does not give the key, so a dump of any store holds no usable credential, even
// during the ticket's 30 seconds.
const ticketName = "wsauth ticket"
