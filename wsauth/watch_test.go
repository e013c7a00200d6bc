package wsauth_test

import (
	"testing"
	"time"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// TestSocketWatchesItsSession checks that over redisstore an instance receives the
// events of the sessions of its sockets only: B, which holds a socket of one user's
// session, neither receives the events of another user's session written on A nor
// stays subscribed to its socket's session once the socket is gone; a logout on A still
// closes B's socket.
func TestSocketWatchesItsSession(t *testing.T) {
	t.Parallel()
	rdbA, rdbB := testenv.Redis(t), testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdbA)
	stA := redisstore.New(rdbA, redisstore.Config{Prefix: prefix})
	stB := redisstore.New(rdbB, redisstore.Config{Prefix: prefix})
	t.Cleanup(func() { _ = stA.Close(); _ = stB.Close() })
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	cfg := fibermp.Config{Protocol: fibermp.Token}
	a := newServer(t, stA, wechat, cfg)
	b := newServer(t, stB, wechat, cfg)

	held, other := a.login(t, "o-held"), a.login(t, "o-other")
	conn := mustDial(t, b.wsURL(""), bearer(held))
	defer conn.Close()
	channels := func() []string {
		t.Helper()
		chs, err := rdbA.PubSubChannels(t.Context(), prefix+"events:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return chs
	}
	if chs := channels(); len(chs) != 1 {
		t.Fatalf("session channels subscribed with one socket open: want 1; got %v", chs)
	}
	before := stB.EventsReceived()
	for range 5 {
		if st := a.post(t, "/incr/n", other); st != 200 {
			t.Fatalf("incr of the other session: %d", st)
		}
	}
	if st := a.post(t, "/incr/n", held); st != 200 {
		t.Fatalf("incr of the held session: %d", st)
	}
	// The held session's event follows the others' on B's connection, had they come.
	deadline := time.Now().Add(5 * time.Second)
	for stB.EventsReceived() == before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // an event more, had one been routed there
	if got := stB.EventsReceived() - before; got != 1 {
		t.Errorf("events B received after 5 writes of the other session and 1 of its socket's: want 1; got %d", got)
	}

	if st := a.post(t, "/logout", held); st/100 != 2 {
		t.Fatalf("logout on A: %d", st)
	}
	if code, reason := closeCode(conn, 5*time.Second); code != wsauth.CloseLoggedOut {
		t.Fatalf("B's socket after the logout on A: want close %d; got %d %q", wsauth.CloseLoggedOut, code, reason)
	}
	for deadline := time.Now().Add(5 * time.Second); len(channels()) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("session channels still subscribed 5s after the socket closed: %v", channels())
		}
	}
}
