package wsauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/valyala/fasthttp"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/counting"
	"github.com/mpsession/mpsession/internal/session"
	"github.com/mpsession/mpsession/store"
)

// Server owns the sockets of a fibermp.Manager's sessions: it authenticates upgrades
// (Upgrade), hands out tickets (Tickets), sends messages to users, sessions and rooms
// (Hub), keeps every socket's session live, and closes them all at Shutdown. Make one
// per Manager with NewServer; it is safe for use by several goroutines, and its Hub
// may be kept and used from anywhere in the program.
type Server struct {
	eng *session.Engine
	m   *counting.Counts // eng.Metrics
	cfg Config
	hub *Hub

	conns connSet // the open sockets, and the goroutine that pings them

	// The live handles' registry: made with the first socket, retired with the last,
	// so that a server without sockets holds no store subscription.
	regMu    sync.Mutex
	reg      *registry
	shutdown bool           // guarded by regMu: upgrades are refused
	bg       sync.WaitGroup // the registries' goroutines
}

// NewServer returns the socket server of mp's sessions, or an error for a config no
// socket could work with (negative caps or sizes, a TicketURL that is neither a ws://
// or wss:// URL nor a path).
func NewServer(mp *fibermp.Manager, config ...Config) (*Server, error) {
	if mp == nil {
		return nil, errors.New("wsauth: NewServer needs the fibermp.Manager whose sessions the sockets use")
	}
	cfg, err := configDefault(config...)
	if err != nil {
		return nil, err
	}
	eng := session.ManagerEngine(mp)
	if eng.Store.Capabilities().Events == nil {
		return nil, errors.New("wsauth: the Manager's store sends no session events (Capabilities().Events is nil): live sockets need them")
	}
	s := &Server{eng: eng, m: eng.Metrics, cfg: cfg}
	s.conns.conns = map[*Conn]struct{}{}
	caps := eng.Store.Capabilities()
	s.hub = &Hub{broker: caps.Broker, m: eng.Metrics, topics: map[string]*hubTopic{}}
	if cfg.History != nil {
		if caps.History == nil || caps.Broker == nil {
			return nil, errors.New("wsauth: Config.History: the Manager's store keeps no history (Capabilities().History is nil)")
		}
		s.hub.hist, s.hub.keep, s.hub.rejoin, s.hub.maxReplay = caps.History, cfg.History.retention(), cfg.History.Rejoin, cfg.History.MaxReplay
	}
	if cfg.Presence != nil {
		if caps.Presence == nil {
			return nil, errors.New("wsauth: Config.Presence: the Manager's store keeps no presence (Capabilities().Presence is nil)")
		}
		s.hub.presence, s.hub.presenceEvents = caps.Presence, cfg.Presence.Events
	}
	_, _ = rand.Read(s.hub.id[:])
	return s, nil
}

// Hub returns the server's hub, which sends messages to sockets from anywhere in the
// program: a handler, a background job, another app.
func (s *Server) Hub() *Hub { return s.hub }

// Upgrade returns the handler of a socket route: app.Get("/ws", ws.Upgrade(fn)). It
// authenticates the upgrade request, then upgrades it (contrib/websocket) and runs fn
// with the socket, which is closed when fn returns:
//
//   - credentials come from the Manager's protocol headers (wx.connectSocket can send
//     headers), a subprotocol offered next to Config.Protocol (browsers), or a
//     single-use ticket in the query (wafer-client-sdk's Tunnel, and any client that can
//     only set a URL);
//   - an upgrade without valid credentials is refused with 401 and the protocol's
//     invalid-session body, a browser from an origin not allowed with 403, a session
//     or user past its socket cap with 429, a store outage or a server shut down with
//     503, before anything is upgraded; a request that is no upgrade gets 426.
//
// The route needs nothing before it: when the Manager's middleware ran on the request,
// its session is used, and otherwise the credentials are read here.
func (s *Server) Upgrade(fn func(c *Conn)) fiber.Handler {
	wc := fws.Config{
		Origins:         []string{"*"}, // checked before, with the refusals above
		ReadBufferSize:  s.cfg.ReadBufferSize,
		WriteBufferSize: s.cfg.WriteBufferSize,
	}
	if s.cfg.WriteBufferPool != nil { // a nil *sync.Pool in the interface would be used
		wc.WriteBufferPool = s.cfg.WriteBufferPool
	}
	up := fws.New(s.serve(fn), wc)
	return func(c *fiber.Ctx) error {
		if s.cfg.Next != nil && s.cfg.Next(c) {
			return c.Next()
		}
		if !fws.IsWebSocketUpgrade(c) {
			return fiber.ErrUpgradeRequired
		}
		return s.upgrade(c, up)
	}
}

