// Package testenv is what the module's tests share: the servers they need (Redis, and
// in CI the rule that a missing one fails the test), a Fiber app on a real listener,
// and the goroutines goleak must ignore.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
)

// InCI reports whether the tests run in CI (CI set to anything but "", "0" or
// "false"), where every server the tests need must be up.
func InCI() bool {
	ci := os.Getenv("CI")
	return ci != "" && ci != "0" && ci != "false"
}

// Unavailable is for a server the test needs and cannot reach: it fails the test in
// CI, and skips it elsewhere, saying why.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		tb.Fatalf("%s (required when CI is set)", msg)
	}
	tb.Skipf("%s: skipping (with CI set this fails)", msg)
}

// RedisAddr returns the address of the test Redis: MPSESSION_REDIS_ADDR, or
// 127.0.0.1:6379.
func RedisAddr() string {
	if a := os.Getenv("MPSESSION_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// Redis returns a client of the test Redis, closed when the test ends. Without Redis
// the test fails in CI and skips elsewhere.
func Redis(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: RedisAddr(), ContextTimeoutEnabled: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		Unavailable(tb, "Redis at %s: %v; start it or set MPSESSION_REDIS_ADDR", RedisAddr(), err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// RedisPrefix returns a key prefix of the test's own, and deletes every key under it
// (with SCAN, never KEYS or FLUSHDB) when the test ends.
func RedisPrefix(tb testing.TB, c redis.UniversalClient) string {
	tb.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "mpsession-test:" + hex.EncodeToString(b) + ":"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			tb.Errorf("deleting the test's Redis keys %s*: %v", prefix, err)
		}
	})
	return prefix
}

// QuietRedisLog makes go-redis drop the line it logs for every failed dial, which tests
// that stop Redis or point a client at a port where nothing listens cause by the
// hundred; its other lines still go to stderr. Call it from TestMain, before m.Run:
// go-redis has one logger per process, and no way to read it back, so a test could not
// put it back while parallel tests still log.
func QuietRedisLog() {
	redis.SetLogger(quietRedisLogger{})
}

type quietRedisLogger struct{}

func (quietRedisLogger) Printf(_ context.Context, format string, v ...any) {
	if msg := fmt.Sprintf(format, v...); !strings.Contains(msg, "failed to dial") {
		fmt.Fprintln(os.Stderr, "go-redis:", msg)
	}
}

// Serve runs app on a loopback listener until the test ends, and returns its base URL
// (http://127.0.0.1:port).
func Serve(tb testing.TB, app *fiber.App) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = app.Listener(ln)
	}()
	tb.Cleanup(func() {
		_ = app.ShutdownWithTimeout(5 * time.Second)
		<-done
	})
	return "http://" + ln.Addr().String()
}

// IgnoreFasthttp are the goleak options for the goroutines fasthttp leaves by design.
var IgnoreFasthttp = []goleak.Option{
	// The process-wide Date header ticker, started once and never stopped.
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	// A stopped server's worker-pool cleaner finishes its idle sleep (10 s) and exits.
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	// Fiber's process-wide clock (utils.StartTimeStampUpdater), started once by the
	// limiter middleware and by gofiber/storage/memory, and never stopped.
	// Its name on the stack depends on inlining (-race or not).
	goleak.IgnoreTopFunction("github.com/gofiber/fiber/v2/middleware/limiter.FixedWindow.New.StartTimeStampUpdater.func2.1"),
	goleak.IgnoreTopFunction("github.com/gofiber/storage/memory/v2.New.StartTimeStampUpdater.func1.1"),
	goleak.IgnoreTopFunction("github.com/gofiber/fiber/v2/utils.StartTimeStampUpdater.func1.1"),
	goleak.IgnoreTopFunction("github.com/gofiber/storage/memory/v2/internal.StartTimeStampUpdater.func1.1"),
}

// NodeSDKs returns the folder where the npm client SDKs (wafer-client-sdk,
// wafer2-client-sdk) and the node drivers of the compatibility tests live. CI installs
// the SDKs with npm ci; without node or the install the test fails in CI and skips
// elsewhere.
func NodeSDKs(tb testing.TB) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "fibermp", "testdata", "node")
	if _, err := exec.LookPath("node"); err != nil {
		Unavailable(tb, "node is not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "wafer2-client-sdk")); err != nil {
		Unavailable(tb, "the client SDKs are not installed: (cd fibermp/testdata/node && npm ci)")
	}
	return dir
}

// WithCtx runs fn with a Fiber context for a request that build fills in, with no
// server: for fuzz targets of code that reads requests.
func WithCtx(build func(r *fasthttp.Request), fn func(c *fiber.Ctx)) {
	app := fiber.New()
	fctx := &fasthttp.RequestCtx{}
	build(&fctx.Request)
	c := app.AcquireCtx(fctx)
	defer app.ReleaseCtx(c)
	fn(c)
}

// FindLeaks is goleak.Find, which waits about half a second for goroutines to end,
// waiting up to 3 s for those that end by themselves later: go-redis's dial prober
// (pool.tryDial), which a client starts after many failed dials, sleeps a second
// between dials and only then sees that its client was closed.
func FindLeaks(opts ...goleak.Option) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}
