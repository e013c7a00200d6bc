package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/redis/go-redis/v9"
)

// aclServer is a redis-server of the test's own, for the tests that change its ACL:
// the ACL is the server's state, which no test changes on the shared Redis.
type aclServer struct {
	addr  string
	admin *redis.Client // the default user
}

func startACLServer(t *testing.T) *aclServer {
	t.Helper()
	srv := testenv.StartRedis(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { admin.Close() })
	return &aclServer{addr: srv.Addr, admin: admin}
}

// setUser makes user, with password pw, a user allowed every key and command and, of
// the pub/sub channels, those that match one of patterns (ACL patterns: see
// globEscape) only.
func (a *aclServer) setUser(t *testing.T, user, pw string, patterns ...string) {
	t.Helper()
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + pw, "~*", "+@all"}
	for _, p := range patterns {
		args = append(args, "&"+p)
	}
	if err := a.admin.Do(t.Context(), args...).Err(); err != nil {
		t.Fatal(err)
	}
}

// client returns a client that logs in as user, closed when t ends.
func (a *aclServer) client(t *testing.T, user, pw string, opts ...func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: a.addr, Username: user, Password: pw}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// kill drops user's connections, as Redis drops a subscriber whose channels its ACL
// no longer allows.
func (a *aclServer) kill(t *testing.T, user string) {
	t.Helper()
	if err := a.admin.Do(t.Context(), "CLIENT", "KILL", "USER", user).Err(); err != nil {
		t.Fatal(err)
	}
}

// waitLive waits for s.EventsLive to report want, failing after limit.
func waitLive(t *testing.T, s *Store, want bool, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); s.EventsLive() != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("EventsLive: want %v within %v", want, limit)
		}
	}
}

// staysNotLive fails if s.EventsLive reports true within d.
func staysNotLive(t *testing.T, s *Store, d time.Duration, while string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if s.EventsLive() {
			t.Fatalf("EventsLive %s: want false", while)
		}
	}
}

// drain empties l, and fails on a resync in it when noResync is set.
func drain(t *testing.T, l eventLog, noResync string) {
	t.Helper()
	for len(l) > 0 {
		if ev := <-l; ev.Kind == store.EventResync && noResync != "" {
			t.Error(noResync)
		}
	}
}

// subscribeWatched subscribes a log of the watched sessions' events to s.
func subscribeWatched(t *testing.T, s *Store) eventLog {
	t.Helper()
	l := make(eventLog, 1024)
	unsub, err := s.SubscribeWatched(l.receive)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
	return l
}

// TestWatchRefused runs a store as a Redis user whose ACL allows the store's channel
// and one session's channel only, and checks that a Watch of another session fails
// with Redis's refusal rather than succeed unheard, without costing the subscription
// its health (no resync, EventsLive still true); that the allowed session's events
// still flow; and that a Subscribe refused for the pattern succeeds once the ACL
// allows it.
func TestWatchRefused(t *testing.T) {
	t.Parallel()
	a := startACLServer(t)
	prefix := newPrefix()
	writer := newStore(t, a.admin, Config{Prefix: prefix})
	idAllowed, hashAllowed := createSession(t, writer)
	_, hashDenied := createSession(t, writer)
	base := globEscape(prefix + "events")
	a.setUser(t, "limited", "pw", base, globEscape(prefix+"events:"+hashAllowed))
	s := newStore(t, a.client(t, "limited", "pw"), Config{Prefix: prefix, SubscribeTimeout: 20 * time.Second})
	l := subscribeWatched(t, s)

	refused := func(what string, err error) {
		t.Helper()
		var rerr redis.Error
		if !errors.As(err, &rerr) || !strings.Contains(err.Error(), "NOPERM") {
			t.Fatalf("%s: want Redis's NOPERM refusal; got %v", what, err)
		}
	}
	for i := range 2 { // the second sends its SUBSCRIBE again, and is refused again
		start := time.Now()
		_, _, err := s.Watch(t.Context(), hashDenied)
		refused(fmt.Sprintf("Watch %d of a session the ACL denies", i+1), err)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("refused Watch took %v: it must not wait for the timeout", took)
		}
	}
	// Each refusal, taken for a broken connection, would cost a resync; one may come
	// of a stall of over a second on a loaded machine.
	resyncs := 0
	for len(l) > 0 {
		if ev := <-l; ev.Kind == store.EventResync {
			resyncs++
		}
	}
	if resyncs > 1 {
		t.Errorf("resyncs after two refused Watches: want none; got %d", resyncs)
	}
	waitLive(t, s, true, 2*time.Second)
	unwatch, _, err := s.Watch(t.Context(), hashAllowed)
	if err != nil {
		t.Fatalf("Watch of the allowed session after a refusal: %v", err)
	}
	defer unwatch()
	save(t, writer, idAllowed, 1)
	if ev := l.next(t, 5*time.Second); ev.Hash != hashAllowed {
		t.Fatalf("want the allowed session's event; got %+v", ev)
	}

	_, err = s.Subscribe(func(store.Event) {})
	refused("Subscribe with the pattern denied", err)
	a.setUser(t, "limited", "pw", base, base+":*")
	all := make(eventLog, 1024)
	unsubAll, err := s.Subscribe(all.receive)
	if err != nil {
		t.Fatalf("Subscribe once the ACL allows the pattern: %v", err)
	}
	defer unsubAll()
	save(t, writer, idAllowed, 2)
	if ev := all.next(t, 5*time.Second); ev.Hash != hashAllowed {
		t.Fatalf("Subscribe: want the session's event; got %+v", ev)
	}
}

