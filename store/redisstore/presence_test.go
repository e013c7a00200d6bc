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
	ttl := time.Second
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
	if n, _ := rdb.HLen(ctx, prefix+"p:{room}").Result(); n != 2 {
		t.Errorf("the room's hash after the list: want 2 fields (the live process and its member); got %d", n)
	}
}

// TestPresenceComesBack: a room that lost its members (a Redis restarted empty, here
// its hash deleted) gets them back from the processes that hold them at their next
// renewal, within PresenceTTL/3.
func TestPresenceComesBack(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdb)
	ttl := 600 * time.Millisecond
	st := redisstore.New(rdb, redisstore.Config{Prefix: prefix, PresenceTTL: ttl})
	t.Cleanup(func() { _ = st.Close() })
	p := st.Capabilities().Presence
	ctx := context.Background()
	if err := p.PresenceAdd(ctx, "room", "m1", "o-1"); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, prefix+"p:{room}").Err(); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()
	for {
		got, err := p.PresenceList(ctx, "room")
		if err != nil {
			t.Fatal(err)
		}
		if got["m1"] == "o-1" {
			break
		}
		if time.Since(lost) > ttl+time.Second {
			t.Fatalf("the member is not back %v after its room was lost (PresenceTTL %v)", time.Since(lost), ttl)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
