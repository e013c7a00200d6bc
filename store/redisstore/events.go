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
	// resubscribeEvery spaces out the loop's resubscriptions of a connection that
	// answers but is not subscribed to the store's channel (see receive).
	resubscribeEvery = time.Second
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

// eventFeed is a Store's one subscription to its events, shared by every subscriber,
// on one connection. Writes publish a session's events on a channel of its own
// (eventChannel); the connection is subscribed to
//
//   - the store's channel (Store.channel), which carries fences, and the events of
//     versions that published every event there, for every subscriber;
//   - the channel of each session a Watch of this process holds, for the
//     SubscribeWatched subscribers;
//   - the pattern of every session's channel, once a Subscribe asked for every event,
//     for the Subscribe subscribers.
//
// Redis runs the PUBLISHes one at a time and writes each to the connection before it
// runs the next, so the connection receives them in the order they ran, whatever
// channel each went on: fences keep their meaning (store.Fencer).
//
// Two goroutines serve the feed: the receive loop reads the connection and calls the
// subscribers, and the writer sends the watches' commands and, as a health check, a
// PING every pingInterval, whose pong the loop reads like any message. After a network
// error (a read timeout is none), the loop's next read has go-redis dial and
// resubscribe; the events published meanwhile are lost, so the loop sends
// store.EventResync when Redis confirms the subscription again.
type eventFeed struct {
	mu       sync.Mutex
	ps       *redis.PubSub
	closed   bool
	starting chan struct{}                 // while a call subscribes the feed: closed when it is done; under mu
	abort    context.CancelFunc            // ends that call's dial; under mu
	stop     context.CancelFunc            // ends the two goroutines
	wg       sync.WaitGroup                // the two goroutines
	subs     atomic.Pointer[[]*subscriber] // Subscribe's: every event
	watched  atomic.Pointer[[]*subscriber] // SubscribeWatched's: the watched sessions' events

	// cmdMu guards the watches and orders the subscription's commands (SUBSCRIBE,
	// UNSUBSCRIBE, PSUBSCRIBE and the PINGs that mark them) with the changes to watches
	// they go with: the changes queue them, and the writer sends them, in that order.
	// It is taken after mu, never before, and never held across a command.
	cmdMu    sync.Mutex
	watches  map[string]*watch // by channel
	pattern  *watch            // the pattern subscription, nil until a Subscribe
	marks    []*watch          // waiting for their mark's pong, in the order queued
	lastMark uint64
	queue    []command     // for the writer, in order
	wake     chan struct{} // tells the writer the queue has commands; buffered, of 1
	stopped  bool          // set by close: no more commands, and every watch fails
	refusal  error         // the last error Redis answered, for the watches it failed

	// received counts the session events the feed decoded (not fences, not resyncs).
	received atomic.Uint64

	// heard is when the subscription last proved live (a confirmation, a pong or a
	// message arrived), as a monotonic clock reading, or 0 when it is known not to be:
	// before the first Subscribe, after a receive error, after a silence longer than
	// liveBound that someone noticed, and after Close. Only the receive loop sets it
	// to a reading (and startEvents, before the loop runs), and when it finds 0 it
	// sends store.EventResync first. Readers
	// that find it older than liveBound swap it to 0, so that a silence once seen
	// costs subscribers a resync even if a pong arrives an instant later.
	heard atomic.Int64
}

// A watch is one session channel (or the pattern) the feed subscribes to for as long as
// someone holds it.
type watch struct {
	name      string        // the channel, or the pattern, as Redis's replies name it
	n         int           // holders; the channel is unsubscribed when it falls to 0
	mark      uint64        // the PING that follows its SUBSCRIBE
	confirmed bool          // Redis confirmed the subscription since it was made; under cmdMu
	ready     chan struct{} // closed when the mark's pong came back: the subscription is live, or failed
	since     time.Time     // when ready closed
	err       error         // set, with ready closed, when the store closed first or Redis refused it
}

// refused reports whether Redis refused w's subscription (see eventFeed.marked); the
// feed's cmdMu must be held.
func (w *watch) refused() bool {
	select {
	case <-w.ready:
		return w.err != nil && !errors.Is(w.err, errStoreClosed)
	default:
		return false
	}
}

