package wsauth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// histInstance is a server whose /hist route has the Hub's history on.
type histInstance struct {
	*server
	hub *wsauth.Hub
}

func newHistInstance(t *testing.T, st store.Store, wechat *wxtest.Server, hc wsauth.HistoryConfig) *histInstance {
	t.Helper()
	in := &histInstance{}
	cfg := uncapped
	cfg.History = &hc
	in.server = newServer(t, st, wechat, fibermp.Config{}, func(a *app) {
		ws := a.ws(cfg)
		in.hub = ws.Hub()
		a.Get("/hist", ws.Upgrade(member))
	})
	return in
}

// histInstances are two instances on one Redis, as two processes would be.
func histInstances(t *testing.T, hc wsauth.HistoryConfig) (a, b *histInstance) {
	t.Helper()
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	stA, stB := sharedRedisStores(t)
	return newHistInstance(t, stA, wechat, hc), newHistInstance(t, stB, wechat, hc)
}

// histClient is a client of /hist: it keeps the socket's id and its positions, as a web
// page or a mini program would, to recover after a drop.
type histClient struct {
	conn      *websocket.Conn
	id        string
	recovered bool
	pos       map[string]string
	got       []histMsg // hub messages, in order
	replies   []string  // the handler's own replies
	events    []string  // presence events (without Config.History)
}

type histMsg struct {
	Topic string          `json:"topic"`
	Pos   string          `json:"pos"`
	Msg   json.RawMessage `json:"msg"`
}

// state is the recovery state to send on reconnect.
func (c *histClient) state() string {
	b, _ := json.Marshal(map[string]any{"id": c.id, "pos": c.pos})
	return string(b)
}

// dialHist opens /hist with token, sending the recovery state of prev when it is not
// nil, and reads the welcome.
func (s *histInstance) dialHist(t *testing.T, token string, prev *histClient) *histClient {
	t.Helper()
	h := bearer(token)
	if prev != nil {
		h.Set(wsauth.RecoverHeader, prev.state())
	}
	conn := mustDial(t, strings.Replace(s.wsURL(""), "/ws", "/hist", 1), h)
	t.Cleanup(func() { _ = conn.Close() })
	c := &histClient{conn: conn, pos: map[string]string{}}
	var w struct {
		Recovery *struct {
			ID        string            `json:"id"`
			Recovered bool              `json:"recovered"`
			Pos       map[string]string `json:"pos"`
		} `json:"recovery"`
	}
	if err := json.Unmarshal([]byte(next(t, conn, "welcome")), &w); err != nil || w.Recovery == nil {
		t.Fatalf("welcome: %v, %+v", err, w)
	}
	c.id, c.recovered = w.Recovery.ID, w.Recovery.Recovered
	for k, v := range w.Recovery.Pos {
		if v != "" {
			c.pos[k] = v
		}
	}
	return c
}

// read reads one frame: a hub message (its position kept) or a reply.
func (c *histClient) read(wait time.Duration) error {
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		return err
	}
	if strings.HasPrefix(string(b), `{"presence":`) {
		c.events = append(c.events, string(b))
		return nil
	}
	if len(b) > 0 && b[0] == '{' {
		var m histMsg
		if err := json.Unmarshal(b, &m); err != nil || m.Topic == "" || m.Pos == "" {
			return fmt.Errorf("a hub message without topic or position: %s", b)
		}
		c.pos[m.Topic] = m.Pos
		if m.Msg != nil {
			c.got = append(c.got, m)
		}
		return nil
	}
	c.replies = append(c.replies, string(b))
	return nil
}

// command sends a command to the handler and reads until its reply.
func (c *histClient) command(t *testing.T, cmd string) string {
	t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		t.Fatal(err)
	}
	n := len(c.replies)
	for len(c.replies) == n {
		if err := c.read(5 * time.Second); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	return c.replies[n]
}

// drop cuts the client's connection without a close frame, as a phone losing its
// network does.
func (c *histClient) drop() { _ = c.conn.UnderlyingConn().Close() }

// offsets checks that msgs are the next messages of one stream after the offset from,
// and returns the last offset.
func offsets(t *testing.T, msgs []histMsg, from uint64) uint64 {
	t.Helper()
	for _, m := range msgs {
		pos, err := store.ParsePosition(m.Pos)
		if err != nil {
			t.Fatalf("position %q: %v", m.Pos, err)
		}
		if pos.Offset != from+1 {
			t.Fatalf("message %s at offset %d; want %d: a gap or a duplicate", m.Msg, pos.Offset, from+1)
		}
		from = pos.Offset
	}
	return from
}

