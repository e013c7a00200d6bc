package redisstore

import (
	"context"
	"crypto/rand"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
	"github.com/redis/go-redis/v9"
)

// eventLog collects the events a subscriber receives, in order.
type eventLog chan store.Event

func (l eventLog) receive(ev store.Event) {
	select {
	case l <- ev:
	default: // a test that lets 1024 events pile up fails on what it misses
	}
}

// next returns the next event other than a resync, failing after limit.
func (l eventLog) next(t *testing.T, limit time.Duration) store.Event {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case ev := <-l:
			if ev.Kind == store.EventResync || ev.Kind == store.EventFence {
				continue
			}
			return ev
		case <-timer.C:
			t.Fatalf("no event within %v", limit)
			return store.Event{}
		}
	}
}

// createSession creates a session through s and returns its id and hash.
func createSession(t *testing.T, s *Store) (id, hash string) {
	t.Helper()
	id = "id-" + rand.Text()
	if err := s.Create(t.Context(), id, store.Record{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	return id, store.Hash(id)
}

func save(t *testing.T, s *Store, id string, i int) {
	t.Helper()
	if err := s.Save(t.Context(), id, store.Change{Set: map[string]string{"i": strconv.Itoa(i)}}, 0); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

// TestWatchRoutesEvents checks that a process receives, through SubscribeWatched, the
// events of the sessions it watches and none of the others', while Subscribe still
// receives all of them; that watches of one session share a subscription, counted;
// and that unwatch stops the events. A writer in another store is the other process.
// On one node, events reach the connection in the order of their writes, so each
// check is a barrier for the ones before it.
func TestWatchRoutesEvents(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	prefix := newPrefix()
	writer := newStore(t, c, Config{Prefix: prefix})
	reader := newStore(t, c, Config{Prefix: prefix})
	watched, all := make(eventLog, 1024), make(eventLog, 1024)
	unsub, err := reader.SubscribeWatched(watched.receive)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	idA, hashA := createSession(t, writer)
	idB, hashB := createSession(t, writer)

	unwatch1, since, err := reader.Watch(t.Context(), hashA)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if since.IsZero() || time.Since(since) > 5*time.Second {
		t.Errorf("Watch since: want a recent time; got %v", since)
	}
	unwatch2, _, err := reader.Watch(t.Context(), hashA)
	if err != nil {
		t.Fatalf("second Watch: %v", err)
	}
	if n := channelSubscribers(t, c, reader.eventChannel(hashA)); n != 1 {
		t.Errorf("subscribers of the watched channel after two watches: want 1; got %d", n)
	}

	save(t, writer, idB, 1)
	save(t, writer, idA, 1)
	if ev := watched.next(t, 5*time.Second); ev.Hash != hashA || ev.Kind != store.EventChanged {
		t.Fatalf("first watched event: want a change of %s; got %+v", hashA[:8], ev)
	}
	if got := reader.EventsReceived(); got != 1 {
		t.Errorf("EventsReceived with one session watched, after one write of it and one of another: want 1; got %d", got)
	}

	unwatch1()
	unwatch1() // twice is once
	save(t, writer, idA, 2)
	if ev := watched.next(t, 5*time.Second); ev.Hash != hashA {
		t.Fatalf("after one of two unwatches: want the event of %s; got %+v", hashA[:8], ev)
	}

	unwatch2()
	// The Watch below waits for a PING sent after the UNSUBSCRIBE on the same
	// connection: once it returns, Redis has run both.
	unwatchB, _, err := reader.Watch(t.Context(), hashB)
	if err != nil {
		t.Fatal(err)
	}
	defer unwatchB()
	if n := channelSubscribers(t, c, reader.eventChannel(hashA)); n != 0 {
		t.Errorf("subscribers of the channel after the last unwatch: want 0; got %d", n)
	}
	save(t, writer, idA, 3)
	save(t, writer, idB, 2)
	if ev := watched.next(t, 5*time.Second); ev.Hash != hashB {
		t.Fatalf("after the last unwatch of %s: want the event of %s first; got %+v", hashA[:8], hashB[:8], ev)
	}

	// Subscribe receives every session's events, once each, and SubscribeWatched
	// still only the watched ones.
	unsubAll, err := reader.Subscribe(all.receive)
	if err != nil {
		t.Fatal(err)
	}
	defer unsubAll()
	save(t, writer, idA, 4)
	save(t, writer, idB, 3)
	if ev := all.next(t, 5*time.Second); ev.Hash != hashA {
		t.Fatalf("Subscribe: want the event of %s; got %+v", hashA[:8], ev)
	}
	if ev := all.next(t, 5*time.Second); ev.Hash != hashB {
		t.Fatalf("Subscribe: want the event of %s; got %+v", hashB[:8], ev)
	}
	if ev := watched.next(t, 5*time.Second); ev.Hash != hashB {
		t.Fatalf("SubscribeWatched beside Subscribe: want the event of %s; got %+v", hashB[:8], ev)
	}
	select {
	case ev := <-all:
		if ev.Kind != store.EventResync {
			t.Errorf("Subscribe: an event more than the writes: %+v", ev)
		}
	case <-time.After(100 * time.Millisecond):
	}
}

// TestWatchOldPublisher checks that an event published on the store's own channel, as
// versions before the channels per session did, reaches both kinds of subscriber: a
// fleet that upgrades one process at a time keeps its new processes informed.
func TestWatchOldPublisher(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := newStore(t, c, Config{})
	watched, all := make(eventLog, 16), make(eventLog, 16)
	unsubW, err := s.SubscribeWatched(watched.receive)
	if err != nil {
		t.Fatal(err)
	}
	defer unsubW()
	unsubA, err := s.Subscribe(all.receive)
	if err != nil {
		t.Fatal(err)
	}
	defer unsubA()
	hash := store.Hash("id-" + rand.Text())
	if err := c.Publish(t.Context(), s.channel, encodeEvent(time.Now(), store.EventDeleted, hash, "")).Err(); err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]eventLog{"SubscribeWatched": watched, "Subscribe": all} {
		if ev := l.next(t, 5*time.Second); ev.Hash != hash || ev.Kind != store.EventDeleted {
			t.Errorf("%s: want the deletion of %s; got %+v", name, hash[:8], ev)
		}
	}
}

// TestWatchAfterKill kills the store's pub/sub connection and checks that the watched
// sessions' events flow again after the resync, without a new Watch: go-redis
// subscribes the new connection to every channel, and a Watch made while the
// connection is down is confirmed once it is back.
func TestWatchAfterKill(t *testing.T) {
	t.Parallel()
	name := "mpsession-test-" + rand.Text()
	c := newClient(t, func(o *redis.Options) { o.ClientName = name })
	admin := newClient(t)
	prefix := newPrefix()
	s := newStore(t, c, Config{Prefix: prefix})
	writer := newStore(t, newClient(t), Config{Prefix: prefix})
	l := subscribeWatched(t, s)
	id, hash := createSession(t, writer)
	unwatch, _, err := s.Watch(t.Context(), hash)
	if err != nil {
		t.Fatal(err)
	}
	defer unwatch()
	save(t, writer, id, 1)
	l.next(t, 5*time.Second)

	conns := pubsubConns(t, admin, name)
	if len(conns) != 1 {
		t.Fatalf("pub/sub connections named %s: want 1; got %d", name, len(conns))
	}
	if err := admin.Do(t.Context(), "CLIENT", "KILL", "ID", conns[0], "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	// A second session watched right after the kill: its Watch returns once the
	// subscription is back.
	id2, hash2 := createSession(t, writer)
	unwatch2, _, err := s.Watch(t.Context(), hash2)
	if err != nil {
		t.Fatalf("Watch during the reconnection: %v", err)
	}
	defer unwatch2()
	resynced := false
	deadline := time.Now().Add(10 * time.Second)
	for !resynced && time.Now().Before(deadline) {
		select {
		case ev := <-l:
			resynced = ev.Kind == store.EventResync
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !resynced {
		t.Fatal("no resync within 10s of the kill")
	}
	for !s.EventsLive() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	save(t, writer, id, 2)
	save(t, writer, id2, 1)
	for _, want := range []string{hash, hash2} {
		if ev := l.next(t, 5*time.Second); ev.Hash != want {
			t.Fatalf("after the kill: want the event of %s; got %+v", want[:8], ev)
		}
	}
}

// TestWatchErrors checks Watch's refusals: a hash that is none, a store closed, and a
// context that ends first.
func TestWatchErrors(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := newStore(t, c, Config{})
	if _, _, err := s.Watch(t.Context(), "not-a-hash"); err == nil {
		t.Error("Watch of an invalid hash: want an error; got nil")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := s.Watch(ctx, store.Hash("x")); err == nil {
		t.Error("Watch with a cancelled context: want an error; got nil")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Watch(t.Context(), store.Hash("y")); err == nil {
		t.Error("Watch after Close: want an error; got nil")
	}
	if _, err := s.SubscribeWatched(func(store.Event) {}); err == nil {
		t.Error("SubscribeWatched after Close: want an error; got nil")
	}
}

// channelSubscribers returns PUBSUB NUMSUB of channel.
func channelSubscribers(t *testing.T, c *redis.Client, channel string) int64 {
	t.Helper()
	m, err := c.PubSubNumSub(t.Context(), channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m[channel]
}

// TestWatchDuringDial kills the store's pub/sub connection and holds the receive loop's
// dial of a new one, during which go-redis's lock of the subscription is taken, and
// checks that a Watch meanwhile ends with its context rather than wait for the dial;
// and that once the dial completes, watches succeed and their events flow.
func TestWatchDuringDial(t *testing.T) {
	t.Parallel()
	name := "mpsession-test-" + rand.Text()
	var hang atomic.Bool
	dialing := make(chan struct{}, 1)
	release := make(chan struct{})
	c := newClient(t, func(o *redis.Options) {
		o.ClientName = name
		o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if hang.Load() {
				if ctx.Err() != nil {
					// The dial go-redis tries inside the read that failed, with the
					// loop's cancelled context: not the one that holds the lock.
					return nil, ctx.Err()
				}
				select {
				case dialing <- struct{}{}:
				default:
				}
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	admin := newClient(t)
	prefix := newPrefix()
	s := newStore(t, c, Config{Prefix: prefix})
	writer := newStore(t, newClient(t), Config{Prefix: prefix})
	l := subscribeWatched(t, s)

	hang.Store(true)
	released := sync.OnceFunc(func() { hang.Store(false); close(release) })
	defer released()
	conns := pubsubConns(t, admin, name)
	if len(conns) != 1 {
		t.Fatalf("pub/sub connections named %s: want 1; got %d", name, len(conns))
	}
	if err := admin.Do(t.Context(), "CLIENT", "KILL", "ID", conns[0], "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dialing:
	case <-time.After(10 * time.Second):
		t.Fatal("the receive loop did not dial within 10s of the kill")
	}
	// The writer's next PING now waits for go-redis's lock, which the dial holds.
	time.Sleep(2 * pingInterval)
	_, hash := createSession(t, writer)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := s.Watch(ctx, hash)
	if took := time.Since(start); err == nil || took > 2*time.Second {
		t.Fatalf("Watch while the subscription dials: want its context's error within 2s; got %v after %v", err, took)
	}

	released()
	id2, hash2 := createSession(t, writer)
	unwatch, _, err := s.Watch(t.Context(), hash2)
	if err != nil {
		t.Fatalf("Watch after the dial: %v", err)
	}
	defer unwatch()
	save(t, writer, id2, 1)
	if ev := l.next(t, 5*time.Second); ev.Hash != hash2 {
		t.Fatalf("after the dial: want the event of %s; got %+v", hash2[:8], ev)
	}
}

// injectConn is a connection to Redis into whose reads a test slips frames of its own,
// as a proxy or a server with a bug might send them.
type injectConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
}

func (c *injectConn) inject(frame string) {
	c.mu.Lock()
	c.pending = append(c.pending, frame...)
	c.mu.Unlock()
}

// Read returns what was injected first. go-redis reads the subscription only when it
// has no reply buffered, so on an idle connection the frame lands between two replies.
func (c *injectConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// TestEventsUnreadableReply slips a reply go-redis cannot read (a message whose
// payload is a number) into the subscription, which makes the read fail while go-redis
// keeps the connection: events turn not live, and must come back, with a resync, once
// the loop has Redis confirm the store's channel again on the connection it kept.
func TestEventsUnreadableReply(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var conns []*injectConn
	c := newClient(t, func(o *redis.Options) {
		o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			ic := &injectConn{Conn: nc}
			mu.Lock()
			conns = append(conns, ic)
			mu.Unlock()
			return ic, nil
		}
	})
	s := newStore(t, c, Config{})
	l := subscribeWatched(t, s)
	mu.Lock()
	before := len(conns)
	ps := conns[len(conns)-1] // the subscription dialed last
	mu.Unlock()
	for len(l) > 0 {
		<-l
	}
	ps.inject(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n:5\r\n")
	resynced := false
	for deadline := time.Now().Add(5 * time.Second); !resynced; {
		select {
		case ev := <-l:
			resynced = ev.Kind == store.EventResync
		case <-time.After(time.Until(deadline)):
			t.Fatal("no resync within 5s of an unreadable reply")
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !s.EventsLive(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("EventsLive after an unreadable reply: want true again within 5s")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != before {
		t.Errorf("connections dialed after the unreadable reply: want none (go-redis keeps the connection); got %d", len(conns)-before)
	}
}

// TestWatchTimeoutConcurrent starts several first Watches at once against a Redis that
// accepts connections and never answers: each must end within its own
// SubscribeTimeout, not wait for the others' attempts to subscribe the store one after
// another.
func TestWatchTimeoutConcurrent(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	s, hung := hungStore(t, timeout)
	const n = 4
	took := make(chan time.Duration, n)
	start := time.Now()
	for i := range n {
		go func() {
			if _, _, err := s.Watch(context.Background(), store.Hash(strconv.Itoa(i))); err == nil {
				t.Error("Watch on a hung Redis: want an error; got nil")
			}
			took <- time.Since(start)
		}()
	}
	for range n {
		if d := <-took; d > 3*timeout {
			t.Errorf("a Watch of %d at once on a hung Redis with SubscribeTimeout %v took %v", n, timeout, d)
		}
	}
	hung.Close()
}

// TestCloseDuringFirstSubscribe closes a store while its first Watch waits for a Redis
// that accepts connections and never answers: Close returns at once, the Watch fails
// by its SubscribeTimeout, and the connection it made is closed, its goroutines never
// started (goleak, in TestMain, would see them).
func TestCloseDuringFirstSubscribe(t *testing.T) {
	t.Parallel()
	s, hung := hungStore(t, time.Second)
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Watch(context.Background(), store.Hash("first"))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the Watch is dialing, or about to
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Close during the first subscription took %v", took)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("a Watch during the store's Close: want an error; got nil")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the Watch did not end within 5s of Close, with a SubscribeTimeout of 1s")
	}
	hung.Close()
}
