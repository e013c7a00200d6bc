package wsauth_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"go.uber.org/goleak"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/metrics"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// TestCloseCloses: Close from the handler sends the close frame, the handler's next
// read returns ErrClosed within about a second (at once when the client answers),
// a message the client sent after the close never reaches the handler, and the
// socket's place under the caps is free before the handler returns.
func TestCloseCloses(t *testing.T) {
	t.Parallel()
	type result struct {
		err     error
		took    time.Duration
		handles int
	}
	results := make(chan result, 1)
	var closer *wsauth.Server
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{}, func(app *app) {
		closer = app.ws(wsauth.Config{MaxSocketsPerSession: 1})
		app.Get("/closer", closer.Upgrade(func(c *wsauth.Conn) {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
			_ = c.Close()
			start := time.Now()
			_, _, err := c.ReadMessage()
			results <- result{err, time.Since(start), closer.Handles()}
		}))
	})
	url := "ws" + strings.TrimPrefix(s.url, "http") + "/closer"
	token := s.login(t, "o-closer")

	for _, answers := range []bool{true, false} {
		conn := mustDial(t, url, bearer(token))
		if err := conn.WriteMessage(websocket.TextMessage, []byte("bye")); err != nil {
			t.Fatal(err)
		}
		if answers {
			// The client reads the close frame and answers it (the dialer's default).
			if code, reason := closeCode(conn, 5*time.Second); code != websocket.CloseNormalClosure {
				t.Errorf("want close %d; got %d %q", websocket.CloseNormalClosure, code, reason)
			}
		} else {
			// The client sends on and never reads, nor answers the close frame: the
			// handler must not see its message, and its pongs must not keep the read
			// going.
			_ = conn.WriteMessage(websocket.TextMessage, []byte("after the close"))
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
						_ = conn.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second))
					}
				}
			}()
		}
		r := <-results
		if !errors.Is(r.err, wsauth.ErrClosed) {
			t.Errorf("answers %v: read after Close: want ErrClosed; got %v", answers, r.err)
		}
		if r.took > 1500*time.Millisecond {
			t.Errorf("answers %v: the read after Close took %v", answers, r.took)
		}
		if r.handles != 0 {
			t.Errorf("answers %v: the closed socket still holds its handle", answers)
		}
		if !answers {
			if code, _ := closeCode(conn, 5*time.Second); code != websocket.CloseNormalClosure {
				t.Errorf("the client that did not answer: want close %d; got %d", websocket.CloseNormalClosure, code)
			}
		}
		_ = conn.Close()
	}
}

// TestCloseCodeWhileWriting: a close from another goroutine while the handler streams
// large messages still reaches the client with its code, after the messages written
// before it.
func TestCloseCodeWhileWriting(t *testing.T) {
	t.Parallel()
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{}, func(app *app) {
		app.Get("/stream", app.ws(uncapped).Upgrade(func(c *wsauth.Conn) {
			payload := make([]byte, 60<<10)
			go func() {
				// A moment of streaming to a client that reads nothing yet, so that
				// the close comes while writes are under way: the timing is the case
				// tested.
				time.Sleep(30 * time.Millisecond)
				_ = c.CloseWith(4001, "logged out")
			}()
			for c.WriteMessage(websocket.BinaryMessage, payload) == nil {
			}
			_, _, _ = c.ReadMessage()
		}))
	})
	url := "ws" + strings.TrimPrefix(s.url, "http") + "/stream"
	token := s.login(t, "o-stream")
	for i := range 5 {
		conn := mustDial(t, url, bearer(token))
		if code, reason := closeCode(conn, 5*time.Second); code != 4001 {
			t.Errorf("run %d: want close 4001; got %d %q", i, code, reason)
		}
		_ = conn.Close()
	}
}

