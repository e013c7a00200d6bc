package wsauth_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// presenceTTL is the PresenceTTL of these tests: how soon a crashed instance's members
// stop being listed.
const presenceTTL = 2 * time.Second

// presenceInstance is a server whose /pres route has presence on.
type presenceInstance struct {
	*server
	hub *wsauth.Hub
}

func newPresenceInstance(t *testing.T, st store.Store, wechat *wxtest.Server) *presenceInstance {
	t.Helper()
	in := &presenceInstance{}
	cfg := uncapped
	cfg.Presence = &wsauth.PresenceConfig{Events: true}
	in.server = newServer(t, st, wechat, fibermp.Config{}, func(a *app) {
		ws := a.ws(cfg)
		in.hub = ws.Hub()
		a.Get("/pres", ws.Upgrade(member))
	})
	return in
}

func presenceStore(t *testing.T, rdb *redis.Client, prefix string) *redisstore.Store {
	st := redisstore.New(rdb, redisstore.Config{Prefix: prefix, PresenceTTL: presenceTTL})
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func (in *presenceInstance) dialPres(t *testing.T, token string) *histClient {
	t.Helper()
	conn := mustDial(t, strings.Replace(in.wsURL(""), "/ws", "/pres", 1), bearer(token))
	t.Cleanup(func() { _ = conn.Close() })
	return &histClient{conn: conn, pos: map[string]string{}}
}

func presence(t *testing.T, hub *wsauth.Hub, room string) wsauth.RoomPresence {
	t.Helper()
	p, err := hub.Presence(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPresenceAcrossInstances: who is in a room, from either instance; joins, leaves
// and closes told to the room.
func TestPresenceAcrossInstances(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdb)
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	a := newPresenceInstance(t, presenceStore(t, rdb, prefix), wechat)
	b := newPresenceInstance(t, presenceStore(t, testenv.Redis(t), prefix), wechat)

	ann := a.dialPres(t, a.login(t, "o-ann"))
	if got := ann.command(t, "join lobby"); got != "joined lobby" {
		t.Fatalf("join: %q", got)
	}
	bob := b.login(t, "o-bob")
	bob1, bob2 := b.dialPres(t, bob), b.dialPres(t, bob)
	for _, c := range []*histClient{bob1, bob2} {
		if got := c.command(t, "join lobby"); got != "joined lobby" {
			t.Fatalf("join: %q", got)
		}
	}
	want := wsauth.RoomPresence{Users: []string{"o-ann", "o-bob"}, Sockets: 3}
	for _, hub := range []*wsauth.Hub{a.hub, b.hub} {
		if got := presence(t, hub, "lobby"); !slices.Equal(got.Users, want.Users) || got.Sockets != want.Sockets {
			t.Errorf("presence: want %+v; got %+v", want, got)
		}
	}
	// ann saw her own join, then both of bob's.
	ann.wantEvents(t, `{"presence":{"join":"o-ann"}}`, `{"presence":{"join":"o-bob"}}`, `{"presence":{"join":"o-bob"}}`)

	if got := bob1.command(t, "leave lobby"); got != "left lobby" {
		t.Fatalf("leave: %q", got)
	}
	ann.wantEvents(t, `{"presence":{"leave":"o-bob"}}`)
	_ = bob2.conn.Close() // a socket that closes leaves its rooms
	ann.wantEvents(t, `{"presence":{"leave":"o-bob"}}`)
	if got := presence(t, b.hub, "lobby"); !slices.Equal(got.Users, []string{"o-ann"}) || got.Sockets != 1 {
		t.Errorf("presence after bob left: want o-ann alone; got %+v", got)
	}
	if _, err := a.server.ws.Hub().Presence(context.Background(), "lobby"); err == nil {
		t.Error("Presence on a server without Config.Presence: want an error")
	}
}

// TestPresenceAfterSIGKILL: the members of an instance killed with SIGKILL stop being
// listed within PresenceTTL.
func TestPresenceAfterSIGKILL(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdb)
	b := newPresenceInstance(t, presenceStore(t, testenv.Redis(t), prefix), nil)

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "WSAUTH_PRESENCE_CHILD="+testenv.RedisAddr()+" "+prefix)
	// The child dies with this test's process, whatever ends it (a go test timeout too).
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	child.WaitDelay = time.Second
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, out)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("the child instance printed no URL in 30 s")
	}
	if !strings.HasPrefix(line, "url ") {
		t.Fatalf("the child instance: %q", line)
	}
	childURL := strings.TrimSpace(strings.TrimPrefix(line, "url "))

	resp, err := http.Get(childURL + "/code/o-kid")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp, err = http.Post(childURL+"/login", "application/json", strings.NewReader(`{"code":"`+string(code)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Token string }
	_ = decode(resp.Body, &login)
	resp.Body.Close()
	conn := mustDial(t, "ws"+strings.TrimPrefix(childURL, "http")+"/pres", bearer(login.Token))
	defer conn.Close()
	kid := &histClient{conn: conn, pos: map[string]string{}}
	if got := kid.command(t, "join lobby"); got != "joined lobby" {
		t.Fatalf("join on the child: %q", got)
	}
	me := b.dialPres(t, b.login(t, "o-me"))
	if got := me.command(t, "join lobby"); got != "joined lobby" {
		t.Fatalf("join: %q", got)
	}
	if got := presence(t, b.hub, "lobby"); !slices.Equal(got.Users, []string{"o-kid", "o-me"}) {
		t.Fatalf("presence before the kill: want o-kid and o-me; got %+v", got) // both joins returned after their adds
	}

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for {
		got := presence(t, b.hub, "lobby")
		if slices.Equal(got.Users, []string{"o-me"}) && got.Sockets == 1 {
			break
		}
		if time.Since(killed) > presenceTTL+3*time.Second { // PresenceTTL, and room for a loaded machine
			t.Fatalf("presence %v after SIGKILL: want o-me alone; got %+v", time.Since(killed), got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the killed instance's member stopped being listed %v after SIGKILL (PresenceTTL %v)", time.Since(killed).Round(time.Millisecond), presenceTTL)
}

// presenceChild runs an instance for TestPresenceAfterSIGKILL in a process of its own:
// it prints its URL and serves until it is killed.
func presenceChild(spec string) {
	addr, prefix, _ := strings.Cut(spec, " ")
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	st := redisstore.New(rdb, redisstore.Config{Prefix: prefix, PresenceTTL: presenceTTL})
	wechat := wxtest.NewServer(appID, appSecret)
	client, _ := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: wechat.URL})
	mp, err := fibermp.NewManager(fibermp.Config{Client: client, Store: st})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ws, err := wsauth.NewServer(mp, wsauth.Config{Presence: &wsauth.PresenceConfig{Events: true}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/code/:openid", func(c *fiber.Ctx) error { return c.SendString(wechat.NewCode(c.Params("openid"))) })
	app.Use(mp.Handler())
	app.Get("/pres", ws.Upgrade(member))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("url http://%s\n", ln.Addr())
	_ = app.Listener(ln)
}

// wantEvents reads until the next presence events are want, in order.
func (c *histClient) wantEvents(t *testing.T, want ...string) {
	t.Helper()
	for len(c.events) < len(want) {
		if err := c.read(5 * time.Second); err != nil {
			t.Fatalf("waiting for %q: got %q, %v", want, c.events, err)
		}
	}
	if !slices.Equal(c.events[:len(want)], want) {
		t.Fatalf("presence events: want %q; got %q", want, c.events)
	}
	c.events = c.events[len(want):]
}
