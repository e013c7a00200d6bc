package session

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/mpsession/mpsession/internal/counting"
	"github.com/mpsession/mpsession/store"
)

// ErrInvalid means the credentials name no live session.
var ErrInvalid = errors.New("fibermp: invalid session")

// Engine is what one fibermp.Manager knows about its sessions, handed to the packages
// that build on it: through the request's Locals, and to wsauth by ManagerEngine.
type Engine struct {
	Store    store.Store // bounded by the store timeout (see Bounded)
	Protocol Protocol
	Idle     time.Duration
	Metrics  *counting.Counts // nil: not counted

	// Wrap makes the application's view of a new state (fibermp's *Session).
	Wrap func(*State) any
}

// ManagerEngine returns the engine of a *fibermp.Manager. fibermp sets it when it is
// initialised, so that wsauth reaches the engine of the Manager it is given without the
// engine being part of fibermp's API. It links two packages and holds no state.
var ManagerEngine func(manager any) *Engine

type localsKey int

const (
	engineKey localsKey = iota
	stateKey
)

// Attach marks c as handled by e.
func (e *Engine) Attach(c *fiber.Ctx) { c.Locals(engineKey, e) }

// EngineOf returns the engine of the middleware that handled c, or nil.
func EngineOf(c *fiber.Ctx) *Engine {
	e, _ := c.Locals(engineKey).(*Engine)
	return e
}

// StateOf returns the session attached to c, or nil.
func StateOf(c *fiber.Ctx) *State {
	s, _ := c.Locals(stateKey).(*State)
	return s
}

// SetState attaches s to c.
func SetState(c *fiber.Ctx, s *State) { c.Locals(stateKey, s) }

// Open loads the session the credentials name and checks them. It returns ErrInvalid
// when they do not name a live session, and a store error when the store failed. The
// load also extends the idle timeout, without writing any field.
func (e *Engine) Open(ctx context.Context, cr Credentials) (*State, error) {
	start := time.Now() // events from here on may or may not be in what Load returns
	rec, err := e.Store.Load(ctx, cr.ID, e.Idle)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrInvalid
	}
	if err != nil {
		return nil, err
	}
	// A Wafer session needs its skey; and a session made by a Wafer middleware is not
	// opened by its id alone where another protocol shares the store.
	if (e.Protocol == Wafer) != (rec.Fields[FieldSkey] != "") ||
		e.Protocol == Wafer && !SkeyMatches(rec.Fields[FieldSkey], cr.Skey) {
		return nil, ErrInvalid
	}
	// The credentials point into fasthttp's buffers; the session may outlive the
	// request (a socket keeps it for its life).
	cr.ID, cr.Skey = utils.CopyString(cr.ID), utils.CopyString(cr.Skey)
	s := e.NewState(ctx, cr, rec)
	s.loadedAt = start
	return s, nil
}

// Authenticate opens the session a credential string names (see Credentials.String)
// and attaches it to c. It returns ErrInvalid when the credential names no live
// session, and a store error when the store failed.
func (e *Engine) Authenticate(c *fiber.Ctx, credential string) (*State, error) {
	cr, err := ParseCredential(e.Protocol, credential)
	if err != nil {
		return nil, ErrInvalid
	}
	s, err := e.Open(c.UserContext(), cr)
	if err != nil {
		return nil, err
	}
	SetState(c, s)
	return s, nil
}

// NewState makes the state of a session loaded (or just created) as rec, with now as
// its LoadedAt.
func (e *Engine) NewState(ctx context.Context, cr Credentials, rec *store.Record) *State {
	s := &State{eng: e, ctx: ctx, cred: cr, owner: rec.Owner, created: createdAt(rec.Fields),
		deadline: rec.Deadline, expires: rec.ExpiresAt, fields: rec.Fields, loadedAt: time.Now()}
	if e.Wrap != nil {
		s.Outer = e.Wrap(s)
	}
	return s
}

// createdAt reads the login time kept in the session.
func createdAt(fields map[string]string) time.Time {
	ms, err := strconv.ParseInt(fields[FieldCreated], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
