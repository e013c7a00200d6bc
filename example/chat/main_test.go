package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"go.uber.org/goleak"

	"github.com/mpsession/mpsession/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.QuietRedisLog()
	goleak.VerifyTestMain(m, testenv.IgnoreFasthttp...)
}

// start runs the chat as main does, on a loopback port of its own, until the test ends,
// and returns its base URL. The port listens before run starts, so the test may call at once.
func start(t *testing.T, cfg config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// twoInstances runs two chat servers on one Redis of the test's own, as two processes
// would: each has its own store, go-redis client, Hub and fake WeChat.
func twoInstances(t *testing.T) (a, b string) {
	t.Helper()
	cfg := config{Redis: testenv.StartRedis(t).Addr}
	return start(t, cfg), start(t, cfg)
}

// No keep-alive: no connection outlives its request, for goleak.
var httpc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// user is a logged-in user, as a client of one instance.
type user struct {
	t           *testing.T
	base, token string
}

// login logs openid in as the page does: a code from the dev route, then POST /login.
func login(t *testing.T, base, openid string) *user {
	t.Helper()
	u := &user{t: t, base: base}
	code := u.do("GET", "/dev/code?openid="+openid, "", http.StatusOK)
	var l struct{ Token, OpenID string }
	if err := json.Unmarshal([]byte(u.do("POST", "/login", `{"code":"`+code+`"}`, http.StatusOK)), &l); err != nil || l.Token == "" || l.OpenID != openid {
		t.Fatalf("login %s: want a token; got %+v (%v)", openid, l, err)
	}
	u.token = l.Token
	return u
}

// at returns the same session as a client of another instance.
func (u *user) at(base string) *user { c := *u; c.base = base; return &c }

// do sends a request with the user's token, checks the status and returns the body.
func (u *user) do(method, path, body string, want int) string {
	u.t.Helper()
	req, err := http.NewRequest(method, u.base+path, strings.NewReader(body))
	if err != nil {
		u.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		u.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		u.t.Fatalf("%s %s: want status %d; got %d: %s", method, path, want, resp.StatusCode, b)
	}
	return string(b)
}

func (u *user) setNick(nick string) {
	u.t.Helper()
	u.do("POST", "/nick", `{"nick":"`+nick+`"}`, http.StatusOK)
}

// msg is any message of the server, as a client decodes it.
type msg struct{ Joined, Left, Error, Room, From, Text string }

// client is the user's socket, opened as the page opens it.
type client struct {
	t    *testing.T
	conn *websocket.Conn
}

// dial opens the socket the browser way: the token as a subprotocol, from the page's origin.
func (u *user) dial() *client {
	u.t.Helper()
	conn, resp, err := dial(u.base, u.base, "mpsession", u.token)
	if err != nil {
		u.t.Fatalf("dial: %v (%v)", err, resp)
	}
	u.t.Cleanup(func() { _ = conn.Close() })
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mpsession" {
		u.t.Errorf("want the subprotocol mpsession echoed, never the token; got %q", got)
	}
	return &client{t: u.t, conn: conn}
}

func dial(base, origin string, protocols ...string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: protocols}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return d.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", h)
}

func (c *client) send(m string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
		c.t.Fatalf("send %s: %v", m, err)
	}
}

// next returns the next message, failing the test when none comes within 10 s.
func (c *client) next() msg {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m msg
	if err := c.conn.ReadJSON(&m); err != nil {
		c.t.Fatalf("want a message; got %v", err)
	}
	return m
}

// expect checks that the next message is want.
func (c *client) expect(want msg) {
	c.t.Helper()
	if got := c.next(); got != want {
		c.t.Fatalf("want %+v; got %+v", want, got)
	}
}

func (c *client) join(room string) {
	c.t.Helper()
	c.send(`{"join":"` + room + `"}`)
	c.expect(msg{Joined: room}) // Join has returned on the server: the room's lines come from now on
}