// errStoreClosed fails the watches of a closed store.
var errStoreClosed = errors.New("store closed")

// A command is one the writer sends on the subscription's connection: a SUBSCRIBE,
// PSUBSCRIBE or UNSUBSCRIBE, and, when mark is not 0, the PING that marks it.
type command struct {
	send func(context.Context, *redis.PubSub) error
	mark uint64
}

// clockBase anchors monoNow's readings.
var clockBase = time.Now()

// monoNow returns a reading of the monotonic clock in nanoseconds, never 0.
func monoNow() int64 { return int64(time.Since(clockBase)) + 1 }

// Subscribe registers fn to receive the events of every session, from every process
// that shares the Redis and the prefix. The first call subscribes, waiting at most
// Config.SubscribeTimeout for Redis to confirm; it returns an error if Redis cannot be
// reached, and a later call tries again. Once subscribed, the subscription survives
// reconnects, but events published while it is disconnected are lost: when it is live
// again, every subscriber receives a store.EventResync, after which events flow as
// before. The same happens after a silence longer than a second (see EventsLive).
//
// Once a Subscribe has been made, the process receives every session event of the
// store, as long as it is open, whoever else is in the fleet: one that needs the events
// of its own sessions only uses SubscribeWatched and Watch.
func (s *Store) Subscribe(fn func(store.Event)) (unsubscribe func(), err error) {
	return s.subscribe(fn, &s.feed.subs)
}

// SubscribeWatched implements store.Watcher: fn receives the events of the sessions
// that a Watch of this process holds, and every fence and resync, as Subscribe's
// subscribers do, and nothing of the other sessions.
func (s *Store) SubscribeWatched(fn func(store.Event)) (unsubscribe func(), err error) {
	return s.subscribe(fn, &s.feed.watched)
}

