package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

// ErrRegenerateLive is returned by Regenerate on a socket's live session: new
// credentials reach a client in an HTTP reply.
var ErrRegenerateLive = errors.New("fibermp: Regenerate needs an HTTP request, not a socket's live session")

// State is one session as a request or a socket holds it: the fields as last loaded,
// plus, on a request, the changes to save when the handler returns. A live state (a
// socket's, see GoLive) writes every change through at once and reloads its fields
// after another writer announced a change.
type State struct {
	eng      *Engine
	cred     Credentials
	owner    string
	created  time.Time
	deadline time.Time
	loadedAt time.Time // when the fields were loaded, for events that may have crossed

	// Outer is the application's view of this state (fibermp's *Session).
	Outer any

	mu        sync.Mutex
	ctx       context.Context // the request's user context; a live state's own
	fields    map[string]string
	expires   time.Time
	set       map[string]string
	del       map[string]struct{}
	destroyed bool

	live bool
	gen  uint64 // bumped by every change to fields: a write that started under an older
	// generation does not apply its result over a newer one

	// stale is set, without s.mu, by the store's event goroutine, which must never wait
	// on a session: a change was announced since the last load.
	stale atomic.Bool
	// gone, for a live state, is called when the store no longer has the session or the
	// state's context ended; what it returns is the error of the failed call.
	gone atomic.Pointer[func(error) error]
}

// GoLive makes s write through from now on, with ctx for its store calls. gone is
// called when the store reports the session missing; what it returns is the error
// the failed call returns.
func (s *State) GoLive(ctx context.Context, gone func(err error) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx, s.live = ctx, true
	if gone != nil {
		s.gone.Store(&gone)
	}
}

// MarkStale records that the session changed elsewhere: a live state reloads on its
// next read.
func (s *State) MarkStale() { s.stale.Store(true) }

// LoadedAt returns when the load of the state began: events about the session from
// before then are in its fields; later ones may not be.
func (s *State) LoadedAt() time.Time { return s.loadedAt }

// Engine returns the engine s belongs to.
func (s *State) Engine() *Engine { return s.eng }

// Credentials returns the session's credentials (Regenerate changes them).
func (s *State) Credentials() Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cred
}

// ID returns the session id.
func (s *State) ID() string { return s.Credentials().ID }

// OpenID returns the owner.
func (s *State) OpenID() string { return s.owner }

// CreatedAt returns the login time.
func (s *State) CreatedAt() time.Time { return s.created }

// Deadline returns the absolute expiry.
func (s *State) Deadline() time.Time { return s.deadline }

// ExpiresAt returns the expiry as last loaded.
func (s *State) ExpiresAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expires
}

// Reserved returns a reserved field, unsealed, or "" when the session has none.
func (s *State) Reserved(name string) string {
	s.mu.Lock()
	v, id := s.fields[name], s.cred.ID
	s.mu.Unlock()
	if v == "" || !Sealed(name) {
		return v
	}
	plain, err := Unseal(id, name, v)
	if err != nil {
		return ""
	}
	return plain
}

// Raw returns the JSON value of an application field and whether it exists. A live
// state whose session changed elsewhere reloads first; if that fails it answers from
// the values it knew last (Reload says why).
func (s *State) Raw(key string) (string, bool) {
	if CheckKey(key) != nil {
		return "", false
	}
	s.refresh()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.fields[key]
	return v, ok
}

// refresh reloads a live state whose session changed elsewhere; on failure the state
// keeps what it knew.
func (s *State) refresh() {
	if !s.stale.Load() {
		return
	}
	s.mu.Lock()
	ctx := s.ctx
	ended := s.live && ctx.Err() != nil
	s.mu.Unlock()
	if !ended { // a socket that closed keeps what it knew
		_ = s.Reload(ctx)
	}
}

