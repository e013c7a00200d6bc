package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store/redisstore"
)

// TestPresenceOfAStoppedProcess: the members of a process that stops renewing them (a
// crash; here its store closed without removing them) stop being listed within
// PresenceTTL, and are deleted by the next list.
func TestPresenceOfAStoppedProcess(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdb)
	ttl := 300 * time.Millisecond
	crashes := redisstore.New(rdb, redisstore.Config{Prefix: prefix, PresenceTTL: ttl})
	stays := redisstore.New(testenv.Redis(t), redisstore.Config{Prefix: prefix, PresenceTTL: ttl})
	t.Cleanup(func() { _ = stays.Close() })
	ctx := context.Background()
	p, q := crashes.Capabilities().Presence, stays.Capabilities().Presence
	if err := p.PresenceAdd(ctx, "room", "gone", "o-gone"); err != nil {
		t.Fatal(err)
	}
	if err := q.PresenceAdd(ctx, "room", "here", "o-here"); err != nil {
		t.Fatal(err)
	}
	// Past a renewal or two, both are listed.
	time.Sleep(2 * ttl / 3)
	if got, err := q.PresenceList(ctx, "room"); err != nil || len(got) != 2 {
		t.Fatalf("before the crash: want 2 members; got %v, %v", got, err)
	}
	_ = crashes.Close()
	stopped := time.Now()
	for {
		got, err := q.PresenceList(ctx, "room")
		if err != nil {
			t.Fatal(err)
		}
		if _, listed := got["gone"]; !listed {
			if got["here"] != "o-here" {
				t.Fatalf("the live process's member: want o-here; got %v", got)
			}
			break
		}
		if time.Since(stopped) > ttl+time.Second {
			t.Fatalf("the stopped process's member is still listed %v after it stopped (PresenceTTL %v)", time.Since(stopped), ttl)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, _ := rdb.HLen(ctx, prefix+"p:{room}").Result(); n != 1 {
		t.Errorf("the room's hash after the list: want 1 field; got %d", n)
	}
}
