package wsauth

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mpsession/mpsession/internal/session"
	"github.com/mpsession/mpsession/store"
)

// sweepInterval is how often a registry looks for handles to keep alive or expire.
const sweepInterval = time.Second

// A registry holds the live handles of one fibermp middleware (and so of one store):
// one event subscription and one keep-alive goroutine for all of them, not one per
// socket. It exists while it has handles.
type registry struct {
	st   store.Store
	idle time.Duration
	key  *session.Engine

	mu          sync.Mutex
	handles     map[string]map[*Handle]struct{} // by session hash
	owners      map[string]int                  // handles by openid
	created     time.Time                       // when the subscription began
	recent      [recentEvents]recentEvent       // the last events, a ring
	next        int                             // where the next event goes in recent
	resyncAt    time.Time                       // the last EventResync
	n           int
	unsubscribe func()
	stop        chan struct{}
}

// registries are keyed by the middleware that authenticated the sockets, so two apps
// (or two fibermp configurations) in one process never share one.
var (
	registriesMu sync.Mutex
	registries   = map[*session.Engine]*registry{}
)

// recentEvent is an event a handle may have missed: one that arrived after its
// session was loaded for the upgrade and before the handle joined the registry.
type recentEvent struct {
	hash string
	at   time.Time
	kind store.EventKind
}

// recentEvents is how many events a registry remembers for handles about to join. An
// upgrade takes milliseconds from its load to its registration; when more events than
// this arrived meanwhile (a busy fleet), the handle cannot tell what it missed and
// reloads.
const recentEvents = 1024

// errTooMany refuses a socket past Config.MaxSocketsPerSession or MaxSocketsPerUser.
var errTooMany = errors.New("wsauth: too many sockets")

// attach adds h to the registry of its middleware, making the registry if needed, unless
// its session or user already holds the most sockets allowed.
func attach(k *session.Engine, h *Handle, perSession, perUser int) error {
	registriesMu.Lock()
	defer registriesMu.Unlock()
	r := registries[k]
	if r != nil {
		r.mu.Lock()
		full := (perSession > 0 && len(r.handles[h.hash]) >= perSession) ||
			(perUser > 0 && r.owners[h.st.OpenID()] >= perUser)
		r.mu.Unlock()
		if full {
			return errTooMany
		}
	} else {
		var err error
		if r, err = newRegistry(k); err != nil {
			return err
		}
		registries[k] = r
	}
	h.reg = r
	h.missed = r.add(h)
	return nil
}

func newRegistry(k *session.Engine) (*registry, error) {
	st, idle := k.Store, k.Idle
	r := &registry{st: st, idle: idle, key: k, handles: map[string]map[*Handle]struct{}{}, owners: map[string]int{},
		stop: make(chan struct{}), created: time.Now()}
	unsubscribe, err := st.Subscribe(r.onEvent)
	if err != nil {
		return nil, err
	}
	r.unsubscribe = unsubscribe
	go r.run(r.stop)
	return r, nil
}

// add adds h, and returns what it may have missed since its session was loaded: an
// event about it, or EventResync when the registry cannot tell (it subscribed after the
// load, or events were lost since).
func (r *registry) add(h *Handle) store.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	hs := r.handles[h.hash]
	if hs == nil {
		hs = map[*Handle]struct{}{}
		r.handles[h.hash] = hs
	}
	hs[h] = struct{}{}
	r.owners[h.st.OpenID()]++
	r.n++
	r.key.Metrics.Handles(1)
	loaded := h.st.LoadedAt()
	if !r.created.Before(loaded) || !r.resyncAt.Before(loaded) || !r.recent[r.next].at.Before(loaded) {
		return store.EventResync // subscribed, resynced or overflowed since the load
	}
	var missed recentEvent // the latest event about h's session since the load
	for _, ev := range r.recent {
		if ev.hash == h.hash && !ev.at.Before(loaded) && ev.at.After(missed.at) {
			missed = ev
		}
	}
	return missed.kind
}

func (r *registry) remove(h *Handle) {
	r.mu.Lock()
	hs := r.handles[h.hash]
	if _, ok := hs[h]; !ok {
		r.mu.Unlock()
		return
	}
	delete(hs, h)
	if len(hs) == 0 {
		delete(r.handles, h.hash)
	}
	if r.owners[h.st.OpenID()]--; r.owners[h.st.OpenID()] == 0 {
		delete(r.owners, h.st.OpenID())
	}
	r.key.Metrics.Handles(-1)
	r.n--
	last := r.n == 0
	r.mu.Unlock()
	if !last {
		return
	}
	// The last handle is gone: retire the registry, unless a new handle joined it
	// meanwhile. The next socket makes a new one.
	registriesMu.Lock()
	r.mu.Lock()
	if r.n == 0 && registries[r.key] == r {
		delete(registries, r.key)
		close(r.stop)
		// Not under the locks: a store may wait for an event call in flight, and
		// that call may be the one ending this handle.
		go r.unsubscribe()
	}
	r.mu.Unlock()
	registriesMu.Unlock()
}

