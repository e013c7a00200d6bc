package wsauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

const (
	appID     = "wx0123456789abcdef"
	appSecret = "test-secret"
	origin    = "https://game.example"
)

// server is a Fiber app with fibermp and wsauth socket routes, on a real listener.
type server struct {
	url string // http://127.0.0.1:port
	wx  *wxtest.Server
	st  store.Store
	app *fiber.App
	mp  *fibermp.Manager
	ws  *wsauth.Server // the server of /ws (and its tickets)
}

// app is what a test's extra routes get: the app, and socket servers on its Manager.
type app struct {
	*fiber.App
	mp *fibermp.Manager
	t  testing.TB
}

// ws returns a new socket server of the app's Manager, shut down after the test.
func (a *app) ws(cfg wsauth.Config) *wsauth.Server { return newWS(a.t, a.mp, cfg) }

// servers are the socket servers of the tests under way, by top-level test, for
// waitHandles: tests that run in parallel each count their own.
var servers struct {
	sync.Mutex
	of map[string][]*wsauth.Server
}

// topTest returns the name of the top-level test t is, or is a subtest of.
func topTest(t testing.TB) string {
	name, _, _ := strings.Cut(t.Name(), "/")
	return name
}

// newWS returns a socket server on mp, shut down when the test ends (after its app,
// whose cleanup is registered later).
func newWS(t testing.TB, mp *fibermp.Manager, cfg wsauth.Config) *wsauth.Server {
	t.Helper()
	ws, err := wsauth.NewServer(mp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	top := topTest(t)
	servers.Lock()
	if servers.of == nil {
		servers.of = map[string][]*wsauth.Server{}
	}
	servers.of[top] = append(servers.of[top], ws)
	servers.Unlock()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ws.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		servers.Lock()
		defer servers.Unlock()
		servers.of[top] = slices.DeleteFunc(servers.of[top], func(s *wsauth.Server) bool { return s == ws })
		if len(servers.of[top]) == 0 {
			delete(servers.of, top)
		}
	})
	return ws
}

// uncapped is the config of the routes of the tests that are not about socket caps: a
// socket the client closed may hold its place a moment longer.
var uncapped = wsauth.Config{Origins: []string{origin}, MaxSocketsPerSession: 1 << 20, MaxSocketsPerUser: 1 << 20, TicketURL: "/ws"}

// stores returns the stores every test runs on: memory, and Redis.
func stores(t *testing.T) map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"memory": func(t *testing.T) store.Store {
			m := memstore.New()
			t.Cleanup(func() { _ = m.Close() })
			return m
		},
		"redis": func(t *testing.T) store.Store {
			rdb := testenv.Redis(t)
			s := redisstore.New(rdb, redisstore.Config{Prefix: testenv.RedisPrefix(t, rdb)})
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
	}
}

// sharedRedisStores returns two stores on the test Redis under one prefix, each with a
// client of its own, as two processes would have; they close after the test's servers
// (registered before them), whose sockets hold listeners until they close.
func sharedRedisStores(t *testing.T) (a, b *redisstore.Store) {
	t.Helper()
	rdbA, rdbB := testenv.Redis(t), testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdbA)
	a = redisstore.New(rdbA, redisstore.Config{Prefix: prefix})
	b = redisstore.New(rdbB, redisstore.Config{Prefix: prefix})
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

// newServer starts a server on st, with wechat as its WeChat (a new one when nil), and
// more routes when given.
func newServer(t testing.TB, st store.Store, wechat *wxtest.Server, cfg fibermp.Config, routes ...func(app *app)) *server {
	t.Helper()
	if wechat == nil {
		wechat = wxtest.NewServer(appID, appSecret)
		t.Cleanup(wechat.Close)
	}
	client, err := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: wechat.URL})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Client, cfg.Store = client, st
	mp, err := fibermp.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mp.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	a := &app{App: fiber.New(fiber.Config{DisableStartupMessage: true}), mp: mp, t: t}
	a.Use(mp.Handler())
	ws := a.ws(uncapped)
	a.Get("/ws", ws.Upgrade(echo))
	a.Get("/capped", a.ws(wsauth.Config{MaxSocketsPerSession: 2, MaxSocketsPerUser: 3}).Upgrade(echo))
	// The same minimal handler with and without wsauth, to measure what it costs.
	a.Get("/idle", ws.Upgrade(func(c *wsauth.Conn) {
		_ = c.Session()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil || c.WriteMessage(mt, msg) != nil {
				return
			}
		}
	}))
	a.Get("/bare", fws.New(func(conn *fws.Conn) {
		for {
			mt, msg, err := conn.ReadMessage()
			if err != nil || conn.WriteMessage(mt, msg) != nil {
				return
			}
		}
	}))
	a.Get("/tunnel", ws.Tickets())
	a.Post("/set/:k/:v", fibermp.Required(), func(c *fiber.Ctx) error {
		return fibermp.Get(c).Set(c.Params("k"), c.Params("v"))
	})
	a.Post("/incr/:k", fibermp.Required(), func(c *fiber.Ctx) error {
		_, err := fibermp.Get(c).Incr(c.Params("k"), 1)
		return err
	})
	a.Post("/logout-all", fibermp.Required(), func(c *fiber.Ctx) error {
		_, err := fibermp.Get(c).DestroyAll()
		return err
	})
	for _, r := range routes {
		r(a)
	}

	return &server{url: testenv.Serve(t, a.App), wx: wechat, st: st, app: a.App, mp: mp, ws: ws}
}

