package cache

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
)

// slowReply holds a Save's return after Redis has done it: the goroutine that made the
// write is descheduled between reading the reply and updating the cache.
type slowReply struct {
	store.Store
	hold chan chan struct{}
}

func (s *slowReply) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	err := s.Store.Save(ctx, id, ch, idle)
	select {
	case release := <-s.hold:
		<-release
	default:
	}
	return err
}

// Own write A (v=mine) is done by Redis; another process's write B (v=theirs) follows,
// its event reaches this process and drops the entry; a Load fills the entry with
// v=theirs; only then does A's Save return. The cache must not apply A over the newer
// value (no event would correct it: A's is skipped by origin, B's was consumed).
func TestOwnWriteAppliedOverNewerRemoteWrite(t *testing.T) {
	t.Parallel()
	rdbA, rdbB := testenv.Redis(t), testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdbA)
	rsA := redisstore.New(rdbA, redisstore.Config{Prefix: prefix})
	defer rsA.Close()
	rsB := redisstore.New(rdbB, redisstore.Config{Prefix: prefix}) // another process
	defer rsB.Close()
	slow := &slowReply{Store: rsA, hold: make(chan chan struct{}, 1)}
	c, err := New(slow, time.Hour, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	events := make(chan store.Event, 16)
	unsub, err := c.Subscribe(func(ev store.Event) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	ctx := context.Background()
	id := "cache-test-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := c.Create(ctx, id, store.Record{Fields: map[string]string{"v": "start"}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	slow.hold <- release
	saved := make(chan error)
	go func() { saved <- c.Save(ctx, id, store.Change{Set: map[string]string{"v": "mine"}}, 0) }()
	// A is in Redis (its event, skipped by the cache as its own, is passed on).
	waitEvent(t, events)
	if err := rsB.Save(ctx, id, store.Change{Set: map[string]string{"v": "theirs"}}, 0); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events) // B's event reached this process and dropped the entry
	if rec, err := c.Load(ctx, id, 0); err != nil || rec.Fields["v"] != "theirs" {
		t.Fatalf("want theirs; got %v, %v", rec, err)
	}
	close(release)
	if err := <-saved; err != nil {
		t.Fatal(err)
	}
	direct, _ := rsA.Load(ctx, id, 0)
	got, _ := c.Load(ctx, id, 0)
	if got.Fields["v"] != direct.Fields["v"] {
		t.Fatalf("events live=%v: the cache serves v=%q, Redis holds v=%q (hits %d)", rsA.EventsLive(), got.Fields["v"], direct.Fields["v"], c.Hits.Load())
	}
}

func waitEvent(t *testing.T, events chan store.Event) {
	t.Helper()
	select {
	case <-events:
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
}

// Capabilities gives the views of From the same hold.
func (s *slowReply) Capabilities() store.Capabilities {
	caps := s.Store.Capabilities()
	caps.Events = testEvents{Events: caps.Events, wrap: func(v store.Store) store.Store { return &slowReply{Store: v, hold: s.hold} }}
	return caps
}