// each calls fn for the handles of one session, or of all sessions when hash is "".
func (r *registry) each(hash string, fn func(h *Handle)) {
	r.mu.Lock()
	var hs []*Handle
	if hash != "" {
		for h := range r.handles[hash] {
			hs = append(hs, h)
		}
	} else {
		for _, m := range r.handles {
			for h := range m {
				hs = append(hs, h)
			}
		}
	}
	r.mu.Unlock()
	for _, h := range hs {
		fn(h)
	}
}

// onEvent runs on the store's event goroutine, so it only marks and signals: reloads
// happen on the next read, close frames on their own goroutine.
func (r *registry) onEvent(e store.Event) {
	r.key.Metrics.Event(e.Kind.String(), e.At)
	// Noted before the handles are looked at, under the same lock as add: a handle
	// joining meanwhile either gets the event below or finds it here.
	r.mu.Lock()
	if e.Kind == store.EventResync {
		r.resyncAt = time.Now()
	} else {
		r.recent[r.next] = recentEvent{hash: e.Hash, at: time.Now(), kind: e.Kind}
		r.next = (r.next + 1) % recentEvents
	}
	r.mu.Unlock()
	switch e.Kind {
	case store.EventChanged:
		r.each(e.Hash, func(h *Handle) { h.st.MarkStale() })
	case store.EventDeleted:
		r.each(e.Hash, func(h *Handle) { h.end(ErrLoggedOut) })
	case store.EventRevoked:
		r.each(e.Hash, func(h *Handle) { h.end(ErrRevoked) })
	case store.EventExpired:
		r.each(e.Hash, func(h *Handle) { h.end(ErrExpired) })
	case store.EventResync:
		// Events were lost: reload on the next read, and check that every session
		// still exists on the next sweep.
		r.each("", func(h *Handle) {
			h.st.MarkStale()
			h.mu.Lock()
			h.nextTouch = time.Time{}
			h.mu.Unlock()
		})
	}
}

// run keeps the registry's sessions alive while their sockets are open. Absolute
// deadlines are not its job: each handle has a timer of its own, which no store call
// can hold up.
func (r *registry) run(stop <-chan struct{}) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	var touching sync.WaitGroup
	defer touching.Wait()
	busy := false
	done := make(chan struct{}, 1)
	for {
		select {
		case <-stop:
			return
		case <-done:
			busy = false
		case now := <-t.C:
			// One batch of touches at a time, off this loop: while the store is slow
			// the next batch waits, and the handles it holds stay due.
			if busy {
				continue
			}
			if due := r.due(now); len(due) > 0 {
				busy = true
				touching.Add(1)
				go func() {
					defer touching.Done()
					r.touch(now, due)
					done <- struct{}{}
				}()
			}
		}
	}
}

// touchBatch is the most sessions touched in one store call.
const touchBatch = 512

// due returns the handles whose session should be extended now.
func (r *registry) due(now time.Time) []*Handle {
	var due []*Handle
	r.each("", func(h *Handle) {
		h.mu.Lock()
		if !now.Before(h.nextTouch) {
			due = append(due, h)
		}
		h.mu.Unlock()
	})
	return due
}

// touch extends the sessions of handles, in batches (one pipelined round trip each
// on Redis). A session the store no longer has ends its handles.
func (r *registry) touch(now time.Time, handles []*Handle) {
	for len(handles) > 0 {
		batch := handles[:min(touchBatch, len(handles))]
		handles = handles[len(batch):]
		ids := make([]string, len(batch))
		for i, h := range batch {
			ids[i] = h.st.ID()
		}
		// Bounded by the store timeout; not cancelled by any one handle's end.
		errs := store.TouchMany(context.Background(), r.st, ids, r.idle)
		for i, h := range batch {
			h.mu.Lock()
			if errs[i] == nil {
				h.nextTouch = now.Add(r.idle / 3)
			} else {
				h.nextTouch = now.Add(sweepInterval) // the store is down: try again soon
			}
			h.mu.Unlock()
			if errors.Is(errs[i], store.ErrNotFound) {
				h.end(ErrExpired)
			}
		}
	}
}
