package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"go.uber.org/goleak"

	"github.com/mpsession/mpsession/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testenv.IgnoreFasthttp...)
}

// startServer runs the game as main does, on a free loopback port with the memory
// store, the fake WeChat and, unless cfg names a database, a SQLite file of the test's
// own, until the test ends.
func startServer(t *testing.T, cfg config) *server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.DB == "" && cfg.MySQL == "" {
		cfg.DB = filepath.Join(t.TempDir(), "rps.db")
	}
	if cfg.MoveTimeout == 0 {
		cfg.MoveTimeout = 10 * time.Second
	}
	if cfg.BotThink == 0 {
		cfg.BotThink = 20 * time.Millisecond
	}
	cfg.Log = slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// user is a player on the HTTP side: a login and the session's token.
type user struct {
	t      *testing.T
	base   string
	openID string
	token  string
	http   *http.Client
}

// login logs openID in as the page does: a code from the fake WeChat, then POST /login.
func login(t *testing.T, s *server, openID string) *user {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	u := &user{t: t, base: s.url, openID: openID, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	var code struct{ Code, OpenID string }
	u.do("GET", "/wxtest/code?openid="+openID, nil, http.StatusOK, &code)
	if code.OpenID != openID {
		t.Fatalf("want a code for %q; got one for %q", openID, code.OpenID)
	}
	var l struct {
		Token  string
		OpenID string
	}
	u.do("POST", "/login", map[string]string{"code": code.Code}, http.StatusOK, &l)
	if l.Token == "" || l.OpenID != openID {
		t.Fatalf("login: want a token for %q; got %+v", openID, l)
	}
	u.token = l.Token
	return u
}

// at returns the user as a client of another instance, with the same session.
func (u *user) at(s *server) *user {
	c := *u
	c.base = s.url
	return &c
}

// do sends a JSON request with the user's token, checks the status and decodes the reply.
func (u *user) do(method, path string, in any, wantStatus int, out any) {
	u.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u.base+path, body)
	req.Header.Set("Content-Type", "application/json")
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	resp, err := u.http.Do(req)
	if err != nil {
		u.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		u.t.Fatalf("%s %s: want status %d; got %d: %s", method, path, wantStatus, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			u.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

type meReply struct {
	OpenID   string
	Nickname string
	record
}

// me reads GET /api/me.
func (u *user) me() meReply {
	u.t.Helper()
	var m meReply
	u.do("GET", "/api/me", nil, http.StatusOK, &m)
	return m
}

// msg is any server message, as a client decodes it.
type msg struct {
	Type        string
	OpenID      string
	Nickname    string
	Opponent    json.RawMessage
	Rounds      int
	MoveTimeout int
	Round       int
	You, Them   *Choice
	Result      Result
	Score       *Score
	Record      *record
	Reason      string
	Forfeit     bool
	Message     string
	Grace       int
	Moved       *bool
	Away        bool
	Match       string
	Seq         int

	stream string // the Hub stream it came in ("room:rps:o:<socket>")
}

// client is a WebSocket client of the game. Like the page, it reads the Hub's
// envelopes, keeps its recovery state and skips what a match tells it twice.
type client struct {
	t         *testing.T
	conn      *websocket.Conn
	id        string            // the socket's id, from the Hub's welcome
	recovered bool              // what the Hub's welcome said
	pos       map[string]string // by stream: the position of the last message read
	match     string            // the match of the last numbered message read, and its number
	seq       int
}

// frame is a message as the Hub writes it with History on: its welcome, or an
// envelope of a message of a stream.
type frame struct {
	Recovery *struct {
		ID        string
		Recovered bool
		Pos       map[string]string
	}
	Topic string
	Pos   string
	Msg   json.RawMessage
}

// recoverState is what the client sends to recover its socket: its id and positions.
func (c *client) recoverState() string {
	b, _ := json.Marshal(map[string]any{"id": c.id, "pos": c.pos})
	return string(b)
}

// dial opens the socket the mini-program way (Authorization header), or the browser
// way (subprotocol and Origin) when browser is true, and reads the welcome.
func (u *user) dial(browser bool) *client {
	u.t.Helper()
	h := http.Header{"Authorization": {"Bearer " + u.token}}
	if browser {
		h = http.Header{"Origin": {u.base}, "Sec-WebSocket-Protocol": {"mpsession, " + u.token}}
	}
	c := u.open(h, browser)
	if w := c.expect("welcome"); w.OpenID != u.openID {
		u.t.Errorf("welcome: want openid %q; got %q", u.openID, w.OpenID)
	}
	return c
}

// redial opens a socket that recovers old's (wsauth's recovery: the X-Hub-Recover
// header, or a subprotocol the browser way), and carries over what old has read of
// its match. The game's welcome comes after what old missed: it is not read here.
func (u *user) redial(old *client, browser bool) *client {
	u.t.Helper()
	state := old.recoverState()
	h := http.Header{"Authorization": {"Bearer " + u.token}, "X-Hub-Recover": {state}}
	if browser {
		h = http.Header{"Origin": {u.base}, "Sec-WebSocket-Protocol": {"mpsession, " + u.token + ", recover." +
			base64.RawURLEncoding.EncodeToString([]byte(state))}}
	}
	c := u.open(h, browser)
	c.match, c.seq = old.match, old.seq
	return c
}

func (u *user) open(h http.Header, browser bool) *client {
	u.t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(u.base, "http")+"/ws", h)
	if err != nil {
		u.t.Fatalf("dial: %v (%v)", err, resp)
	}
	if browser && resp.Header.Get("Sec-WebSocket-Protocol") != "mpsession" {
		u.t.Errorf("want the subprotocol mpsession echoed; got %q", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	c := &client{t: u.t, conn: conn, pos: map[string]string{}}
	u.t.Cleanup(func() { _ = conn.Close() })
	return c
}

func (c *client) send(m clientMsg) {
	c.t.Helper()
	if err := c.conn.WriteJSON(m); err != nil {
		c.t.Fatalf("send %+v: %v", m, err)
	}
}

// read returns the next message other than opponent_moved, or the error that ended the
// socket. It skips a match's message it has read already.
func (c *client) read() (msg, error) {
	for {
		m, err := c.readAny()
		if err != nil || m.Type != "opponent_moved" {
			return m, err
		}
	}
}

// readAny returns the next message of the game.
func (c *client) readAny() (msg, error) {
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		var f frame
		if err := c.conn.ReadJSON(&f); err != nil {
			return msg{}, err
		}
		if f.Recovery != nil {
			c.id, c.recovered = f.Recovery.ID, f.Recovery.Recovered
			maps.Copy(c.pos, f.Recovery.Pos)
			continue
		}
		if f.Topic == "" {
			c.t.Fatalf("a message outside the Hub's envelope: %+v", f)
		}
		c.pos[f.Topic] = f.Pos
		if f.Msg == nil { // a room joined: where its stream stands
			continue
		}
		m := msg{stream: f.Topic}
		if err := json.Unmarshal(f.Msg, &m); err != nil {
			c.t.Fatalf("a malformed message %s: %v", f.Msg, err)
		}
		if m.Seq > 0 {
			if m.Match == c.match && m.Seq <= c.seq {
				continue
			}
			c.match, c.seq = m.Match, m.Seq
		}
		return m, nil
	}
}

// expect reads the next message, past any of the types in skip, and checks its type.
func (c *client) expect(typ string, skip ...string) msg {
	c.t.Helper()
	for {
		m, err := c.read()
		if err != nil {
			c.t.Fatalf("want %s; got %v", typ, err)
		}
		if m.Type != typ && slices.Contains(skip, m.Type) {
			continue
		}
		if m.Type != typ {
			c.t.Fatalf("want %s; got %+v", typ, m)
		}
		return m
	}
}

// expectClose reads until the server closes the socket and returns the close code.
func (c *client) expectClose() int {
	c.t.Helper()
	for {
		m, err := c.read()
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce):
			return ce.Code
		case err != nil:
			c.t.Fatalf("want a close frame; got %v", err)
		default:
			c.t.Logf("before the close: %+v", m)
		}
	}
}

// eventually polls cond until it holds or the time runs out.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
