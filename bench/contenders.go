package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/session"
	"github.com/gofiber/fiber/v2/utils"
	fiberredis "github.com/gofiber/storage/redis/v3"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/metrics"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// What the contenders are asked to do.
const (
	opRead = "read" // GET /read: read field "k" of the session, answer {"k":"teal"}
	opIncr = "incr" // POST /incr: add 1 to field "n" of the session, answer {"n":<new value>}
)

// The session every contender serves holds k = "teal" (and n, once incremented). It
// lives as long as fibermp's default idle timeout in both session libraries.
const (
	sessionTTL = 2 * time.Hour
	appID      = "wx0123456789abcdef"
	appSecret  = "bench-secret-0123456789abcdef012"
)

var readReply = []byte(`{"k":"teal"}`)

// A contender is one server in the comparison and the request that measures it: every
// request carries the session id in X-Session-Id, which fibermp's Token protocol and
// Fiber's session middleware (KeyLookup "header:X-Session-Id") both read.
type contender struct {
	op        string // opRead or opIncr
	name      string // who serves it: "bare-fiber", "fibermp-memory", ...
	method    string
	uri       string
	sessionID string
	client    *fasthttp.HostClient
	trips     *tripCounter // counts the server's Redis round trips; nil without Redis
	// admin asks the Redis server the contender uses for its CPU time and its command
	// counts; nil without Redis.
	admin redis.UniversalClient
	// lookups counts the session cache's lookups, for the cached contenders; nil for
	// the others.
	lookups *metrics.Metrics
}

// storeLoads returns how many of the cached contender's lookups went to Redis (misses
// and bypasses): one round trip each, HGETALL and PEXPIREAT.
func (c *contender) storeLoads() int64 {
	var n float64
	c.lookups.Each(func(s metrics.Sample) {
		if s.Name == "mpsession_cache_lookups_total" && s.Labels["result"] != "hit" {
			n += s.Value
		}
	})
	return int64(n)
}

func (c *contender) String() string { return c.op + "/" + c.name }

// newRequest returns the contender's request; release it with fasthttp.ReleaseRequest.
func (c *contender) newRequest() *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(c.uri)
	req.Header.SetMethod(c.method)
	req.Header.Set(fibermp.HeaderSessionID, c.sessionID)
	return req
}

// do sends req and checks the reply. For an increment it returns the new value.
func (c *contender) do(req *fasthttp.Request, resp *fasthttp.Response) (int64, error) {
	if err := c.client.Do(req, resp); err != nil {
		return 0, fmt.Errorf("%s: %w", c, err)
	}
	body := resp.Body()
	if resp.StatusCode() != fiber.StatusOK {
		return 0, fmt.Errorf("%s: want status 200; got %d %q", c, resp.StatusCode(), body)
	}
	if c.op == opRead {
		if !bytes.Equal(body, readReply) {
			return 0, fmt.Errorf("%s: want %s; got %q", c, readReply, body)
		}
		return 0, nil
	}
	n, ok := parseCounter(body)
	if !ok {
		return 0, fmt.Errorf(`%s: want {"n":<integer>}; got %q`, c, body)
	}
	return n, nil
}

// cpuTime returns the CPU time used so far by this process (the servers and the load
// generator) and, for a contender that uses Redis, by the Redis server; ok is false
// when the system does not tell the process's.
func (c *contender) cpuTime() (proc, redis time.Duration, ok bool, err error) {
	proc, ok = processCPU()
	if c.admin != nil {
		redis, err = redisCPU(c.admin)
	}
	return proc, redis, ok, err
}

// commandCalls returns the calls of each command the Redis server has run (INFO
// commandstats), or nil for a contender without Redis.
func (c *contender) commandCalls() (map[string]int64, error) {
	if c.admin == nil {
		return nil, nil
	}
	return commandCalls(c.admin)
}

// doOnce sends one request with a request and response of its own.
func (c *contender) doOnce() (int64, error) {
	req, resp := c.newRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	return c.do(req, resp)
}

