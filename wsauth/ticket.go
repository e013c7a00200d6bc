package wsauth

import (
	"crypto/rand"
	"encoding/base64"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
)

// Tickets returns the handler of an HTTP endpoint that lets a logged-in client open a
// socket with a URL alone. It stores a single-use ticket, valid for TicketConfig.TTL in
// every process sharing the store, and answers with the socket's URL:
//
//	Wafer, Token: {"url":"wss://host/ws?ticket=..."}   (what wafer-client-sdk's Tunnel expects)
//	Wafer2:       {"code":0,"data":{"connectUrl":"wss://host/ws?ticket=..."}}
//
// Requests without a session get the protocol's invalid-session reply, so the SDKs log
// in and retry. The URL's scheme is wss when the request came over HTTPS (c.Protocol).
func Tickets(config TicketConfig) fiber.Handler {
	cfg := ticketConfigDefault(config)
	return func(c *fiber.Ctx) error {
		s := fibermp.Get(c)
		if s == nil {
			return fibermp.Reject(c, fiber.StatusUnauthorized, "login required")
		}
		mp, _ := fibermp.ConfigOf(c)
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		ticket := base64.RawURLEncoding.EncodeToString(b)
		if err := mp.Store.PutTicket(c.UserContext(), ticket, s.Credential(), cfg.TTL); err != nil {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": fibermp.ErrCodeUnavailable, "message": "session store unavailable"})
		}
		scheme := "ws"
		if c.Protocol() == "https" {
			scheme = "wss"
		}
		u := url.URL{Scheme: scheme, Host: c.Hostname(), Path: cfg.Path, RawQuery: url.Values{cfg.TicketParam: {ticket}}.Encode()}
		if mp.Protocol == fibermp.Wafer2 {
			return c.JSON(fiber.Map{"code": 0, "data": fiber.Map{"connectUrl": u.String()}})
		}
		return c.JSON(fiber.Map{"url": u.String()})
	}
}
