package main

import (
	"bytes"
	"io"
	"maps"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"

	"github.com/mpsession/mpsession/internal/cache"
	"github.com/mpsession/mpsession/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(testenv.IgnoreFasthttp,
		// A closed HostClient's cleaner finishes its idle sleep (10 s) and exits.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		// The DNS cache cleaner of fasthttp's process-wide default dialer, never stopped.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
	)...)
}

// testEnv starts the contenders for a test or a benchmark, and stops them when it ends.
func testEnv(tb testing.TB, conns int) *env {
	tb.Helper()
	e, err := newEnv(testenv.RedisAddr(), conns)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Error(err)
		}
	})
	return e
}

// requireRedis fails the test in CI, and skips it elsewhere, when the Redis
// contenders are missing.
func requireRedis(tb testing.TB, e *env) {
	tb.Helper()
	if e.redisErr != nil {
		testenv.Unavailable(tb, "%v; start it or set MPSESSION_REDIS_ADDR", e.redisErr)
	}
}

// BenchmarkSideBySide measures each contender through a real listener, driven by
// 32 concurrent requests. The servers and the client share the process, so allocs/op
// counts both. go run . (in bench/) gives the ratios, from interleaved rounds.
func BenchmarkSideBySide(b *testing.B) {
	const conns = 32
	e := testEnv(b, conns)
	for _, op := range []string{opRead, opIncr} {
		b.Run(op, func(b *testing.B) {
			for _, c := range e.contenders {
				if c.op == op {
					b.Run(c.name, func(b *testing.B) { benchContender(b, c, conns) })
				}
			}
		})
	}
	requireRedis(b, e)
}

