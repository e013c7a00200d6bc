package wsauth

import (
	"container/heap"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/mpsession/mpsession/store"
)

// sweepInterval is how often a registry looks for handles to keep alive or expire.
const sweepInterval = time.Second

// A registry holds the live handles of one Server: one event subscription and one
// keep-alive goroutine for all of them, not one per socket. It exists while it has
// handles.
type registry struct {
	st   store.Store
	idle time.Duration
	srv  *Server

	mu          sync.Mutex
	handles     map[string][]*Handle      // by session hash; a few each (Config.MaxSocketsPerSession)
	owners      map[string]int            // handles by openid
	created     time.Time                 // when the subscription began
	recent      [recentEvents]recentEvent // the last events, a ring
	next        int                       // where the next event goes in recent
	resyncAt    time.Time                 // the last EventResync
	n           int
	unsubscribe func()
	stop        chan struct{}

	// The absolute deadlines of the handles: one timer for the registry, set for the
	// earliest, rather than one per handle, which would cost every socket a timer.
	deadlines deadlineQueue
	expiry    *time.Timer // nil until a handle has a deadline
}

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

// errShutdown refuses a socket after Server.Shutdown.
var errShutdown = errors.New("wsauth: server shut down")

// attach adds h to the server's registry, making the registry if needed, unless its
// session or user already holds the most sockets allowed, or the server shut down.
func (s *Server) attach(h *Handle) error {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if s.shutdown {
		return errShutdown
	}
	perSession, perUser := s.cfg.MaxSocketsPerSession, s.cfg.MaxSocketsPerUser
	r := s.reg
	if r != nil {
		r.mu.Lock()
		full := len(r.handles[h.hash]) >= perSession || r.owners[h.st.OpenID()] >= perUser
		r.mu.Unlock()
		if full {
			return errTooMany
		}
	} else {
		var err error
		if r, err = s.newRegistry(); err != nil {
			return err
		}
		s.reg = r
	}
	h.reg = r
	h.missed = r.add(h)
	return nil
}

func (s *Server) newRegistry() (*registry, error) {
	r := &registry{st: s.eng.Store, idle: s.eng.Idle, srv: s, handles: map[string][]*Handle{}, owners: map[string]int{},
		stop: make(chan struct{}), created: time.Now()}
	events := r.st.Capabilities().Events // NewServer checked it is not nil
	subscribe := events.Subscribe
	if w, ok := events.(store.Watcher); ok {
		subscribe = w.SubscribeWatched // the events of the sessions the handles watch
	}
	unsubscribe, err := subscribe(r.onEvent)
	if err != nil {
		return nil, err
	}
	r.unsubscribe = unsubscribe
	r.srv.bg.Add(1)
	go r.run(r.stop)
	return r, nil
}

// add adds h, and returns what it may have missed since its session was loaded: an
// event about it, or EventResync when the registry cannot tell (it subscribed after the
// load, or events were lost since).
func (r *registry) add(h *Handle) store.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handles[h.hash] = append(r.handles[h.hash], h)
	if !h.deadline.IsZero() {
		heap.Push(&r.deadlines, h)
		if r.deadlines[0] == h {
			r.armExpiry()
		}
	}
	r.owners[h.st.OpenID()]++
	r.n++
	r.srv.m.Handles(1)
	loaded := h.st.LoadedAt()
	if !r.created.Before(loaded) || !r.resyncAt.Before(loaded) || !r.recent[r.next].at.Before(loaded) ||
		h.watchSince.After(loaded) {
		return store.EventResync // subscribed, resynced, overflowed or watched since the load
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
	i := slices.Index(hs, h)
	if i < 0 {
		r.mu.Unlock()
		return
	}
	if len(hs) == 1 {
		delete(r.handles, h.hash)
	} else {
		r.handles[h.hash] = slices.Delete(hs, i, i+1)
	}
	if h.queued > 0 {
		heap.Remove(&r.deadlines, h.queued-1)
	}
	if r.owners[h.st.OpenID()]--; r.owners[h.st.OpenID()] == 0 {
		delete(r.owners, h.st.OpenID())
	}
	r.srv.m.Handles(-1)
	r.n--
	last := r.n == 0
	r.mu.Unlock()
	if h.unwatch != nil {
		h.unwatch() // not under r.mu: it talks to the store
	}
	if !last {
		return
	}
	// The last handle is gone: retire the registry, unless a new handle joined it
	// meanwhile. The next socket makes a new one.
	s := r.srv
	s.regMu.Lock()
	r.mu.Lock()
	if r.n == 0 && s.reg == r {
		s.reg = nil
		s.bg.Add(1) // before run may return, so that Shutdown's Wait sees both
		close(r.stop)
		if r.expiry != nil {
			r.expiry.Stop()
		}
		// Not under the locks: a store may wait for an event call in flight, and
		// that call may be the one ending this handle.
		go func() {
			defer r.srv.bg.Done()
			r.unsubscribe()
		}()
	}
	r.mu.Unlock()
	s.regMu.Unlock()
}

// armExpiry sets the registry's timer for the earliest deadline. r.mu is held.
func (r *registry) armExpiry() {
	d := time.Until(r.deadlines[0].deadline)
	if r.expiry == nil {
		r.expiry = time.AfterFunc(d, r.expire)
		return
	}
	r.expiry.Reset(d)
}

// expire ends the handles whose session reached its absolute deadline, and sets the
// timer for the next.
func (r *registry) expire() {
	now := time.Now()
	var due []*Handle
	r.mu.Lock()
	for len(r.deadlines) > 0 && !now.Before(r.deadlines[0].deadline) {
		due = append(due, heap.Pop(&r.deadlines).(*Handle))
	}
	if len(r.deadlines) > 0 {
		r.armExpiry()
	}
	r.mu.Unlock()
	for _, h := range due {
		h.end(ErrExpired)
	}
}

// deadlineQueue holds handles by absolute deadline, earliest first (container/heap).
// Each handle knows its place, so that it leaves in O(log n) when it ends.
type deadlineQueue []*Handle

func (q deadlineQueue) Len() int           { return len(q) }
func (q deadlineQueue) Less(i, j int) bool { return q[i].deadline.Before(q[j].deadline) }

func (q deadlineQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].queued, q[j].queued = i+1, j+1
}

func (q *deadlineQueue) Push(x any) {
	h := x.(*Handle)
	*q = append(*q, h)
	h.queued = len(*q)
}

func (q *deadlineQueue) Pop() any {
	old := *q
	h := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	h.queued = 0
	return h
}

// each calls fn for the handles of one session, or of all sessions when hash is "".
func (r *registry) each(hash string, fn func(h *Handle)) {
	r.mu.Lock()
	var hs []*Handle
	if hash != "" {
		hs = append(hs, r.handles[hash]...)
	} else {
		hs = make([]*Handle, 0, r.n)
		for _, m := range r.handles {
			hs = append(hs, m...)
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
	switch e.Kind {
	case store.EventChanged, store.EventDeleted, store.EventRevoked, store.EventExpired, store.EventResync:
	default:
		// A fence (store.EventFence) or a kind added later says nothing about a
		// session: it must not take a place in recent, where it would count as one.
		return
	}
	r.srv.m.Event(e.Kind.String(), e.At)
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
// deadlines are not its job: the registry's expiry timer ends those handles, and no
// store call can hold it up.
func (r *registry) run(stop <-chan struct{}) {
	defer r.srv.bg.Done()
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
		errs := r.st.TouchMany(context.Background(), ids, r.idle)
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