// TestEventsRefusedRedial changes the password of the store's Redis user and kills its
// subscription, so that every dial of a new one is refused (WRONGPASS, an error Redis
// answers): events must stay not live, without a resync, and the loop must keep
// spacing its dials out rather than take the refusal for a reply on a live connection.
// With the password back, events are live again.
func TestEventsRefusedRedial(t *testing.T) {
	t.Parallel()
	a := startACLServer(t)
	a.setUser(t, "rotated", "pw", "*")
	var dials atomic.Int64
	c := a.client(t, "rotated", "pw", func(o *redis.Options) {
		o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	s := newStore(t, c, Config{})
	l := subscribeWatched(t, s)
	waitLive(t, s, true, 5*time.Second)

	a.setUser(t, "rotated", "pw2", "*")
	a.kill(t, "rotated")
	waitLive(t, s, false, 5*time.Second)
	drain(t, l, "")
	before := dials.Load()
	staysNotLive(t, s, time.Second, "while every dial is refused")
	if n := dials.Load() - before; n > 30 {
		t.Errorf("dials in a second while each is refused: want them spaced out (about %v apart); got %d", retryDelay, n)
	}
	drain(t, l, "a resync while every dial is refused: the refusal was taken for a live connection")

	a.setUser(t, "rotated", "pw", "*")
	waitLive(t, s, true, 5*time.Second)
}

// TestEventsACLNarrowed takes one watched session's channel out of the store's Redis
// user's ACL. Redis drops the subscription, and go-redis's resubscription of every
// channel, refused whole, leaves a connection that answers PINGs and carries no event:
// events must stay not live, even when a Watch of a channel the ACL still allows is
// confirmed on it, and must be live again, the watched sessions' events flowing, once
// the ACL allows the channel again.
func TestEventsACLNarrowed(t *testing.T) {
	t.Parallel()
	a := startACLServer(t)
	prefix := newPrefix()
	writer := newStore(t, a.admin, Config{Prefix: prefix})
	idA, hashA := createSession(t, writer)
	_, hashB := createSession(t, writer)
	_, hashC := createSession(t, writer)
	base := prefix + "events"
	allow := func(hashes ...string) {
		t.Helper()
		patterns := []string{globEscape(base)}
		for _, h := range hashes {
			patterns = append(patterns, globEscape(base+":"+h))
		}
		a.setUser(t, "narrowed", "pw", patterns...)
	}
	allow(hashA, hashB, hashC)
	s := newStore(t, a.client(t, "narrowed", "pw"), Config{Prefix: prefix})
	l := subscribeWatched(t, s)
	for _, h := range []string{hashA, hashB} {
		unwatch, _, err := s.Watch(t.Context(), h)
		if err != nil {
			t.Fatal(err)
		}
		defer unwatch()
	}

	allow(hashA, hashC)
	a.kill(t, "narrowed")
	waitLive(t, s, false, 5*time.Second)
	// A Watch of the allowed channel is confirmed on the connection, once go-redis has
	// one (a Watch while it redials fails with the resubscription): the confirmation
	// of a channel is not the store's channel's.
	var unwatchC func()
	for deadline := time.Now().Add(5 * time.Second); unwatchC == nil; {
		u, _, err := s.Watch(t.Context(), hashC)
		if err == nil {
			unwatchC = u
		} else if time.Now().After(deadline) {
			t.Fatalf("Watch of a channel the ACL allows, on the connection without the store's channel: %v", err)
		}
	}
	defer unwatchC()
	staysNotLive(t, s, 1500*time.Millisecond, "on a connection whose resubscription Redis refused")
	if n := channelSubscribers(t, a.admin, base); n != 0 {
		t.Errorf("subscribers of the store's channel after the refused resubscription: want 0; got %d", n)
	}

	allow(hashA, hashB, hashC)
	waitLive(t, s, true, 5*time.Second)
	drain(t, l, "")
	save(t, writer, idA, 1)
	if ev := l.next(t, 5*time.Second); ev.Hash != hashA {
		t.Fatalf("after the ACL allows the channel again: want the watched session's event; got %+v", ev)
	}
}

// TestEventsPatternNarrowed takes the pattern of every session's channel out of the
// ACL of a store that a Subscribe subscribed to it: Redis drops the subscription, and
// on the new connection go-redis's SUBSCRIBE of the store's channel succeeds and its
// PSUBSCRIBE is refused. Subscribe's subscribers would miss every event, so events must
// stay not live until the ACL allows the pattern again, and then every session's
// events must reach them.
func TestEventsPatternNarrowed(t *testing.T) {
	t.Parallel()
	a := startACLServer(t)
	prefix := newPrefix()
	writer := newStore(t, a.admin, Config{Prefix: prefix})
	id, hash := createSession(t, writer)
	base := globEscape(prefix + "events")
	a.setUser(t, "patterned", "pw", base, base+":*")
	s := newStore(t, a.client(t, "patterned", "pw"), Config{Prefix: prefix})
	all := make(eventLog, 1024)
	unsub, err := s.Subscribe(all.receive)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	waitLive(t, s, true, 5*time.Second)

	a.setUser(t, "patterned", "pw", base)
	a.kill(t, "patterned")
	waitLive(t, s, false, 5*time.Second)
	staysNotLive(t, s, 1500*time.Millisecond, "with the pattern refused on the new connection")

	a.setUser(t, "patterned", "pw", base, base+":*")
	waitLive(t, s, true, 5*time.Second)
	drain(t, all, "")
	save(t, writer, id, 1)
	if ev := all.next(t, 5*time.Second); ev.Hash != hash {
		t.Fatalf("after the ACL allows the pattern again: want the session's event; got %+v", ev)
	}
}
