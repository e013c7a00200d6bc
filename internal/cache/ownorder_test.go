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

// slowIncr holds an Incr's return after Redis has done it: the first Incr to start
// once a release channel is put in hold returns when it is closed. The Incr takes it
// before it calls Redis, not after: the write's event may reach the test before its
// reply reaches the Incr, and a later Incr must not take the hold meanwhile.
type slowIncr struct {
	store.Store
	hold chan chan struct{}
}

func (s *slowIncr) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	var release chan struct{}
	select {
	case release = <-s.hold:
	default:
	}
	n, err := s.Store.Incr(ctx, id, field, delta)
	if release != nil {
		<-release
	}
	return n, err
}

func reviewSetup(t *testing.T) (*redisstore.Store, *slowIncr, *Store, chan store.Event) {
	rdb := testenv.Redis(t)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: testenv.RedisPrefix(t, rdb)})
	t.Cleanup(func() { rs.Close() })
	slow := &slowIncr{Store: rs, hold: make(chan chan struct{}, 1)}
	c, err := New(slow, time.Hour, Config{})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan store.Event, 16)
	unsub, err := c.Subscribe(func(ev store.Event) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unsub(); c.Close() })
	return rs, slow, c, events
}

// compare waits for the events of the writes still on their way (the cache skips them
// as its own, so they must change nothing), then checks that the cache serves what
// Redis holds.
func compare(t *testing.T, rs *redisstore.Store, c *Store, id string, events chan store.Event, pending int) {
	t.Helper()
	for range pending {
		waitEvent(t, events)
	}
	direct, _ := rs.Load(context.Background(), id, 0)
	got, _ := c.Load(context.Background(), id, 0)
	if got.Fields["n"] != direct.Fields["n"] {
		t.Fatalf("the cache serves n=%q, Redis holds n=%q (hits %d)", got.Fields["n"], direct.Fields["n"], c.Hits.Load())
	}
}

// Redis runs Incr n 0->1, then Save n=0 (a read-modify-write of the record), and the
// Save's reply is handled first: the cache must end holding what Redis holds.
func TestIncrAndSaveOfOneField(t *testing.T) {
	t.Parallel()
	rs, slow, c, events := reviewSetup(t)
	ctx := context.Background()
	id := "cache-review-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := c.Create(ctx, id, store.Record{Fields: map[string]string{"n": "0"}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	slow.hold <- release
	done := make(chan error)
	go func() { _, err := c.Incr(ctx, id, "n", 1); done <- err }()
	waitEvent(t, events) // the Incr is in Redis
	if err := c.Save(ctx, id, store.Change{Set: map[string]string{"n": "0"}}, 0); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	compare(t, rs, c, id, events, 1) // the Save's
}

// Redis runs A = Incr +1 (0->1); a Load reads n=1 and fills; Redis runs B = Incr -1
// (1->0); B's reply is handled before A's: the cache must end holding what Redis holds.
func TestLoadFillBetweenIncrAndReply(t *testing.T) {
	t.Parallel()
	rs, slow, c, events := reviewSetup(t)
	ctx := context.Background()
	id := "cache-review-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := c.Create(ctx, id, store.Record{Fields: map[string]string{"n": "0"}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	slow.hold <- release
	done := make(chan error)
	go func() { _, err := c.Incr(ctx, id, "n", 1); done <- err }()
	waitEvent(t, events) // A is in Redis
	if rec, err := c.Load(ctx, id, 0); err != nil || rec.Fields["n"] != "1" {
		t.Fatal(rec, err)
	}
	if c.Len() != 1 {
		t.Fatal("not filled")
	}
	if _, err := c.Incr(ctx, id, "n", -1); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	compare(t, rs, c, id, events, 1) // B's
}

// Close while Loads start the subscription: no goroutine joins the cache's WaitGroup
// once Close has begun (the race detector and the WaitGroup's own check would say).
func TestStartVsClose(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: testenv.RedisPrefix(t, rdb)})
	defer rs.Close()
	ctx := context.Background()
	for trial := 0; trial < 2000; trial++ {
		c, err := New(rs, time.Hour, Config{})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		for g := 0; g < 4; g++ {
			go func() {
				defer func() { done <- struct{}{} }()
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, _ = c.Load(ctx, "cache-review-missing", 0)
				}
			}()
		}
		c.Close()
		close(stop)
		for g := 0; g < 4; g++ {
			<-done
		}
	}
}

// Capabilities gives the views of From the same hold.
func (s *slowIncr) Capabilities() store.Capabilities {
	caps := s.Store.Capabilities()
	caps.Events = testEvents{Events: caps.Events, wrap: func(v store.Store) store.Store { return &slowIncr{Store: v, hold: s.hold} }}
	return caps
}
