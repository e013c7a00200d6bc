package wsauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"go.uber.org/goleak"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/metrics"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/wsauth"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv("WSAUTH_PRESENCE_CHILD"); spec != "" {
		presenceChild(spec) // an instance of TestPresenceAfterSIGKILL, until it is killed
		return
	}
	testenv.QuietRedisLog()
	goleak.VerifyTestMain(m, testenv.IgnoreFasthttp...)
}

// TestCredentials opens a socket by every way a client can authenticate.
func TestCredentials(t *testing.T) {
	t.Parallel()
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := newServer(t, newStore(t), nil, fibermp.Config{Protocol: fibermp.Token})
			token := s.login(t, "o-alice")

			t.Run("header", func(t *testing.T) {
				conn := mustDial(t, s.wsURL(""), bearer(token))
				if got := call(t, conn, "who"); got != "o-alice" {
					t.Errorf("want o-alice; got %q", got)
				}
			})
			t.Run("subprotocol", func(t *testing.T) {
				conn, resp, err := dial(s.wsURL(""), http.Header{"Origin": {origin}, "Sec-WebSocket-Protocol": {"mpsession, " + token}})
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer conn.Close()
				if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mpsession" {
					t.Errorf("want the fixed protocol echoed; got %q", got)
				}
				if got := call(t, conn, "who"); got != "o-alice" {
					t.Errorf("want o-alice; got %q", got)
				}
				if got := call(t, conn, "proto"); strings.Contains(got, token) {
					t.Errorf("the handler sees the credential: %q", got)
				}
			})
			t.Run("ticket sealed in the store", func(t *testing.T) {
				u, _ := url.Parse(ticketURL(t, s, token))
				v, err := s.st.TakeTicket(t.Context(), u.Query().Get("ticket"))
				if err != nil || v == "" || strings.Contains(v, token) {
					t.Errorf("want a sealed ticket value; got %q, %v", v, err)
				}
			})
			t.Run("ticket", func(t *testing.T) {
				u := ticketURL(t, s, token)
				conn := mustDial(t, u, nil)
				if got := call(t, conn, "who"); got != "o-alice" {
					t.Errorf("want o-alice; got %q", got)
				}
				// Used once: a replay is refused, in this process or any other.
				if _, resp, err := dial(u, nil); err == nil || resp == nil || resp.StatusCode != 401 {
					t.Errorf("replayed ticket: want 401; got %v %v", err, status(resp))
				}
			})
		})
	}
}

// ticketURL asks the tunnel endpoint for a socket URL, as wafer-client-sdk's Tunnel does.
func ticketURL(t testing.TB, s *server, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/tunnel", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ URL string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("tunnel: %d %v", resp.StatusCode, err)
	}
	u, err := url.Parse(body.URL)
	if err != nil || u.Scheme != "ws" || u.Path != "/ws" || len(u.Query().Get("ticket")) != 43 {
		t.Fatalf("tunnel: want ws://host/ws?ticket=<43 chars>; got %q", body.URL)
	}
	return body.URL
}