func (s *Server) upgrade(c *fiber.Ctx, up fiber.Handler) error {
	m := s.m
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !allowed(s.cfg.Origins, origin) {
		m.UpgradeRefused(counting.RefusedOrigin)
		return session.ForbiddenOrigin(c)
	}
	var recovery *Recover
	if s.hub.hist != nil { // read before authenticate replaces a subprotocol credential
		recovery = recoverFrom(c.Get(RecoverHeader), c.Get(fiber.HeaderSecWebSocketProtocol))
	}
	st, err := s.authenticate(c)
	switch {
	case errors.Is(err, session.ErrInvalid):
		m.UpgradeRefused(counting.RefusedInvalid)
		return session.InvalidSession(c, s.eng.Protocol, fiber.StatusUnauthorized, "invalid or expired session")
	case err != nil:
		m.UpgradeRefused(counting.RefusedUnavailable)
		return session.Unavailable(c, "session store unavailable")
	case st == nil:
		m.UpgradeRefused(counting.RefusedInvalid)
		return session.InvalidSession(c, s.eng.Protocol, fiber.StatusUnauthorized, "login required")
	}
	h, err := s.open(st)
	switch {
	case errors.Is(err, errTooMany):
		m.UpgradeRefused(counting.RefusedTooMany)
		return session.TooManySockets(c)
	case errors.Is(err, errShutdown):
		m.UpgradeRefused(counting.RefusedUnavailable)
		return session.Unavailable(c, "server shutting down")
	case err != nil:
		m.UpgradeRefused(counting.RefusedUnavailable)
		return session.Unavailable(c, "session store unavailable")
	}
	// fasthttp closes io.Closer values in Locals when the request ends: for an
	// upgraded request, when the socket's handler returns; for an upgrade that
	// failed, at once. That releases the handle.
	h.recover = recovery
	c.Locals(localsKey, &release{h: h, ctx: c.Context()})
	err = up(c)
	if c.Response().StatusCode() != fiber.StatusSwitchingProtocols {
		h.end(ErrClosed) // no socket: the upgrade failed
		return err
	}
	h.awaitClaim()
	return err
}

// localsKey is where the handle travels from the upgrade request to the socket:
// contrib/websocket copies only string-keyed Locals into the *websocket.Conn.
const localsKey = "mpsession/wsauth.handle"

// serve returns contrib's handler of an upgraded socket: it runs fn with the socket of
// the handle the upgrade made.
func (s *Server) serve(fn func(c *Conn)) func(*fws.Conn) {
	return func(conn *fws.Conn) {
		r, _ := conn.Locals(localsKey).(*release)
		if r == nil || !r.h.claim() {
			_ = conn.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseTryAgainLater, "handshake took too long"), time.Now().Add(time.Second))
			return
		}
		if errors.Is(r.h.Err(), ErrClosed) { // Shutdown ended the handle while the 101 was on its way
			_ = conn.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
			return
		}
		r.dropRequest()
		c := s.wrap(conn, r.h)
		if c == nil {
			_ = conn.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
			return
		}
		defer c.finish()
		fn(c)
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

// authenticate finds the request's session: the one the Manager's middleware attached,
// a subprotocol credential, the protocol headers, or a ticket. It returns nil, nil when
// the request offers no credentials at all.
func (s *Server) authenticate(c *fiber.Ctx) (*session.State, error) {
	var cred string
	if offered := c.Get(fiber.HeaderSecWebSocketProtocol); offered != "" {
		if offeredCred, ok := subprotocolCredential(offered, s.cfg.Protocol); ok {
			// The credential must reach neither the socket's handler (contrib copies
			// the request headers into the Conn) nor the reply, even when the headers
			// carry a session too: the upgrader echoes the fixed name set here.
			cred = utils.CopyString(offeredCred)
			c.Request().Header.Set(fiber.HeaderSecWebSocketProtocol, s.cfg.Protocol)
			c.Set(fiber.HeaderSecWebSocketProtocol, s.cfg.Protocol)
		}
	}
	if st, err, found := s.requestSession(c); found {
		return st, err
	}
	if cred != "" {
		return s.eng.Authenticate(c, cred)
	}
	if ticket := c.Query(TicketParam); ticket != "" {
		sealed, err := s.eng.Store.TakeTicket(c.UserContext(), ticket)
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
		return s.eng.Authenticate(c, cred)
	}
	return nil, nil
}

// requestSession returns the session the request's protocol headers name: the one the
// Manager's middleware attached when it ran, or else loaded here. found is false when
// the headers name none.
func (s *Server) requestSession(c *fiber.Ctx) (st *session.State, err error, found bool) {
	if session.EngineOf(c) == s.eng {
		st = session.StateOf(c)
		return st, nil, st != nil
	}
	cr, ok, err := session.ReadCredentials(c, s.eng.Protocol, false)
	if !ok {
		return nil, nil, false
	}
	if err != nil {
		return nil, session.ErrInvalid, true
	}
	st, err = s.eng.Open(c.UserContext(), cr)
	if err != nil {
		return nil, err, true
	}
	s.eng.Attach(c)
	session.SetState(c, st)
	return st, nil, true
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
		case strings.HasPrefix(p, recoverProtocolPrefix): // a recovery state, not a credential
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

// Shutdown refuses new upgrades (503), closes every socket with 1001 (going away) and
// reason "server shutting down", waits until their handlers have returned, and stops
// what the server runs: its store subscription, its keep-alive and ping goroutines, and
// the Hub's listeners and subscriptions. Sends on the Hub after it fail with ErrClosed.
// Call it when the server stops, after app.Shutdown (which does not wait for upgraded
// connections) and before the Manager's Close. It returns an error when ctx is done
// before every handler returned; it may be called again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.regMu.Lock()
	s.shutdown = true
	s.regMu.Unlock()
	s.hub.quiet.Store(true)
	for _, c := range s.conns.shutdown() {
		go c.CloseWith(fws.CloseGoingAway, "server shutting down")
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		n := s.conns.running()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wsauth: shutdown: %d sockets still open: %w", n, ctx.Err())
		case <-t.C:
		}
	}
	// Handles whose socket never started (an upgrade under way) end too, and with
	// the last of them the registry.
	s.regMu.Lock()
	r := s.reg
	s.regMu.Unlock()
	if r != nil {
		r.each("", func(h *Handle) { h.end(ErrClosed) })
	}
	s.hub.close()
	s.bg.Wait()
	s.conns.wait()
	return nil
}
