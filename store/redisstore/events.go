package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpsession/mpsession/store"
	"github.com/redis/go-redis/v9"
)

// The health check of the subscription (see EventsLive).
const (
	// pingInterval is how often the subscription's connection is sent a PING.
	pingInterval = 250 * time.Millisecond
	// liveBound is how long the subscription may stay silent (no pong, no message)
	// before EventsLive reports false: four pings unanswered.
	liveBound = time.Second
	// retryDelay spaces out the receive loop's attempts while Redis refuses to
	// connect, so that it does not spin.
	retryDelay = 100 * time.Millisecond
)

// encodeEvent returns an event as it travels on the channel: the kind as one byte, the
// 64-character hash, then each field as its length in decimal, a colon and the name,
// then, when at is not zero, "@" and at in Unix milliseconds, then, when origin is not
// "", "#" and origin. origin comes last, so that it may hold any printable character; it
// must be "" (none) or one for which store.ValidOrigin is true.
func encodeEvent(at time.Time, kind store.EventKind, hash, origin string, fields ...string) string {
	n := 1 + len(hash) + 15 + 1 + len(origin)
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
	if origin != "" {
		b = append(b, '#')
		b = append(b, origin...)
	}
	return string(b)
}

// A fence (store.EventFence) travels in the same form with no hash, no fields and its
// token as the origin: kind, "@" and milliseconds, "#" and token. Subscribers of
// earlier versions read only the kinds 1 to 4 and drop any other payload without a
// word, so they ignore fences.

