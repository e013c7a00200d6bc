package fibermp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/mpsession/mpsession/store"
)

// Errors returned by Session methods.
var (
	// ErrReservedKey is returned for a field name that starts with ReservedPrefix.
	ErrReservedKey = errors.New("fibermp: reserved field name")
	// ErrDestroyed is returned when a destroyed session is written to.
	ErrDestroyed = errors.New("fibermp: session destroyed")
	// ErrNoField is returned by Decode when the field does not exist.
	ErrNoField = errors.New("fibermp: no such field")
)

// ReservedPrefix starts the names of the fields this package keeps for itself (openid,
// session_key, ...). Session.Set and friends refuse such names, so application fields can
// never collide with them.
const ReservedPrefix = "."

// Reserved fields.
const (
	fieldOpenID     = ".openid"
	fieldUnionID    = ".unionid"
	fieldSessionKey = ".session_key"
	fieldSkey       = ".skey"
	fieldUserInfo   = ".userinfo"
	fieldCreated    = ".created"
)

// Session is the session of one request, from fibermp.Get.
//
// Reads see the session as it was loaded plus this request's own changes. Set and Delete
// are saved when the handler returns without an error, writing only the fields they
// named, so concurrent requests that change different fields never overwrite each other.
// Incr, Destroy, DestroyAll and Regenerate take effect in the store at once.
//
// A Session belongs to its request; it is safe for concurrent use by the goroutines of
// that request, and must not be kept after the handler returns (wsauth gives sockets a
// live handle instead).
type Session struct {
	Fields // the getters: Raw, Get, Decode, GetString, GetInt, GetFloat, GetBool

	mw       *middleware
	ctx      context.Context // the request's user context
	cred     credentials
	owner    string
	created  time.Time
	expires  time.Time
	deadline time.Time

	mu        sync.Mutex
	fields    map[string]string
	set       map[string]string
	del       map[string]struct{}
	destroyed bool
}

// ID returns the session id. For the Wafer2 and Token protocols it is the credential the
// client sends, so never log it.
func (s *Session) ID() string { return s.cred.id }

// OpenID returns the user's openid, as jscode2session gave it.
func (s *Session) OpenID() string { return s.owner }

// UnionID returns the user's unionid, or "" when the mini program is not bound to an
// Open Platform account.
func (s *Session) UnionID() string { return s.reserved(fieldUnionID) }

// SessionKey returns the WeChat session_key, for decrypting data the client sends later
// (wx.getPhoneNumber's old encrypted form, wx.getWeRunData). It is never sent to clients.
func (s *Session) SessionKey() string { return s.reserved(fieldSessionKey) }

// UserInfo returns the user data decrypted at login (JSON), or nil if the login sent
// none.
func (s *Session) UserInfo() json.RawMessage {
	if v := s.reserved(fieldUserInfo); v != "" {
		return json.RawMessage(v)
	}
	return nil
}

// CreatedAt returns when the user logged in.
func (s *Session) CreatedAt() time.Time { return s.created }

// ExpiresAt returns when the session expires unless it is used again.
func (s *Session) ExpiresAt() time.Time { return s.expires }

// Deadline returns when the session expires however busy it is (Config.AbsoluteTimeout
// after login).
func (s *Session) Deadline() time.Time { return s.deadline }

// lookup returns a field's value; Fields reads through it.
func (s *Session) lookup(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.fields[key]
	return v, ok
}

func (s *Session) reserved(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fields[name]
}

// Keys returns the names of the application's fields, sorted.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.fields))
	for k := range s.fields {
		if !strings.HasPrefix(k, ReservedPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Set sets field key to v encoded as JSON. The change is saved when the handler returns.
func (s *Session) Set(key string, v any) error {
	key, val, err := EncodeField(key, v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return ErrDestroyed
	}
	if s.set == nil {
		s.set = make(map[string]string)
	}
	s.set[key] = val
	delete(s.del, key)
	s.fields[key] = val
	return nil
}

// Delete removes field key. The change is saved when the handler returns.
func (s *Session) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	key = utils.CopyString(key) // kept past the request, in the store's events
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return ErrDestroyed
	}
	if s.del == nil {
		s.del = make(map[string]struct{})
	}
	s.del[key] = struct{}{}
	delete(s.set, key)
	delete(s.fields, key)
	return nil
}