// parseCounter reads {"n":123} without allocating, as the load generator shares the
// CPU with the servers it measures.
func parseCounter(body []byte) (int64, bool) {
	digits, ok := bytes.CutPrefix(body, []byte(`{"n":`))
	if !ok {
		return 0, false
	}
	digits, ok = bytes.CutSuffix(digits, []byte(`}`))
	if !ok || len(digits) == 0 || len(digits) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// env is the running contenders and what they need.
type env struct {
	contenders []*contender
	redisAddr  string
	redisInfo  string // the Redis server's version
	// redisOwn says that the run started the Redis server and is its only client, so
	// its CPU time and command counts are the run's alone.
	redisOwn bool
	// redisErr says why the Redis contenders are missing; nil when they run.
	redisErr error

	closers   []func() error
	closeOnce sync.Once
	closeErr  error
}

// newEnv starts every contender on its own loopback listener, with conns connections
// each at most. Without Redis at redisAddr it starts the memory contenders only and
// sets redisErr. Close it when done.
func newEnv(redisAddr string, conns int) (_ *env, err error) {
	e := &env{redisAddr: redisAddr}
	defer func() {
		if err != nil {
			_ = e.Close()
		}
	}()
	wxs := wxtest.NewServer(appID, appSecret)
	e.onClose(func() error { wxs.Close(); return nil })
	wxc, err := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: wxs.URL})
	if err != nil {
		return nil, err
	}
	login := func(app *fiber.App) (*contender, error) {
		c, err := e.serve(app, conns)
		if err != nil {
			return nil, err
		}
		c.sessionID, err = fibermpLogin(c, wxs.NewCode("o-bench"))
		return c, err
	}

	mem := memstore.New()
	e.onClose(mem.Close)
	mc, err := login(e.fibermpApp(wxc, mem, nil, nil))
	if err != nil {
		return nil, err
	}
	bc, err := e.serve(bareApp(), conns)
	if err != nil {
		return nil, err
	}
	// Bare Fiber gets fibermp's request, byte for byte, and ignores its session id.
	bc.sessionID = mc.sessionID
	e.add(bc, opRead, "bare-fiber")
	e.add(mc, opRead, "fibermp-memory")

	// admin asks Redis for its CPU time and deletes the run's keys, on a client of its
	// own so that the contenders' round trip counts are theirs alone.
	admin, err := dialRedis(redisAddr)
	if err != nil {
		e.redisErr = err
		return e, nil
	}
	e.onClose(admin.Close)
	e.redisInfo = redisVersion(admin)
	prefix := newPrefix()
	// Registered before the servers' closers, so it runs after them.
	e.onClose(func() error { return deleteKeys(admin, prefix) })

	rdb, err := dialRedis(redisAddr)
	if err != nil {
		return nil, err
	}
	e.onClose(rdb.Close)
	mpTrips := &tripCounter{}
	rdb.AddHook(mpTrips)
	rs := redisstore.New(rdb, redisstore.Config{Prefix: prefix + "mp:"})
	e.onClose(rs.Close)
	rc, err := login(e.fibermpApp(wxc, rs, nil, nil))
	if err != nil {
		return nil, err
	}
	rc.trips, rc.admin = mpTrips, admin

	// The same with the session cache, on a client and a store of its own (as another
	// process would have), so that the round trips counted are its own, and on a prefix
	// of its own, so that its subscription does not receive the other's events.
	crdb, err := dialRedis(redisAddr)
	if err != nil {
		return nil, err
	}
	e.onClose(crdb.Close)
	cachedTrips := &tripCounter{}
	crdb.AddHook(cachedTrips)
	crs := redisstore.New(crdb, redisstore.Config{Prefix: prefix + "mpc:"})
	e.onClose(crs.Close)
	lookups := metrics.New()
	cc, err := login(e.fibermpApp(wxc, crs, &fibermp.CacheConfig{}, lookups))
	if err != nil {
		return nil, err
	}
	cc.trips, cc.admin, cc.lookups = cachedTrips, admin, lookups

	// The floor of any read with one Redis round trip: bare Fiber and one GET.
	brdb, err := dialRedis(redisAddr)
	if err != nil {
		return nil, err
	}
	e.onClose(brdb.Close)
	bareTrips := &tripCounter{}
	brdb.AddHook(bareTrips)
	bareKey := prefix + "bare"
	if err := brdb.Set(context.Background(), bareKey, "teal", 0).Err(); err != nil {
		return nil, err
	}
	brc, err := e.serve(bareRedisApp(brdb, bareKey), conns)
	if err != nil {
		return nil, err
	}
	brc.sessionID, brc.trips, brc.admin = rc.sessionID, bareTrips, admin

	// Never call Reset on this storage or the session store, nor set Config.Reset:
	// they run FLUSHDB.
	storage := fiberredis.New(fiberredis.Config{Addrs: []string{redisAddr}})
	e.onClose(storage.Close)
	fsTrips := &tripCounter{}
	storage.Conn().AddHook(fsTrips)
	sc, err := e.serve(fiberSessionApp(storage, prefix+"fs:"), conns)
	if err != nil {
		return nil, err
	}
	if sc.sessionID, err = fiberSessionLogin(sc); err != nil {
		return nil, err
	}
	sc.trips, sc.admin = fsTrips, admin
	// The two sides of a comparison next to each other: compare runs them in this order.
	e.add(cc, opRead, "fibermp-redis-cached")
	e.add(rc, opRead, "fibermp-redis")
	e.add(sc, opRead, "fibersession-redis")
	e.add(brc, opRead, "bare-fiber-redis-get")
	e.add(cc, opIncr, "fibermp-redis-cached")
	e.add(rc, opIncr, "fibermp-redis")
	e.add(sc, opIncr, "fibersession-redis")

	// The cache subscribes to the store's events on its first request, and is bypassed
	// until the subscription has answered.
	if _, err := e.contender("read/fibermp-redis-cached").doOnce(); err != nil {
		return nil, err
	}
	if err := waitEventsLive(crs, 10*time.Second); err != nil {
		return nil, err
	}
	return e, nil
}

