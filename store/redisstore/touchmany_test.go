package redisstore

import (
	"errors"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/redis/go-redis/v9"
)

// TestTouchMany extends many sessions in one pipeline, on a single node and across a
// Cluster's nodes: each live session gets its new expiry (never past its deadline),
// each missing one ErrNotFound, and an emptied script cache is reloaded.
//
// Emptying the script cache (SCRIPT FLUSH) changes the whole server: on the shared
// Redis it would cost every other test using it, in other packages at the same time, an
// EVAL after its next EVALSHA, and fail those that count round trips. So the single
// node is a redis-server of the test's own, and the Cluster the test binary's own,
// which no other package uses, and which no other test uses meanwhile: this one does
// not run in parallel.
func TestTouchMany(t *testing.T) {
	for _, b := range []backend{
		{"Single", func(t testing.TB) redis.UniversalClient {
			srv := testenv.StartRedis(t)
			c := redis.NewClient(&redis.Options{Addr: srv.Addr})
			t.Cleanup(func() { c.Close() })
			return c
		}},
		{"Cluster", func(t testing.TB) redis.UniversalClient { return newClusterClient(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			c := b.client(t)
			s := newStore(t, c, Config{})
			now := time.Now()
			ids := []string{"touch-a", "touch-b", "touch-missing", "touch-c"}
			for i, id := range ids {
				if id == "touch-missing" {
					continue
				}
				rec := store.Record{Deadline: now.Add(time.Hour)}
				if i == 3 {
					rec.Deadline = now.Add(90 * time.Second) // closer than the new expiry
				}
				if err := s.Create(ctx, id, rec, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			check := func() {
				t.Helper()
				errs := s.TouchMany(ctx, ids, 30*time.Minute)
				for i, id := range ids {
					want := error(nil)
					if id == "touch-missing" {
						want = store.ErrNotFound
					}
					if !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
						t.Errorf("%s: want %v; got %v", id, want, errs[i])
					}
				}
				for i, id := range ids {
					if id == "touch-missing" {
						continue
					}
					rec, err := s.Load(ctx, id, 0)
					if err != nil {
						t.Fatal(err)
					}
					want := time.Now().Add(30 * time.Minute)
					if i == 3 {
						want = rec.Deadline
					}
					if d := rec.ExpiresAt.Sub(want); d < -5*time.Second || d > 5*time.Second {
						t.Errorf("%s: want expiry near %v; got %v", id, want, rec.ExpiresAt)
					}
				}
			}
			check()
			if err := c.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			check()
		})
	}
}