// TestHistoryRecoversOnAnyInstance: a socket killed abruptly while 1,000 messages are
// sent to its user from both instances reconnects on the other instance and receives
// every message exactly once, in the order of the user's stream.
func TestHistoryRecoversOnAnyInstance(t *testing.T) {
	t.Parallel()
	a, b := histInstances(t, wsauth.HistoryConfig{Size: 2000})
	token := a.login(t, "o-recover")
	first := a.dialHist(t, token, nil)
	if first.recovered {
		t.Error("a first socket: want recovered false")
	}

	const total = 1000
	sent := make(chan error, 2)
	for i, in := range []*histInstance{a, b} {
		go func() {
			for n := range total / 2 {
				if err := in.hub.ToUser(context.Background(), "o-recover", fmt.Appendf(nil, `{"from":%d,"n":%d}`, i, n)); err != nil {
					sent <- err
					return
				}
			}
			sent <- nil
		}()
	}
	for len(first.got) < 100 {
		if err := first.read(5 * time.Second); err != nil {
			t.Fatalf("before the drop: %v", err)
		}
	}
	first.drop()
	for range 2 {
		send(t, <-sent)
	}

	second := b.dialHist(t, token, first)
	if !second.recovered {
		t.Fatalf("reconnect within the window: want recovered true")
	}
	for len(first.got)+len(second.got) < total {
		if err := second.read(5 * time.Second); err != nil {
			t.Fatalf("after %d + %d messages: %v", len(first.got), len(second.got), err)
		}
	}
	last := offsets(t, first.got, 0)
	offsets(t, second.got, last)
	seen := map[string]bool{}
	for _, m := range append(first.got, second.got...) {
		if seen[string(m.Msg)] {
			t.Fatalf("%s received twice", m.Msg)
		}
		seen[string(m.Msg)] = true
	}
	if err := second.read(200 * time.Millisecond); err == nil {
		t.Errorf("a message after all %d: %+v", total, second.got[len(second.got)-1])
	}
}

// TestHistoryRecoveryTime: how long a client that missed 1,000 messages takes to
// have them all after it reconnects on the other instance (logged, not a limit):
//
//	go test -run TestHistoryRecoveryTime -v ./wsauth/
func TestHistoryRecoveryTime(t *testing.T) {
	t.Parallel()
	a, b := histInstances(t, wsauth.HistoryConfig{Size: 1000})
	token := a.login(t, "o-missed")
	first := a.dialHist(t, token, nil)
	first.drop()
	const missed = 1000
	for n := range missed {
		send(t, a.hub.ToUser(context.Background(), "o-missed", fmt.Appendf(nil, `{"n":%d}`, n)))
	}
	start := time.Now()
	second := b.dialHist(t, token, first)
	for len(second.got) < missed {
		if err := second.read(5 * time.Second); err != nil {
			t.Fatalf("after %d messages: %v", len(second.got), err)
		}
	}
	took := time.Since(start)
	if !second.recovered {
		t.Error("want recovered true")
	}
	offsets(t, second.got, 0)
	t.Logf("%d missed messages recovered on the other instance in %v, from the dial to the last one", missed, took)
}