func benchContender(b *testing.B, c *contender, conns int) {
	b.SetParallelism(max(1, conns/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	trips := c.trips.load()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := c.newRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			if _, err := c.do(req, resp); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if c.trips != nil {
		b.ReportMetric(float64(c.trips.load()-trips)/float64(b.N), "trips/op")
	}
}

// tripsWant is the Redis round trips per request of fibermp's contenders: a read loads
// the session (one pipeline), an increment loads it and runs the Incr script; with the
// cache a read costs none and an increment only the script.
var tripsWant = map[string]float64{
	"read/fibermp-redis":        1,
	"incr/fibermp-redis":        2,
	"read/fibermp-redis-cached": 0,
	"incr/fibermp-redis-cached": 1,
}

// TestContenders checks that every contender answers as the comparison expects, and
// that fibermp costs the round trips of tripsWant.
func TestContenders(t *testing.T) {
	e := testEnv(t, 4)
	for _, c := range e.contenders {
		t.Run(c.String(), func(t *testing.T) {
			// The first run of a Lua script on a node may load it: one more trip.
			last, err := c.doOnce()
			if err != nil {
				t.Fatal(err)
			}
			// A cached contender loads the session from Redis on a miss, and while
			// the cache is rightly bypassed (its subscription missed a health check on
			// a loaded machine): those loads are counted, one round trip each.
			const n = 10
			trips := c.trips.load()
			var loads int64
			if c.lookups != nil {
				loads = c.storeLoads()
			}
			for range n {
				got, err := c.doOnce()
				if err != nil {
					t.Fatal(err)
				}
				if c.op == opIncr && got != last+1 {
					t.Errorf("want %d; got %d", last+1, got)
				}
				last = got
			}
			if c.trips == nil {
				return
			}
			want, ok := tripsWant[c.String()]
			if !ok {
				return
			}
			want *= n
			if c.lookups != nil {
				loads = c.storeLoads() - loads
				want += float64(loads)
			}
			got := float64(c.trips.load() - trips)
			t.Logf("%.2f Redis round trips per request (%d loads of the session)", got/n, loads)
			if got != want {
				t.Errorf("want %v Redis round trips in %d requests; got %v", want, n, got)
			}
		})
	}
	requireRedis(t, e)
}

// TestCommands runs every contender on a Redis of the test's own, where INFO
// commandstats counts nothing else, and checks the commands per request the table
// reports for fibermp: none for a cached read, HGETALL and PEXPIREAT for a read, and
// EVALSHA (the Incr script, one round trip) with no load before it for a cached
// increment. The subscription's health-check PINGs (four a second) and the commands
// that set up a new connection of a client's pool are left out.
func TestCommands(t *testing.T) {
	srv := testenv.StartRedis(t)
	e, err := newEnv(srv.Addr, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	requireRedis(t, e)
	want := map[string]map[string]int64{
		"read/fibermp-redis-cached": {},
		"read/fibermp-redis":        {"hgetall": 1, "pexpireat": 1},
		"read/fibersession-redis":   {"get": 1},
		"read/bare-fiber-redis-get": {"get": 1},
		"incr/fibersession-redis":   {"get": 1, "set": 1},
		// The Incr script and the commands it runs (HINCRBY of the field and of the
		// session's version), with no load before it.
		"incr/fibermp-redis-cached": {"evalsha": 1, "hexists": 1, "hget": 2, "hincrby": 2, "publish": 1},
	}
	for _, c := range e.contenders {
		if c.admin == nil {
			continue
		}
		t.Run(c.String(), func(t *testing.T) {
			if _, err := c.doOnce(); err != nil { // may load the session or a script
				t.Fatal(err)
			}
			// Concurrent increments of one session too: the cache applies them in the
			// order of the session's versions, and loads it no more.
			conns := 4
			var loads int64
			if c.lookups != nil {
				loads = c.storeLoads()
			}
			r, err := run(c, conns, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"ping", "hello", "client|setinfo", "select", "auth"} {
				delete(r.calls, name)
			}
			per := make(map[string]float64, len(r.calls))
			for name, n := range r.calls {
				per[name] = float64(n) / float64(r.requests)
			}
			t.Logf("%d requests; per request: %v", r.requests, per)
			w, ok := want[c.String()]
			if !ok {
				return
			}
			wantCalls := make(map[string]int64, len(w))
			for name, n := range w {
				wantCalls[name] = n * r.requests
			}
			if c.lookups != nil {
				// A miss or a bypass loads the session: HGETALL and PEXPIREAT.
				if loads = c.storeLoads() - loads; loads > 0 {
					wantCalls["hgetall"] += loads
					wantCalls["pexpireat"] += loads
				}
				t.Logf("%d loads of the session", loads)
			}
			// The cached contender's cache publishes a fence every MaxLag/2 while it is
			// used (see internal/cache), on this Redis, whichever contender runs: at
			// most that many PUBLISHes more than the requests make.
			fences := int64(r.elapsed/(cache.DefaultMaxLag/2)) + 2
			for name := range mergeKeys(wantCalls, r.calls) {
				got, want := r.calls[name], wantCalls[name]
				if name == "publish" && got >= want && got <= want+fences {
					continue
				}
				if got != want {
					t.Errorf("%s: want %d in %d requests (and up to %d fences for publish); got %d", name, want, r.requests, fences, got)
				}
			}
		})
	}
}

func mergeKeys[V any](a, b map[string]V) map[string]bool {
	keys := make(map[string]bool, len(a)+len(b))
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_hgetall:calls=12,usec=40,usec_per_call=3.33,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=7,usec=900,usec_per_call=128.57,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setinfo:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n"
	got, err := parseCommandStats(info)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"hgetall": 12, "client|setinfo": 2}
	if !maps.Equal(got, want) {
		t.Errorf("want %v; got %v", want, got)
	}
	for _, bad := range []string{"cmdstat_get:usec=1\r\n", "cmdstat_get:calls=x,usec=1\r\n", "cmdstat_get:calls=-1\r\n", "cmdstat_:calls=1\r\n"} {
		if _, err := parseCommandStats(bad); err == nil {
			t.Errorf("parseCommandStats(%q): want an error; got none", bad)
		}
	}
	d := callsSince(map[string]int64{"get": 3, "set": 1}, map[string]int64{"get": 5, "set": 1, "del": 2})
	if want := map[string]int64{"get": 2, "del": 2}; !maps.Equal(d, want) {
		t.Errorf("callsSince: want %v; got %v", want, d)
	}
}

// FuzzParseCommandStats feeds INFO replies to the parser: it returns counts or an
// error, never panics, and never returns INFO's own count or a negative one.
func FuzzParseCommandStats(f *testing.F) {
	f.Add("# Commandstats\r\ncmdstat_get:calls=1,usec=2,usec_per_call=2.00\r\n")
	f.Add("cmdstat_info:calls=3\r\ncmdstat_evalsha:calls=9,usec=1\r\n")
	f.Add("cmdstat_x:calls=99999999999999999999\r\n")
	f.Add("cmdstat_:\n\ncmdstat_a:calls=")
	f.Fuzz(func(t *testing.T, info string) {
		calls, err := parseCommandStats(info)
		if err != nil {
			return
		}
		for name, n := range calls {
			if name == "info" || name == "" || n < 0 {
				t.Errorf("%q: got %q = %d", info, name, n)
			}
		}
	})
}

// FuzzParseCounter feeds reply bodies to the load generator's parser of {"n":<int>}.
func FuzzParseCounter(f *testing.F) {
	f.Add([]byte(`{"n":1}`))
	f.Add([]byte(`{"n":123456789012345678}`))
	f.Add([]byte(`{"n":-1}`))
	f.Add([]byte(`{"n":}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, ok := parseCounter(body)
		if !ok {
			return
		}
		digits := body[len(`{"n":`) : len(body)-1]
		if want, err := strconv.ParseInt(string(digits), 10, 64); err != nil || want != n || n < 0 {
			t.Errorf("parseCounter(%q) = %d", body, n)
		}
	})
}

// TestCompare runs the command's comparison for a moment, so that CI runs its code;
// figures this short mean nothing, and none is checked. It checks that no fibermp
// increment is lost under concurrency.
func TestCompare(t *testing.T) {
	const conns = 8
	e := testEnv(t, conns)
	var out bytes.Buffer
	o := options{duration: 100 * time.Millisecond, warmup: 50 * time.Millisecond, rounds: 2, conns: conns}
	if err := compare(&out, io.Discard, e, o); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", out.Bytes())
	for _, c := range e.contenders {
		if !strings.Contains(out.String(), c.String()) {
			t.Errorf("the table has no row for %s", c)
		}
	}
	for _, cmp := range comparisons {
		if !strings.Contains(out.String(), cmp.what) {
			t.Errorf("the table has no row for %q", cmp.what)
		}
	}
	requireRedis(t, e)

	for _, name := range []string{"incr/fibermp-redis", "incr/fibersession-redis"} {
		r, err := run(e.contender(name), conns, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d of %d increments lost", name, r.lost, r.requests)
		if strings.HasPrefix(name, "incr/fibermp") && r.lost != 0 {
			t.Errorf("%s: want no lost increment; got %d of %d", name, r.lost, r.requests)
		}
	}
}

// TestCompareWrk: the side-by-side with wrk runs every contender it is given (here the
// memory read and bare Fiber, and the Redis reads), and its table has their rows and
// the comparisons between them; a contender that answers errors fails the run.
func TestCompareWrk(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		testenv.Unavailable(t, "wrk is not installed (apt-get install -y wrk)")
	}
	const conns = 4
	e := testEnv(t, conns)
	var out bytes.Buffer
	o := options{duration: time.Second, warmup: time.Second, rounds: 1, conns: conns,
		only: regexp.MustCompile(`^read/(bare-fiber|fibermp-memory|fibermp-redis|fibersession-redis)$`)}
	if err := compareWrk(&out, io.Discard, e, o); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", out.Bytes())
	for _, want := range []string{"read/bare-fiber ", "read/fibermp-memory", "authenticated read, memory store"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table has no row for %q", want)
		}
	}
	requireRedis(t, e)
	if !strings.Contains(out.String(), "read, Redis ") {
		t.Error(`the table has no row for "read, Redis"`)
	}

	bad := *e.contender("read/bare-fiber")
	bad.sessionID, bad.method = "x", "DELETE" // bare Fiber has no such route: 405s
	script, err := wrkScript(t.TempDir(), &bad)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := runWrk(&bad, script, conns, 1, time.Second); err != nil || r.errors == "" {
		t.Errorf("a contender answering errors: want wrk to report them; got %+v, %v", r, err)
	}
}
