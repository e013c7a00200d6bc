package wsauth

import (
	"errors"
	"strings"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/valyala/fasthttp"

	"github.com/mpsession/mpsession/internal/counting"
	"github.com/mpsession/mpsession/internal/session"
	"github.com/mpsession/mpsession/store"
)

// localsKey is where the handle travels from the upgrade request to the socket:
// contrib/websocket copies only string-keyed Locals into the *websocket.Conn.
const localsKey = "mpsession/wsauth.handle"

// New creates the middleware that authenticates WebSocket upgrades. Put it on the
// socket's route, after fibermp.New and before websocket.New:
//
//	app.Get("/ws", wsauth.New(wsauth.Config{Origins: []string{"https://game.example"}}),
//		websocket.New(wsauth.Handler(func(c *wsauth.Conn) { s := c.Session(); ... })))
//
// It accepts the credentials of the fibermp protocol in the request headers
// (wx.connectSocket can send headers), a credential offered as a subprotocol next to
// Config.Protocol (browsers), or a single-use ticket in the query (wafer-client-sdk's
// Tunnel, and any client that can only set a URL). An upgrade without valid credentials
// is refused with 401 and the protocol's invalid-session body, a browser from an origin
// not allowed with 403, a session or user past its socket cap with 429, a store outage
// with 503, before anything is upgraded. Requests
// that are not upgrades pass through untouched.
func New(config ...Config) fiber.Handler {
	cfg := configDefault(config...)
	return func(c *fiber.Ctx) error {
		if cfg.Next != nil && cfg.Next(c) {
			return c.Next()
		}
		if !websocket.IsWebSocketUpgrade(c) {
			return c.Next()
		}
		eng := session.EngineOf(c)
		if eng == nil {
			return fiber.NewError(fiber.StatusInternalServerError, "wsauth runs without fibermp.New before it")
		}
		m := eng.Metrics
		if origin := c.Get(fiber.HeaderOrigin); origin != "" && !allowed(cfg.Origins, origin) {
			m.UpgradeRefused(counting.RefusedOrigin)
			return session.ForbiddenOrigin(c)
		}
		st, err := authenticate(c, cfg, eng)
		switch {
		case errors.Is(err, session.ErrInvalid):
			m.UpgradeRefused(counting.RefusedInvalid)
			return session.InvalidSession(c, eng.Protocol, fiber.StatusUnauthorized, "invalid or expired session")
		case err != nil:
			m.UpgradeRefused(counting.RefusedUnavailable)
			return session.Unavailable(c, "session store unavailable")
		case st == nil:
			m.UpgradeRefused(counting.RefusedInvalid)
			return session.InvalidSession(c, eng.Protocol, fiber.StatusUnauthorized, "login required")
		}
		h, err := open(eng, st, c.App(), cfg)
		switch {
		case errors.Is(err, errTooMany):
			m.UpgradeRefused(counting.RefusedTooMany)
			return session.TooManySockets(c)
		case err != nil:
			m.UpgradeRefused(counting.RefusedUnavailable)
			return session.Unavailable(c, "session store unavailable")
		}
		// fasthttp closes io.Closer values in Locals when the request ends: for an
		// upgraded request, when the socket's handler returns; for an upgrade that
		// failed, at once. That releases the handle.
		c.Locals(localsKey, &release{h: h, ctx: c.Context()})
		err = c.Next()
		if c.Response().StatusCode() != fiber.StatusSwitchingProtocols {
			h.end(ErrClosed) // no socket: the upgrade failed after this middleware
			return err
		}
		h.awaitClaim()
		return err
	}
}

// release ends its handle when fasthttp resets the request that carried it.
type release struct {
	h   *Handle
	ctx *fasthttp.RequestCtx // the upgrade request's, which fasthttp keeps until the socket closes
}

// dropRequest lets go of the buffers of the upgrade request and of its 101 reply,
// about 1.5 KiB a socket: fasthttp keeps the request's RequestCtx, and so its
// buffers, until the socket's handler returns, though nothing reads them once the 101
// is sent (contrib/websocket has copied the headers, params, query, cookies and
// Locals the Conn serves). It runs in the handler, when fasthttp has written and
// flushed the reply and left the RequestCtx to the handler's goroutine; fasthttp resets
// the emptied request when the handler returns, and the next request that gets this
// RequestCtx from its pool grows new buffers.
func (r *release) dropRequest() {
	r.ctx.Request = fasthttp.Request{}
	r.ctx.Response = fasthttp.Response{}
}

func (r *release) Close() error {
	r.h.end(ErrClosed)
	return nil
}

// authenticate finds the request's session: from the protocol headers (fibermp has
// already checked them), a subprotocol credential, or a ticket. It returns nil, nil
// when the request offers no credentials at all.
func authenticate(c *fiber.Ctx, cfg Config, eng *session.Engine) (*session.State, error) {
	var cred string
	if offered := c.Get(fiber.HeaderSecWebSocketProtocol); offered != "" {
		if offeredCred, ok := subprotocolCredential(offered, cfg.Protocol); ok {
			cred = offeredCred
			// The credential must reach neither the socket's handler (contrib copies
			// the request headers into the Conn) nor the reply, even when the headers
			// carry a session too: the upgrader echoes the fixed name set here.
			cred = utils.CopyString(cred)
			c.Request().Header.Set(fiber.HeaderSecWebSocketProtocol, cfg.Protocol)
			c.Set(fiber.HeaderSecWebSocketProtocol, cfg.Protocol)
		}
	}
	if st := session.StateOf(c); st != nil {
		return st, nil
	}
	if cred != "" {
		return eng.Authenticate(c, cred)
	}
	if ticket := c.Query(TicketParam); ticket != "" {
		sealed, err := eng.Store.TakeTicket(c.UserContext(), ticket)
		if errors.Is(err, store.ErrNotFound) {
			return nil, session.ErrInvalid
		}
		if err != nil {
			return nil, err
		}
		cred, err := session.Unseal(ticket, ticketName, sealed)
		if err != nil {
			return nil, session.ErrInvalid
		}
		return eng.Authenticate(c, cred)
	}
	return nil, nil
}

// subprotocolCredential finds the credential in a Sec-WebSocket-Protocol list that
// offers name: the one other entry.
func subprotocolCredential(offered, name string) (string, bool) {
	var cred string
	found := false
	for _, p := range strings.Split(offered, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == name:
			found = true
		case p != "" && cred == "":
			cred = p
		}
	}
	return cred, found && cred != ""
}

func allowed(origins []string, origin string) bool {
	for _, o := range origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}
