package wsauth

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
)

// failOnce fails the next Listen when armed, else listens through Redis.
type failOnce struct {
	store.Broker
	armed atomic.Bool
}

func (f *failOnce) Listen(topic string, fn func([]byte)) (func(), error) {
	if f.armed.CompareAndSwap(true, false) {
		runtime.Gosched()
		return nil, errors.New("listen failed")
	}
	return f.Broker.Listen(topic, fn)
}

// Two Joins of one room on one socket; the first Listen fails. When one of them
// returned nil and no Leave was called, the socket is in the room.
func TestJoinAfterAFailedJoin(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: testenv.RedisPrefix(t, rdb)})
	defer rs.Close()
	b := &failOnce{Broker: rs}
	h := &Hub{broker: b, topics: map[string]*hubTopic{}}
	ctx := context.Background()
	for i := 0; i < 5000; i++ {
		c := &Conn{hub: h, cfg: &Config{QueueSize: 1 << 20}, sending: true}
		b.armed.Store(true)
		var wg sync.WaitGroup
		var errA, errB error
		wg.Add(2)
		go func() { defer wg.Done(); errA = c.Join(ctx, "arena") }()
		go func() { defer wg.Done(); errB = c.Join(ctx, "arena") }()
		wg.Wait()
		if errA == nil || errB == nil {
			if rooms := c.Rooms(); len(rooms) == 0 {
				t.Fatalf("iteration %d: Join returned nil (errA=%v errB=%v) and no Leave was called, but Rooms()=%v, Topics=%d", i, errA, errB, rooms, h.Stats().Topics)
			}
		}
		_ = c.Leave(ctx, "arena")
	}
}