// decodeEvent reverses encodeEvent. It reports false for a payload it cannot read,
// including one that carries an origin for which store.ValidOrigin is false, and a fence
// with a hash, fields or no token.
func decodeEvent(p string) (store.Event, bool) {
	hashLen := 64
	if len(p) > 0 && p[0] == byte(store.EventFence) {
		hashLen = 0
	} else if len(p) < 1+hashLen || p[0] < byte(store.EventChanged) || p[0] > byte(store.EventExpired) {
		return store.Event{}, false
	}
	ev := store.Event{Kind: store.EventKind(p[0]), Hash: p[1 : 1+hashLen]}
	rest := p[1+hashLen:]
	if ev.Kind == store.EventFence && (!strings.Contains(rest, "#") || rest[0] != '@' && rest[0] != '#') {
		return store.Event{}, false
	}
	for rest != "" && rest[0] != '@' && rest[0] != '#' {
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
	// What is left is "@ms", "#origin" or both. The origin runs to the end and may hold
	// '#'; the milliseconds hold none.
	rest, origin, hasOrigin := strings.Cut(rest, "#")
	if hasOrigin {
		if !store.ValidOrigin(origin) {
			return store.Event{}, false
		}
		ev.Origin = origin
	}
	if rest != "" {
		at := rest[1:] // rest starts with '@': the loop above ends on nothing else
		ms, err := strconv.ParseInt(at, 10, 64)
		if err != nil || ms <= 0 || at[0] == '+' {
			return store.Event{}, false
		}
		ev.At = time.UnixMilli(ms)
	}
	// Subscribers share ev: with no spare capacity, one that appends to Fields gets a
	// copy rather than write into the array the others read.
	ev.Fields = slices.Clip(ev.Fields)
	return ev, true
}

// subscriber is one registered callback. active turns false on unsubscribe, so that the
// receive loop starts no call after unsubscribe returns.
type subscriber struct {
	fn     func(store.Event)
	active atomic.Bool
}

// eventFeed is a Store's one subscription to its channel, shared by every subscriber.
// Two goroutines serve it: the receive loop reads the connection and calls the
// subscribers, and the health check sends a PING every pingInterval, whose pong the loop reads like
// any message. After a network error (a read timeout is none), the loop's next read
// has go-redis dial and resubscribe; the events published meanwhile are lost, so the
// loop sends store.EventResync when Redis confirms the subscription again.
type eventFeed struct {
	mu     sync.Mutex
	ps     *redis.PubSub
	closed bool
	stop   context.CancelFunc // ends the two goroutines
	wg     sync.WaitGroup     // the two goroutines
	subs   atomic.Pointer[[]*subscriber]

	// heard is when the subscription last proved live (a confirmation, a pong or a
	// message arrived), as a monotonic clock reading, or 0 when it is known not to be:
	// before the first Subscribe, after a receive error, after a silence longer than
	// liveBound that someone noticed, and after Close. Only the receive loop sets it
	// to a reading, and when it finds 0 it sends store.EventResync first. Readers
	// that find it older than liveBound swap it to 0, so that a silence once seen
	// costs subscribers a resync even if a pong arrives an instant later.
	heard atomic.Int64
}

// clockBase anchors monoNow's readings.
var clockBase = time.Now()

// monoNow returns a reading of the monotonic clock in nanoseconds, never 0.
func monoNow() int64 { return int64(time.Since(clockBase)) + 1 }

// Subscribe registers fn to receive the events of every process that shares the Redis
// and the prefix. The first call subscribes to the channel, waiting at most
// Config.SubscribeTimeout for Redis to confirm; it returns an error if Redis cannot be
// reached, and a later call tries again. Once subscribed, the subscription survives
// reconnects, but events published while it is disconnected are lost: when it is live
// again, every subscriber receives a store.EventResync, after which events flow as
// before. The same happens after a silence longer than a second (see EventsLive).
func (s *Store) Subscribe(fn func(store.Event)) (unsubscribe func(), err error) {
	if fn == nil {
		return nil, errors.New("redisstore: subscribe: nil func")
	}
	e := &s.feed
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

// EventsLive implements store.Events. It reports true while the store's
// subscription is confirmed, has had no receive error since its last confirmation, and
// has answered a health check (or carried an event) within the last second. When it
// turns true after being false, every subscriber has received a store.EventResync
// first. It reports false before the first Subscribe and after Close. It costs a few
// atomic operations and no round trip.
func (s *Store) EventsLive() bool { return s.feed.live(monoNow()) }

// setSubs replaces the subscriber list with a changed copy; e.mu must be held. The
// receive loop reads the list without a lock.
func (e *eventFeed) setSubs(change func([]*subscriber) []*subscriber) {
	var old []*subscriber
	if p := e.subs.Load(); p != nil {
		old = *p
	}
	subs := change(old[:len(old):len(old)])
	e.subs.Store(&subs)
}

// startEvents subscribes and starts the receive loop and the health check;
// s.feed.mu must be held.
func (s *Store) startEvents() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.subscribeTimeout)
	defer cancel()
	ps := s.client.Subscribe(ctx, s.channel)
	// The first reply confirms the subscription: events published after Subscribe
	// returns are delivered. It is read here, before the loop starts, so every
	// confirmation the loop sees comes from a resubscription.
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return s.fail(ctx, "subscribe", err)
	}
	e := &s.feed
	e.ps = ps
	e.heard.Store(monoNow())
	loop, stop := context.WithCancel(context.Background())
	e.stop = stop
	e.wg.Add(2)
	go e.receive(loop, ps)
	go e.healthCheck(loop, ps)
	return nil
}