// Keys returns the names of the application's fields, sorted.
func (s *State) Keys() []string {
	s.refresh()
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.fields))
	for k := range s.fields {
		if CheckKey(k) == nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Reload loads the session from the store again, with ctx (nil: the state's own). On
// failure the state keeps the values it had and stays due for a reload; a session the
// store no longer has ends a live state.
func (s *State) Reload(ctx context.Context) error {
	s.mu.Lock()
	if ctx == nil {
		ctx = s.ctx
	}
	id := s.cred.ID
	s.mu.Unlock()
	s.stale.Store(false) // changes announced from now on make it stale again
	rec, err := s.eng.Store.Load(ctx, id, 0)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.MarkStale()
		}
		return s.storeError("reload", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	// A request's own pending changes stay on top of what the store holds.
	for k, v := range s.set {
		rec.Fields[k] = v
	}
	for k := range s.del {
		delete(rec.Fields, k)
	}
	s.fields, s.expires = rec.Fields, rec.ExpiresAt
	return nil
}

// Set sets field key to v encoded as JSON: on a request when the handler returns, on a
// live state at once.
func (s *State) Set(key string, v any) error {
	key, val, err := EncodeField(key, v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.destroyed {
		s.mu.Unlock()
		return ErrDestroyed
	}
	if s.live {
		s.mu.Unlock()
		return s.write("set", store.Change{Set: map[string]string{key: val}})
	}
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = make(map[string]string)
	}
	s.set[key] = val
	delete(s.del, key)
	s.fields[key] = val
	return nil
}

// Delete removes field key: on a request when the handler returns, on a live state at
// once.
func (s *State) Delete(key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	key = utils.CopyString(key) // kept past the request, in the store's events
	s.mu.Lock()
	if s.destroyed {
		s.mu.Unlock()
		return ErrDestroyed
	}
	if s.live {
		s.mu.Unlock()
		return s.write("delete", store.Change{Delete: []string{key}})
	}
	defer s.mu.Unlock()
	if s.del == nil {
		s.del = make(map[string]struct{})
	}
	s.del[key] = struct{}{}
	delete(s.set, key)
	delete(s.fields, key)
	return nil
}

// write saves ch at once and applies it to the fields, unless they changed meanwhile.
func (s *State) write(op string, ch store.Change) error {
	s.mu.Lock()
	ctx, id, gen := s.ctx, s.cred.ID, s.gen
	s.mu.Unlock()
	if err := s.eng.Store.Save(ctx, id, ch, s.eng.Idle); err != nil {
		return s.storeError(op, err)
	}
	s.apply(gen, func(fields map[string]string) { storekit.Apply(ch, fields) })
	return nil
}

// apply changes the fields as a store call that started under generation gen found
// them. If they changed since (a reload, another write), the call's result may be
// older than what they hold: the state reloads instead.
func (s *State) apply(gen uint64, change func(fields map[string]string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		s.stale.Store(true)
		return
	}
	s.gen++
	s.fields = cloneFields(s.fields)
	change(s.fields)
}

// Incr adds delta to the integer in field key, in the store and at once, and returns
// the new value.
func (s *State) Incr(key string, delta int64) (int64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	key = utils.CopyString(key) // the store may keep the name
	s.mu.Lock()
	if s.destroyed {
		s.mu.Unlock()
		return 0, ErrDestroyed
	}
	ctx, id := s.ctx, s.cred.ID
	// A change to the same field made earlier in this request goes first, so that the
	// increment applies to it.
	_, pendingSet := s.set[key]
	_, pendingDel := s.del[key]
	if pendingSet || pendingDel {
		if err := s.saveLocked(ctx); err != nil {
			s.mu.Unlock()
			return 0, s.storeError("incr "+strconv.Quote(key), err)
		}
	}
	gen := s.gen
	s.mu.Unlock()
	n, err := s.eng.Store.Incr(ctx, id, key, delta)
	if err != nil {
		return 0, s.storeError("incr "+strconv.Quote(key), err)
	}
	s.apply(gen, func(fields map[string]string) { fields[key] = strconv.FormatInt(n, 10) })
	return n, nil
}

// cloneFields copies fields before a live write changes them: the map may be the one a
// store handed out.
func cloneFields(fields map[string]string) map[string]string {
	c := make(map[string]string, len(fields)+1)
	for k, v := range fields {
		c[k] = v
	}
	return c
}

// Destroy deletes the session from the store at once.
func (s *State) Destroy() error {
	s.mu.Lock()
	destroyed, ctx, id := s.destroyed, s.ctx, s.cred.ID
	s.mu.Unlock()
	if destroyed {
		return nil
	}
	if err := s.eng.Store.Delete(ctx, id); err != nil {
		return s.storeError("destroy", err)
	}
	s.mu.Lock()
	s.destroyed = true
	s.set, s.del = nil, nil
	s.mu.Unlock()
	return nil
}

// DestroyAll deletes every session of the owner and returns how many it deleted.
func (s *State) DestroyAll() (int, error) {
	s.mu.Lock()
	ctx := s.ctx
	s.mu.Unlock()
	n, err := s.eng.Store.DeleteOwner(ctx, s.owner)
	if err != nil {
		return n, s.storeError("destroy all", err)
	}
	s.mu.Lock()
	s.destroyed = true
	s.set, s.del = nil, nil
	s.mu.Unlock()
	return n, nil
}

// Regenerate gives the session new credentials, keeping every field, and sends them to
// the client in response headers.
func (s *State) Regenerate(c *fiber.Ctx) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live {
		return ErrRegenerateLive
	}
	if s.destroyed {
		return ErrDestroyed
	}
	ctx := c.UserContext()
	st := s.eng.Store
	rec, err := st.Load(ctx, s.cred.ID, 0)
	if err != nil {
		return s.storeError("regenerate", err)
	}
	fields := rec.Fields
	for k, v := range s.set {
		fields[k] = v
	}
	for k := range s.del {
		delete(fields, k)
	}
	cred := NewCredentials(s.eng.Protocol)
	if cred.Skey != "" {
		fields[FieldSkey] = HashSkey(cred.Skey)
	}
	// The sealed fields were sealed under the old id: seal them again under the new.
	for name, v := range fields {
		if Sealed(name) {
			plain, err := Unseal(s.cred.ID, name, v)
			if err != nil {
				return fmt.Errorf("fibermp: regenerate: %s: %w", name, err)
			}
			fields[name] = Seal(cred.ID, name, plain)
		}
	}
	rec.Fields = fields
	if err := st.Create(ctx, cred.ID, *rec, s.eng.Idle); err != nil {
		return s.storeError("regenerate", err)
	}
	if err := st.Delete(ctx, s.cred.ID); err != nil {
		_ = st.Delete(ctx, cred.ID)
		return s.storeError("regenerate", err)
	}
	s.cred, s.fields, s.set, s.del = cred, fields, nil, nil
	s.gen++
	switch s.eng.Protocol {
	case Wafer:
		c.Set(HeaderID, cred.ID)
		c.Set(HeaderSkey, cred.Skey)
	case Wafer2:
		c.Set(HeaderSkey, cred.ID)
	default:
		c.Set(HeaderSessionID, cred.ID)
	}
	return nil
}

// Save writes a request's pending changes, if any.
func (s *State) Save(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked(ctx)
}

func (s *State) saveLocked(ctx context.Context) error {
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
	if err := s.eng.Store.Save(ctx, s.cred.ID, ch, s.eng.Idle); err != nil {
		return err
	}
	s.set, s.del = nil, nil
	return nil
}

// Discard drops a request's pending changes.
func (s *State) Discard() {
	s.mu.Lock()
	s.set, s.del = nil, nil
	s.mu.Unlock()
}

// storeError names the failed operation; on a live state, a session the store no
// longer has, or a context that ended with the socket, ends it and the error says why.
// It takes no lock: callers may hold s.mu.
func (s *State) storeError(op string, err error) error {
	if gone := s.gone.Load(); gone != nil && (errors.Is(err, store.ErrNotFound) || errors.Is(err, context.Canceled)) {
		return (*gone)(err)
	}
	if Outage(err) {
		return fmt.Errorf("fibermp: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("fibermp: %s: %w", op, err)
}

// Outage reports whether a store error is a failure of the backend (unreachable,
// timed out) rather than one of the store's answers about the session.
func Outage(err error) bool {
	for _, answer := range []error{store.ErrNotFound, store.ErrExists, store.ErrEmptyID, store.ErrTooLarge,
		store.ErrReservedField, store.ErrNotInteger, ErrUnavailable} {
		if errors.Is(err, answer) {
			return false
		}
	}
	return err != nil
}

// UserInfo returns the user data decrypted at login, or nil.
func (s *State) UserInfo() json.RawMessage {
	if v := s.Reserved(FieldUserInfo); v != "" {
		return json.RawMessage(v)
	}
	return nil
}