func (s *Store) subscribe(fn func(store.Event), list *atomic.Pointer[[]*subscriber]) (unsubscribe func(), err error) {
	if fn == nil {
		return nil, errors.New("redisstore: subscribe: nil func")
	}
	e := &s.feed
	ctx, cancel := context.WithTimeout(context.Background(), s.subscribeTimeout)
	defer cancel()
	if list == &e.subs {
		if err := s.watchPattern(ctx); err != nil {
			return nil, err
		}
	} else if err := s.startFeed(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("redisstore: subscribe: store closed")
	}
	sub := &subscriber{fn: fn}
	sub.active.Store(true)
	setSubs(list, func(subs []*subscriber) []*subscriber { return append(subs, sub) })

	var once sync.Once
	return func() {
		once.Do(func() {
			sub.active.Store(false)
			e.mu.Lock()
			defer e.mu.Unlock()
			setSubs(list, func(subs []*subscriber) []*subscriber {
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

// startFeed subscribes to the store's channel and starts the receive loop and the
// writer, unless they run, waiting at most until ctx ends. One call at a time
// subscribes, without holding mu: the others wait for it, or for their ctx, and try
// in turn if it failed. Close cancels the dial of the call under way.
func (s *Store) startFeed(ctx context.Context) error {
	e := &s.feed
	for {
		if err := ctx.Err(); err != nil {
			return s.fail(ctx, "subscribe", err)
		}
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return errors.New("redisstore: subscribe: store closed")
		}
		if e.ps != nil {
			e.mu.Unlock()
			return nil
		}
		if starting := e.starting; starting != nil {
			e.mu.Unlock()
			select {
			case <-starting:
				continue
			case <-ctx.Done():
				return s.fail(ctx, "subscribe", ctx.Err())
			}
		}
		dctx, abort := context.WithCancel(ctx)
		e.starting, e.abort = make(chan struct{}), abort
		e.mu.Unlock()
		ps, err := s.dialEvents(dctx)
		abort()
		e.mu.Lock()
		if err == nil && e.closed {
			_ = ps.Close()
			err = errors.New("redisstore: subscribe: store closed")
		}
		if err == nil {
			s.startEvents(ps)
		}
		close(e.starting)
		e.starting, e.abort = nil, nil
		e.mu.Unlock()
		return err
	}
}

// eventChannel is the channel of the session whose hash is given.
func (s *Store) eventChannel(hash string) string { return s.channel + ":" + hash }

// markPrefix starts the payload of the PINGs that mark the feed's subscriptions: when
// the pong of a mark comes back, Redis has run every command sent before it on the
// connection.
const markPrefix = "mpsession-mark:"

// Watch implements store.Watcher. The first Watch of a session subscribes to its
// channel and waits for the pong of a PING sent after the SUBSCRIBE: one round trip.
// It waits at most ctx's deadline and Config.SubscribeTimeout in all, including the
// store's first subscription when it is the first call to need one (that one dials).
// Later ones of the same session share the subscription and cost nothing; the channel
// is unsubscribed when the last unwatch is called. Once the store is subscribed, Watch
// never dials: while Redis is unreachable, the receive loop reconnects, go-redis
// subscribes the connection to every watched channel again, and the health check's
// next PING (they carry marks too) confirms the watches waiting.
// When Redis refuses the SUBSCRIBE (an ACL without the session channels, see
// docs/SECURITY.md), Watch returns Redis's error, and the next Watch of the session
// tries again.
func (s *Store) Watch(ctx context.Context, hash string) (unwatch func(), since time.Time, err error) {
	if !validHash(hash) {
		return nil, time.Time{}, fmt.Errorf("redisstore: watch: %q is not a session hash", hash)
	}
	ctx, cancel := context.WithTimeout(ctx, s.subscribeTimeout)
	defer cancel()
	if err := s.startFeed(ctx); err != nil {
		return nil, time.Time{}, err
	}
	ch := s.eventChannel(hash)
	w := s.feed.hold(ch, ch, func(ctx context.Context, ps *redis.PubSub) error { return ps.Subscribe(ctx, ch) })
	release := sync.OnceFunc(func() { s.feed.release(ch, w) })
	if err := s.feed.await(ctx, w, s.subscribeTimeout); err != nil {
		release()
		return nil, time.Time{}, s.fail(ctx, "watch", err)
	}
	return release, w.since, nil
}

// watchPattern subscribes the feed to every session's channel, once, and waits for it
// to be live, as Watch does, at most until ctx ends.
func (s *Store) watchPattern(ctx context.Context) error {
	if err := s.startFeed(ctx); err != nil {
		return err
	}
	pattern := globEscape(s.channel) + ":*"
	w := s.feed.hold("", pattern, func(ctx context.Context, ps *redis.PubSub) error { return ps.PSubscribe(ctx, pattern) })
	if err := s.feed.await(ctx, w, s.subscribeTimeout); err != nil {
		return s.fail(ctx, "subscribe", err)
	}
	return nil
}

// hold returns the watch of ch ("" for the pattern, whose name is name), making it and
// sending subscribe and a mark after it when there is none or Redis refused the one
// there is, and counts one more holder.
func (e *eventFeed) hold(ch, name string, subscribe func(context.Context, *redis.PubSub) error) *watch {
	e.cmdMu.Lock()
	defer e.cmdMu.Unlock()
	if e.stopped {
		w := &watch{name: name, ready: make(chan struct{}), err: errStoreClosed, n: 1}
		close(w.ready)
		return w
	}
	w := e.pattern
	if ch != "" {
		w = e.watches[ch]
	}
	if w == nil || w.refused() {
		w = &watch{name: name, ready: make(chan struct{})}
		if ch == "" {
			e.pattern = w
		} else {
			if e.watches == nil {
				e.watches = map[string]*watch{}
			}
			e.watches[ch] = w
		}
		if e.stopped {
			w.err = errStoreClosed
			close(w.ready)
		} else {
			e.lastMark++
			w.mark = e.lastMark
			e.marks = append(e.marks, w)
			e.send(command{send: subscribe, mark: w.mark})
		}
	}
	w.n++
	return w
}

// send queues c for the writer; the feed's cmdMu must be held.
func (e *eventFeed) send(c command) {
	e.queue = append(e.queue, c)
	select {
	case e.wake <- struct{}{}:
	default: // the writer has been told already
	}
}

// release drops one holder of the watch w of ch, and unsubscribes ch with the last.
// The pattern stays subscribed.
func (e *eventFeed) release(ch string, w *watch) {
	e.cmdMu.Lock()
	defer e.cmdMu.Unlock()
	if w.n--; w.n > 0 || e.watches[ch] != w {
		return
	}
	delete(e.watches, ch)
	if !e.stopped {
		e.send(command{send: func(ctx context.Context, ps *redis.PubSub) error { return ps.Unsubscribe(ctx, ch) }})
	}
}

// await waits for w's mark until ctx, which the caller bounded by timeout, ends.
func (e *eventFeed) await(ctx context.Context, w *watch, timeout time.Duration) error {
	select {
	case <-w.ready:
		return w.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("no confirmation in %v: %w", timeout, ctx.Err())
		}
		return ctx.Err()
	}
}

// marked settles every watch whose mark is n or earlier: the pong of mark n came back,
// so Redis has answered every command sent before it. A watch whose subscription Redis
// confirmed meanwhile (see subscription) is live; one it did not confirm was refused
// (an ACL, say: Redis answered its SUBSCRIBE with an error), and fails. A refused
// pattern is unsubscribed, so that go-redis does not send it again on a new connection.
//
// A watch is settled by its own confirmation, never by its place among the replies:
// after a reconnect, go-redis subscribes every channel again in one SUBSCRIBE, whose
// replies confirm the watches whose first one was lost with the connection.
func (e *eventFeed) marked(n uint64) {
	e.cmdMu.Lock()
	defer e.cmdMu.Unlock()
	now := time.Now()
	i := 0
	for ; i < len(e.marks) && e.marks[i].mark <= n; i++ {
		w := e.marks[i]
		if !w.confirmed {
			w.err = errors.New("no confirmation of the subscription came from Redis")
			if e.refusal != nil {
				w.err = fmt.Errorf("refused: %w", e.refusal)
			}
			if w == e.pattern && !e.stopped {
				name := w.name
				e.send(command{send: func(ctx context.Context, ps *redis.PubSub) error { return ps.PUnsubscribe(ctx, name) }})
			}
		}
		w.since = now
		close(w.ready)
	}
	e.marks = append(e.marks[:0], e.marks[i:]...)
	if len(e.marks) == 0 {
		e.refusal = nil
	}
}

// subscription records Redis's reply to a SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE or
// PUNSUBSCRIBE of name on the watch waiting for it, if any. An unsubscription undoes a
// confirmation: it answers the UNSUBSCRIBE of an earlier watch of the channel, sent
// before the SUBSCRIBE of the one now waiting.
func (e *eventFeed) subscription(kind, name string) {
	e.cmdMu.Lock()
	defer e.cmdMu.Unlock()
	var w *watch
	switch kind {
	case "subscribe", "unsubscribe":
		w = e.watches[name]
	case "psubscribe", "punsubscribe":
		if e.pattern != nil && e.pattern.name == name {
			w = e.pattern
		}
	}
	if w == nil {
		return
	}
	select {
	case <-w.ready: // settled
	default:
		w.confirmed = kind == "subscribe" || kind == "psubscribe"
	}
}

// connectionLost forgets what Redis confirmed or refused on a connection that broke:
// the watches still waiting are settled by what the new one answers.
func (e *eventFeed) connectionLost() {
	e.cmdMu.Lock()
	defer e.cmdMu.Unlock()
	for _, w := range e.marks {
		w.confirmed = false
	}
	e.refusal = nil
}

// resubscribe has the writer subscribe the connection to the store's channel base and
// every watched channel in one SUBSCRIBE, as go-redis subscribes a new connection, and
// then to the pattern, if one is held.
func (e *eventFeed) resubscribe(base string) {
	e.cmdMu.Lock()
	defer e.cmdMu.Unlock()
	if e.stopped {
		return
	}
	channels := make([]string, 0, 1+len(e.watches))
	channels = append(channels, base)
	for ch := range e.watches {
		channels = append(channels, ch)
	}
	pattern := ""
	if e.pattern != nil && !e.pattern.refused() {
		pattern = e.pattern.name
	}
	e.send(command{send: func(ctx context.Context, ps *redis.PubSub) error {
		err := ps.Subscribe(ctx, channels...)
		if pattern != "" {
			err = errors.Join(err, ps.PSubscribe(ctx, pattern))
		}
		return err
	}})
}

// refused records an error Redis answered on the subscription's connection: the
// watches its mark finds unconfirmed fail with it.
func (e *eventFeed) refused(err error) {
	e.cmdMu.Lock()
	defer e.cmdMu.Unlock()
	e.refusal = err
}

// noDial returns a context that is cancelled already but keeps a deadline: go-redis
// writes on an open connection with it, bounded by the deadline, and fails at once
// rather than dial when there is none (see receive).
func noDial() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), liveBound)
	cancel()
	return ctx, cancel
}

// validHash reports whether h is a session hash as store.Hash makes them.
func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// globEscape escapes the characters Redis's glob patterns read.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\', '^':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// EventsReceived returns how many session events the store's subscription has received
// (fences and resyncs aside), for measurements: a fleet's instance that watches its own
// sessions receives about as many events as they cause.
func (s *Store) EventsReceived() uint64 { return s.feed.received.Load() }

// EventsLive implements store.Events. It reports true while the store's
// subscription is confirmed, has had no receive error since its last confirmation, and
// has answered a health check (or carried an event) within the last second. When it
// turns true after being false, every subscriber has received a store.EventResync
// first. It reports false before the first Subscribe and after Close. It costs a few
// atomic operations and no round trip.
func (s *Store) EventsLive() bool { return s.feed.live(monoNow()) }

// setSubs replaces a subscriber list with a changed copy; the feed's mu must be held.
// The receive loop reads the lists without a lock.
func setSubs(list *atomic.Pointer[[]*subscriber], change func([]*subscriber) []*subscriber) {
	var old []*subscriber
	if p := list.Load(); p != nil {
		old = *p
	}
	subs := change(old[:len(old):len(old)])
	list.Store(&subs)
}

// dialEvents subscribes a connection to the store's channel, waiting at most until ctx
// ends for Redis to confirm. The first reply confirms the subscription: events
// published after it are delivered. It is read here, before the loop starts, so every
// confirmation the loop sees comes from a resubscription.
func (s *Store) dialEvents(ctx context.Context) (*redis.PubSub, error) {
	ps := s.client.Subscribe(ctx, s.channel)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, s.fail(ctx, "subscribe", err)
	}
	return ps, nil
}

