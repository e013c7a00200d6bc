package fibermp

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/sync/singleflight"

	"github.com/mpsession/mpsession/internal/cache"
	"github.com/mpsession/mpsession/internal/counting"
	"github.com/mpsession/mpsession/internal/session"
	"github.com/mpsession/mpsession/store"
)

type middleware struct {
	cfg    Config
	counts *counting.Counts // cfg.Metrics's
	eng    *session.Engine
	proto  session.Protocol
	logins singleflight.Group
}

// New creates the middleware: it answers the login and logout endpoints, and attaches
// the session to every request that carries valid credentials (read it with Get). A
// request whose credentials are invalid or expired is answered with the protocol's
// invalid-session reply, which makes the client log in again; a request without
// credentials passes through without a session (guard routes with Required).
//
// LoginPath and LogoutPath are matched below the prefix the middleware is mounted at:
// under app.Group("/api").Use(fibermp.New(cfg)), or in a sub-app mounted at "/api",
// the login endpoint is /api/login.
func New(config ...Config) fiber.Handler {
	cfg := configDefault(config...)
	counts := counting.Of(cfg.Metrics)
	m := &middleware{cfg: cfg, proto: session.Protocol(cfg.Protocol), counts: counts}
	m.eng = &session.Engine{
		Store:    storeOf(cfg, counts),
		Metrics:  counts,
		Protocol: m.proto,
		Idle:     cfg.IdleTimeout,
		Wrap:     func(st *session.State) any { return &Session{st: st} },
	}
	return m.handle
}

// storeOf returns the store the middleware calls: the configured one, each call bounded
// by StoreTimeout, behind the cache when there is one.
func storeOf(cfg Config, counts *counting.Counts) store.Store {
	st := session.Bounded(cfg.Store, cfg.StoreTimeout, counts)
	if _, local := cfg.Store.(*store.Memory); cfg.Cache == nil || local {
		return st
	}
	health, _ := cfg.Store.(store.EventHealth)
	c, err := cache.New(st, health, cfg.IdleTimeout, cache.Config{
		MaxEntries: cfg.Cache.MaxEntries, MaxAge: cfg.Cache.MaxAge, Renew: cfg.Cache.Renew, Metrics: counts})
	if err != nil {
		panic("fibermp: Config.Cache: " + err.Error())
	}
	c.Start()
	return c
}

// Get returns the request's session, or nil if the request carries none.
func Get(c *fiber.Ctx) *Session {
	if st := session.StateOf(c); st != nil {
		s, _ := st.Outer.(*Session)
		return s
	}
	return nil
}

// Required returns a handler that lets only requests with a session pass and answers
// the others with the protocol's invalid-session reply, so clients log in and retry.
// It must run after the middleware New returns.
func Required() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if session.StateOf(c) != nil {
			return c.Next()
		}
		e := session.EngineOf(c)
		if e == nil {
			return fiber.NewError(fiber.StatusInternalServerError, "fibermp.Required runs without fibermp.New before it")
		}
		return session.InvalidSession(c, e.Protocol, session.InvalidStatus(c), "login required")
	}
}

func (m *middleware) handle(c *fiber.Ctx) error {
	if m.cfg.Next != nil && m.cfg.Next(c) {
		return c.Next()
	}
	m.eng.Attach(c)
	path := relativePath(c)
	if path == m.cfg.LoginPath {
		return m.login(c)
	}
	p := m.proto
	cr, ok, err := session.ReadCredentials(c, p, m.cfg.QueryCredentials && !session.IsUpgrade(c))
	if path == m.cfg.LogoutPath {
		return m.logout(c, cr, ok && err == nil)
	}
	if !ok {
		return c.Next()
	}
	if err != nil {
		m.counts.RequestRefused(counting.RefusedInvalid)
		status := fiber.StatusBadRequest
		if session.IsUpgrade(c) {
			status = fiber.StatusUnauthorized // a refused upgrade says so by its status
		}
		return session.InvalidSession(c, p, status, "malformed session credentials")
	}
	s, err := m.eng.Open(c.UserContext(), cr)
	switch {
	case errors.Is(err, session.ErrInvalid):
		m.counts.RequestRefused(counting.RefusedInvalid)
		return session.InvalidSession(c, p, session.InvalidStatus(c), "session expired or unknown, log in again")
	case err != nil:
		m.counts.RequestRefused(counting.RefusedUnavailable)
		return session.Unavailable(c, "session store unavailable")
	}
	session.SetState(c, s)
	if err := c.Next(); err != nil {
		s.Discard()
		if errors.Is(err, session.ErrUnavailable) {
			// A Session method's store call failed: the same 503 as a failed load,
			// without the error's text (it may name the store's address).
			m.counts.RequestRefused(counting.RefusedUnavailable)
			c.Response().ResetBody()
			return session.Unavailable(c, "session store unavailable")
		}
		return err
	}
	if err := s.Save(c.UserContext()); err != nil {
		c.Response().ResetBody()
		switch {
		case errors.Is(err, store.ErrNotFound):
			m.counts.RequestRefused(counting.RefusedInvalid)
			return session.InvalidSession(c, p, session.InvalidStatus(c), "session ended during the request, log in again")
		case errors.Is(err, store.ErrTooLarge):
			return session.TooLarge(c, "session too large, changes not saved")
		}
		m.counts.RequestRefused(counting.RefusedUnavailable)
		return session.Unavailable(c, "session store unavailable, changes not saved")
	}
	return nil
}

// relativePath returns the request's path below the prefix the middleware's route is
// mounted at: "/login" for /api/login under app.Group("/api").Use(...).
func relativePath(c *fiber.Ctx) string {
	path := c.Path()
	prefix := strings.TrimRight(c.Route().Path, "/")
	if prefix == "" || len(path) < len(prefix) {
		return path
	}
	head := path[:len(prefix)]
	if head != prefix && !(!c.App().Config().CaseSensitive && strings.EqualFold(head, prefix)) {
		return path
	}
	// A route's own path (app.All("/login", mw)) is no prefix: it is the path.
	if rest := path[len(prefix):]; rest != "" && rest[0] == '/' {
		return rest
	}
	return path
}

func (m *middleware) logout(c *fiber.Ctx, cr session.Credentials, valid bool) error {
	if valid {
		s, err := m.eng.Open(c.UserContext(), cr)
		switch {
		case errors.Is(err, session.ErrInvalid):
			// Nothing to log out.
		case err != nil:
			return session.Unavailable(c, "session store unavailable")
		default:
			if err := s.Destroy(); err != nil {
				return session.Unavailable(c, "session store unavailable")
			}
		}
	}
	return session.LoggedOut(c, m.proto)
}
