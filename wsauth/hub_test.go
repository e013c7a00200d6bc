package wsauth_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// msgServer is a server with a /member socket route and its hub.
type msgServer struct {
	*server
	hub     *wsauth.Hub // of /member's server
	slowHub *wsauth.Hub // of /slow's
}

// memberRoutes adds /member (queue of 256) and /slow (queue of 8): sockets that answer
// "join R" with "joined R", "leave R" with "left R", "sid" with the session id, and
// receive the hub's messages. The servers' hubs go to m.
func memberRoutes(m *msgServer) func(app *app) {
	return func(app *app) {
		members := app.ws(uncapped)
		slowCfg := uncapped
		slowCfg.QueueSize = 8
		slow := app.ws(slowCfg)
		m.hub, m.slowHub = members.Hub(), slow.Hub()
		app.Get("/member", members.Upgrade(member))
		app.Get("/slow", slow.Upgrade(member))
		app.Get("/sid", fibermp.Required(), func(c *fiber.Ctx) error {
			return c.SendString(fibermp.Get(c).ID())
		})
	}
}

func member(c *wsauth.Conn) {
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		verb, room, _ := strings.Cut(string(msg), " ")
		reply := ""
		switch verb {
		case "join":
			reply = "joined " + room
			if err := c.Join(context.Background(), room); err != nil {
				reply = err.Error()
			}
		case "leave":
			reply = "left " + room
			if err := c.Leave(context.Background(), room); err != nil {
				reply = err.Error()
			}
		case "rooms":
			reply = "rooms " + strings.Join(c.Rooms(), ",")
		}
		if err := c.WriteMessage(fws.TextMessage, []byte(reply)); err != nil {
			return
		}
	}
}

func newMsgServer(t testing.TB, st store.Store, wechat *wxtest.Server) *msgServer {
	t.Helper()
	m := &msgServer{}
	m.server = newServer(t, st, wechat, fibermp.Config{Protocol: fibermp.Token}, memberRoutes(m))
	return m
}

// sessionID returns the session id behind a token.
func (s *msgServer) sessionID(t testing.TB, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/sid", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dialMember opens a /member socket (or another route of memberRoutes) and waits until
// its handler runs.
func (s *msgServer) dialMember(t testing.TB, token, route string) *websocket.Conn {
	t.Helper()
	conn := mustDial(t, "ws"+strings.TrimPrefix(s.url, "http")+route, bearer(token))
	if got := call(t, conn, "rooms"); got != "rooms " {
		t.Fatalf("want no rooms; got %q", got)
	}
	return conn
}

// twoInstances returns two servers sharing a store as two processes would: on Redis,
// each with its own client and store; on memory, one store (one process).
func twoInstances(t *testing.T, kind string) (a, b *msgServer) {
	t.Helper()
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	if kind == "memory" {
		st := stores(t)["memory"](t)
		return newMsgServer(t, st, wechat), newMsgServer(t, st, wechat)
	}
	stA, stB := sharedRedisStores(t)
	return newMsgServer(t, stA, wechat), newMsgServer(t, stB, wechat)
}

// next reads the next message within 5 s.
func next(t testing.TB, conn *websocket.Conn, what string) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return string(msg)
}

func expect(t testing.TB, conn *websocket.Conn, what, want string) {
	t.Helper()
	if got := next(t, conn, what); got != want {
		t.Fatalf("%s: want %q; got %q", what, want, got)
	}
}

func send(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("send: %v", err)
	}
}

