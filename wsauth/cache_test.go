package wsauth_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// TestCachedSessionsAcrossProcesses runs two servers with the session cache on, sharing
// Redis as two processes would. HTTP and socket increments of one session from both at
// once end in an exact total that sockets and requests on both read; a field set over
// HTTP on A is read by B's socket; a logout on B closes A's socket.
func TestCachedSessionsAcrossProcesses(t *testing.T) {
	t.Parallel()
	stA, stB := sharedRedisStores(t)
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	cfg := fibermp.Config{Protocol: fibermp.Token, Cache: &fibermp.CacheConfig{}}
	field := func(app *app) {
		app.Get("/field/:k", fibermp.Required(), func(c *fiber.Ctx) error {
			raw, _ := fibermp.Get(c).Raw(c.Params("k"))
			return c.Send(raw)
		})
	}
	a := newServer(t, stA, wechat, cfg, field)
	b := newServer(t, stB, wechat, cfg, field)

	token := a.login(t, "o-cached")
	connA := mustDial(t, a.wsURL(""), bearer(token))
	connB := mustDial(t, b.wsURL(""), bearer(token))
	defer connA.Close()
	defer connB.Close()

	const each = 150
	var wg sync.WaitGroup
	for _, s := range []*server{a, b} {
		wg.Add(1)
		go func() { // HTTP increments through this server
			defer wg.Done()
			for range each {
				if st := s.post(t, "/incr/n", token); st != 200 {
					t.Errorf("incr over HTTP: %d", st)
					return
				}
			}
		}()
	}
	// Socket increments on both, from this goroutine: a socket serves one command at a
	// time.
	for range each {
		for _, conn := range []*websocket.Conn{connA, connB} {
			if got := call(t, conn, "incr n"); strings.Contains(got, "fibermp") {
				t.Fatalf("incr over the socket: %s", got)
			}
		}
	}
	wg.Wait()
	want := strconv.Itoa(4 * each)
	// Every process sees the total once the other's last event is in: poll, as a
	// client would, within a generous bound.
	for name, conn := range map[string]*websocket.Conn{"A": connA, "B": connB} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := call(t, conn, "get n")
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("socket on %s reads n = %s, want %s", name, got, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for name, s := range map[string]*server{"A": a, "B": b} {
		if got := getField(t, s, token, "n"); got != want {
			t.Fatalf("a request on %s reads n = %s, want %s", name, got, want)
		}
	}

	// A field set over HTTP on A reaches B's socket.
	if st := a.post(t, "/set/color/teal", token); st != 200 {
		t.Fatalf("set: %d", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for call(t, connB, "get color") != `"teal"` {
		if time.Now().After(deadline) {
			t.Fatal("B's socket never read the color set on A")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A logout on B closes A's socket.
	if st := b.post(t, "/logout", token); st != 204 {
		t.Fatalf("logout: %d", st)
	}
	if code, reason := closeCode(connA, 5*time.Second); code != wsauth.CloseLoggedOut {
		t.Fatalf("A's socket: want close %d; got %d %q", wsauth.CloseLoggedOut, code, reason)
	}
	if st := a.post(t, "/incr/n", token); st != http.StatusUnauthorized {
		t.Fatalf("a request on A after the logout on B: %d, want 401", st)
	}
}

// getField reads a field of the token's session over HTTP.
func getField(t *testing.T, s *server, token, key string) string {
	t.Helper()
	req, err := http.NewRequest("GET", s.url+"/field/"+key, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /field/%s: %d %s %v", key, resp.StatusCode, b, err)
	}
	return string(b)
}