// Alice on one instance and Bob and Carol on the other share room "go" through Redis;
// a line reaches every member, its sender too, with the sender's nickname; after Bob
// leaves, lines no longer reach him.
func TestRoomsAcrossInstances(t *testing.T) {
	a, b := twoInstances(t)
	alice, bob, carol := login(t, a, "alice"), login(t, b, "bob"), login(t, b, "carol")
	alice.setNick("Alice")
	ca, cb, cc := alice.dial(), bob.dial(), carol.dial()
	for _, c := range []*client{ca, cb, cc} {
		c.join("go")
	}

	ca.send(`{"room":"go","text":"hi"}`)
	for _, c := range []*client{ca, cb, cc} {
		c.expect(msg{Room: "go", From: "Alice", Text: "hi"})
	}

	cb.send(`{"leave":"go"}`)
	cb.expect(msg{Left: "go"})
	ca.send(`{"room":"go","text":"bob is gone"}`)
	ca.expect(msg{Room: "go", From: "Alice", Text: "bob is gone"})
	// Carol is on Bob's instance: once she has the line, that instance has handed it to
	// every member it has. Had Bob been one, it would come before anything sent later.
	cc.expect(msg{Room: "go", From: "Alice", Text: "bob is gone"})
	cb.join("go")
	ca.send(`{"room":"go","text":"welcome back"}`)
	cb.expect(msg{Room: "go", From: "Alice", Text: "welcome back"})

	cb.send(`{"room":"rust","text":"anyone?"}`)
	cb.expect(msg{Error: `join "rust" first`})
}

// A nickname changed over HTTP on instance B is what Alice's open socket on A shows:
// the handler reads the live session on each line, and no socket reconnects.
func TestNicknameOnOpenSocket(t *testing.T) {
	a, b := twoInstances(t)
	alice := login(t, a, "alice")
	ca := alice.dial()
	ca.join("go")
	ca.send(`{"room":"go","text":"one"}`)
	ca.expect(msg{Room: "go", From: "alice", Text: "one"}) // no nickname yet: the openid

	alice.at(b).setNick("Alicia")
	// The change reaches A as a store event, a moment after the reply to POST /nick:
	// wsauth's live session is exact once the event has arrived, not at the reply. The
	// lines before it carry the old name, and never anything else.
	deadline := time.Now().Add(5 * time.Second)
	for i := 1; ; i++ {
		ca.send(`{"room":"go","text":"two"}`)
		m := ca.next()
		if m == (msg{Room: "go", From: "Alicia", Text: "two"}) {
			if i > 1 {
				t.Logf("the new nickname showed on line %d", i)
			}
			break
		}
		if m != (msg{Room: "go", From: "alice", Text: "two"}) || time.Now().After(deadline) {
			t.Fatalf("line %d after the change: want Alicia's (or alice's, for a moment); got %+v", i, m)
		}
	}
}

// The clock, a goroutine of the server, sends to the lobby through the Hub.
func TestClockInLobby(t *testing.T) {
	base := start(t, config{Clock: 20 * time.Millisecond})
	c := login(t, base, "alice").dial()
	c.send(`{"join":"lobby"}`)
	for { // the clock's line may come before the reply to the join
		m := c.next()
		if m.Joined == "lobby" {
			continue
		}
		if m.Room != "lobby" || !strings.HasPrefix(m.From, "clock@") || !strings.HasPrefix(m.Text, "It is ") {
			t.Fatalf("want the clock's line; got %+v", m)
		}
		return
	}
}

// The upgrade is refused before any socket opens: 401 without a valid token, 403 for
// a page on another origin, even with a valid token.
func TestUpgradeRefused(t *testing.T) {
	base := start(t, config{})
	token := login(t, base, "alice").token
	for _, tc := range []struct {
		name, origin string
		protocols    []string
		want         int
	}{
		{"no token", base, nil, http.StatusUnauthorized},
		{"no token, no browser", "", nil, http.StatusUnauthorized},
		{"unknown token", base, []string{"mpsession", "not-a-token"}, http.StatusUnauthorized},
		{"other origin", "http://evil.example", []string{"mpsession", token}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, resp, err := dial(base, tc.origin, tc.protocols...)
			if err == nil {
				_ = conn.Close()
				t.Fatal("want the upgrade refused; got a socket")
			}
			if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != tc.want {
				t.Fatalf("want status %d; got %v (%v)", tc.want, err, resp)
			}
			_ = resp.Body.Close()
		})
	}
}

// The page is served, and opens its socket with the token as a subprotocol.
func TestPage(t *testing.T) {
	base := start(t, config{})
	body := (&user{t: t, base: base}).do("GET", "/", "", http.StatusOK)
	if !strings.Contains(body, `new WebSocket(`) || !strings.Contains(body, `["mpsession", token]`) {
		t.Errorf("the page does not open its socket with the token as a subprotocol:\n%s", body)
	}
}
