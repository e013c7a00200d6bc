package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpsession/mpsession/store"
	"github.com/redis/go-redis/v9"
)

// subscribeTimeout bounds how long the first Subscribe waits for Redis to confirm the
// subscription, as Subscribe takes no context.
const subscribeTimeout = 5 * time.Second

// encodeEvent returns an event as it travels on the channel: the kind as one byte, the
// 64-character hash, then each field as its length in decimal, a colon and the name,
// then, when at is not zero, "@" and at in Unix milliseconds.
func encodeEvent(at time.Time, kind store.EventKind, hash string, fields ...string) string {
	n := 1 + len(hash) + 15
	for _, f := range fields {
		n += len(f) + 4
	}
	b := make([]byte, 0, n)
	b = append(b, byte(kind))
	b = append(b, hash...)
	for _, f := range fields {
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(b, ':')
		b = append(b, f...)
	}
	if !at.IsZero() {
		b = append(b, '@')
		b = strconv.AppendInt(b, at.UnixMilli(), 10)
	}
	return string(b)
}

// decodeEvent reverses encodeEvent. It reports false for a payload it cannot read.
func decodeEvent(p string) (store.Event, bool) {
	const hashLen = 64
	if len(p) < 1+hashLen || p[0] < byte(store.EventChanged) || p[0] > byte(store.EventExpired) {
		return store.Event{}, false
	}
	ev := store.Event{Kind: store.EventKind(p[0]), Hash: p[1 : 1+hashLen]}
	for rest := p[1+hashLen:]; rest != ""; {
		if at, ok := strings.CutPrefix(rest, "@"); ok {
			ms, err := strconv.ParseInt(at, 10, 64)
			if err != nil || ms <= 0 || at[0] == '+' {
				return store.Event{}, false
			}
			ev.At = time.UnixMilli(ms)
			break
		}
		i := 0
		for i < len(rest) && i < 8 && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || rest[i] != ':' {
			return store.Event{}, false
		}
		n, _ := strconv.Atoi(rest[:i])
		rest = rest[i+1:]
		if n > len(rest) {
			return store.Event{}, false
		}
		ev.Fields = append(ev.Fields, rest[:n])
		rest = rest[n:]
	}
	// Subscribers share ev: with no spare capacity, one that appends to Fields gets a
	// copy rather than write into the array the others read.
	ev.Fields = slices.Clip(ev.Fields)
	return ev, true
}

// subscriber is one registered callback. active turns false on unsubscribe, so that the
// dispatcher starts no call after unsubscribe returns.
type subscriber struct {
	fn     func(store.Event)
	active atomic.Bool
}

// events is a Store's one subscription to its channel, shared by every subscriber and
// read by one goroutine. go-redis reconnects and resubscribes it after a network error;
// the events published meanwhile are lost, so the dispatcher sends store.EventResync
// when Redis confirms the subscription again.
type events struct {
	mu     sync.Mutex
	ps     *redis.PubSub
	closed bool
	done   chan struct{} // closed when the dispatcher returns
	subs   atomic.Pointer[[]*subscriber]
}

// Subscribe registers fn to receive the events of every process that shares the Redis
// and the prefix. The first call subscribes to the channel, waiting at most 5 seconds
// for Redis to confirm; it returns an error if Redis cannot be reached, and a later call
// tries again. Once subscribed, the subscription survives reconnects, but events
// published while it is disconnected are lost: when it is live again, every subscriber
// receives a store.EventResync, after which events flow as before.
func (s *Store) Subscribe(fn func(store.Event)) (unsubscribe func(), err error) {
	if fn == nil {
		return nil, errors.New("redisstore: subscribe: nil func")
	}
	e := &s.events
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("redisstore: subscribe: store closed")
	}
	if e.ps == nil {
		if err := s.startEvents(); err != nil {
			return nil, err
		}
	}
	sub := &subscriber{fn: fn}
	sub.active.Store(true)
	e.setSubs(func(subs []*subscriber) []*subscriber { return append(subs, sub) })

	var once sync.Once
	return func() {
		once.Do(func() {
			sub.active.Store(false)
			e.mu.Lock()
			defer e.mu.Unlock()
			e.setSubs(func(subs []*subscriber) []*subscriber {
				for i, x := range subs {
					if x == sub {
						return append(subs[:i:i], subs[i+1:]...)
					}
				}
				return subs
			})
		})
	}, nil
}

// setSubs replaces the subscriber list with a changed copy; e.mu must be held. The
// dispatcher reads the list without a lock.
func (e *events) setSubs(change func([]*subscriber) []*subscriber) {
	var old []*subscriber
	if p := e.subs.Load(); p != nil {
		old = *p
	}
	subs := change(old[:len(old):len(old)])
	e.subs.Store(&subs)
}

// startEvents subscribes and starts the dispatcher; s.events.mu must be held.
func (s *Store) startEvents() error {
	ctx, cancel := context.WithTimeout(context.Background(), subscribeTimeout)
	defer cancel()
	ps := s.client.Subscribe(ctx, s.channel)
	// The first reply confirms the subscription: events published after Subscribe
	// returns are delivered. It is read here, before the channel starts, so every
	// confirmation the dispatcher sees comes from a resubscription.
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return s.fail(ctx, "subscribe", err)
	}
	e := &s.events
	e.ps = ps
	e.done = make(chan struct{})
	ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	go e.dispatch(ch)
	return nil
}

// dispatch calls the subscribers for each event, in order, until the channel closes.
// A subscription confirmation means go-redis reconnected and subscribed again: it
// becomes an EventResync.
func (e *events) dispatch(ch <-chan any) {
	defer close(e.done)
	for msg := range ch {
		var ev store.Event
		switch msg := msg.(type) {
		case *redis.Message:
			var ok bool
			if ev, ok = decodeEvent(msg.Payload); !ok {
				continue
			}
		case *redis.Subscription:
			if msg.Kind != "subscribe" {
				continue
			}
			ev = store.Event{Kind: store.EventResync}
		default:
			continue
		}
		p := e.subs.Load()
		if p == nil {
			continue
		}
		for _, sub := range *p {
			if sub.active.Load() {
				sub.fn(ev)
			}
		}
	}
}

// close stops the subscription and waits for the dispatcher. It must not be called
// from a subscriber.
func (e *events) close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	ps, done := e.ps, e.done
	e.mu.Unlock()
	if ps == nil {
		return nil
	}
	err := ps.Close()
	<-done
	if err != nil {
		return fmt.Errorf("redisstore: close: %w", err)
	}
	return nil
}