// TestHubUser: a message to a user reaches every socket of theirs on both instances,
// and nobody else's; an instance with no socket of a user receives none of the
// user's messages, counted.
func TestHubUser(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			a, b := twoInstances(t, kind)
			ctx := context.Background()
			ann := a.login(t, "o-ann")
			annA, annB := a.dialMember(t, ann, "/member"), b.dialMember(t, ann, "/member")
			annA2 := a.dialMember(t, a.login(t, "o-ann"), "/member") // a second session
			bob := a.dialMember(t, a.login(t, "o-bob"), "/member")   // only on A

			send(t, a.hub.ToUser(ctx, "o-ann", []byte("from A")))
			send(t, b.hub.ToUser(ctx, "o-ann", []byte("from B")))
			// Two senders: each socket gets both, in either order.
			for _, c := range []*websocket.Conn{annA, annB, annA2} {
				got := []string{next(t, c, "ann's socket"), next(t, c, "ann's socket")}
				sort.Strings(got)
				if got[0] != "from A" || got[1] != "from B" {
					t.Fatalf("ann's socket: want from A and from B; got %q", got)
				}
			}
			// A session's sockets, not the user's others.
			send(t, b.hub.ToSession(ctx, a.sessionID(t, ann), []byte("to the session")))
			expect(t, annA, "the session's socket on A", "to the session")
			expect(t, annB, "the session's socket on B", "to the session")

			// B listens to ann's user and session: it has received "from A" and its own
			// "from B" and "to the session" back. Over Redis its own come back after
			// they were delivered, so wait for them before counting from here.
			waitReceived(t, b.hub, 3)
			before := b.hub.Stats()
			const n = 100
			for i := range n {
				send(t, a.hub.ToUser(ctx, "o-bob", []byte(fmt.Sprint("bob ", i))))
			}
			for i := range n {
				expect(t, bob, "bob's socket", fmt.Sprint("bob ", i))
			}
			// Then one message B listens for: once it is there, bob's would be too.
			send(t, a.hub.ToUser(ctx, "o-ann", []byte("last")))
			expect(t, annB, "ann's socket on B", "last")
			expect(t, annA2, "ann's other session", "last")
			after := b.hub.Stats()
			if got := after.Received - before.Received; got != 1 {
				t.Errorf("B, with no socket of bob's: want 1 message received (ann's); got %d", got)
			}
			if got := after.Delivered - before.Delivered; got != 1 {
				t.Errorf("B: want 1 message delivered; got %d", got)
			}
			t.Logf("A: %+v", a.hub.Stats())
			t.Logf("B: %+v", after)
			// annA got "to the session" and annA2 did not: annA2's next is "last".
			if err := a.hub.ToUser(ctx, "", nil); err != wsauth.ErrNoRecipient {
				t.Errorf("empty openid: want ErrNoRecipient; got %v", err)
			}
		})
	}
}

