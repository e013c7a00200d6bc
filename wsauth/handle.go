package wsauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store"
)

// Why a session ended, from Handle.Err.
var (
	ErrLoggedOut = errors.New("wsauth: session logged out")
	ErrRevoked   = errors.New("wsauth: session revoked")
	ErrExpired   = errors.New("wsauth: session expired")
	// ErrClosed means the socket closed first; the session itself may live on.
	ErrClosed = errors.New("wsauth: socket closed")
)

// Close codes sent when the session ends under an open socket. Clients that see one
// should log in again rather than reconnect with the same credentials.
const (
	CloseLoggedOut = 4001
	CloseRevoked   = 4002
	CloseExpired   = 4003
)

// Handle is the live session of one WebSocket, from Session. Unlike a fibermp.Session
// it lives as long as the socket:
//   - reads reflect the session as it is now, including changes made by HTTP requests
//     and by other processes sharing the store;
//   - Set, Delete and Incr write through to the store at once, atomically per field;
//   - the session is kept alive while the socket is open;
//   - when the session is logged out, revoked (a newer login with
//     fibermp.Config.SingleSession, or Session.DestroyAll) or expires, Done is closed,
//     Err says why, and the socket is closed with a 4xxx code and a reason.
//
// A Handle is safe for use by several goroutines.
type Handle struct {
	fibermp.Fields // Raw, Get, Decode, GetString, GetInt, GetFloat, GetBool

	reg      *registry
	id       string
	hash     string
	openID   string
	userInfo json.RawMessage
	deadline time.Time
	ctx      context.Context // cancelled when the handle ends
	cancel   context.CancelFunc
	done     chan struct{}

	mu        sync.Mutex
	fields    map[string]string
	stale     bool
	nextTouch time.Time
	err       error

	// conn is the socket to close when the session ends, set by a Conn while its
	// handler runs. fasthttp recycles the connection once the handler returns, so it
	// is touched only under connMu, and Conn.Close clears it before returning.
	connMu sync.Mutex
	conn   *websocket.Conn
}

// Session returns the live session of a socket that wsauth authenticated, or nil.
// When the session ends, Done closes; the socket itself is closed for you only when the
// handler uses a Conn (Handler or Wrap), which knows when the handler returns.
func Session(conn *fws.Conn) *Handle {
	h, _ := conn.Locals(localsKey).(*Handle)
	return h
}

func open(mp fibermp.Config, s *fibermp.Session) (*Handle, error) {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handle{
		id:        s.ID(),
		hash:      store.Hash(s.ID()),
		openID:    s.OpenID(),
		deadline:  s.Deadline(),
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
		userInfo:  s.UserInfo(),
		stale:     true, // the first read loads the fields
		nextTouch: time.Now().Add(mp.IdleTimeout / 3),
	}
	h.Fields = fibermp.NewFields(h.lookup)
	if err := attach(mp.Store, mp.IdleTimeout, h); err != nil {
		cancel()
		return nil, err
	}
	return h, nil
}

// ID returns the session id.
func (h *Handle) ID() string { return h.id }

// OpenID returns the user's openid.
func (h *Handle) OpenID() string { return h.openID }

// UserInfo returns the user data decrypted at login, or nil.
func (h *Handle) UserInfo() json.RawMessage { return h.userInfo }