// receive reads the subscription until ctx ends, and calls the subscribers for each
// event, in order. ReceiveTimeout returns after liveBound of silence, which go-redis
// does not take for a broken connection; any other error is one.
//
// go-redis replaces a broken connection inside the call that failed, before it returns
// the error: it dials, says HELLO and resubscribes, several round trips during which
// EventsLive would still report true. So while the subscription is live the loop
// passes a context that is already cancelled: go-redis reads an open connection
// without looking at the context (only at its deadline, which it has none of), and its
// dial on a cancelled context fails at once, so the error comes back before any retry.
// EventsLive is false by then, and the next call, with the loop's own context, dials
// and resubscribes. (go-redis v9.23; TestEventsLiveKill would catch a change.)
//
// The timeout never cuts a reply short in practice: with a pong due every
// pingInterval, a healthy connection is never silent for liveBound, and a silent one
// is not in the middle of a reply.
func (e *eventFeed) receive(ctx context.Context, ps *redis.PubSub) {
	defer e.wg.Done()
	noRetry, cancel := context.WithCancel(context.Background())
	cancel()
	failures := 0
	for {
		rctx := ctx
		if e.heard.Load() != 0 {
			rctx = noRetry
		}
		start := time.Now()
		msg, err := ps.ReceiveTimeout(rctx, liveBound)
		if ctx.Err() != nil {
			return // Close
		}
		now := monoNow()
		if err != nil {
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				e.live(now)
			} else {
				e.heard.Store(0)
			}
			// An error that comes back at once, again (Redis refuses connections),
			// waits before the next try.
			if failures++; failures > 1 && time.Since(start) < retryDelay {
				select {
				case <-ctx.Done():
					return
				case <-time.After(retryDelay):
				}
			}
			continue
		}
		failures = 0
		switch msg := msg.(type) {
		case *redis.Subscription:
			if msg.Kind == "subscribe" {
				// A resubscription on a new connection: whatever was published
				// between the old one's end and now is lost.
				e.heard.Store(0)
				e.alive(now)
			}
		case *redis.Pong:
			e.alive(now)
		case *redis.Message:
			e.alive(now)
			if ev, ok := decodeEvent(msg.Payload); ok {
				e.deliver(ev)
			}
		}
	}
}

// alive records that the subscription proved live at now. When it was known not to be
// (heard is 0, or older than liveBound), the subscribers receive store.EventResync
// before heard turns current, so that EventsLive never reports true to someone who has
// not been told to drop what the lost events may have changed.
//
// A pong or a message proves the subscription as well as a confirmation does: go-redis
// subscribes a new connection before it sends anything else on it, and Redis answers
// in order, so the confirmation always comes first on a new connection.
func (e *eventFeed) alive(now int64) {
	for {
		h := e.heard.Load()
		if h != 0 && now-h <= int64(liveBound) {
			if e.heard.CompareAndSwap(h, now) {
				return
			}
			continue // a reader found it stale meanwhile
		}
		if h == 0 || e.heard.CompareAndSwap(h, 0) {
			e.deliver(store.Event{Kind: store.EventResync})
			e.heard.Store(now)
			return
		}
	}
}

// live reports whether the subscription proved live within liveBound of now, and
// records a silence it finds (see heard).
func (e *eventFeed) live(now int64) bool {
	for {
		h := e.heard.Load()
		if h == 0 {
			return false
		}
		if now-h <= int64(liveBound) {
			return true
		}
		if e.heard.CompareAndSwap(h, 0) {
			return false
		}
	}
}

// deliver calls the subscribers with ev; only the receive loop calls it.
func (e *eventFeed) deliver(ev store.Event) {
	p := e.subs.Load()
	if p == nil {
		return
	}
	for _, sub := range *p {
		if sub.active.Load() {
			sub.fn(ev)
		}
	}
}

// healthCheck sends a PING on the subscription's connection every pingInterval until
// ctx ends. The receive loop reads the pong. go-redis writes the PING under its own
// lock, alongside a read in progress; a Redis that hangs takes the PING and never
// answers, which the loop sees as silence. The PING's context is cancelled before it is
// sent, as the loop's is (see receive): when there is no connection, or the write
// fails, go-redis does not dial here, and the loop, which sees the failure, dials.
func (e *eventFeed) healthCheck(ctx context.Context, ps *redis.PubSub) {
	defer e.wg.Done()
	tick := time.NewTicker(pingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// The deadline, which a cancelled context keeps, bounds the write.
		pctx, cancel := context.WithTimeout(context.Background(), liveBound)
		cancel()
		_ = ps.Ping(pctx)
	}
}

// close stops the subscription and waits for its goroutines. It must not be called
// from a subscriber.
func (e *eventFeed) close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	ps, stop := e.ps, e.stop
	e.mu.Unlock()
	if ps == nil {
		return nil
	}
	stop()
	err := ps.Close()
	e.wg.Wait()
	e.heard.Store(0)
	if err != nil {
		return fmt.Errorf("redisstore: close: %w", err)
	}
	return nil
}