// startEvents starts the receive loop and the writer of ps, which dialEvents
// subscribed; s.feed.mu must be held.
func (s *Store) startEvents(ps *redis.PubSub) {
	e := &s.feed
	e.ps = ps
	e.heard.Store(monoNow())
	loop, stop := context.WithCancel(context.Background())
	e.stop = stop
	e.wake = make(chan struct{}, 1)
	e.wg.Add(2)
	go e.receive(loop, ps, s.channel)
	go e.write(loop, ps)
}

// receive reads the subscription until ctx ends, and calls the subscribers for each
// event, in order. ReceiveTimeout returns after liveBound of silence, which go-redis
// does not take for a broken connection; any other error is one.
//
// go-redis replaces a broken connection inside the call that failed, before it returns
// the error: it dials, says HELLO and resubscribes, several round trips during which
// EventsLive would still report true. So the loop passes a context that is already
// cancelled, but after an error that may have cost the connection (see broken):
// go-redis reads an open connection without looking at the context (only at its
// deadline, which it has none of), and its dial on a cancelled context fails at once,
// so the error comes back before any retry. EventsLive is false by then, and the next
// call, with the loop's own context, dials and resubscribes. (go-redis v9.23;
// TestEventsLiveKill would catch a change.)
//
// The timeout never cuts a reply short in practice: with a pong due every
// pingInterval, a healthy connection is never silent for liveBound, and a silent one
// is not in the middle of a reply.
func (e *eventFeed) receive(ctx context.Context, ps *redis.PubSub, base string) {
	defer e.wg.Done()
	noRetry, cancel := context.WithCancel(context.Background())
	cancel()
	failures := 0
	// subscribed turns false when the connection breaks, and true when Redis confirms
	// the store's channel on the new one. go-redis subscribes a new connection to every
	// channel in one SUBSCRIBE, which Redis refuses whole when it refuses one channel
	// (an ACL tightened): the new connection then answers PINGs but carries no event,
	// and until the store's channel is confirmed, nothing it sends proves the
	// subscription live. An error after which go-redis keeps the connection (a reply it
	// cannot read) makes subscribed false too. While it is, the pongs show a connection
	// that answers, and every resubscribeEvery the loop has the writer subscribe it to
	// the store's channel and every watched one again, in one SUBSCRIBE that Redis takes
	// whole or not at all (see resubscribe).
	subscribed := true
	var resubscribed int64 // when the loop last did (monoNow)
	// broken is set by an error that may have cost the connection, and cleared by the
	// next reply: only then does the loop read with its own context, with which
	// go-redis may dial. go-redis may also drop the connection on a failed command
	// of the writer's, without a word to the loop; the loop's next read, with the
	// cancelled context, then fails, so the loop knows of every connection go-redis
	// dials, and every reply read with its context may come from a new one.
	broken := false
	awaitPattern := false // the store's channel is confirmed, the pattern not yet
	for {
		rctx := noRetry
		if broken {
			rctx = ctx
		}
		start := time.Now()
		msg, err := ps.ReceiveTimeout(rctx, liveBound)
		if ctx.Err() != nil {
			return // Close
		}
		now := monoNow()
		if rerr := redis.Error(nil); errors.As(err, &rerr) {
			// An error Redis answered: a SUBSCRIBE or PSUBSCRIBE refused (an ACL,
			// say), whose watch its mark then fails (see marked), or, when this read
			// could dial (rctx is ctx), a new connection refused (a password
			// rotated). Neither proves the connection live or broken.
			e.refused(rerr)
			if rctx == noRetry {
				failures = 0
				continue
			}
		}
		if err != nil {
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				e.live(now)
			} else if !errors.As(err, new(redis.Error)) {
				e.heard.Store(0)
				subscribed, resubscribed, broken, awaitPattern = false, now, true, false // go-redis resubscribes a new connection itself
				e.connectionLost()
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
		failures, broken = 0, false
		switch msg := msg.(type) {
		case *redis.Subscription:
			e.subscription(msg.Kind, msg.Channel)
			switch {
			case msg.Kind == "subscribe" && msg.Channel == base:
				// The store's channel again: a resubscription, on a new connection
				// or on this one (see subscribed). Whatever was published between
				// the old subscription's end and now is lost. Redis writes the
				// replies of one SUBSCRIBE with no message between them, so the
				// channels confirmed before this one cost no event. Nothing else
				// subscribes the store's channel again: it is never unsubscribed.
				// With a pattern held, the connection is live once Redis has
				// confirmed the pattern too, in the PSUBSCRIBE that follows.
				e.heard.Store(0)
				awaitPattern = e.patternLive()
				subscribed = !awaitPattern
			case awaitPattern && msg.Kind == "psubscribe" && e.isPattern(msg.Channel):
				subscribed, awaitPattern = true, false
			}
			if !subscribed {
				continue
			}
			e.alive(now)
		case *redis.Pong:
			if subscribed {
				e.alive(now)
			} else if now-resubscribed >= int64(resubscribeEvery) {
				resubscribed = now
				e.resubscribe(base)
			}
			if n, ok := strings.CutPrefix(msg.Payload, markPrefix); ok {
				if mark, err := strconv.ParseUint(n, 10, 64); err == nil {
					e.marked(mark)
				}
			}
		case *redis.Message:
			if !subscribed {
				continue // a connection without the store's channel carries no message
			}
			e.alive(now)
			ev, ok := decodeEvent(msg.Payload)
			if !ok {
				break
			}
			if ev.Kind != store.EventFence {
				e.received.Add(1)
			}
			switch {
			case msg.Pattern != "":
				deliver(&e.subs, ev)
			case msg.Channel == base:
				e.deliver(ev) // a fence, or an event of an earlier version
			default:
				deliver(&e.watched, ev)
			}
		}
	}
}

// alive records that the subscription proved live at now. When it was known not to be
// (heard is 0, or older than liveBound), the subscribers receive store.EventResync
// before heard turns current, so that EventsLive never reports true to someone who has
// not been told to drop what the lost events may have changed.
//
// A pong or a message proves the subscription as well as a confirmation does, once
// Redis confirmed the store's channel on the connection: go-redis subscribes a new
// connection before it sends anything else on it, and Redis answers in order, so the
// confirmation, or the refusal, comes first on a new connection (see receive).
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

// deliver calls every subscriber with ev; only the receive loop calls it.
func (e *eventFeed) deliver(ev store.Event) {
	deliver(&e.watched, ev)
	deliver(&e.subs, ev)
}

// deliver calls the subscribers of list with ev.
func deliver(list *atomic.Pointer[[]*subscriber], ev store.Event) {
	p := list.Load()
	if p == nil {
		return
	}
	for _, sub := range *p {
		if sub.active.Load() {
			sub.fn(ev)
		}
	}
}

// isPattern reports whether name is the pattern's, as Redis's replies name it.
func (e *eventFeed) isPattern(name string) bool {
	e.cmdMu.Lock()
	defer e.cmdMu.Unlock()
	return e.pattern != nil && e.pattern.name == name
}

// patternLive reports whether the pattern subscription was confirmed once.
func (e *eventFeed) patternLive() bool {
	e.cmdMu.Lock()
	defer e.cmdMu.Unlock()
	if e.pattern == nil {
		return false
	}
	select {
	case <-e.pattern.ready:
		return e.pattern.err == nil
	default:
		return false
	}
}

// write sends the subscription's commands, as the changes to watches queue them, and a
// PING every pingInterval as a health check, until ctx ends. The receive loop reads the
// replies. go-redis writes under its own lock, alongside a read in progress; a Redis
// that hangs takes the PING and never answers, which the loop sees as silence.
//
// No command dials: each has a context cancelled before it is sent, as the loop's is
// (see receive), so when there is no connection, or the write fails, go-redis does not
// dial here; the loop's next read fails the same way (see broken in receive), and the
// loop dials. A SUBSCRIBE that fails so has
// its channel in go-redis's list all the same, which the new connection subscribes;
// an UNSUBSCRIBE has dropped it. The writer may still wait for go-redis's lock while
// the loop dials: Watch and Subscribe wait for their mark with their own deadline, not
// for the writer.
//
// Each PING carries the last mark sent: its pong confirms every watch whose own mark
// was lost with a connection, since go-redis subscribed the new one to their channels
// before this PING (see Watch).
func (e *eventFeed) write(ctx context.Context, ps *redis.PubSub) {
	defer e.wg.Done()
	tick := time.NewTicker(pingInterval)
	defer tick.Stop()
	var sent uint64 // the last mark sent
	ping := func() {
		pctx, cancel := noDial()
		_ = ps.Ping(pctx, markPrefix+strconv.FormatUint(sent, 10))
		cancel()
	}
	for {
		health := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			health = true
		case <-e.wake:
		}
		e.cmdMu.Lock()
		queue := e.queue
		e.queue = nil
		e.cmdMu.Unlock()
		for _, c := range queue {
			cctx, cancel := noDial()
			_ = c.send(cctx, ps)
			cancel()
			if c.mark != 0 {
				sent = c.mark
				ping()
			}
		}
		if health {
			ping()
		}
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
	abort := e.abort
	e.mu.Unlock()
	if abort != nil {
		// A first subscription under way: its dial ends if it has not connected, and
		// it closes what it connected once its reads give up (go-redis's reads heed
		// deadlines, not cancellation), unstarted.
		abort()
	}
	e.cmdMu.Lock()
	e.stopped = true
	for _, w := range e.marks {
		w.err = errStoreClosed
		close(w.ready)
	}
	e.marks = nil
	e.cmdMu.Unlock()
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