// TestHistoryRoomsRestored: a socket that reconnects on the other instance is back in
// its rooms, with the room's messages it missed, then the live ones; another session
// cannot take its rooms.
func TestHistoryRoomsRestored(t *testing.T) {
	t.Parallel()
	a, b := histInstances(t, wsauth.HistoryConfig{})
	token := a.login(t, "o-rooms")
	first := a.dialHist(t, token, nil)
	if got := first.command(t, "join go"); got != "joined go" {
		t.Fatalf("join: %q", got)
	}
	for first.pos["room:go"] == "" {
		// The room's position is in an envelope of its own, queued by Join.
		if err := first.read(5 * time.Second); err != nil {
			t.Fatalf("the room's position: %v", err)
		}
	}
	send(t, a.hub.ToRoom(context.Background(), "go", []byte(`"before"`)))
	for len(first.got) < 1 {
		if err := first.read(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	first.drop()
	for i := range 3 {
		send(t, a.hub.ToRoom(context.Background(), "go", fmt.Appendf(nil, `"missed %d"`, i)))
	}

	// Someone else's session with the socket's id gets neither the rooms nor the messages.
	thief := b.dialHist(t, b.login(t, "o-thief"), first)
	if thief.recovered {
		t.Error("another session with the socket's id: want recovered false")
	}
	if got := thief.command(t, "rooms"); got != "rooms " {
		t.Errorf("another session's rooms: want none; got %q", got)
	}

	second := b.dialHist(t, token, first)
	if !second.recovered {
		t.Fatal("reconnect: want recovered true")
	}
	send(t, b.hub.ToRoom(context.Background(), "go", []byte(`"live"`)))
	for len(second.got) < 4 {
		if err := second.read(5 * time.Second); err != nil {
			t.Fatalf("after %d messages: %v", len(second.got), err)
		}
	}
	var texts []string
	for _, m := range second.got {
		texts = append(texts, string(m.Msg))
	}
	if got, want := strings.Join(texts, " "), `"missed 0" "missed 1" "missed 2" "live"`; got != want {
		t.Errorf("after the reconnect: want %s; got %s", want, got)
	}
	offsets(t, second.got, 1)
	if got := second.command(t, "rooms"); got != "rooms go" {
		t.Errorf("rooms after the reconnect: want go; got %q", got)
	}
}

// TestHistoryWindowExceeded: a client that comes back after the window is told
// recovered: false, and then gets the live messages.
func TestHistoryWindowExceeded(t *testing.T) {
	t.Parallel()
	a, b := histInstances(t, wsauth.HistoryConfig{Window: 200 * time.Millisecond})
	token := a.login(t, "o-late")
	first := a.dialHist(t, token, nil)
	first.drop()
	send(t, a.hub.ToUser(context.Background(), "o-late", []byte(`"while away"`)))
	time.Sleep(400 * time.Millisecond) // the window, and more: what this test is about
	second := b.dialHist(t, token, first)
	if second.recovered {
		t.Fatal("after the window: want recovered false")
	}
	send(t, a.hub.ToUser(context.Background(), "o-late", []byte(`"live"`)))
	if err := second.read(5 * time.Second); err != nil || len(second.got) != 1 || string(second.got[0].Msg) != `"live"` {
		t.Fatalf("after recovered false: want the live message only; got %+v, %v", second.got, err)
	}
}

// TestHistoryLostWithRedis: after Redis comes back empty, a reconnecting client is told
// recovered: false, and a socket that stayed open is closed with CloseMissed when the
// first message of the new history shows the gap.
func TestHistoryLostWithRedis(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	newStore := func() *redisstore.Store {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
		st := redisstore.New(rdb)
		t.Cleanup(func() { _ = st.Close(); _ = rdb.Close() })
		return st
	}
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	a := newHistInstance(t, newStore(), wechat, wsauth.HistoryConfig{})
	token := a.login(t, "o-lost")
	stays := a.dialHist(t, token, nil)
	leaves := a.dialHist(t, token, nil)
	send(t, a.hub.ToUser(context.Background(), "o-lost", []byte(`"before"`)))
	for _, c := range []*histClient{stays, leaves} {
		if err := c.read(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	leaves.drop()

	srv.Stop()
	srv.StartEmpty(t)
	// The session is gone with the data: log in again, as the client would be told to.
	token2 := a.login(t, "o-lost")
	back := a.dialHist(t, token2, leaves)
	if back.recovered {
		t.Error("after Redis lost the history: want recovered false")
	}
	// The socket that stayed open lost its session too (closed with 4001 or 4003), or
	// sees the new history's first message after a gap: either way it is closed.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		err := a.hub.ToUser(context.Background(), "o-lost", []byte(`"after"`))
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // the store reconnects
	}
	if code, _ := closeCode(stays.conn, 10*time.Second); code < 4000 {
		t.Errorf("the socket open across the loss: want a 4xxx close; got %d", code)
	}
}

// TestHistoryRefusals: with History, messages must be JSON; a store without histories
// is refused at construction; a malformed recovery state starts afresh.
func TestHistoryRefusals(t *testing.T) {
	t.Parallel()
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	in := newHistInstance(t, st, nil, wsauth.HistoryConfig{})
	if err := in.hub.ToUser(context.Background(), "o", []byte("not json")); !errors.Is(err, wsauth.ErrNotJSON) {
		t.Errorf("a message that is not JSON: want ErrNotJSON; got %v", err)
	}
	mp, err := fibermp.NewManager(fibermp.Config{AppID: appID, AppSecret: appSecret, Store: noHistory{st}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mp.Close(context.Background()) })
	if _, err := wsauth.NewServer(mp, wsauth.Config{History: &wsauth.HistoryConfig{}}); err == nil {
		t.Error("History on a store without histories: want an error")
	}
	if _, err := wsauth.NewServer(mp, wsauth.Config{History: &wsauth.HistoryConfig{Size: -1}}); err == nil {
		t.Error("a negative history size: want an error")
	}

	token := in.login(t, "o-bad")
	h := bearer(token)
	h.Set(wsauth.RecoverHeader, `{"id":"nope"}`)
	conn := mustDial(t, strings.Replace(in.wsURL(""), "/ws", "/hist", 1), h)
	defer conn.Close()
	if got := next(t, conn, "welcome"); !strings.Contains(got, `"recovered":false`) {
		t.Errorf("a malformed recovery state: want a welcome with recovered false; got %s", got)
	}
	// A browser offers the state as a subprotocol, after its credential.
	prev := in.dialHist(t, token, nil)
	prev.drop()
	state := base64.RawURLEncoding.EncodeToString([]byte(prev.state()))
	dialer := websocket.Dialer{Subprotocols: []string{"mpsession", token, "recover." + state}}
	conn2, resp, err := dialer.Dial(strings.Replace(in.wsURL(""), "/ws", "/hist", 1), http.Header{"Origin": {origin}})
	if err != nil {
		t.Fatalf("a subprotocol recovery state: %v (%v)", err, resp)
	}
	defer conn2.Close()
	if resp.Header.Get("Sec-WebSocket-Protocol") != "mpsession" {
		t.Errorf("subprotocol answered: %q", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	if got := next(t, conn2, "welcome"); !strings.Contains(got, `"recovered":true`) {
		t.Errorf("a recovery state of a socket with no room and nothing missed: want recovered true; got %s", got)
	}
}

// noHistory is a store that keeps no history.
type noHistory struct{ *memstore.Store }

func (s noHistory) Capabilities() store.Capabilities {
	c := s.Store.Capabilities()
	c.History = nil
	return c
}

// FuzzParseRecover: any recovery state is parsed or refused with ErrRecover, never
// more.
func FuzzParseRecover(f *testing.F) {
	for _, seed := range []string{
		`{"id":"0123456789abcdef0123456789abcdef","pos":{"user":"e.1","session":"e.2","room:go":"f.9"}}`,
		`{"id":"0123456789abcdef0123456789abcdef","pos":{"user":""}}`,
		`{"id":"x"}`, `{}`, `null`, `[]`, `{"id":"0123456789abcdef0123456789abcdef","pos":{"room:":"e.1"}}`,
		`{"id":"0123456789abcdef0123456789abcdef","pos":{"user":"e.0"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := wsauth.ParseRecover(b)
		if err != nil {
			if !errors.Is(err, wsauth.ErrRecover) || r != nil {
				t.Fatalf("ParseRecover(%q) = %v, %v", b, r, err)
			}
			return
		}
		if len(r.ID) != 32 {
			t.Fatalf("ParseRecover(%q): id %q", b, r.ID)
		}
		for name, p := range r.Pos {
			if p.IsZero() || !store.ValidEpoch(p.Epoch) || !(name == "user" || name == "session" || strings.HasPrefix(name, "room:")) {
				t.Fatalf("ParseRecover(%q): %q at %v", b, name, p)
			}
		}
	})
}

// TestHistoryReplayThenLive: a replay larger than Config.QueueSize, with live messages
// arriving while it is written, neither closes the socket as too slow nor loses one.
func TestHistoryReplayThenLive(t *testing.T) {
	t.Parallel()
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	in := newHistInstance(t, st, nil, wsauth.HistoryConfig{Size: 1000})
	token := in.login(t, "o-busy")
	first := in.dialHist(t, token, nil)
	first.drop()
	const missed, live = 600, 50 // QueueSize is 256
	for n := range missed {
		send(t, in.hub.ToUser(context.Background(), "o-busy", fmt.Appendf(nil, `{"n":%d}`, n)))
	}
	second := in.dialHist(t, token, first)
	for n := range live {
		send(t, in.hub.ToUser(context.Background(), "o-busy", fmt.Appendf(nil, `{"n":%d}`, missed+n)))
	}
	for len(second.got) < missed+live {
		if err := second.read(5 * time.Second); err != nil {
			t.Fatalf("after %d messages: %v", len(second.got), err)
		}
	}
	offsets(t, second.got, 0)
}

// TestHistoryStartUnknown: when where a room's stream stands cannot be read at Join,
// the socket starts at the next message of the room instead of closing.
func TestHistoryStartUnknown(t *testing.T) {
	t.Parallel()
	st := &flakySince{Store: memstore.New()}
	t.Cleanup(func() { _ = st.Close() })
	in := newHistInstance(t, st, nil, wsauth.HistoryConfig{})
	c := in.dialHist(t, in.login(t, "o-flaky"), nil)
	for range 2 { // the room's stream is past its first message
		send(t, in.hub.ToRoom(context.Background(), "go", []byte(`"earlier"`)))
	}
	st.fail.Store(1)
	if got := c.command(t, "join go"); got != "joined go" {
		t.Fatalf("join: %q", got)
	}
	send(t, in.hub.ToRoom(context.Background(), "go", []byte(`"hello"`)))
	for len(c.got) < 1 {
		if err := c.read(5 * time.Second); err != nil {
			t.Fatalf("the room's message after an unknown start: %v", err)
		}
	}
}

// flakySince is a memory store whose History.Since fails as many times as fail says.
type flakySince struct {
	*memstore.Store
	fail atomic.Int32
}

func (s *flakySince) Capabilities() store.Capabilities {
	c := s.Store.Capabilities()
	c.History = flakyHistory{s}
	return c
}

type flakyHistory struct{ s *flakySince }

func (h flakyHistory) PublishKept(ctx context.Context, topic string, msg []byte, keep store.Retention) (store.Position, error) {
	return h.s.Store.PublishKept(ctx, topic, msg, keep)
}

func (h flakyHistory) Since(ctx context.Context, topic string, after store.Position, limit int) ([]store.Kept, store.Position, bool, error) {
	if h.s.fail.Add(-1) >= 0 {
		return nil, store.Position{}, false, errors.New("flaky: since failed")
	}
	return h.s.Store.Since(ctx, topic, after, limit)
}

// TestHistoryRejoin: the application may refuse a room to a recovering socket.
func TestHistoryRejoin(t *testing.T) {
	t.Parallel()
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	in := newHistInstance(t, st, nil, wsauth.HistoryConfig{Rejoin: func(c *wsauth.Conn, room string) bool {
		return room != "banned" && c.Session().OpenID() == "o-rejoin"
	}})
	token := in.login(t, "o-rejoin")
	first := in.dialHist(t, token, nil)
	for _, room := range []string{"ok", "banned"} {
		if got := first.command(t, "join "+room); got != "joined "+room {
			t.Fatalf("join: %q", got)
		}
	}
	first.drop()
	second := in.dialHist(t, token, first)
	if got := second.command(t, "rooms"); got != "rooms ok" {
		t.Errorf("rooms after the reconnect: want ok alone; got %q", got)
	}
}

// TestHistoryMaxReplay: a socket that missed more than MaxReplay messages across its
// streams (here 3 of its user's and 3 of a room's) is given none of them: its welcome
// says recovered: false, its streams start where they stand, and the live messages
// follow. At MaxReplay it is given all of them.
func TestHistoryMaxReplay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		max       int
		recovered bool
	}{{5, false}, {6, true}} {
		st := memstore.New()
		t.Cleanup(func() { _ = st.Close() })
		in := newHistInstance(t, st, nil, wsauth.HistoryConfig{MaxReplay: tc.max})
		token := in.login(t, "o-away")
		first := in.dialHist(t, token, nil)
		if got := first.command(t, "join go"); got != "joined go" {
			t.Fatalf("join: %q", got)
		}
		for first.pos["room:go"] == "" {
			if err := first.read(5 * time.Second); err != nil {
				t.Fatalf("the room's position: %v", err)
			}
		}
		first.drop()
		for i := range 3 {
			send(t, in.hub.ToUser(context.Background(), "o-away", fmt.Appendf(nil, `"user %d"`, i)))
			send(t, in.hub.ToRoom(context.Background(), "go", fmt.Appendf(nil, `"room %d"`, i)))
		}
		second := in.dialHist(t, token, first)
		if second.recovered != tc.recovered {
			t.Errorf("MaxReplay %d, 6 missed: want recovered %v; got %v", tc.max, tc.recovered, second.recovered)
		}
		send(t, in.hub.ToRoom(context.Background(), "go", []byte(`"live"`)))
		for len(second.got) == 0 || string(second.got[len(second.got)-1].Msg) != `"live"` {
			if err := second.read(5 * time.Second); err != nil {
				t.Fatalf("MaxReplay %d: after %d messages: %v", tc.max, len(second.got), err)
			}
		}
		if want := map[bool]int{false: 1, true: 7}[tc.recovered]; len(second.got) != want {
			t.Errorf("MaxReplay %d: want %d messages; got %d", tc.max, want, len(second.got))
		}
		if got := second.command(t, "rooms"); got != "rooms go" {
			t.Errorf("MaxReplay %d: rooms after the reconnect: want go; got %q", tc.max, got)
		}
	}
}
