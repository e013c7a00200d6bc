// Package fibermp is Fiber middleware that logs WeChat Mini Program users in and keeps
// their sessions.
//
// It answers the login endpoint (a wx.login code, exchanged with jscode2session, plus the
// optional encrypted user data, verified) by creating a server-side session, and attaches
// that session to every later request that carries its credentials:
//
//	mp, err := fibermp.NewManager(fibermp.Config{
//		AppID:     "wx...",
//		AppSecret: os.Getenv("WX_SECRET"),
//		Store:     redisstore.New(rdb), // default: in memory
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer mp.Close(context.Background())
//	app := fiber.New()
//	app.Use(mp.Handler())
//	app.Post("/score", mp.Required(), func(c *fiber.Ctx) error {
//		n, err := fibermp.Get(c).Incr("score", 1)
//		if err != nil {
//			return err
//		}
//		return c.JSON(fiber.Map{"score": n})
//	})
//
// The Manager owns the sessions: the login and logout endpoints, the session of every
// request, and what runs for them in the background (the cache, the default store),
// which Close stops. Package wsauth builds a socket server on it. An application that
// serves HTTP only and never stops may write app.Use(fibermp.New(cfg)) instead.
//
// # Protocols
//
// Token, the default, is plain JSON for new clients and web pages: POST {"code": ...}
// to the login path, get {"token","expiresIn","openid"}, then send
// "Authorization: Bearer <token>" or X-Session-Id. Existing clients work unchanged with
// Config.Protocol set. Wafer is the protocol of wafer-client-sdk: login with the
// X-WX-Code header, later requests with X-WX-Id and X-WX-Skey, and session errors in
// the envelope the SDK recognises by its magic key.
// Wafer2 is the protocol of wafer2-client-sdk: login the same way, later requests with
// X-WX-Skey only.
//
// Whatever the protocol, a request whose session is unknown or expired gets the
// protocol's invalid-session reply, which makes the SDKs log in again and retry once; a
// store outage gets 503 without that reply, so clients keep their sessions; the WeChat
// session_key is kept on the server and is in no reply.
//
// # Fields and concurrency
//
// A session is a set of named fields holding JSON values. Set and Delete are saved when
// the handler returns, writing only the fields they named, so two requests (or a request
// and a WebSocket, see package wsauth) that change different fields never overwrite each
// other. Incr is atomic in the store, so counters stay exact under any concurrency. A
// request that changes nothing writes nothing; its load also extends the idle timeout.
// On a socket, wsauth's live handle is the same *Session, written through at once.
//
// # The session cache
//
// On a shared store, every authenticated request loads its session: one Redis round
// trip. With Config.Cache set, each process keeps the sessions it serves in memory and
// a read makes no store call; a write makes one (Set and Delete together when the
// handler returns, Incr at once), with no load before it. The store's events keep the
// cache current, within a bound: a change, logout or revocation acknowledged at time X
// in any process is seen by every request that starts at X + CacheConfig.MaxLag
// (default 100 ms) or later in every process, whatever the load; a request that starts
// within MaxLag of X may still be served the session as it was. The cache checks its
// subscription with fences (markers it publishes on the events channel every MaxLag/2)
// and serves from memory only while its last one came back within MaxLag, so a slow
// store or subscription makes it serve less, never staler. The bound holds for stores
// whose events implement store.Fencer (redisstore on one Redis or a Sentinel group);
// over others, a change is seen once its event arrived here. While the store cannot
// vouch for its events (its subscription is down, or missed a health check for a
// second) every request loads from the store again. Reads extend the idle timeout in the
// background, at most once per CacheConfig.Renew. wsauth's live handles read through
// the same cache.
//
// # Outages
//
// Every store call made for a request is bounded by Config.StoreTimeout (1 s). A store
// that fails or does not answer gets the client a 503 with Retry-After, never the
// invalid-session reply, so clients keep their sessions. A Session method whose store
// call failed returns an error wrapping ErrUnavailable: a handler that returns it gets
// the same 503, without the error's text.
//
// # Mounting
//
// LoginPath and LogoutPath are matched below the prefix the middleware is mounted at:
// app.Group("/api").Use(mp.Handler()) answers /api/login.
package fibermp