// Incr adds delta to the integer in field key, in the store and at once, and returns
// the new value. It is exact however many requests and sockets increment the field at
// the same time. A missing field counts as 0.
func (s *Session) Incr(key string, delta int64) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	// The store may keep the name: copy it out of fasthttp's buffers.
	key = utils.CopyString(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return 0, ErrDestroyed
	}
	ctx := s.ctx
	// A change to the same field made earlier in this request goes first, so that
	// the increment applies to it.
	_, pendingSet := s.set[key]
	_, pendingDel := s.del[key]
	if pendingSet || pendingDel {
		if err := s.saveLocked(ctx); err != nil {
			return 0, err
		}
	}
	n, err := s.mw.cfg.Store.Incr(ctx, s.cred.id, key, delta)
	if err != nil {
		return 0, fmt.Errorf("fibermp: incr %q: %w", key, err)
	}
	s.fields[key] = strconv.FormatInt(n, 10)
	return n, nil
}

// Destroy deletes the session from the store at once (a logout). Live sockets bound to
// it are closed.
func (s *Session) Destroy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return nil
	}
	if err := s.mw.cfg.Store.Delete(s.ctx, s.cred.id); err != nil {
		return fmt.Errorf("fibermp: destroy: %w", err)
	}
	s.destroyed = true
	s.set, s.del = nil, nil
	return nil
}

// DestroyAll deletes every session of the user, this one included ("log out
// everywhere"), and returns how many it deleted. Live sockets bound to them are closed,
// in every process that shares the store.
func (s *Session) DestroyAll() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.mw.cfg.Store.DeleteOwner(s.ctx, s.owner)
	if err != nil {
		return n, fmt.Errorf("fibermp: destroy all: %w", err)
	}
	s.destroyed = true
	s.set, s.del = nil, nil
	return n, nil
}

// Regenerate gives the session new credentials and deletes the old ones, keeping every
// field: use it when the privilege of a session changes. It copies the session as the
// store holds it now, with this request's pending changes, so that writes made by other
// requests and sockets since this request began are kept; a write that lands between
// the copy and the deletion of the old credentials (a few milliseconds) is lost, and
// sockets bound to the old credentials are closed. The new credentials reach the client
// in response headers (Wafer: X-WX-Id and X-WX-Skey; Wafer2: X-WX-Skey; Token:
// X-Session-Id); clients that do not read them have to log in again.
func (s *Session) Regenerate(c *fiber.Ctx) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return ErrDestroyed
	}
	ctx := c.UserContext()
	st := s.mw.cfg.Store
	rec, err := st.Load(ctx, s.cred.id, 0)
	if err != nil {
		return fmt.Errorf("fibermp: regenerate: %w", err)
	}
	fields := rec.Fields
	for k, v := range s.set {
		fields[k] = v
	}
	for k := range s.del {
		delete(fields, k)
	}
	cred := newCredentials(s.mw.cfg.Protocol)
	if cred.skey != "" {
		fields[fieldSkey] = cred.skey
	}
	rec.Fields = fields
	if err := st.Create(ctx, cred.id, *rec, s.mw.cfg.IdleTimeout); err != nil {
		return fmt.Errorf("fibermp: regenerate: %w", err)
	}
	if err := st.Delete(ctx, s.cred.id); err != nil {
		_ = st.Delete(ctx, cred.id)
		return fmt.Errorf("fibermp: regenerate: %w", err)
	}
	s.cred, s.fields, s.set, s.del = cred, fields, nil, nil
	switch s.mw.cfg.Protocol {
	case Wafer:
		c.Set(HeaderID, cred.id)
		c.Set(HeaderSkey, cred.skey)
	case Wafer2:
		c.Set(HeaderSkey, cred.id)
	default:
		c.Set(HeaderSessionID, cred.id)
	}
	return nil
}

// save writes the request's pending changes, if any.
func (s *Session) save(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked(ctx)
}

func (s *Session) saveLocked(ctx context.Context) error {
	if s.destroyed || (len(s.set) == 0 && len(s.del) == 0) {
		return nil
	}
	ch := store.Change{Set: s.set}
	if len(s.del) > 0 {
		ch.Delete = make([]string, 0, len(s.del))
		for k := range s.del {
			ch.Delete = append(ch.Delete, k)
		}
	}
	if err := s.mw.cfg.Store.Save(ctx, s.cred.id, ch, s.mw.cfg.IdleTimeout); err != nil {
		return err
	}
	s.set, s.del = nil, nil
	return nil
}

// discard drops the request's pending changes.
func (s *Session) discard() {
	s.mu.Lock()
	s.set, s.del = nil, nil
	s.mu.Unlock()
}