// echo is the socket handler: it answers text commands with the live session.
//
//	who          -> openid
//	get K        -> the JSON value of field K, or null
//	set K V      -> ok
//	incr K       -> the new value
//	proto        -> the Sec-WebSocket-Protocol header the handler sees
//	spam N       -> N "tick" messages written by 4 goroutines at once, and ok
//	reload       -> ok, or Reload's error
//	keys         -> the field names, comma-separated
//	errs         -> whether the field-name errors are fibermp's, as on a request
func echo(c *wsauth.Conn) {
	s := c.Session()
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		cmd := strings.Fields(string(msg))
		var reply string
		switch {
		case len(cmd) == 1 && cmd[0] == "who":
			reply = s.OpenID()
		case len(cmd) == 1 && cmd[0] == "proto":
			reply = c.Headers("Sec-Websocket-Protocol") + "|" + c.Query("ticket")
		case len(cmd) == 2 && cmd[0] == "get":
			raw, ok := s.Raw(cmd[1])
			reply = "null"
			if ok {
				reply = string(raw)
			}
		case len(cmd) == 3 && cmd[0] == "set":
			reply = "ok"
			if err := s.Set(cmd[1], cmd[2]); err != nil {
				reply = err.Error()
			}
		case len(cmd) == 2 && cmd[0] == "spam":
			n, _ := strconv.Atoi(cmd[1])
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < n/4; i++ {
						_ = c.WriteMessage(fws.TextMessage, []byte("tick"))
					}
				}()
			}
			reply = "ok"
			defer wg.Wait()
		case len(cmd) == 1 && cmd[0] == "reload":
			reply = "ok"
			if err := s.Reload(context.Background()); err != nil {
				reply = err.Error()
			}
		case len(cmd) == 1 && cmd[0] == "keys":
			reply = strings.Join(s.Keys(), ",")
		case len(cmd) == 1 && cmd[0] == "errs":
			// The field-name errors, as fibermp.Session gives them on a request.
			_, incrErr := s.Incr("\x00x", 1)
			reply = fmt.Sprint(errors.Is(s.Set("", 1), fibermp.ErrEmptyKey), errors.Is(s.Delete(".openid"), fibermp.ErrReservedKey),
				errors.Is(incrErr, fibermp.ErrReservedKey), errors.Is(s.Decode("nothing", new(any)), fibermp.ErrNoField))
		case len(cmd) == 2 && cmd[0] == "incr":
			n, err := s.Incr(cmd[1], 1)
			reply = strconv.FormatInt(n, 10)
			if err != nil {
				reply = err.Error()
			}
		default:
			reply = "?"
		}
		if err := c.WriteMessage(fws.TextMessage, []byte(reply)); err != nil {
			return
		}
	}
}

// login logs openID in with the Token protocol and returns the token.
func (s *server) login(t testing.TB, openID string) string {
	t.Helper()
	body := `{"code":"` + s.wx.NewCode(openID) + `"}`
	resp, err := http.Post(s.url+"/login", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Token == "" {
		t.Fatalf("login: %d %v", resp.StatusCode, err)
	}
	return r.Token
}

// loginWafer logs openID in with the Wafer protocol's headers (the server must speak
// it) and returns the session's id and skey.
func (s *server) loginWafer(t testing.TB, openID string) (id, skey string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/login", nil)
	req.Header.Set("X-WX-Code", s.wx.NewCode(openID))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var login struct{ Session struct{ ID, Skey string } }
	if err := json.NewDecoder(resp.Body).Decode(&login); err != nil || login.Session.ID == "" {
		t.Fatalf("wafer login: %d %v", resp.StatusCode, err)
	}
	return login.Session.ID, login.Session.Skey
}

// post sends an authenticated POST and returns the status.
func (s *server) post(t testing.TB, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (s *server) wsURL(query string) string {
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

// dial opens a socket; on a refused handshake it returns the response and an error.
func dial(url string, header http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	return d.Dial(url, header)
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// mustDial opens a socket or fails the test.
func mustDial(t testing.TB, url string, header http.Header) *websocket.Conn {
	t.Helper()
	conn, resp, err := dial(url, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// call sends a command and returns the reply.
func call(t testing.TB, conn *websocket.Conn, cmd string) string {
	t.Helper()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(msg)
}

// closeCode waits for the server to close conn and returns the close code and reason.
func closeCode(conn *websocket.Conn, wait time.Duration) (int, string) {
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				return ce.Code, ce.Text
			}
			return 0, fmt.Sprint(err)
		}
	}
}

func decode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