// waitReceived waits until hub has received want messages from the store.
func waitReceived(t testing.TB, hub *wsauth.Hub, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for hub.Stats().Received < want {
		if time.Now().After(deadline) {
			t.Fatalf("want %d messages received; got %+v", want, hub.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if got := hub.Stats().Received; got != want {
		t.Fatalf("want %d messages received; got %d", want, got)
	}
}

// TestHubRoom: a room spans instances, with sockets on both and a server-side member;
// each gets every message of each sender in order; a socket that left gets none.
func TestHubRoom(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			a, b := twoInstances(t, kind)
			ctx := context.Background()
			onA := a.dialMember(t, a.login(t, "o-1"), "/member")
			onB := b.dialMember(t, a.login(t, "o-2"), "/member")
			// Join answers once the room is live: call does that.
			if got := call(t, onB, "join lobby"); got != "joined lobby" {
				t.Fatalf("join: %q", got)
			}
			if got := call(t, onA, "join lobby"); got != "joined lobby" {
				t.Fatalf("join: %q", got)
			}
			got := make(chan string, 1000)
			unsubscribe, err := b.hub.Subscribe("lobby", func(msg []byte) { got <- string(msg) })
			if err != nil {
				t.Fatal(err)
			}
			defer unsubscribe()

			const n = 100 // from each of two senders: within a socket's queue of 256
			var wg sync.WaitGroup
			for _, s := range []*msgServer{a, b} {
				wg.Go(func() {
					for i := range n {
						if err := s.hub.ToRoom(ctx, "lobby", []byte(fmt.Sprintf("%p %d", s, i))); err != nil {
							t.Errorf("ToRoom: %v", err)
							return
						}
					}
				})
			}
			wg.Wait()
			inOrder := func(what string, next func() string) {
				t.Helper()
				seen := map[string]int{}
				for range 2 * n {
					m := next()
					sender, i, _ := strings.Cut(m, " ")
					if want := strconv.Itoa(seen[sender]); i != want {
						t.Fatalf("%s: from %s: want %s; got %s", what, sender, want, i)
					}
					seen[sender]++
				}
			}
			inOrder("socket on A", func() string { return next(t, onA, "socket on A") })
			inOrder("socket on B", func() string { return next(t, onB, "socket on B") })
			fromSubscription := func() string {
				select {
				case m := <-got:
					return m
				case <-time.After(5 * time.Second):
					t.Fatal("subscription: nothing in 5 s")
					return ""
				}
			}
			inOrder("subscription on B", fromSubscription)

			if got := call(t, onB, "leave lobby"); got != "left lobby" {
				t.Fatalf("leave: %q", got)
			}
			send(t, a.hub.ToRoom(ctx, "lobby", []byte("after B left")))
			expect(t, onA, "socket on A", "after B left")
			if m := fromSubscription(); m != "after B left" {
				t.Fatalf("subscription: want %q; got %q", "after B left", m)
			}
			unsubscribe()
			send(t, a.hub.ToRoom(ctx, "lobby", []byte("after unsubscribe")))
			expect(t, onA, "socket on A", "after unsubscribe")
			// B's socket: the next it reads is this, not the room's.
			send(t, a.hub.ToUser(ctx, "o-2", []byte("direct")))
			expect(t, onB, "socket on B after leaving", "direct")
			select {
			case m := <-got:
				t.Errorf("subscription after unsubscribe: got %q", m)
			default:
			}

			for _, bad := range []string{"", strings.Repeat("r", wsauth.MaxRoomBytes+1)} {
				if err := a.hub.ToRoom(ctx, bad, nil); err != wsauth.ErrRoom {
					t.Errorf("ToRoom(%d bytes): want ErrRoom; got %v", len(bad), err)
				}
				if _, err := a.hub.Subscribe(bad, func([]byte) {}); err != wsauth.ErrRoom {
					t.Errorf("Subscribe(%d bytes): want ErrRoom; got %v", len(bad), err)
				}
			}
			if got := call(t, onA, "join "+strings.Repeat("r", wsauth.MaxRoomBytes+1)); got != wsauth.ErrRoom.Error() {
				t.Errorf("join with a long name: want %q; got %q", wsauth.ErrRoom, got)
			}
		})
	}
}

// TestHubJoinLeaveRace: sockets on two instances join and leave one room over and over
// while others stay in it. A message sent after Join returned always arrives, once; one
// sent after Leave returned never does.
func TestHubJoinLeaveRace(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			a, b := twoInstances(t, kind)
			ctx := context.Background()
			const workers, rounds = 4, 25
			var wg sync.WaitGroup
			for w := range workers {
				home, sender := a, b
				if w%2 == 1 {
					home, sender = b, a
				}
				openid := fmt.Sprint("o-racer-", w)
				conn := home.dialMember(t, home.login(t, openid), "/member")
				wg.Go(func() {
					seen := map[string]bool{}
					// wait reads until want, past the other workers' messages; the
					// worker's own "out" messages (sent after it left) must never come,
					// nor anything twice.
					wait := func(want string) bool {
						for {
							m := next(t, conn, want)
							if m == want {
								return true
							}
							if strings.HasPrefix(m, fmt.Sprintf("out %d ", w)) || seen[m] {
								t.Errorf("worker %d, waiting for %q: got %q", w, want, m)
								return false
							}
							seen[m] = true
						}
					}
					say := func(cmd string) bool {
						_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
						if err := conn.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
							t.Error(err)
							return false
						}
						return true
					}
					for r := range rounds {
						in := fmt.Sprintf("in %d %d", w, r)
						out := fmt.Sprintf("out %d %d", w, r)
						mark := fmt.Sprintf("mark %d %d", w, r)
						if !say("join arena") || !wait("joined arena") {
							return
						}
						// Sent after Join returned: always delivered.
						if err := sender.hub.ToRoom(ctx, "arena", []byte(in)); err != nil {
							t.Errorf("ToRoom: %v", err)
							return
						}
						if !wait(in) || !say("leave arena") || !wait("left arena") {
							return
						}
						// Sent after Leave returned: never delivered. The mark, sent
						// next by the same sender to the user, comes after it would
						// have (one Redis connection delivers in the order published).
						if err := sender.hub.ToRoom(ctx, "arena", []byte(out)); err != nil {
							t.Errorf("ToRoom: %v", err)
							return
						}
						if err := sender.hub.ToUser(ctx, openid, []byte(mark)); err != nil {
							t.Errorf("ToUser: %v", err)
							return
						}
						if !wait(mark) {
							return
						}
					}
				})
			}
			wg.Wait()
			for _, s := range []*msgServer{a, b} {
				if st := s.hub.Stats(); st.TooSlow != 0 || st.ListenErrors != 0 {
					t.Errorf("want no slow socket and no listen error; got %+v", st)
				}
			}
		})
	}
}