func status(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// TestRefusals checks that every bad upgrade is refused before any 101, with the
// protocol's error body.
func TestRefusals(t *testing.T) {
	t.Parallel()
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{Protocol: fibermp.Wafer})
	// A wafer session, logged in with the wafer protocol's headers.
	id, skey := s.loginWafer(t, "o-bob")
	good := http.Header{"X-WX-Id": {id}, "X-WX-Skey": {skey}}

	for _, tc := range []struct {
		name   string
		query  string
		header http.Header
		status int
		body   string
	}{
		{"no credentials", "", nil, 401, "login required"},
		{"wrong skey", "", http.Header{"X-WX-Id": {id}, "X-WX-Skey": {strings.Repeat("0", 40)}}, 401, "ERR_INVALID_SESSION"},
		{"malformed", "", http.Header{"X-WX-Id": {"x"}, "X-WX-Skey": {"y"}}, 401, "ERR_INVALID_SESSION"},
		{"unknown ticket", "ticket=" + strings.Repeat("A", 43), nil, 401, "ERR_INVALID_SESSION"},
		{"subprotocol without credential", "", http.Header{"Sec-WebSocket-Protocol": {"mpsession"}}, 401, "login required"},
		{"bad subprotocol credential", "", http.Header{"Sec-WebSocket-Protocol": {"mpsession, abc"}}, 401, "ERR_INVALID_SESSION"},
		{"foreign origin", "", http.Header{"Origin": {"https://evil.example"}, "X-WX-Id": {id}, "X-WX-Skey": {skey}}, 403, "ERR_FORBIDDEN_ORIGIN"},
		{"allowed origin, no credentials", "", http.Header{"Origin": {origin}}, 401, "login required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, resp, err := dial(s.wsURL(tc.query), tc.header)
			if err == nil {
				conn.Close()
				t.Fatalf("want a refusal; got a socket")
			}
			if resp == nil {
				t.Fatalf("want a %d reply; got %v", tc.status, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
				t.Errorf("want %d with %q; got %d %s", tc.status, tc.body, resp.StatusCode, body)
			}
			if tc.status == 401 && !strings.Contains(string(body), fibermp.MagicID) {
				t.Errorf("want the wafer invalid-session envelope; got %s", body)
			}
		})
	}
	t.Run("no origin, valid credentials", func(t *testing.T) {
		conn := mustDial(t, s.wsURL(""), good)
		if got := call(t, conn, "who"); got != "o-bob" {
			t.Errorf("want o-bob; got %q", got)
		}
	})
	t.Run("allowed origin, valid credentials", func(t *testing.T) {
		h := good.Clone()
		h.Set("Origin", origin)
		conn := mustDial(t, s.wsURL(""), h)
		if got := call(t, conn, "who"); got != "o-bob" {
			t.Errorf("want o-bob; got %q", got)
		}
	})
}

// TestLiveSession: the socket sees HTTP changes at once, writes through, and
// increments from the socket and from HTTP add up exactly.
func TestLiveSession(t *testing.T) {
	t.Parallel()
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := newServer(t, newStore(t), nil, fibermp.Config{Protocol: fibermp.Token})
			token := s.login(t, "o-carol")
			// A write before any read, on a handle that has loaded nothing yet.
			first := mustDial(t, s.wsURL(""), bearer(token))
			if got := call(t, first, "set opening move"); got != "ok" {
				t.Fatalf("a first write: %q", got)
			}
			if got := call(t, first, "incr opening-count"); got != "1" {
				t.Fatalf("a first incr: %q", got)
			}
			if got := call(t, first, "get opening-count"); got != "1" {
				t.Errorf("the handle does not see its own increment: %q", got)
			}
			conn := mustDial(t, s.wsURL(""), bearer(token))

			if got := call(t, conn, "get color"); got != "null" {
				t.Fatalf("want null; got %q", got)
			}
			if st := s.post(t, "/set/color/teal", token); st != 200 {
				t.Fatalf("set: %d", st)
			}
			if got := waitFor(t, conn, "get color", `"teal"`, 100*time.Millisecond); got != `"teal"` {
				t.Errorf("the socket did not see the HTTP change within 100 ms: %q", got)
			}
			if got := call(t, conn, "set mood happy"); got != "ok" {
				t.Fatalf("set from the socket: %q", got)
			}
			// An HTTP request sees what the socket wrote.
			conn2 := mustDial(t, s.wsURL(""), bearer(token))
			if got := call(t, conn2, "get mood"); got != `"happy"` {
				t.Errorf("want happy; got %q", got)
			}

			const n = 200
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					if got := call(t, conn, "incr score"); strings.Contains(got, "wsauth") {
						t.Errorf("incr: %s", got)
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				sem := make(chan struct{}, 8)
				var hw sync.WaitGroup
				for i := 0; i < n; i++ {
					hw.Add(1)
					sem <- struct{}{}
					go func() {
						defer hw.Done()
						defer func() { <-sem }()
						if st := s.post(t, "/incr/score", token); st != 200 {
							t.Errorf("incr over HTTP: %d", st)
						}
					}()
				}
				hw.Wait()
			}()
			wg.Wait()
			if got := waitFor(t, conn, "get score", "400", time.Second); got != "400" {
				t.Errorf("want %d; got %s", 2*n, got)
			}
		})
	}
}

