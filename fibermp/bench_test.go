package fibermp_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/store/redisstore"
)

// redisStore returns a Redis store under a fresh key prefix, and the counter of the
// round trips the store made.
func redisStore(tb testing.TB) (store.Store, *commandCounter) {
	tb.Helper()
	rdb := testenv.Redis(tb)
	cc := &commandCounter{}
	rdb.AddHook(cc)
	s := redisstore.New(rdb, redisstore.Config{Prefix: testenv.RedisPrefix(tb, rdb)})
	tb.Cleanup(func() { _ = s.Close() })
	return s, cc
}

// commandCounter counts the round trips to Redis made for the harness's requests (a
// pipeline is one), and not the store's background traffic (its subscription, health
// checks). Nor does it count what go-redis sends inside a counted command (the HELLO
// and setup of a connection it dials for it, when another goroutine holds the idle
// one): it passes the context on without the mark.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) count(ctx context.Context) context.Context {
	if ctx.Value(requestMark{}) == nil {
		return ctx
	}
	c.n.Add(1)
	return context.WithValue(ctx, requestMark{}, nil)
}

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { return next(c.count(ctx), cmd) }
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { return next(c.count(ctx), cmds) }
}

func benchStores(b *testing.B) map[string]store.Store {
	mem := memstore.New()
	b.Cleanup(func() { _ = mem.Close() })
	rs, _ := redisStore(b)
	return map[string]store.Store{"memory": mem, "redis": rs}
}

// BenchmarkRead is an authenticated read through a real listener.
func BenchmarkRead(b *testing.B) {
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			benchRoute(b, benchStores(b)[name], "/color")
		})
	}
}

// BenchmarkIncr is an authenticated atomic increment through a real listener.
func BenchmarkIncr(b *testing.B) {
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			benchRoute(b, benchStores(b)[name], "/incr")
		})
	}
}

func benchRoute(b *testing.B, st store.Store, path string) {
	h := newHarness(b, fibermp.Config{Protocol: fibermp.Wafer, Store: st}, routes)
	hdr := loginWafer(b, h, "o-bench")
	method := fasthttp.MethodGet
	if path == "/incr" {
		method = fasthttp.MethodPost
	}
	hc := &fasthttp.HostClient{Addr: h.url[len("http://"):], MaxConns: 64}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(h.url + path)
		req.Header.SetMethod(method)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		for pb.Next() {
			if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Errorf("%s: %v %d %s", path, err, resp.StatusCode(), resp.Body())
				return
			}
		}
	})
}

// loadScripts has Redis run every script the harness's routes use, through a session of
// its own. The first run of a script on a server costs an EVAL after the EVALSHA, and
// the script cache is the server's: whether a script is already in the shared Redis
// depends on what other tests, in other packages too, ran before.
func loadScripts(t *testing.T, h *harness) {
	t.Helper()
	hdr := loginWafer(t, h, "o-scripts")
	hdr["Content-Type"] = "application/json"
	for _, r := range []reply{
		h.do(t, "POST", "/color", hdr, `{"color":"none"}`),
		h.do(t, "POST", "/incr", hdr, ""),
	} {
		if r.status != 200 {
			t.Fatalf("loading the scripts: %d %s", r.status, r.body)
		}
	}
}

// TestRedisRoundTrips counts the Redis round trips of a request: one to read, one more
// to write, none more to keep the session alive.
func TestRedisRoundTrips(t *testing.T) {
	t.Parallel()
	st, cc := redisStore(t)
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, Store: st}, routes)
	loadScripts(t, h)
	hdr := loginWafer(t, h, "o-trips")
	write := map[string]string{"X-WX-Id": hdr["X-WX-Id"], "X-WX-Skey": hdr["X-WX-Skey"], "Content-Type": "application/json"}
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		body               string
		want               int64
	}{
		{"read", "GET", "/color", hdr, "", 1},
		{"set", "POST", "/color", write, `{"color":"teal"}`, 2},
		{"set again", "POST", "/color", write, `{"color":"teal"}`, 2},
		{"incr", "POST", "/incr", hdr, "", 2},
		{"incr again", "POST", "/incr", hdr, "", 2},
		{"no credentials", "GET", "/public", nil, "", 0},
	} {
		before := cc.n.Load()
		if r := h.do(t, tc.method, tc.path, tc.hdr, tc.body); r.status != 200 {
			t.Fatalf("%s: %d %s", tc.name, r.status, r.body)
		}
		if got := cc.n.Load() - before; got != tc.want {
			t.Errorf("%s: want %d round trips; got %d", tc.name, tc.want, got)
		}
		t.Logf("%s: %d Redis round trips", tc.name, cc.n.Load()-before)
	}
}

// TestRedisOutage kills the Redis behind the middleware and starts it again, then
// stops it (SIGSTOP) and lets it go on: while it is down or hung, requests get 503
// without the wafer magic key (clients keep their sessions) within the store timeout
// and a little, without a panic; within 2 s of its return the same session works again.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	st := redisstore.New(rdb)
	t.Cleanup(func() { _ = st.Close() })
	const timeout = 500 * time.Millisecond
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, Store: st, StoreTimeout: timeout}, routes)
	hdr := loginWafer(t, h, "o-outage")

	down := func(how string) {
		t.Helper()
		for _, path := range []string{"/whoami", "/color", "/login"} {
			hd := hdr
			if path == "/login" {
				hd = map[string]string{"X-WX-Code": h.code("o-outage")}
			}
			start := time.Now()
			r := h.do(t, "GET", path, hd, "")
			took := time.Since(start)
			t.Logf("%s with Redis %s: %d in %v", path, how, r.status, took.Round(time.Millisecond))
			if r.status != 503 || r.json(t)["error"] != fibermp.ErrCodeUnavailable {
				t.Errorf("%s, Redis %s: want 503 %s; got %d %s", path, how, fibermp.ErrCodeUnavailable, r.status, r.body)
			}
			if _, ok := r.json(t)[fibermp.MagicID]; ok {
				t.Errorf("%s, Redis %s: a 503 carries the magic key, which makes clients drop their sessions", path, how)
			}
			// The login makes two store calls at most before it gives up.
			if limit := 2*timeout + time.Second; took > limit {
				t.Errorf("%s, Redis %s: the 503 took %v; want within %v", path, how, took, limit)
			}
		}
	}
	back := func(how string) {
		t.Helper()
		start := time.Now()
		for {
			r := h.do(t, "GET", "/whoami", hdr, "")
			if r.status == 200 {
				if got := r.json(t)["openid"]; got != "o-outage" {
					t.Fatalf("after Redis %s: want the same session; got %s", how, r.body)
				}
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("10 s after Redis %s: %d %s", how, r.status, r.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(start)
		t.Logf("requests succeed %v after Redis %s", took.Round(time.Millisecond), how)
		if took > 2*time.Second {
			t.Errorf("requests succeed %v after Redis %s; want within 2 s", took, how)
		}
	}

	srv.Stop()
	down("killed")
	srv.Start(t)
	back("restarted")

	srv.Pause(t)
	down("hung")
	srv.Resume(t)
	back("resumed")
}