// Done is closed when the session ends or the socket closes.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Err returns nil while the session is live, then why it ended: ErrLoggedOut,
// ErrRevoked, ErrExpired, or ErrClosed when the socket closed first.
func (h *Handle) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// lookup returns a field, loading the session again first when a change was announced
// since the last load.
func (h *Handle) lookup(key string) (string, bool) {
	h.mu.Lock()
	stale := h.stale
	h.mu.Unlock()
	if stale {
		_ = h.reload()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.fields[key]
	return v, ok
}

// reload loads the session from the store. A session that is gone ends the handle.
func (h *Handle) reload() error {
	h.mu.Lock()
	h.stale = false // changes announced from now on make it stale again
	h.mu.Unlock()
	rec, err := h.reg.st.Load(h.ctx, h.id, 0)
	if errors.Is(err, store.ErrNotFound) {
		h.end(ErrExpired)
		return err
	}
	if err != nil {
		h.mu.Lock()
		h.stale = true
		h.mu.Unlock()
		return err
	}
	h.mu.Lock()
	h.fields = rec.Fields
	h.mu.Unlock()
	return nil
}

// Set sets field key to v (JSON) in the store at once.
func (h *Handle) Set(key string, v any) error {
	name, val, err := fibermp.EncodeField(key, v)
	if err != nil {
		return err
	}
	return h.save(store.Change{Set: map[string]string{name: val}})
}

// Delete removes field key from the store at once.
func (h *Handle) Delete(key string) error {
	if err := fibermp.CheckKey(key); err != nil {
		return err
	}
	return h.save(store.Change{Delete: []string{key}})
}

func (h *Handle) save(ch store.Change) error {
	if err := h.reg.st.Save(h.ctx, h.id, ch, h.reg.idle); err != nil {
		return h.storeError("save", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fields == nil {
		return nil // not loaded yet: the first read loads what was just written
	}
	h.fields = maps.Clone(h.fields) // readers may hold the old map
	for k, v := range ch.Set {
		h.fields[k] = v
	}
	for _, k := range ch.Delete {
		delete(h.fields, k)
	}
	return nil
}

// Incr adds delta to the integer in field key, atomically in the store, and returns
// the new value. It is exact however many sockets and requests increment the field.
func (h *Handle) Incr(key string, delta int64) (int64, error) {
	if err := fibermp.CheckKey(key); err != nil {
		return 0, err
	}
	n, err := h.reg.st.Incr(h.ctx, h.id, key, delta)
	if err != nil {
		return 0, h.storeError("incr", err)
	}
	h.mu.Lock()
	if h.fields != nil {
		h.fields = maps.Clone(h.fields)
		h.fields[key] = strconv.FormatInt(n, 10)
	}
	h.mu.Unlock()
	return n, nil
}

func (h *Handle) storeError(op string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		h.end(ErrExpired)
	}
	if ended := h.Err(); ended != nil {
		return ended
	}
	return fmt.Errorf("wsauth: %s: %w", op, err)
}

// end ends the handle once: Done closes, the socket gets a close frame with the
// reason, and the handle leaves the registry.
func (h *Handle) end(why error) {
	h.mu.Lock()
	if h.err != nil {
		h.mu.Unlock()
		return
	}
	h.err = why
	h.mu.Unlock()
	close(h.done)
	h.cancel()
	h.reg.remove(h)
	if why == ErrClosed {
		return
	}
	code, reason := CloseExpired, "session expired"
	switch why {
	case ErrLoggedOut:
		code, reason = CloseLoggedOut, "logged out"
	case ErrRevoked:
		code, reason = CloseRevoked, "session revoked"
	}
	// Off the caller's goroutine (the store's event loop): a slow client must not
	// hold up events for the others.
	go h.closeConn(code, reason)
}

// closeConn sends the close frame to the socket, if a handler still runs it.
// WriteControl and SetReadDeadline are safe alongside the handler's own reads and
// writes.
func (h *Handle) closeConn(code int, reason string) {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	if h.conn == nil {
		return
	}
	deadline := time.Now().Add(time.Second)
	_ = h.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
	// The client answers the close frame and the handler's read returns; if it does
	// not, the read deadline ends the wait.
	_ = h.conn.SetReadDeadline(deadline.Add(time.Second))
}

// bind makes conn the socket closed when the session ends; nil unbinds it. A session
// that already ended closes the socket at once.
func (h *Handle) bind(conn *websocket.Conn) {
	h.connMu.Lock()
	h.conn = conn
	h.connMu.Unlock()
	if conn == nil {
		return
	}
	switch h.Err() {
	case nil, ErrClosed:
	case ErrLoggedOut:
		h.closeConn(CloseLoggedOut, "logged out")
	case ErrRevoked:
		h.closeConn(CloseRevoked, "session revoked")
	default:
		h.closeConn(CloseExpired, "session expired")
	}
}

// Close releases the handle when its socket closes; fasthttp calls it when the
// upgraded request ends. It does not end the session.
func (h *Handle) Close() error {
	h.end(ErrClosed)
	return nil
}