// TestHubSlowSocket: a socket whose client stops reading is closed when its queue
// overflows, while the other sockets of the room get every message.
func TestHubSlowSocket(t *testing.T) {
	t.Parallel()
	s := newMsgServer(t, stores(t)["memory"](t), nil)
	ctx := context.Background()
	token := s.login(t, "o-slow")
	slow := s.dialMember(t, token, "/slow")
	fast := s.dialMember(t, token, "/member")
	for _, c := range []*websocket.Conn{slow, fast} {
		if got := call(t, c, "join feed"); got != "joined feed" {
			t.Fatalf("join: %q", got)
		}
	}
	// 64 KiB messages fill the kernel's socket buffers (a few MB on loopback) and
	// then the slow socket's queue of 8.
	const n = 400
	payload := strings.Repeat("x", 64<<10)
	received := make(chan error, 1)
	progress := make(chan int, n)
	go func() {
		for i := range n {
			_ = fast.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, msg, err := fast.ReadMessage()
			if err != nil {
				received <- fmt.Errorf("message %d: %v", i, err)
				return
			}
			if want := fmt.Sprint(i, payload); string(msg) != want {
				received <- fmt.Errorf("message %d: got %.20q", i, msg)
				return
			}
			progress <- i
		}
		received <- nil
	}()
	// In batches of 100 that the fast socket reads before the next: its queue never
	// holds more than 100, the slow one's overflows once the kernel's buffers are full.
	start := time.Now()
	for i := range n {
		send(t, s.hub.ToRoom(ctx, "feed", []byte(fmt.Sprint(i, payload))))
		for i%100 == 99 {
			select {
			case j := <-progress:
				if j < i {
					continue
				}
			case err := <-received:
				if err != nil {
					t.Fatalf("fast socket: %v", err)
				}
				received <- nil // it read everything
			}
			break
		}
	}
	if err := <-received; err != nil {
		t.Fatalf("fast socket: %v", err)
	}
	t.Logf("%d messages of 64 KiB sent to both and read by the fast socket in %v", n, time.Since(start))
	if got := s.slowHub.Stats().TooSlow; got != 1 {
		t.Errorf("want 1 socket closed as too slow; got %d", got)
	}
	// The slow client reads what the kernel held, then the end: the close frame
	// when the server could still send it, or the connection's end.
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := slow.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok && ce.Code != wsauth.CloseTooSlow && ce.Code != websocket.CloseAbnormalClosure {
			t.Errorf("slow socket: want close %d or the connection's end; got %v", wsauth.CloseTooSlow, err)
		}
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			t.Errorf("slow socket: still open 10 s after its queue overflowed")
		}
		break
	}
	waitHandles(t, 1)
}

