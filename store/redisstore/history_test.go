package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
)

// TestHistoryAcrossRestarts: a Redis that comes back with its data (an append-only
// file) keeps every history; one that comes back empty has lost them, and Since says
// so: the callers resync instead of missing messages without a word.
func TestHistoryAcrossRestarts(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	st := redisstore.New(rdb)
	t.Cleanup(func() { _ = st.Close() })
	h := st.Capabilities().History
	keep := store.Retention{Size: 100, Age: time.Minute}
	ctx := context.Background()
	since := func(after store.Position) ([]store.Kept, store.Position, bool) {
		t.Helper()
		var (
			msgs     []store.Kept
			last     store.Position
			complete bool
			err      error
		)
		// The client reconnects after a restart: retry until Redis answers.
		for deadline := time.Now().Add(10 * time.Second); ; {
			if msgs, last, complete, err = h.Since(ctx, "room", after, 10); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("Since(%v): %v", after, err)
		}
		return msgs, last, complete
	}

	first, err := h.PublishKept(ctx, "room", []byte("one"), keep)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.PublishKept(ctx, "room", []byte("two"), keep); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	srv.Start(t)
	if msgs, _, complete := since(first); !complete || len(msgs) != 1 || string(msgs[0].Msg) != "two" {
		t.Errorf("after a restart with the data: want [two], complete; got %d messages, complete %v", len(msgs), complete)
	}

	srv.Stop()
	srv.StartEmpty(t)
	if msgs, last, complete := since(first); complete || len(msgs) != 0 || !last.IsZero() {
		t.Errorf("after a restart without the data: want nothing, incomplete, no position; got %d messages, %v, complete %v", len(msgs), last, complete)
	}
	again, err := h.PublishKept(ctx, "room", []byte("three"), keep)
	if err != nil {
		t.Fatal(err)
	}
	if again.Epoch == first.Epoch || again.Offset != 1 {
		t.Errorf("the first message after the history was lost: want offset 1 of a new epoch; got %v (the old epoch %s)", again, first.Epoch)
	}
	if _, _, complete := since(first); complete {
		t.Error("a position of the lost epoch: want incomplete")
	}
}
