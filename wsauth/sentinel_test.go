package wsauth_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// failoverLimit bounds how long service may take to come back after the master dies.
// The Sentinels need 1 s to call the master down, then elect a leader and promote the
// replica; a failed election starts again after twice the failover timeout (10 s).
const failoverLimit = 30 * time.Second

// TestSentinelFailover runs two servers, each with its own go-redis failover client, on
// a master, a replica and three Sentinels, and kills the master (SIGKILL) under open
// sockets. It reports how long requests fail (503, never a reply that logs clients
// out), and checks that the fields written before the kill survive, that the sockets
// stay open, and that their live handles resubscribe (EventResync) and still learn of
// changes and logouts made through the other server.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	rs := testenv.StartSentinel(t)
	newStore := func() (*redisstore.Store, *storeWatch) {
		rdb := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:    testenv.SentinelMaster,
			SentinelAddrs: rs.Sentinels,
		})
		st := redisstore.New(rdb, redisstore.Config{Prefix: "mpsession-test:"})
		t.Cleanup(func() { _ = st.Close(); _ = rdb.Close() })
		return st, watchStore(t, st)
	}
	stA, watchA := newStore()
	stB, watchB := newStore()
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	get := func(app *app) {
		app.Get("/get/:k", fibermp.Required(), func(c *fiber.Ctx) error {
			raw, ok := fibermp.Get(c).Raw(c.Params("k"))
			if !ok {
				return c.SendString("null")
			}
			return c.Send(raw)
		})
	}
	a := newServer(t, stA, wechat, fibermp.Config{Protocol: fibermp.Token}, get)
	b := newServer(t, stB, wechat, fibermp.Config{Protocol: fibermp.Token}, get)

	// Before the failover: sessions, sockets on both servers, and fields written over
	// HTTP and sockets through both.
	alice, bob, probe := a.login(t, "o-alice"), b.login(t, "o-bob"), a.login(t, "o-probe")
	aliceA := mustDial(t, a.wsURL(""), bearer(alice))
	aliceB := mustDial(t, b.wsURL(""), bearer(alice))
	bobB := mustDial(t, b.wsURL(""), bearer(bob))
	for path, s := range map[string]*server{"/set/color/red": a, "/incr/score": a, "/set/pet/cat": b} {
		if st := s.post(t, path, alice); st != 200 {
			t.Fatalf("%s: %d", path, st)
		}
	}
	if got := call(t, aliceB, "incr score"); got != "2" {
		t.Fatalf("incr score on a socket: want 2; got %q", got)
	}
	if got := call(t, aliceA, "set mood happy"); got != "ok" {
		t.Fatalf("set mood on a socket: %q", got)
	}
	if got := waitFor(t, aliceB, "get color", `"red"`, 2*time.Second); got != `"red"` {
		t.Fatalf("the socket on B did not see A's change: %q", got)
	}
	if got := call(t, bobB, "who"); got != "o-bob" {
		t.Fatalf("want o-bob; got %q", got)
	}

	// Replication is asynchronous: the master acknowledges a write before the replica
	// has it, and a failover loses what the promoted replica had not received. WAIT
	// makes the test deterministic: every write above is on the replica before the
	// kill, so every one of them must survive. Without it, what was written in the
	// last moments before a crash may be gone after the failover: a session created
	// then, an increment made then.
	func() {
		master := redis.NewClient(&redis.Options{Addr: rs.Master})
		defer master.Close()
		if n, err := master.Do(t.Context(), "WAIT", 1, 5000).Int(); err != nil || n != 1 {
			t.Fatalf("WAIT 1 5000 on the master: %d replicas acknowledged, %v", n, err)
		}
	}()

	watchA.resyncs.Store(0)
	watchB.resyncs.Store(0)
	killed := time.Now()
	rs.KillMaster()

	// Service returns on each server, and the Sentinels name the replica as master.
	var (
		wg                     sync.WaitGroup
		backA, backB, promoted time.Duration
		statusA, statusB       map[int]int
		errA, errB, errS       error
	)
	wg.Go(func() { backA, statusA, errA = untilOK(a, "/incr/probe", probe, killed) })
	wg.Go(func() { backB, statusB, errB = untilOK(b, "/incr/probe", probe, killed) })
	wg.Go(func() { promoted, errS = untilPromoted(rs, killed) })
	wg.Wait()
	for _, err := range []error{errA, errB, errS} {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("after the kill: Sentinel names the replica master after %v; requests answer 200 again after %v on A (before: %v), %v on B (before: %v)",
		promoted.Round(time.Millisecond), backA.Round(time.Millisecond), statuses(statusA),
		backB.Round(time.Millisecond), statuses(statusB))
	for _, m := range []map[int]int{statusA, statusB} {
		for st := range m {
			if st != 200 && st != 503 {
				t.Errorf("during the failover: want 503 (the session kept); got %d", st)
			}
		}
	}

	// Each store's one subscription, which its live handles share, came back and told
	// its subscribers that events may have been lost.
	for name, w := range map[string]*storeWatch{"A": watchA, "B": watchB} {
		deadline := killed.Add(failoverLimit)
		for w.resyncs.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("store of %s: no %v within %v of the kill", name, store.EventResync, failoverLimit)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("store of %s: %v %v after the kill", name, store.EventResync, time.Since(killed).Round(time.Millisecond))
	}

	// What was written before the kill survived, and the sockets stayed open.
	want := map[string]string{"color": `"red"`, "score": "2", "pet": `"cat"`, "mood": `"happy"`}
	for k, v := range want {
		if got := get1(t, b, alice, k); got != v {
			t.Errorf("%s after the failover, over HTTP: want %s; got %s", k, v, got)
		}
		if got := waitFor(t, aliceB, "get "+k, v, 5*time.Second); got != v {
			t.Errorf("%s after the failover, on the socket: want %s; got %s", k, v, got)
		}
	}
	if got := call(t, aliceA, "incr score"); got != "3" {
		t.Errorf("incr score on the socket after the failover: want 3; got %q", got)
	}
	if st := b.post(t, "/incr/score", alice); st != 200 {
		t.Errorf("incr score over HTTP after the failover: %d", st)
	}
	if got := get1(t, a, alice, "score"); got != "4" {
		t.Errorf("score: want 4; got %s", got)
	}

	// Events flow again: a change through A reaches B's subscription, and B's socket.
	watchB.drain()
	if st := a.post(t, "/set/color/blue", alice); st != 200 {
		t.Fatalf("set color: %d", st)
	}
	select {
	case <-watchB.changed:
	case <-time.After(5 * time.Second):
		t.Fatalf("store of B: no %v within 5s of a change through A", store.EventChanged)
	}
	if got := waitFor(t, aliceB, "get color", `"blue"`, 2*time.Second); got != `"blue"` {
		t.Errorf("the socket on B did not see A's change after the failover: %q", got)
	}

	t.Logf("%v events since the kill: %d on A, %d on B", store.EventResync, watchA.resyncs.Load(), watchB.resyncs.Load())

	// A login and a socket after the failover work on both servers.
	carol := b.login(t, "o-carol")
	if got := call(t, mustDial(t, a.wsURL(""), bearer(carol)), "who"); got != "o-carol" {
		t.Errorf("a socket of a session made after the failover: want o-carol; got %q", got)
	}

	// Logout and revocation through A close the sockets on B (and A) with their codes:
	// only an event can tell B's handles so soon.
	if st := a.post(t, "/logout", alice); st != 204 {
		t.Fatalf("logout: %d", st)
	}
	for name, conn := range map[string]*websocket.Conn{"A": aliceA, "B": aliceB} {
		if code, reason := closeCode(conn, 5*time.Second); code != wsauth.CloseLoggedOut {
			t.Errorf("alice's socket on %s after logout: want close %d; got %d %q", name, wsauth.CloseLoggedOut, code, reason)
		}
	}
	if st := a.post(t, "/logout-all", bob); st != 200 {
		t.Fatalf("logout-all: %d", st)
	}
	if code, reason := closeCode(bobB, 5*time.Second); code != wsauth.CloseRevoked {
		t.Errorf("bob's socket on B after logout-all: want close %d; got %d %q", wsauth.CloseRevoked, code, reason)
	}
}