// waitEventsLive waits until the store's event subscription is live (the session
// cache serves from memory only then), for at most limit.
func waitEventsLive(st interface{ EventsLive() bool }, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for !st.EventsLive() {
		if time.Now().After(deadline) {
			return fmt.Errorf("the Redis store's event subscription is not live after %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// add adds a contender doing op on the server c runs.
func (e *env) add(c *contender, op, name string) {
	c2 := *c
	c2.op, c2.name = op, name
	c2.method, c2.uri = fiber.MethodGet, c.uri+"/read"
	if op == opIncr {
		c2.method, c2.uri = fiber.MethodPost, c.uri+"/incr"
	}
	e.contenders = append(e.contenders, &c2)
}

// contender returns the contender named op/name, or nil.
func (e *env) contender(name string) *contender {
	for _, c := range e.contenders {
		if c.String() == name {
			return c
		}
	}
	return nil
}

func (e *env) onClose(f func() error) { e.closers = append(e.closers, f) }

// Close stops the servers, deletes the run's Redis keys and closes the clients. Calls
// after the first wait for it and return its error.
func (e *env) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		for i := len(e.closers) - 1; i >= 0; i-- {
			errs = append(errs, e.closers[i]())
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// serve runs app on a loopback listener until e closes, and returns a contender with
// the server's root URL in uri and a client for it.
func (e *env) serve(app *fiber.App, conns int) (*contender, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = app.Listener(ln)
	}()
	hc := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: conns}
	e.onClose(func() error {
		hc.CloseIdleConnections()
		err := app.ShutdownWithTimeout(5 * time.Second)
		<-done
		return err
	})
	return &contender{uri: "http://" + ln.Addr().String(), client: hc}, nil
}

func newApp() *fiber.App { return fiber.New(fiber.Config{DisableStartupMessage: true}) }

// bareApp answers what the session contenders answer, with no session at all.
func bareApp() *fiber.App {
	app := newApp()
	app.Get("/read", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"k": "teal"})
	})
	return app
}

// bareRedisApp answers what the session contenders answer, from one Redis GET of key
// and no session: what any read with one Redis round trip costs at least.
func bareRedisApp(rdb redis.UniversalClient, key string) *fiber.App {
	app := newApp()
	app.Get("/read", func(c *fiber.Ctx) error {
		k, err := rdb.Get(c.UserContext(), key).Result()
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"k": k})
	})
	return app
}

