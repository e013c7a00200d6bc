package main

import (
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"

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

// TestContenders checks that every contender answers as the comparison expects, and
// that fibermp costs one Redis round trip to read and two to increment.
func TestContenders(t *testing.T) {
	e := testEnv(t, 4)
	for _, c := range e.contenders {
		t.Run(c.String(), func(t *testing.T) {
			// The first run of a Lua script on a node may load it: one more trip.
			last, err := c.doOnce()
			if err != nil {
				t.Fatal(err)
			}
			const n = 10
			trips := c.trips.load()
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
			per := float64(c.trips.load()-trips) / n
			t.Logf("%.2f Redis round trips per request", per)
			if strings.HasPrefix(c.name, "fibermp") {
				want := map[string]float64{opRead: 1, opIncr: 2}[c.op]
				if per != want {
					t.Errorf("want %v Redis round trips per request; got %v", want, per)
				}
			}
		})
	}
	requireRedis(t, e)
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