// waitFor repeats cmd until it answers want or within has passed.
func waitFor(t testing.TB, conn *websocket.Conn, cmd, want string, within time.Duration) string {
	deadline := time.Now().Add(within)
	for {
		got := call(t, conn, cmd)
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSessionEnd: logout, revocation and expiry close the socket with their code.
func TestSessionEnd(t *testing.T) {
	t.Parallel()
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			s := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Token})
			t.Run("logout", func(t *testing.T) {
				token := s.login(t, "o-dave")
				conn := mustDial(t, s.wsURL(""), bearer(token))
				call(t, conn, "who")
				if st := s.post(t, "/logout", token); st != 204 {
					t.Fatalf("logout: %d", st)
				}
				if code, reason := closeCode(conn, 2*time.Second); code != wsauth.CloseLoggedOut {
					t.Errorf("want close %d; got %d %q", wsauth.CloseLoggedOut, code, reason)
				}
			})
			t.Run("logout everywhere", func(t *testing.T) {
				a, b := s.login(t, "o-erin"), s.login(t, "o-erin")
				ca, cb := mustDial(t, s.wsURL(""), bearer(a)), mustDial(t, s.wsURL(""), bearer(b))
				call(t, ca, "who")
				call(t, cb, "who")
				if st := s.post(t, "/logout-all", a); st != 200 {
					t.Fatalf("logout-all: %d", st)
				}
				for _, c := range []*websocket.Conn{ca, cb} {
					if code, reason := closeCode(c, 2*time.Second); code != wsauth.CloseRevoked {
						t.Errorf("want close %d; got %d %q", wsauth.CloseRevoked, code, reason)
					}
				}
			})
			t.Run("replaced by a newer login", func(t *testing.T) {
				single := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Token, SingleSession: true})
				conn := mustDial(t, single.wsURL(""), bearer(single.login(t, "o-frank")))
				call(t, conn, "who")
				single.login(t, "o-frank")
				if code, reason := closeCode(conn, 2*time.Second); code != wsauth.CloseRevoked {
					t.Errorf("want close %d; got %d %q", wsauth.CloseRevoked, code, reason)
				}
			})
			t.Run("absolute deadline", func(t *testing.T) {
				t.Parallel()
				short := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Token, IdleTimeout: time.Second, AbsoluteTimeout: 1500 * time.Millisecond})
				conn := mustDial(t, short.wsURL(""), bearer(short.login(t, "o-gina")))
				call(t, conn, "who")
				if code, reason := closeCode(conn, 4*time.Second); code != wsauth.CloseExpired {
					t.Errorf("want close %d; got %d %q", wsauth.CloseExpired, code, reason)
				}
			})
			t.Run("kept alive while open", func(t *testing.T) {
				t.Parallel()
				// The idle timeout passes several times over while the socket is
				// open and quiet: the session must survive it.
				short := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Token, IdleTimeout: 1500 * time.Millisecond})
				token := short.login(t, "o-hank")
				conn := mustDial(t, short.wsURL(""), bearer(token))
				call(t, conn, "who")
				time.Sleep(4 * time.Second) // the clock passing is what is tested
				if got := call(t, conn, "who"); got != "o-hank" {
					t.Errorf("want o-hank; got %q", got)
				}
				if st := short.post(t, "/set/k/v", token); st != 200 {
					t.Errorf("the session died under an open socket: %d", st)
				}
			})
		})
	}
}

// TestConcurrentWriters: writes from several goroutines through wsauth.Conn never
// panic with "concurrent write to websocket connection", and none is lost.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{Protocol: fibermp.Token})
	conn := mustDial(t, s.wsURL(""), bearer(s.login(t, "o-ivy")))
	const n = 400
	if err := conn.WriteMessage(websocket.TextMessage, []byte("spam 400")); err != nil {
		t.Fatal(err)
	}
	ticks, oks := 0, 0
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for ticks < n || oks < 1 {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("after %d ticks: %v", ticks, err)
		}
		switch string(msg) {
		case "tick":
			ticks++
		case "ok":
			oks++
		default:
			t.Fatalf("unexpected %q", msg)
		}
	}
}

// flakyStore counts loads and fails them on demand.
type flakyStore struct {
	store.Store
	loads atomic.Int64
	down  atomic.Bool
}

func (f *flakyStore) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	f.loads.Add(1)
	if f.down.Load() {
		return nil, errors.New("flaky: store down")
	}
	return f.Store.Load(ctx, id, touch)
}