// TestHubLatency sends 1,000 messages to 1,000 sockets over two instances, one message
// to each user, and then 20 messages to a room of all 1,000, and reports the delivery
// time, from before the send to the client's read, at p50 and p99. It does not run in
// parallel, so that the figures are its own.
func TestHubLatency(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			a, b := twoInstances(t, kind)
			ctx := context.Background()
			const n = 1000
			conns := make([]*websocket.Conn, n)
			for i := range conns {
				home := a
				if i%2 == 1 {
					home = b
				}
				conns[i] = home.dialMember(t, a.login(t, fmt.Sprint("o-lat-", i)), "/member")
			}
			for _, c := range conns {
				if got := call(t, c, "join all"); got != "joined all" {
					t.Fatalf("join: %q", got)
				}
			}
			const broadcasts = 20
			delays := make(chan time.Duration, n*(1+broadcasts))
			var readers sync.WaitGroup
			for _, c := range conns {
				readers.Go(func() {
					for range 1 + broadcasts {
						_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
						_, msg, err := c.ReadMessage()
						if err != nil {
							t.Errorf("read: %v", err)
							return
						}
						ns, err := strconv.ParseInt(string(msg), 10, 64)
						if err != nil {
							t.Errorf("message %q", msg)
							return
						}
						delays <- time.Since(time.Unix(0, ns))
					}
				})
			}
			report := func(what string, count int) {
				d := make([]time.Duration, count)
				for i := range d {
					d[i] = <-delays
				}
				sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
				t.Logf("%s: %d deliveries, p50 %v, p99 %v, max %v", what, count,
					d[count/2].Round(time.Microsecond), d[count*99/100].Round(time.Microsecond), d[count-1].Round(time.Microsecond))
				if d[count-1] > 10*time.Second {
					t.Errorf("%s: a message took %v", what, d[count-1])
				}
			}
			start := time.Now()
			for i := range n {
				send(t, a.hub.ToUser(ctx, fmt.Sprint("o-lat-", i), []byte(strconv.FormatInt(time.Now().UnixNano(), 10))))
			}
			report(fmt.Sprintf("%s, 1,000 messages to 1,000 users (half on the other instance), sent in %v", kind, time.Since(start).Round(time.Millisecond)), n)
			for range broadcasts {
				send(t, a.hub.ToRoom(ctx, "all", []byte(strconv.FormatInt(time.Now().UnixNano(), 10))))
			}
			report(fmt.Sprintf("%s, %d messages to a room of 1,000 sockets", kind, broadcasts), n*broadcasts)
			readers.Wait()
		})
	}
}

// TestHubInProcessOnly: over a store that carries no messages (fiberstore), a hub
// delivers in its own process.
func TestHubInProcessOnly(t *testing.T) {
	t.Parallel()
	st := struct{ store.Store }{stores(t)["memory"](t)} // hides store.Broker
	s := newMsgServer(t, st, nil)
	conn := s.dialMember(t, s.login(t, "o-local"), "/member")
	send(t, s.hub.ToUser(context.Background(), "o-local", []byte("local")))
	expect(t, conn, "socket", "local")
	if got := call(t, conn, "join r"); got != "joined r" {
		t.Fatalf("join: %q", got)
	}
	send(t, s.hub.ToRoom(context.Background(), "r", []byte("room")))
	expect(t, conn, "socket", "room")
}

// TestHubAfterClose: a socket that closed leaves every topic, and the hub listens to
// nothing once the last socket and subscription are gone.
func TestHubAfterClose(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			a, _ := twoInstances(t, kind)
			conn := a.dialMember(t, a.login(t, "o-closing"), "/member")
			for _, room := range []string{"x", "y"} {
				if got := call(t, conn, "join "+room); got != "joined "+room {
					t.Fatalf("join: %q", got)
				}
			}
			unsubscribe, err := a.hub.Subscribe("x", func([]byte) {})
			if err != nil {
				t.Fatal(err)
			}
			if got := a.hub.Stats().Topics; got != 4 {
				t.Errorf("user, session and two rooms: want 4 topics; got %d", got)
			}
			_ = conn.Close()
			waitHandles(t, 0)
			deadline := time.Now().Add(5 * time.Second)
			for a.hub.Stats().Topics != 1 {
				if time.Now().After(deadline) {
					t.Fatalf("after the socket closed: want 1 topic (the subscription's); got %d", a.hub.Stats().Topics)
				}
				time.Sleep(10 * time.Millisecond)
			}
			unsubscribe()
			unsubscribe()
			if got := a.hub.Stats().Topics; got != 0 {
				t.Errorf("want no topic; got %d", got)
			}
		})
	}
}
