package wsauth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/session"
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

// Handle is the live session of one WebSocket, from Conn.Session. It is a
// *fibermp.Session, with the same methods and errors as on a request, that lives as
// long as the socket:
//   - it starts from the session the upgrade was authenticated with;
//   - reads reflect the changes made by HTTP requests and by other processes sharing
//     the store once the store's event about them has reached this process: a read a
//     moment after another process's write returned may still see the value before it
//     (on one machine, well under a millisecond; Reload reads the store at once);
//     when reloading fails (a store outage) they answer from the last values known,
//     and Reload says why;
//   - Set, Delete and Incr write through to the store at once, atomically per field;
//   - the session is kept alive while the socket is open;
//   - when the session is logged out, revoked (a newer login with
//     fibermp.Config.SingleSession, or DestroyAll) or expires, Done is closed, Err says
//     why, and the socket is closed with a 4xxx code and a reason; a write then
//     returns Err's error.
//
// A Handle is safe for use by several goroutines.
type Handle struct {
	*fibermp.Session

	st       *session.State
	reg      *registry
	hash     string
	deadline time.Time
	ctx      context.Context // cancelled when the handle ends; its Done is Done's
	cancel   context.CancelFunc
	queued   int // 1 + the handle's place in its registry's deadline queue; 0: not in it; guarded by reg.mu

	recover *Recover        // the recovery state the upgrade sent, with Config.History
	missed  store.EventKind // what the handle may have missed before it joined the registry
	// unwatch ends the handle's watch of its session (store.Watcher), called when it
	// leaves the registry; nil when the store's events route no watches. watchSince is
	// when the watch was live: events of writes before it may have been missed.
	unwatch    func()
	watchSince time.Time
	claimed    atomic.Bool // a Handler serves the socket (or the handle was given up)

	mu        sync.Mutex
	nextTouch time.Time
	err       error
	unclaimed *time.Timer // ends the handle if no Handler takes it

	// conn is the socket to close when the session ends, set while its handler runs.
	connMu sync.Mutex
	conn   *Conn
}

func (s *Server) open(st *session.State) (*Handle, error) {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handle{
		Session:   st.Outer.(*fibermp.Session),
		st:        st,
		hash:      store.Hash(st.ID()),
		deadline:  st.Deadline(),
		ctx:       ctx,
		cancel:    cancel,
		nextTouch: time.Now().Add(s.eng.Idle / 3),
	}
	if w, ok := s.eng.Store.Capabilities().Events.(store.Watcher); ok {
		// Before the registry: the handle must hear of its session from the moment it
		// joins. The store bounds the wait (redisstore: Config.SubscribeTimeout).
		unwatch, since, err := w.Watch(context.Background(), h.hash)
		if err != nil {
			cancel()
			return nil, err
		}
		h.unwatch, h.watchSince = unwatch, since
	}
	if err := s.attach(h); err != nil {
		cancel()
		if h.unwatch != nil {
			h.unwatch()
		}
		return nil, err
	}
	st.GoLive(ctx, h.gone)
	switch h.missed {
	case store.EventDeleted:
		h.end(ErrLoggedOut)
	case store.EventRevoked:
		h.end(ErrRevoked)
	case store.EventExpired:
		h.end(ErrExpired)
	case store.EventChanged:
		st.MarkStale()
	case store.EventResync:
		// Reload on the first read, and check on the next sweep that it still exists.
		st.MarkStale()
		h.mu.Lock()
		h.nextTouch = time.Time{}
		h.mu.Unlock()
	}
	return h, nil
}

// Done is closed when the session ends or the socket closes.
func (h *Handle) Done() <-chan struct{} { return h.ctx.Done() }

// Err returns nil while the session is live, then why it ended: ErrLoggedOut,
// ErrRevoked, ErrExpired, or ErrClosed when the socket closed first.
func (h *Handle) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Reload loads the session's fields from the store now. Reads reload by themselves
// after a change was announced, keeping the last values known when that fails; Reload
// is for a handler that must know the values are current, and returns the store's
// error (or Err's, when the session is gone).
func (h *Handle) Reload(ctx context.Context) error { return h.st.Reload(ctx) }

// gone is called when the store no longer has the session: it ends the handle and
// returns why.
func (h *Handle) gone(error) error {
	h.end(ErrExpired)
	return h.Err()
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
	if h.unclaimed != nil {
		h.unclaimed.Stop()
	}
	h.mu.Unlock()
	h.cancel() // closes Done

	h.reg.remove(h)
	if why == ErrClosed {
		return
	}
	code, reason := closeFrame(why)
	// Off the caller's goroutine (the store's event loop): a slow client must not
	// hold up events for the others.
	go h.closeConn(code, reason)
}

func closeFrame(why error) (int, string) {
	switch why {
	case ErrLoggedOut:
		return CloseLoggedOut, "logged out"
	case ErrRevoked:
		return CloseRevoked, "session revoked"
	}
	return CloseExpired, "session expired"
}

// closeConn closes the socket with code, if a handler still runs it.
func (h *Handle) closeConn(code int, reason string) {
	h.connMu.Lock()
	c := h.conn
	h.connMu.Unlock()
	if c != nil {
		_ = c.CloseWith(code, reason)
	}
}

// bind makes c the socket closed when the session ends; nil unbinds it. A session that
// already ended closes the socket at once.
func (h *Handle) bind(c *Conn) {
	h.connMu.Lock()
	h.conn = c
	h.connMu.Unlock()
	if c == nil {
		return
	}
	if why := h.Err(); why != nil && why != ErrClosed {
		h.closeConn(closeFrame(why))
	}
}

// claimTimeout is how long an upgraded socket's handle waits for its Handler: fasthttp
// runs none when it fails to send the 101, and does not reset the request either. The
// Handler starts as soon as the 101 is written, which is a few bytes.
const claimTimeout = 2 * time.Second

// awaitClaim ends the handle unless a Handler claims it within claimTimeout.
func (h *Handle) awaitClaim() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		h.unclaimed = time.AfterFunc(claimTimeout, func() {
			if h.claimed.CompareAndSwap(false, true) {
				h.end(ErrClosed)
			}
		})
	}
}

// claim takes the handle for a Handler; false means it was given up already.
func (h *Handle) claim() bool {
	if !h.claimed.CompareAndSwap(false, true) {
		return false
	}
	h.mu.Lock()
	if h.unclaimed != nil {
		h.unclaimed.Stop()
		h.unclaimed = nil // not kept for the socket's life
	}
	h.mu.Unlock()
	return true
}
