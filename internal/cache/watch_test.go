package cache

import (
	"context"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// TestCacheWatchesWhatItHolds checks that over redisstore the cache receives the events
// of the sessions it loaded and no other, keeps the watches of MaxEntries sessions, and
// forgets a session whose watch it let go: another process's write to it reaches the
// cache no more, and the next Load reads the store and watches it again.
func TestCacheWatchesWhatItHolds(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdb)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	defer rs.Close()
	writer := redisstore.New(testenv.Redis(t), redisstore.Config{Prefix: prefix})
	defer writer.Close()
	c, err := New(rs, time.Hour, Config{MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	watcher, ok := c.Capabilities().Events.(store.Watcher)
	if !ok {
		t.Fatal("the cache's events over redisstore: want a store.Watcher")
	}
	events := make(chan store.Event, 64)
	unsubscribe, err := watcher.SubscribeWatched(func(ev store.Event) {
		if ev.Kind == store.EventChanged {
			events <- ev
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe()
	waitServing(t, c)
	ctx := context.Background()
	ids := []string{"watch-1-" + prefix, "watch-2-" + prefix, "watch-3-" + prefix}
	for _, id := range ids {
		if err := writer.Create(ctx, id, store.Record{Fields: map[string]string{"v": "0"}}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	subscribers := func(id string) int64 { return sessionSubscribers(t, rdb, prefix, id) }
	set := func(id, v string) {
		t.Helper()
		if err := writer.Save(ctx, id, store.Change{Set: map[string]string{"v": v}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	next := func() store.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5s")
			return store.Event{}
		}
	}
	load := func(id string) string {
		t.Helper()
		rec, err := c.Load(ctx, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Fields["v"]
	}

	load(ids[0])
	load(ids[1])
	if a, b, none := subscribers(ids[0]), subscribers(ids[1]), subscribers(ids[2]); a != 1 || b != 1 || none != 0 {
		t.Fatalf("subscribers of the sessions' channels after loading two: want 1, 1, 0; got %d, %d, %d", a, b, none)
	}
	set(ids[2], "1") // not held: no event
	set(ids[0], "1")
	if ev := next(); ev.Hash != store.Hash(ids[0]) {
		t.Fatalf("want the event of the first session first; got %+v", ev)
	}
	if v := load(ids[0]); v != "1" {
		t.Fatalf("first session after another process's write: want v=1; got %q", v)
	}

	// A third session takes the place of the least recently loaded one, the second.
	load(ids[2])
	// A Watch waits for a PING sent after the UNSUBSCRIBE of the evicted watch, on the
	// same connection: once it returns, Redis has run both.
	unwatch, _, err := rs.Watch(ctx, store.Hash("barrier"+prefix))
	if err != nil {
		t.Fatal(err)
	}
	unwatch()
	if n := subscribers(ids[1]); n != 0 {
		t.Fatalf("subscribers of the evicted session's channel: want 0; got %d", n)
	}
	hits := c.Hits.Load()
	set(ids[1], "2") // no longer held: no event, and no entry to drop
	set(ids[2], "2")
	if ev := next(); ev.Hash != store.Hash(ids[2]) {
		t.Fatalf("after the second session's watch ended: want the third's event first; got %+v", ev)
	}
	if v := load(ids[1]); v != "2" {
		t.Fatalf("evicted session: want the store's v=2; got %q", v)
	}
	if c.Hits.Load() != hits {
		t.Error("the evicted session's Load was a hit; want a miss")
	}
	if n := subscribers(ids[1]); n != 1 {
		t.Errorf("subscribers of the session loaded again: want 1; got %d", n)
	}

	// Close lets every watch go.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	unwatch, _, err = rs.Watch(ctx, store.Hash("barrier2"+prefix))
	if err != nil {
		t.Fatal(err)
	}
	unwatch()
	for _, id := range ids {
		if n := subscribers(id); n != 0 {
			t.Errorf("subscribers of %s after Close: want 0; got %d", id, n)
		}
	}
}

// TestCacheHitKeepsWatch checks that a session read from memory keeps its watch ahead
// of sessions loaded since: of two watched sessions, the one hit last is not the one a
// third session's load evicts, and stays cached.
func TestCacheHitKeepsWatch(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdb)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	defer rs.Close()
	// A MaxLag of an hour: a fence late under load must not turn a hit into a bypass.
	c, err := New(rs, time.Hour, Config{MaxEntries: 2, MaxLag: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.keepEvery = 0 // every hit moves its watch: the test needs no wait
	waitServing(t, c)
	ctx := context.Background()
	ids := []string{"keep-1-" + prefix, "keep-2-" + prefix, "keep-3-" + prefix}
	for _, id := range ids {
		if err := rs.Create(ctx, id, store.Record{}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	load := func(id string) {
		t.Helper()
		if _, err := c.Load(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	load(ids[0])
	load(ids[1])
	waitServing(t, c) // a Load served while events are live: a stall could make it a bypass
	hits := c.Hits.Load()
	load(ids[0])
	if c.Hits.Load() != hits+1 {
		t.Fatal("the first session's second Load: want a hit")
	}
	load(ids[2])                                                   // evicts the least recently used watch: the second session's
	unwatch, _, err := rs.Watch(ctx, store.Hash("barrier"+prefix)) // Redis has run the UNSUBSCRIBE
	if err != nil {
		t.Fatal(err)
	}
	unwatch()
	subscribers := func(id string) int64 { return sessionSubscribers(t, rdb, prefix, id) }
	if a, b := subscribers(ids[0]), subscribers(ids[1]); a != 1 || b != 0 {
		t.Fatalf("subscribers of the hit session and of the one loaded once: want 1, 0; got %d, %d", a, b)
	}
	waitServing(t, c)
	hits = c.Hits.Load()
	load(ids[0])
	if c.Hits.Load() != hits+1 {
		t.Error("the session hit before the eviction: want it still cached")
	}
}

// waitServing waits for c to serve from memory, failing after 10 s.
func waitServing(t *testing.T, c *Store) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !c.Serving(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the cache does not serve from memory within 10s")
		}
	}
}

// sessionSubscribers returns how many connections are subscribed to the events channel
// of the session id, under prefix.
func sessionSubscribers(t *testing.T, rdb *redis.Client, prefix, id string) int64 {
	t.Helper()
	ch := prefix + "events:" + store.Hash(id)
	n, err := rdb.PubSubNumSub(t.Context(), ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[ch]
}