// fibermpApp serves the routes with fibermp, as its README shows, speaking the Token
// protocol, with the session cache when cache is not nil. A login puts k = "teal" in
// the new session.
func (e *env) fibermpApp(client *wx.Client, st store.Store, cache *fibermp.CacheConfig, m *metrics.Metrics) *fiber.App {
	app := newApp()
	mp, err := fibermp.NewManager(fibermp.Config{
		Client:      client,
		Store:       st,
		Protocol:    fibermp.Token,
		IdleTimeout: sessionTTL,
		Cache:       cache,
		Metrics:     m,
		OnLogin:     func(_ *fiber.Ctx, l *fibermp.Login) error { return l.Set("k", "teal") },
	})
	if err != nil {
		panic(err) // a config of this file's
	}
	// Closed with the env: the cache's fences and renewals stop with it.
	e.onClose(func() error { return mp.Close(context.Background()) })
	app.Use(mp.Handler())
	app.Get("/read", fibermp.Required(), func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"k": fibermp.Get(c).GetString("k")})
	})
	app.Post("/incr", fibermp.Required(), func(c *fiber.Ctx) error {
		n, err := fibermp.Get(c).Incr("n", 1)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"n": n})
	})
	return app
}

// fibermpLogin logs in with the Token protocol and returns the token.
func fibermpLogin(c *contender, code string) (string, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.uri + "/login")
	req.Header.SetMethod(fiber.MethodPost)
	req.Header.SetContentType(fiber.MIMEApplicationJSON)
	req.SetBodyString(`{"code":"` + code + `"}`)
	if err := c.client.Do(req, resp); err != nil {
		return "", fmt.Errorf("fibermp login: %w", err)
	}
	var reply struct{ Token string }
	if err := json.Unmarshal(resp.Body(), &reply); err != nil || resp.StatusCode() != fiber.StatusOK || reply.Token == "" {
		return "", fmt.Errorf("fibermp login: %d %q", resp.StatusCode(), resp.Body())
	}
	return reply.Token, nil
}

// fiberSessionApp serves the routes with Fiber's session middleware on storage, as its
// documentation shows, the session id in X-Session-Id. Session ids (the storage keys)
// start with prefix, so the run can delete its keys.
//
// The increment loads the session, adds 1 and saves the whole session back: two
// concurrent requests read the same value and one increment is lost. fibermp's Incr
// is atomic in Redis (HINCRBY).
func fiberSessionApp(storage fiber.Storage, prefix string) *fiber.App {
	sessions := session.New(session.Config{
		Storage:      storage,
		Expiration:   sessionTTL,
		KeyLookup:    "header:" + fibermp.HeaderSessionID,
		KeyGenerator: func() string { return prefix + utils.UUIDv4() },
	})
	app := newApp()
	// Creates the session the other routes use.
	app.Post("/login", func(c *fiber.Ctx) error {
		sess, err := sessions.Get(c)
		if err != nil {
			return err
		}
		sess.Set("k", "teal")
		return sess.Save()
	})
	app.Get("/read", func(c *fiber.Ctx) error {
		sess, err := sessions.Get(c)
		if err != nil {
			return err
		}
		if sess.Fresh() {
			return fiber.ErrUnauthorized
		}
		k, _ := sess.Get("k").(string)
		return c.JSON(fiber.Map{"k": k})
	})
	app.Post("/incr", func(c *fiber.Ctx) error {
		sess, err := sessions.Get(c)
		if err != nil {
			return err
		}
		if sess.Fresh() {
			return fiber.ErrUnauthorized
		}
		n, _ := sess.Get("n").(int)
		n++
		sess.Set("n", n)
		if err := sess.Save(); err != nil {
			return err
		}
		return c.JSON(fiber.Map{"n": n})
	})
	return app
}

// fiberSessionLogin creates a session and returns its id.
func fiberSessionLogin(c *contender) (string, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.uri + "/login")
	req.Header.SetMethod(fiber.MethodPost)
	if err := c.client.Do(req, resp); err != nil {
		return "", fmt.Errorf("fiber session login: %w", err)
	}
	id := string(resp.Header.Peek(fibermp.HeaderSessionID))
	if resp.StatusCode() != fiber.StatusOK || id == "" {
		return "", fmt.Errorf("fiber session login: %d, %s %q", resp.StatusCode(), fibermp.HeaderSessionID, id)
	}
	return id, nil
}