// TestInvalidUTF8 closes a socket whose text message is not UTF-8 with 1007, and the
// handler never sees the message.
func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{})
	conn := mustDial(t, s.wsURL(""), bearer(s.login(t, "o-utf8")))
	if err := conn.WriteMessage(websocket.TextMessage, []byte("who \xff\xfe")); err != nil {
		t.Fatal(err)
	}
	if code, reason := closeCode(conn, 5*time.Second); code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("want close %d; got %d %q", websocket.CloseInvalidFramePayloadData, code, reason)
	}
}

// TestConstructionErrors: a config no socket could work with fails at construction.
func TestConstructionErrors(t *testing.T) {
	t.Parallel()
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	client, _ := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: wechat.URL})
	mp, err := fibermp.NewManager(fibermp.Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mp.Close(context.Background()) })
	if _, err := wsauth.NewServer(nil); err == nil {
		t.Error("NewServer without a Manager: want an error")
	}
	for name, cfg := range map[string]wsauth.Config{
		"negative session cap": {MaxSocketsPerSession: -1},
		"negative user cap":    {MaxSocketsPerUser: -1},
		"negative queue":       {QueueSize: -1},
		"ticket URL http":      {TicketURL: "http://game.example/ws"},
		"ticket URL query":     {TicketURL: "/ws?x=1"},
		"ticket URL relative":  {TicketURL: "ws"},
		"subprotocol list":     {Protocol: "a, b"},
	} {
		if _, err := wsauth.NewServer(mp, cfg); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	ws, err := wsauth.NewServer(mp)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Tickets without TicketURL: want a panic at mount")
		}
	}()
	ws.Tickets()
}

// TestOwnersApart: two Managers in one process, on two stores, share nothing: a
// socket of one is neither counted by, reachable from nor closed by the other, and
// each counts its own logins and sockets.
func TestOwnersApart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type owner struct {
		*server
		m *metrics.Metrics
	}
	newOwner := func() owner {
		m := metrics.New()
		return owner{newServer(t, stores(t)["memory"](t), nil, fibermp.Config{Metrics: m}), m}
	}
	a, b := newOwner(), newOwner()
	tokenA := a.login(t, "o-same")
	tokenB := b.login(t, "o-same") // the same openid on both
	connA := mustDial(t, a.wsURL(""), bearer(tokenA))
	call(t, connA, "who")
	if got := b.ws.Handles(); got != 0 {
		t.Errorf("b holds %d handles of a's socket", got)
	}
	if got := a.ws.Handles(); got != 1 {
		t.Errorf("a: want 1 handle; got %d", got)
	}
	send(t, b.ws.Hub().ToUser(ctx, "o-same", []byte("from b")))
	send(t, a.ws.Hub().ToUser(ctx, "o-same", []byte("from a")))
	expect(t, connA, "a's socket", "from a") // and not b's message, which came first
	if st := b.post(t, "/logout", tokenB); st != http.StatusNoContent && st != http.StatusOK {
		t.Fatalf("logout on b: %d", st)
	}
	if got := call(t, connA, "who"); got != "o-same" {
		t.Errorf("a's socket after a logout on b: %q", got)
	}
	count := func(m *metrics.Metrics, name string) float64 {
		var n float64
		m.Each(func(s metrics.Sample) {
			if s.Name == name {
				n += s.Value
			}
		})
		return n
	}
	if got := count(a.m, "mpsession_sockets"); got != 1 {
		t.Errorf("a's open sockets: want 1; got %v", got)
	}
	if got := count(b.m, "mpsession_sockets"); got != 0 {
		t.Errorf("b's open sockets: want 0; got %v", got)
	}
	if got := count(a.m, "mpsession_logins_total"); got != 1 {
		t.Errorf("a's logins: want 1; got %v", got)
	}
}

