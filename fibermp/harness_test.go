package fibermp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

const (
	appID     = "wx0123456789abcdef"
	appSecret = "test-secret-0123456789abcdef0123"
)

// harness is a Fiber app with the middleware, served on a real loopback listener, with
// a fake WeChat server behind it.
type harness struct {
	wx    *wxtest.Server
	store store.Store
	mp    *fibermp.Manager
	url   string

	mu        sync.Mutex
	sessionKs []string // every session_key wxtest handed out, to check no reply leaks one
}

// newHarness starts a server. cfg.Client and cfg.Store are filled in when nil; routes
// adds the application's routes after the middleware.
func newHarness(t testing.TB, cfg fibermp.Config, routes func(app fiber.Router)) *harness {
	t.Helper()
	return newHarnessAt(t, "", cfg, routes)
}

// newHarnessAt starts a server whose middleware and routes are mounted at prefix: at
// the root when it is "", under app.Group(prefix) when it starts with "/", and in a
// sub-app mounted at the rest of it when it starts with "mount:". h.url includes the
// prefix.
func newHarnessAt(t testing.TB, prefix string, cfg fibermp.Config, routes func(app fiber.Router)) *harness {
	t.Helper()
	h := &harness{wx: wxtest.NewServer(appID, appSecret)}
	t.Cleanup(h.wx.Close)
	if cfg.Client == nil {
		c, err := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: h.wx.URL})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Client = c
	}
	if cfg.Store == nil {
		m := memstore.New()
		t.Cleanup(func() { _ = m.Close() })
		cfg.Store = m
	}
	h.store = cfg.Store
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	var r fiber.Router = app
	path, mount := strings.CutPrefix(prefix, "mount:")
	switch {
	case mount:
		sub := fiber.New()
		r = sub
		app.Mount(path, sub)
	case path != "":
		r = app.Group(path)
	}
	// Store calls made for a request carry its user context: mark it, so that counts
	// of Redis round trips can tell them from background traffic.
	r.Use(func(c *fiber.Ctx) error {
		c.SetUserContext(context.WithValue(c.UserContext(), requestMark{}, true))
		return c.Next()
	})
	mp, err := fibermp.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.mp = mp
	t.Cleanup(func() { // after the app's shutdown, registered later
		if err := mp.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	r.Use(mp.Handler())
	if routes != nil {
		routes(r)
	}
	h.url = testenv.Serve(t, app) + path
	return h
}

// code returns a fresh wx.login code for openID, and remembers the user's session_key.
func (h *harness) code(openID string) string {
	c := h.wx.NewCode(openID)
	h.mu.Lock()
	h.sessionKs = append(h.sessionKs, h.wx.User(openID).SessionKey)
	h.mu.Unlock()
	return c
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("reply is not a JSON object: %v: %q", err, r.body)
	}
	return m
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// do sends a request and checks that the reply holds no session_key handed out so far.
func (h *harness) do(t testing.TB, method, path string, header map[string]string, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sk := range h.sessionKs {
		if strings.Contains(string(b), sk) || strings.Contains(strings.Join(flatten(resp.Header), "\n"), sk) {
			t.Errorf("a reply to %s %s holds a session_key: %q", method, path, b)
		}
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func flatten(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}

var errDown = errors.New("connection refused")

// requestMark marks the user context of the harness's requests.
type requestMark struct{}