// TestHandleReads checks the live handle's reads: it starts from the session the
// upgrade loaded (no second load), reloads after a change elsewhere, answers from the
// last values known while the store fails (Reload says why), and catches up after.
// Its field-name errors are fibermp's.
func TestHandleReads(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	st := &flakyStore{Store: mem}
	s := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Token})
	// A first socket: the registry's subscription then predates the next upgrade's
	// load, so that upgrade's handle needs no reload to be sure it missed nothing.
	mustDial(t, s.wsURL(""), bearer(s.login(t, "o-first")))
	token := s.login(t, "o-reader")
	if code := s.post(t, "/set/color/red", token); code != 200 {
		t.Fatalf("set: want 200; got %d", code)
	}
	conn := mustDial(t, s.wsURL(""), bearer(token))
	loads := st.loads.Load()
	if got := call(t, conn, "get color"); got != `"red"` {
		t.Errorf("first read: want \"red\"; got %s", got)
	}
	if got := call(t, conn, "keys"); got != "color" {
		t.Errorf("keys: want color; got %q", got)
	}
	if n := st.loads.Load() - loads; n != 0 {
		t.Errorf("the first reads loaded the session %d times; want 0 (the upgrade's load)", n)
	}
	if got := call(t, conn, "errs"); got != "true true true true" {
		t.Errorf("field-name errors: want fibermp's; got %s", got)
	}

	write := func(color string) {
		t.Helper()
		ch := store.Change{Set: map[string]string{"color": `"` + color + `"`}}
		if err := mem.Save(t.Context(), token, ch, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for got := call(t, conn, "get color"); got != want; got = call(t, conn, "get color") {
			if time.Now().After(deadline) {
				t.Fatalf("want %s; got %s", want, got)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	write("blue")
	waitFor(`"blue"`)

	st.down.Store(true)
	loads = st.loads.Load()
	write("green")
	// The change event makes the handle reload, which fails: it keeps "blue".
	deadline := time.Now().Add(5 * time.Second)
	for st.loads.Load() == loads {
		if got := call(t, conn, "get color"); got != `"blue"` {
			t.Fatalf("while the store is down: want the last value \"blue\"; got %s", got)
		}
		if time.Now().After(deadline) {
			t.Fatal("the handle never tried to reload")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := call(t, conn, "get color"); got != `"blue"` {
		t.Errorf("while the store is down: want the last value \"blue\"; got %s", got)
	}
	if got := call(t, conn, "reload"); !strings.Contains(got, "flaky: store down") {
		t.Errorf("Reload while the store is down: want its error; got %q", got)
	}
	st.down.Store(false)
	waitFor(`"green"`)
	if got := call(t, conn, "reload"); got != "ok" {
		t.Errorf("Reload: want ok; got %q", got)
	}
}

// TestUpgradeWithoutMiddleware: a socket route needs nothing before it. On an app
// without the Manager's middleware, Upgrade reads the credentials itself, and refuses
// an upgrade without them with 401.
func TestUpgradeWithoutMiddleware(t *testing.T) {
	t.Parallel()
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{Protocol: fibermp.Token})
	bare := fiber.New(fiber.Config{DisableStartupMessage: true})
	bare.Get("/ws", s.ws.Upgrade(echo))
	url := strings.Replace(testenv.Serve(t, bare), "http", "ws", 1) + "/ws"
	conn := mustDial(t, url, bearer(s.login(t, "o-bare")))
	if got := call(t, conn, "who"); got != "o-bare" {
		t.Errorf("who: want o-bare; got %q", got)
	}
	_ = conn.Close()
	c, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil {
		_ = c.Close()
		t.Fatal("an upgrade without credentials was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("want 401; got %v (%v)", resp, err)
	}
}

// TestTicketURL: a client cannot choose where its ticket is sent. X-Forwarded-Host
// counts only from a proxy the app trusts; a configured URL wins over the request.
func TestTicketURL(t *testing.T) {
	t.Parallel()
	st := stores(t)["memory"](t)
	get := func(s *server, path string, header http.Header) string {
		t.Helper()
		req, _ := http.NewRequest("GET", s.url+path, nil)
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ URL string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		return body.URL
	}
	s := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Token}, func(app *app) {
		app.Get("/public-tunnel", app.ws(wsauth.Config{TicketURL: "wss://game.example/ws"}).Tickets())
	})
	h := bearer(s.login(t, "o-spoof"))
	h.Set("X-Forwarded-Host", "evil.example")
	h.Set("X-Forwarded-Proto", "https")
	u, _ := url.Parse(get(s, "/tunnel", h))
	if want := strings.TrimPrefix(s.url, "http://"); u.Host != want || u.Scheme != "ws" {
		t.Errorf("spoofed X-Forwarded-Host: want ws://%s; got %s", want, u)
	}
	if u, _ := url.Parse(get(s, "/public-tunnel", h)); u.Scheme != "wss" || u.Host != "game.example" || u.Path != "/ws" || len(u.Query().Get("ticket")) != 43 {
		t.Errorf("configured URL: want wss://game.example/ws?ticket=...; got %s", u)
	}
}

// TestSocketCaps: one session, and one user across sessions, hold at most the sockets
// the config allows; one more is refused with 429 before any 101, and a closed socket
// frees its place.
func TestSocketCaps(t *testing.T) {
	t.Parallel()
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{Protocol: fibermp.Token})
	capped := strings.Replace(s.wsURL(""), "/ws", "/capped", 1)
	first, second := s.login(t, "o-greedy"), s.login(t, "o-greedy")
	refused := func(token, why string) {
		t.Helper()
		conn, resp, err := dial(capped, bearer(token))
		if err == nil {
			conn.Close()
			t.Fatalf("%s: want 429; got a socket", why)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 429 || !strings.Contains(string(body), fibermp.ErrCodeTooManySockets) {
			t.Errorf("%s: want 429 %s; got %d %s", why, fibermp.ErrCodeTooManySockets, resp.StatusCode, body)
		}
	}
	a := mustDial(t, capped, bearer(first))
	mustDial(t, capped, bearer(first))
	refused(first, "a third socket of one session")
	mustDial(t, capped, bearer(second))
	refused(second, "a fourth socket of one user")
	if got := call(t, a, "who"); got != "o-greedy" {
		t.Fatalf("who: %q", got)
	}
	_ = a.Close()
	waitHandles(t, 2)
	if got := call(t, mustDial(t, capped, bearer(second)), "who"); got != "o-greedy" {
		t.Errorf("after a socket closed: want a new one; got %q", got)
	}
}

// touchStore counts keep-alive touches, can make them hang until their deadline (a
// stopped Redis), and hides expiry events, as Redis (which cannot observe expiry) does.
type touchStore struct {
	store.Store
	single, batches, maxBatch atomic.Int64
	inflight                  atomic.Int64
	hang                      atomic.Bool
}

func (s *touchStore) Touch(ctx context.Context, id string, idle time.Duration) error {
	s.single.Add(1)
	return s.Store.Touch(ctx, id, idle)
}

func (s *touchStore) TouchMany(ctx context.Context, ids []string, idle time.Duration) []error {
	s.batches.Add(1)
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if n := int64(len(ids)); n > s.maxBatch.Load() {
		s.maxBatch.Store(n)
	}
	errs := s.Store.TouchMany(ctx, ids, idle)
	if s.hang.Load() {
		<-ctx.Done() // the sessions were extended, but the answer never comes
		for i := range errs {
			errs[i] = ctx.Err()
		}
	}
	return errs
}

// Capabilities gives events without EventExpired, and says the store may wait (it
// hangs when told to), so that its calls are bounded by the store timeout.
func (s *touchStore) Capabilities() store.Capabilities {
	caps := s.Store.Capabilities()
	caps.InProcess = false
	caps.Events = noExpiry{caps.Events}
	return caps
}

type noExpiry struct{ store.Events }

func (e noExpiry) Subscribe(fn func(store.Event)) (func(), error) {
	return e.Events.Subscribe(func(ev store.Event) {
		if ev.Kind != store.EventExpired {
			fn(ev)
		}
	})
}

// TestKeepAlive: the sessions of open sockets are extended in batches, not one store
// call each, and a session's absolute deadline closes its socket on time even while
// every touch hangs until the store timeout.
func TestKeepAlive(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	st := &touchStore{Store: mem}
	t.Cleanup(func() {
		// Last: a touch that hangs until the store timeout outlives the server.
		st.hang.Store(false)
		for st.inflight.Load() > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	})
	const sockets = 20
	s := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Token, IdleTimeout: 1500 * time.Millisecond,
		AbsoluteTimeout: 4 * time.Second, StoreTimeout: time.Second})
	conns := make([]*websocket.Conn, sockets)
	var deadline time.Time
	for i := range conns {
		if i == 0 {
			deadline = time.Now().Add(4 * time.Second)
		}
		conns[i] = mustDial(t, s.wsURL(""), bearer(s.login(t, fmt.Sprintf("o-alive-%d", i))))
	}
	for wait := time.Now().Add(3 * time.Second); st.maxBatch.Load() < sockets; {
		if time.Now().After(wait) {
			t.Fatalf("want one batch of %d touches; the largest was %d", sockets, st.maxBatch.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := st.single.Load(); n != 0 {
		t.Errorf("want no single touches; got %d", n)
	}
	st.hang.Store(true)
	code, _ := closeCode(conns[0], 10*time.Second)
	late := time.Since(deadline)
	t.Logf("deadline close %v after the deadline, with touches hanging; %d batches, the largest %d", late.Round(time.Millisecond), st.batches.Load(), st.maxBatch.Load())
	if code != wsauth.CloseExpired {
		t.Errorf("want close %d at the deadline; got %d", wsauth.CloseExpired, code)
	}
	if late > 700*time.Millisecond {
		t.Errorf("the deadline close came %v late", late)
	}
}

// TestMetrics counts what sockets do: open sockets and handles, events and refusals.
func TestMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{Protocol: fibermp.Token, Metrics: m})
	value := func(name string, labels map[string]string) float64 {
		var v float64
		m.Each(func(s metrics.Sample) {
			if s.Name == name && fmt.Sprint(s.Labels) == fmt.Sprint(labels) {
				v = s.Value
			}
		})
		return v
	}
	token := s.login(t, "o-counted")
	conn := mustDial(t, s.wsURL(""), bearer(token))
	call(t, conn, "who")
	if n, h := value("mpsession_sockets", nil), value("mpsession_handles", nil); n != 1 || h != 1 {
		t.Errorf("one socket open: want 1 socket and 1 handle; got %v and %v", n, h)
	}
	s.post(t, "/set/color/red", token)
	if _, _, err := dial(s.wsURL(""), nil); err == nil {
		t.Error("want a refusal")
	}
	_ = conn.Close()
	waitHandles(t, 0)
	for deadline := time.Now().Add(5 * time.Second); value("mpsession_sockets", nil) != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after close: want 0 sockets; got %v", value("mpsession_sockets", nil))
		}
	}
	if v := value("mpsession_events_total", map[string]string{"kind": "changed"}); v < 1 {
		t.Errorf("want the change event counted; got %v", v)
	}
	if v := value("mpsession_upgrades_refused_total", map[string]string{"reason": "invalid"}); v != 1 {
		t.Errorf("want 1 upgrade refused as invalid; got %v", v)
	}
	if v := value("mpsession_logins_total", map[string]string{"outcome": "ok"}); v != 1 {
		t.Errorf("want 1 login; got %v", v)
	}
}

