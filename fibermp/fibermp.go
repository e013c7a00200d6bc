package fibermp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/sync/singleflight"

	"github.com/mpsession/mpsession/internal/cache"
	"github.com/mpsession/mpsession/internal/counting"
	"github.com/mpsession/mpsession/internal/session"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
)

// Manager owns the sessions of an application: the login and logout endpoints, the
// session of every request, and what runs in the background for them (the cache's
// subscription and renewals, the default store's cleanup). Make one with NewManager,
// mount Handler, and Close it when the server stops. Package wsauth builds its socket
// server on a Manager.
//
// A Manager is safe for use by several goroutines.
type Manager struct {
	cfg      Config
	counts   *counting.Counts // cfg.Metrics's
	eng      *session.Engine
	proto    session.Protocol
	logins   singleflight.Group
	cache    *cache.Store // nil: no cache
	ownStore store.Store  // the default store, which Close closes; nil when the caller gave one

	closeOnce sync.Once
}

// NewManager returns a Manager for config, or an error for a config no request could
// work with: neither AppID and AppSecret nor Client, an unknown Protocol, an
// AbsoluteTimeout shorter than IdleTimeout, a Cache on a store whose events do not
// reach every process. Every other field has a default: the store is in memory and the
// protocol is Token.
func NewManager(config ...Config) (*Manager, error) {
	cfg, err := configDefault(config...)
	if err != nil {
		return nil, err
	}
	m := &Manager{proto: session.Protocol(cfg.Protocol), counts: counting.Of(cfg.Metrics)}
	if cfg.Store == nil {
		m.ownStore = memstore.New()
		cfg.Store = m.ownStore
	}
	m.cfg = cfg
	st := session.Bounded(cfg.Store, cfg.StoreTimeout, m.counts)
	if cfg.Cache != nil && !cfg.Store.Capabilities().InProcess {
		c, err := cache.New(st, cfg.IdleTimeout, cache.Config{
			MaxEntries: cfg.Cache.MaxEntries, MaxAge: cfg.Cache.MaxAge, Renew: cfg.Cache.Renew,
			MaxLag: cfg.Cache.MaxLag, Metrics: m.counts})
		if err != nil {
			m.closeOwnStore()
			return nil, fmt.Errorf("fibermp: Config.Cache: %w", err)
		}
		c.Start()
		m.cache, st = c, c
	}
	m.eng = &session.Engine{
		Store:    st,
		Metrics:  m.counts,
		Protocol: m.proto,
		Idle:     cfg.IdleTimeout,
		Wrap:     func(st *session.State) any { return &Session{st: st} },
	}
	return m, nil
}

// New returns the middleware of a new Manager that is never closed, for an application
// that serves HTTP only and runs until it exits: app.Use(fibermp.New(cfg)). It panics
// where NewManager returns an error, as Fiber's middlewares do for a bad config.
// Applications with sockets (package wsauth), tests, and any program that must stop
// what the Manager runs use NewManager.
func New(config ...Config) fiber.Handler {
	m, err := NewManager(config...)
	if err != nil {
		panic(err.Error())
	}
	return m.Handler()
}

// Handler returns the middleware: it answers the login and logout endpoints, and
// attaches the session to every request that carries valid credentials (read it with
// Get). A request whose credentials are invalid or expired is answered with the
// protocol's invalid-session reply, which makes the client log in again; a request
// without credentials passes through without a session (guard routes with Required).
//
// LoginPath and LogoutPath are matched below the prefix the middleware is mounted at:
// under app.Group("/api").Use(m.Handler()), or in a sub-app mounted at "/api", the
// login endpoint is /api/login.
func (m *Manager) Handler() fiber.Handler { return m.handle }

// Required returns a handler that lets only requests with a session of m pass, and
// answers the others with the protocol's invalid-session reply, so clients log in and
// retry. Put it after Handler on the route.
func (m *Manager) Required() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if session.StateOf(c) != nil && session.EngineOf(c) == m.eng {
			return c.Next()
		}
		return session.InvalidSession(c, m.proto, session.InvalidStatus(c), "login required")
	}
}

// Close stops what the Manager runs in the background: the cache's subscription and
// renewals (requests after Close load from the store), and the default in-memory store.
// A store given in Config.Store is the caller's to close, after the Manager and the
// socket servers built on it. Call Close once the app has stopped taking requests. It
// waits for the background store calls under way, until ctx is done; it may be called
// more than once.
func (m *Manager) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.closeOnce.Do(func() {
			if m.cache != nil {
				_ = m.cache.Close()
			}
			m.closeOwnStore()
		})
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("fibermp: close: %w", ctx.Err())
	}
}

func (m *Manager) closeOwnStore() {
	if m.ownStore != nil {
		_ = m.ownStore.Close()
	}
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
// It must run after the middleware (Manager.Handler or New).
func Required() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if session.StateOf(c) != nil {
			return c.Next()
		}
		e := session.EngineOf(c)
		if e == nil {
			return fiber.NewError(fiber.StatusInternalServerError, "fibermp.Required runs without the fibermp middleware before it")
		}
		return session.InvalidSession(c, e.Protocol, session.InvalidStatus(c), "login required")
	}
}

func (m *Manager) handle(c *fiber.Ctx) error {
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

func (m *Manager) logout(c *fiber.Ctx, cr session.Credentials, valid bool) error {
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

func init() {
	session.ManagerEngine = func(m any) *session.Engine { return m.(*Manager).eng }
}
