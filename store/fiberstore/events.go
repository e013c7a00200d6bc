package fiberstore

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

// errClosed is returned by every method of a closed Store.
var errClosed = errors.New("store closed")

// dispatcher delivers events in order from one goroutine, so a slow subscriber never
// holds up a store operation (the queue grows instead; subscribers must not block).
type dispatcher struct {
	mu     sync.Mutex
	subs   []*subscriber // copy on write: run reads a snapshot without the lock
	queue  []store.Event
	closed bool

	wake   chan struct{} // one slot: "the queue is not empty"
	done   chan struct{}
	exited chan struct{}
}

type subscriber struct {
	fn     func(store.Event)
	active atomic.Bool
}

func newDispatcher() *dispatcher {
	d := &dispatcher{
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go d.run()
	return d
}

func (d *dispatcher) subscribe(fn func(store.Event)) (func(), error) {
	if fn == nil {
		return nil, errors.New("fiberstore: subscribe: nil func")
	}
	s := &subscriber{fn: fn}
	s.active.Store(true)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("fiberstore: subscribe: " + errClosed.Error())
	}
	d.subs = append(d.subs[:len(d.subs):len(d.subs)], s)
	return func() {
		// Once this returns, fn is not called again (unless a call is already running).
		if !s.active.Swap(false) {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		subs := make([]*subscriber, 0, len(d.subs))
		for _, o := range d.subs {
			if o != s {
				subs = append(subs, o)
			}
		}
		d.subs = subs
	}, nil
}

// emit queues e. Without subscribers it does nothing, so a store nobody listens to pays
// nothing for events.
func (d *dispatcher) emit(e store.Event) {
	d.mu.Lock()
	if d.closed || len(d.subs) == 0 {
		d.mu.Unlock()
		return
	}
	d.queue = append(d.queue, e)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	defer close(d.exited)
	var batch []store.Event
	for {
		select {
		case <-d.done:
			return
		case <-d.wake:
		}
		d.mu.Lock()
		batch, d.queue = d.queue, batch[:0]
		subs := d.subs
		d.mu.Unlock()
		for _, e := range batch {
			for _, s := range subs {
				if s.active.Load() {
					s.fn(e)
				}
			}
		}
		clear(batch)
	}
}

// close stops the goroutine and drops events not yet delivered. It must not be called
// from a subscriber.
func (d *dispatcher) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		<-d.exited
		return
	}
	d.closed = true
	d.queue = nil
	d.mu.Unlock()
	close(d.done)
	<-d.exited
}

// Capabilities implements store.Store. The store sends events, but only to subscribers in
// the process that made the change, so they are not Shared; it carries no messages between
// processes (no Broker), and its backend is a database, not this process's memory.
func (s *Store) Capabilities() store.Capabilities {
	return store.Capabilities{Events: events{s}}
}

// events is the store's store.Events; Subscribe is the Store's.
type events struct{ *Store }

// Shared implements store.Events: events reach the subscribers of the process that made
// the change only.
func (events) Shared() bool { return false }

// EventsLive implements store.Events: events that are not Shared cannot vouch for the
// writes of other processes, so a session cache must not serve from memory on them.
func (events) EventsLive() bool { return false }

// From implements store.Events.
func (e events) From(origin string) store.Store {
	s := e.Store
	return storekit.View(s, storekit.Writes{Save: s.save, Incr: s.incr, Delete: s.delete, DeleteOwner: s.deleteOwner}, origin)
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Events = events{}
)