// TestCredentialHidden: a subprotocol credential never reaches the handler, even when
// the headers carry a session as well.
func TestCredentialHidden(t *testing.T) {
	t.Parallel()
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{Protocol: fibermp.Token})
	token := s.login(t, "o-both")
	h := bearer(token)
	h.Set("Sec-WebSocket-Protocol", "mpsession, "+token)
	conn, resp, err := dial(s.wsURL(""), h)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mpsession" {
		t.Errorf("want the fixed protocol echoed; got %q", got)
	}
	if got := call(t, conn, "proto"); strings.Contains(got, token) {
		t.Errorf("the handler sees the credential: %q", got)
	}
}

// TestProtocolsDoNotMix: where a Wafer and a Wafer2 middleware share a store, a Wafer
// session is not opened by its id alone.
func TestProtocolsDoNotMix(t *testing.T) {
	t.Parallel()
	st := stores(t)["memory"](t)
	wafer := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Wafer})
	wafer2 := newServer(t, st, wafer.wx, fibermp.Config{Protocol: fibermp.Wafer2})
	id, _ := wafer.loginWafer(t, "o-mixed")
	if _, resp, err := dial(wafer2.wsURL(""), http.Header{"X-WX-Skey": {id}}); err == nil || status(resp) != 401 {
		t.Errorf("a Wafer id as a Wafer2 skey: want 401; got %d, %v", status(resp), err)
	}
}
