package fibermp

import (
	"context"
	"crypto/subtle"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"golang.org/x/sync/singleflight"

	"github.com/mpsession/mpsession/store"
)

// Locals keys. They are unexported types, so no other package can collide with them;
// fibermp.Get and fibermp.Required read them.
type localsKey int

const (
	sessionKey localsKey = iota
	middlewareKey
)

type middleware struct {
	cfg    Config
	logins singleflight.Group
}

// New creates the middleware: it answers the login and logout endpoints, and attaches
// the session to every request that carries valid credentials (read it with Get). A
// request whose credentials are invalid or expired is answered with the protocol's
// invalid-session reply, which makes the client log in again; a request without
// credentials passes through without a session (guard routes with Required).
func New(config ...Config) fiber.Handler {
	m := &middleware{cfg: configDefault(config...)}
	return m.handle
}

// Get returns the request's session, or nil if the request carries none.
func Get(c *fiber.Ctx) *Session {
	s, _ := c.Locals(sessionKey).(*Session)
	return s
}

// Required returns a handler that lets only requests with a session pass and answers
// the others with the protocol's invalid-session reply, so clients log in and retry.
// It must run after the middleware New returns.
func Required() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if Get(c) != nil {
			return c.Next()
		}
		m, ok := c.Locals(middlewareKey).(*middleware)
		if !ok {
			return fiber.NewError(fiber.StatusInternalServerError, "fibermp.Required runs without fibermp.New before it")
		}
		return invalidSession(c, m.cfg.Protocol, invalidStatus(c), "login required")
	}
}

func (m *middleware) handle(c *fiber.Ctx) error {
	if m.cfg.Next != nil && m.cfg.Next(c) {
		return c.Next()
	}
	c.Locals(middlewareKey, m)
	path := c.Path()
	if path == m.cfg.LoginPath {
		return m.login(c)
	}
	p := m.cfg.Protocol
	cr, ok, err := readCredentials(c, p)
	if path == m.cfg.LogoutPath {
		return m.logout(c, cr, ok && err == nil)
	}
	if !ok {
		return c.Next()
	}
	if err != nil {
		status := fiber.StatusBadRequest
		if invalidStatus(c) == fiber.StatusUnauthorized {
			status = fiber.StatusUnauthorized // a refused upgrade says so by its status
		}
		return invalidSession(c, p, status, "malformed session credentials")
	}
	s, err := m.open(c.UserContext(), cr)
	switch {
	case errors.Is(err, errInvalid):
		return invalidSession(c, p, invalidStatus(c), "session expired or unknown, log in again")
	case err != nil:
		return unavailable(c, "session store unavailable")
	}
	c.Locals(sessionKey, s)
	if err := c.Next(); err != nil {
		s.discard()
		return err
	}
	if err := s.save(c.UserContext()); err != nil {
		c.Response().ResetBody()
		switch {
		case errors.Is(err, store.ErrNotFound):
			return invalidSession(c, p, invalidStatus(c), "session ended during the request, log in again")
		case errors.Is(err, store.ErrTooLarge):
			// Not an outage: retrying would fail the same way.
			return c.Status(fiber.StatusRequestEntityTooLarge).JSON(plainError{Error: ErrCodeTooLarge, Message: "session too large, changes not saved"})
		}
		return unavailable(c, "session store unavailable, changes not saved")
	}
	return nil
}

// invalidStatus is the HTTP status of an invalid-session reply: 200, which the Wafer SDK
// expects (Wafer2 and Token replies set their own), except on a WebSocket upgrade, whose
// refusal must say so by its status because clients see no body.
func invalidStatus(c *fiber.Ctx) int {
	if strings.EqualFold(c.Get(fiber.HeaderUpgrade), "websocket") {
		return fiber.StatusUnauthorized
	}
	return fiber.StatusOK
}

var (
	errInvalid   = errors.New("fibermp: invalid session")
	errMalformed = errors.New("fibermp: malformed credentials")
)

// open loads the session the credentials name and checks them. It returns errInvalid
// when they do not name a live session, and a store error when the store failed. The
// load also extends the idle timeout, without writing any field.
func (m *middleware) open(ctx context.Context, cr credentials) (*Session, error) {
	rec, err := m.cfg.Store.Load(ctx, cr.id, m.cfg.IdleTimeout)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalid
	}
	if err != nil {
		return nil, err
	}
	if m.cfg.Protocol == Wafer && subtle.ConstantTimeCompare([]byte(rec.Fields[fieldSkey]), []byte(cr.skey)) != 1 {
		return nil, errInvalid
	}
	// The credentials point into fasthttp's buffers; the session may outlive the
	// request (wsauth keeps it for a socket's life).
	cr.id, cr.skey = utils.CopyString(cr.id), utils.CopyString(cr.skey)
	return m.newSession(ctx, cr, rec), nil
}

func (m *middleware) newSession(ctx context.Context, cr credentials, rec *store.Record) *Session {
	s := &Session{mw: m, ctx: ctx, cred: cr, owner: rec.Owner, created: createdAt(rec.Fields),
		expires: rec.ExpiresAt, deadline: rec.Deadline, fields: rec.Fields}
	s.Fields = NewFields(s.lookup)
	return s
}

func (m *middleware) logout(c *fiber.Ctx, cr credentials, valid bool) error {
	if valid {
		s, err := m.open(c.UserContext(), cr)
		switch {
		case errors.Is(err, errInvalid):
			// Nothing to log out.
		case err != nil:
			return unavailable(c, "session store unavailable")
		default:
			if err := s.Destroy(); err != nil {
				return unavailable(c, "session store unavailable")
			}
		}
	}
	return loggedOut(c, m.cfg.Protocol)
}

// createdAt reads the login time kept in the session.
func createdAt(fields map[string]string) time.Time {
	ms, err := strconv.ParseInt(fields[fieldCreated], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// ErrInvalidSession is returned by Authenticate when the credential names no live
// session.
var ErrInvalidSession = errInvalid

// Authenticate opens the session a credential names (see Session.Credential) and
// attaches it to the request as the middleware does. It is for packages that take
// credentials from elsewhere than the protocol's headers, such as wsauth (WebSocket
// subprotocols and tickets); most applications will not need it. It returns
// ErrInvalidSession when the credential names no live session, and a store error when
// the store failed. It must run after the middleware New returns.
func Authenticate(c *fiber.Ctx, credential string) (*Session, error) {
	m, ok := c.Locals(middlewareKey).(*middleware)
	if !ok {
		return nil, errors.New("fibermp: Authenticate runs without fibermp.New before it")
	}
	cr, err := parseCredential(m.cfg.Protocol, credential)
	if err != nil {
		return nil, ErrInvalidSession
	}
	s, err := m.open(c.UserContext(), cr)
	if err != nil {
		return nil, err
	}
	c.Locals(sessionKey, s)
	return s, nil
}

// Reject answers c with the protocol's invalid-session reply and the given status, as
// the middleware does for bad credentials. wsauth uses it to refuse an upgrade.
func Reject(c *fiber.Ctx, status int, msg string) error {
	m, ok := c.Locals(middlewareKey).(*middleware)
	if !ok {
		return fiber.NewError(status, msg)
	}
	return invalidSession(c, m.cfg.Protocol, status, msg)
}

// ConfigOf returns the config, with its defaults filled in, of the middleware that
// handled c, and false if none did. It is for packages that build on this one.
func ConfigOf(c *fiber.Ctx) (Config, bool) {
	m, ok := c.Locals(middlewareKey).(*middleware)
	if !ok {
		return Config{}, false
	}
	return m.cfg, true
}
