package wsauth

import (
	"context"
	"sync"
	"testing"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store/redisstore"
)

// A Join and a Leave of one room on one socket, from two goroutines: when both have
// returned, the socket is a member of the room's topic exactly when the room is in its
// Rooms, so no message reaches it after a Leave that won, and closing it takes it out
// of every topic it is in.
func TestConcurrentJoinLeave(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: testenv.RedisPrefix(t, rdb)})
	defer rs.Close()
	h := &Hub{broker: rs, topics: map[string]*hubTopic{}}
	ctx := context.Background()
	for i := 0; i < 20000; i++ {
		c := &Conn{hub: h, cfg: &Config{QueueSize: 1 << 20}, sending: true} // no writer goroutine: the queue shows what was delivered
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = c.Join(ctx, "arena") }()
		go func() { defer wg.Done(); _ = c.Leave(ctx, "arena") }()
		wg.Wait()
		h.mu.Lock()
		t0 := h.topics[roomTopic("arena")]
		inTopic := t0 != nil && (t0.one == c || t0.many != nil && func() bool { _, ok := t0.many[c]; return ok }())
		inRooms := len(c.rooms) > 0
		h.mu.Unlock()
		if inTopic && !inRooms {
			_ = h.ToRoom(ctx, "arena", []byte("after Leave returned"))
			c.outMu.Lock()
			queued := len(c.out)
			c.outMu.Unlock()
			t.Fatalf("iteration %d: after Join and Leave returned, Rooms()=%v but the socket is still in the room's topic (Topics=%d, never removed by detachConn, which walks c.rooms); a ToRoom sent now queued %d message(s) to it", i, c.Rooms(), h.Stats().Topics, queued)
		}
		// Clean up the legitimate outcome (joined) for the next round.
		_ = c.Leave(ctx, "arena")
	}
}