// storeWatch counts the events of a store's subscription.
type storeWatch struct {
	resyncs atomic.Int64
	changed chan struct{} // one per EventChanged; dropped when full
}

func watchStore(t testing.TB, st store.Store) *storeWatch {
	t.Helper()
	w := &storeWatch{changed: make(chan struct{}, 64)}
	unsubscribe, err := st.Capabilities().Events.Subscribe(func(e store.Event) {
		switch e.Kind {
		case store.EventResync:
			w.resyncs.Add(1)
		case store.EventChanged:
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(unsubscribe)
	return w
}

// drain forgets the changes seen so far.
func (w *storeWatch) drain() {
	for {
		select {
		case <-w.changed:
		default:
			return
		}
	}
}

// untilOK posts to path every 20 ms until it answers 200, and returns how long after
// since that was and how many of each other status came before.
func untilOK(s *server, path, token string, since time.Time) (time.Duration, map[int]int, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	seen := map[int]int{}
	for {
		req, _ := http.NewRequest("POST", s.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, seen, fmt.Errorf("%s during the failover: %w", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return time.Since(since), seen, nil
		}
		seen[resp.StatusCode]++
		if time.Since(since) > failoverLimit {
			return 0, seen, fmt.Errorf("%s: no 200 within %v of the kill; statuses %s", path, failoverLimit, statuses(seen))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// untilPromoted asks the Sentinels every 20 ms for the master until one names the
// replica, and returns how long after since that was.
func untilPromoted(rs *testenv.Sentinel, since time.Time) (time.Duration, error) {
	var clients []*redis.SentinelClient
	for _, addr := range rs.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr})
		defer c.Close()
		clients = append(clients, c)
	}
	for {
		for _, c := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			addr, err := c.GetMasterAddrByName(ctx, testenv.SentinelMaster).Result()
			cancel()
			if err == nil && net.JoinHostPort(addr[0], addr[1]) == rs.Replica {
				return time.Since(since), nil
			}
		}
		if time.Since(since) > failoverLimit {
			return 0, fmt.Errorf("no Sentinel names the replica %s master within %v of the kill", rs.Replica, failoverLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get1 reads one field over HTTP and returns its JSON value, or null.
func get1(t testing.TB, s *server, token, key string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/get/"+key, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /get/%s: %d %s", key, resp.StatusCode, body)
	}
	return string(body)
}

// statuses formats a count of statuses: "503×12", or "none".
func statuses(m map[int]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for st, n := range m {
		parts = append(parts, fmt.Sprintf("%d×%d", st, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