// TestHubFromAnywhere: a message to a user, sent from a plain goroutine and from a
// second Fiber app of the same process (no request of the socket's app), reaches the
// user's sockets on two instances sharing Redis.
func TestHubFromAnywhere(t *testing.T) {
	t.Parallel()
	a, b := twoInstances(t, "redis")
	token := a.login(t, "o-anywhere")
	onA := a.dialMember(t, token, "/member")
	onB := b.dialMember(t, token, "/member")
	hub := a.hub // kept, as a program keeps it

	done := make(chan error, 1)
	go func() { done <- hub.ToUser(context.Background(), "o-anywhere", []byte("from a goroutine")) }()
	send(t, <-done)
	for _, c := range []*websocket.Conn{onA, onB} {
		expect(t, c, "goroutine's message", "from a goroutine")
	}

	admin := fiber.New(fiber.Config{DisableStartupMessage: true})
	admin.Post("/notify/:openid", func(c *fiber.Ctx) error {
		return hub.ToUser(c.UserContext(), c.Params("openid"), c.Body())
	})
	resp, err := http.Post(testenv.Serve(t, admin)+"/notify/o-anywhere", "text/plain", strings.NewReader("from the admin app"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin app: %d", resp.StatusCode)
	}
	for _, c := range []*websocket.Conn{onA, onB} {
		expect(t, c, "admin app's message", "from the admin app")
	}
}

// TestOwnersStopEverything: with the session cache on Redis, sockets open, a room
// joined and a server-side subscription, Shutdown and Close leave no goroutine that
// the Server, the Hub, the Manager or the cache started. It looks at every goroutine of
// the process, so it does not run in parallel.
func TestOwnersStopEverything(t *testing.T) {
	rdb := testenv.Redis(t)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: testenv.RedisPrefix(t, rdb)})
	t.Cleanup(func() { _ = rs.Close() })
	before := goleak.IgnoreCurrent()

	wechat := wxtest.NewServer(appID, appSecret)
	defer wechat.Close()
	client, _ := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: wechat.URL})
	mp, err := fibermp.NewManager(fibermp.Config{Client: client, Store: rs, Cache: &fibermp.CacheConfig{}})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := wsauth.NewServer(mp)
	if err != nil {
		t.Fatal(err)
	}
	unsubscribe, err := ws.Hub().Subscribe("lobby", func([]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	_ = unsubscribe // left to Shutdown
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(mp.Handler())
	app.Get("/ws", ws.Upgrade(member))
	app.Get("/me", mp.Required(), func(c *fiber.Ctx) error { return c.SendString(fibermp.Get(c).OpenID()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = app.Listener(ln) }()
	s := &server{url: "http://" + ln.Addr().String()}
	s.wx = wechat
	token := s.login(t, "o-stop")
	var conns []*websocket.Conn
	for range 3 {
		c, _, err := dial(s.wsURL(""), bearer(token))
		if err != nil {
			t.Fatal(err)
		}
		if got := call(t, c, "join lobby"); got != "joined lobby" {
			t.Fatalf("join: %q", got)
		}
		conns = append(conns, c)
	}
	req, _ := http.NewRequest("GET", s.url+"/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for range 2 { // a miss, then a hit that renews in the background
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.ShutdownWithTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-served
	if err := ws.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		if code, _ := closeCode(c, 5*time.Second); code != websocket.CloseGoingAway {
			t.Errorf("want close %d at shutdown; got %d", websocket.CloseGoingAway, code)
		}
		_ = c.Close()
	}
	if err := mp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ws.Hub().ToUser(ctx, "o-stop", []byte("late")); !errors.Is(err, wsauth.ErrClosed) {
		t.Errorf("send after Shutdown: want ErrClosed; got %v", err)
	}
	// What the test itself started: its clients, its fake WeChat, and the store, whose
	// event loop is the caller's to stop (Close), as the store is.
	http.DefaultClient.CloseIdleConnections()
	wechat.Close()
	_ = rs.Close()
	goleak.VerifyNone(t, append([]goleak.Option{before,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),  // wx.Client's idle connections
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"), // to the closed fake WeChat
	}, testenv.IgnoreFasthttp...)...)
}
