// Command rps-game is the sample of mpsession: a rock-paper-scissors server for a
// WeChat Mini Program, with a web page and bots. Run it with no setup at all:
//
//	go run ./example/rps-game
//
// and open http://127.0.0.1:8080. See README.md for the flags, the socket protocol and
// how to run several instances on Redis.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/limiter"
	memorystorage "github.com/gofiber/storage/memory/v2"
	redisstorage "github.com/gofiber/storage/redis/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/metrics"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

type config struct {
	Addr          string // where to listen
	Redis         string // Redis address; "" keeps sessions in memory
	RedisPrefix   string // key prefix in Redis; "" is redisstore's default
	DB            string // the SQLite file of the players' records; "" is defaultDB()
	MySQL         string // a MySQL/MariaDB DSN for the records, instead of SQLite
	Table         string // the records' table; "" is players
	AppID, Secret string // real WeChat; "" runs the fake one in-process
	// DevLogin keeps the fake WeChat beside a real AppID, so that a developer alone in
	// WeChat DevTools has bots and a second player: only on loopback, unless
	// DevLoginAnywhere.
	DevLogin, DevLoginAnywhere bool
	WeChatURL                  string        // the real WeChat's API; "" is api.weixin.qq.com (tests point it at a wxtest.Server)
	Origins                    []string      // browser origins allowed on the socket, besides the server's own
	Proxies                    []string      // reverse proxies (nginx) whose X-Real-IP names the client
	Bots                       int           // persistent bots
	BotThink                   time.Duration // the longest a bot thinks before a move
	BotsFor                    time.Duration // with Bots: play for this long, report and exit; 0: forever
	Instances                  int           // with BotsFor on Redis: the instances whose tallies the report adds up
	MoveTimeout                time.Duration
	Grace                      time.Duration // how long a dropped player has to come back to a match; 0: ResumeGrace
	QueueLease                 time.Duration // a ticket's lease in the Redis queue; 0: queueLease
	OnlineEvery                time.Duration // how often GET /api/online reads the count again; 0: 2 s
	LoginLimit                 int           // logins per minute from one IP; 0: no limit
	ReadTimeout                time.Duration // how long a client may take to send a request; 0: 10 s
	Log                        *slog.Logger
}

func main() {
	cfg := config{BotThink: 1500 * time.Millisecond, MoveTimeout: MoveTimeout, Log: slog.Default()}
	flag.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen `address`")
	flag.StringVar(&cfg.DB, "db", defaultDB(), "keep the players' records in the SQLite `file`")
	flag.StringVar(&cfg.MySQL, "mysql", "", "keep the players' records in MySQL/MariaDB at this `DSN` instead, e.g. user:pass@tcp(127.0.0.1:3306)/rps")
	flag.StringVar(&cfg.Redis, "redis", "", "keep sessions and the matchmaking queue in the Redis at `address`, shared by every instance")
	flag.StringVar(&cfg.AppID, "appid", os.Getenv("WX_APPID"), "mini program AppID (env WX_APPID); with -secret, log in with real WeChat instead of the fake")
	flag.StringVar(&cfg.Secret, "secret", os.Getenv("WX_SECRET"), "mini program AppSecret (env WX_SECRET)")
	flag.BoolVar(&cfg.DevLogin, "dev-login", false, "with -appid: keep the fake WeChat's logins (GET /wxtest/code) and the bots beside real WeChat's, for development in WeChat DevTools; on a loopback -addr only")
	flag.BoolVar(&cfg.DevLoginAnywhere, "dev-login-anywhere", false, "allow -dev-login on an -addr other than loopback: anyone who reaches the server can log in as anyone")
	flag.IntVar(&cfg.Bots, "bots", 0, "run `n` bots that play around the clock (development mode only)")
	flag.DurationVar(&cfg.BotThink, "bot-think", cfg.BotThink, "the longest a bot thinks before a move")
	flag.DurationVar(&cfg.BotsFor, "bots-for", 0, "with -bots: play for this `duration`, then report matches per second, the time from a move to its result and the check of the records, and exit")
	flag.IntVar(&cfg.Instances, "instances", 1, "with -bots-for and -redis: wait for the tallies of `n` instances and report the fleet's")
	flag.IntVar(&cfg.LoginLimit, "login-limit", 30, "logins a minute from one IP, as each costs a jscode2session call on the app's WeChat quota; 0: no limit")
	proxies := flag.String("proxies", "", "comma-separated `addresses` of reverse proxies (nginx) whose X-Real-IP header names the client, e.g. 127.0.0.1: the login limit then counts each client")
	origins := flag.String("origins", "", "comma-separated browser `origins` allowed to open the socket besides the server's own, e.g. https://game.example")
	flag.Parse()
	for o := range strings.SplitSeq(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.Origins = append(cfg.Origins, o)
		}
	}
	for p := range strings.SplitSeq(*proxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Proxies = append(cfg.Proxies, p)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := start(cfg)
	if err != nil {
		cfg.Log.Error("rps: " + err.Error())
		os.Exit(1)
	}
	cfg.Log.Info("rps: open "+s.url, "store", s.storeName, "records", s.recordsName, "wechat", s.wechatName, "bots", cfg.Bots)
	if cfg.Bots > 0 && cfg.BotsFor > 0 {
		var rdb redis.UniversalClient
		if s.rdb != nil {
			rdb = s.rdb
		}
		err := runBots(ctx, s, cfg.BotsFor, cfg.Instances, rdb, s.redisPrefix+"rps:bots", os.Stdout)
		s.close()
		if err != nil {
			cfg.Log.Error("rps: " + err.Error())
			os.Exit(1)
		}
		return
	}
	<-ctx.Done()
	cfg.Log.Info("rps: shutting down")
	s.close()
}

// start wires fibermp, wsauth, the store, the lobby and the bots, and serves.
func start(cfg config) (*server, error) {
	switch {
	case cfg.AppID != "" && cfg.Bots > 0 && !cfg.DevLogin:
		return nil, errors.New("bots log in through the fake WeChat: -bots needs development mode (no -appid) or -dev-login")
	case cfg.DevLogin && cfg.AppID == "":
		return nil, errors.New("-dev-login keeps the fake WeChat beside a real one: it needs -appid and -secret (without them the fake is on already)")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	// Behind a proxy (-proxies), loopback is no shelter: the proxy brings the world.
	if cfg.DevLogin && (!ln.Addr().(*net.TCPAddr).IP.IsLoopback() || len(cfg.Proxies) > 0) && !cfg.DevLoginAnywhere {
		_ = ln.Close()
		return nil, errors.New("-dev-login lets anyone log in as anyone: it listens on loopback only (-addr 127.0.0.1:PORT) and not behind -proxies, unless -dev-login-anywhere")
	}
	s := &server{url: "http://" + loopback(ln.Addr()), ln: ln, served: make(chan struct{})}
	fail := func(err error) (*server, error) { _ = ln.Close(); s.closeAll(); return nil, err }

	// The players' records: the database is created or opened before anyone can play.
	driver, dsn := "sqlite", cfg.DB
	if dsn == "" {
		dsn = defaultDB()
	}
	s.recordsName = "sqlite at " + dsn
	if cfg.MySQL != "" {
		driver, dsn, s.recordsName = "mysql", cfg.MySQL, "mysql"
	}
	dbctx, dbcancel := context.WithTimeout(context.Background(), 10*time.Second)
	recs, err := openRecords(dbctx, driver, dsn, cfg.Table)
	dbcancel()
	if err != nil {
		return fail(err)
	}
	s.closers = append(s.closers, recs.close)

	// WeChat: the real one, or the fake mounted in this very server.
	transport := &http.Transport{}
	s.idle = transport.CloseIdleConnections
	wxcfg := wx.Config{AppID: cfg.AppID, AppSecret: cfg.Secret, BaseURL: cfg.WeChatURL,
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: transport}}
	var fake *wxtest.Server
	s.wechatName = "real"
	switch {
	case cfg.AppID == "":
		fake = wxtest.New("wx0000000000000000", "dev-secret")
		wxcfg.AppID, wxcfg.AppSecret, wxcfg.BaseURL = fake.AppID(), "dev-secret", s.url+"/wxtest"
		s.wechatName = "fake, at " + s.url + "/wxtest"
	case cfg.DevLogin:
		fake = wxtest.New("wx0000000000000000", "dev-secret")
		wxcfg.HTTPClient.Transport = devLogin{fake: fake.Handler(), appID: fake.AppID(), secret: "dev-secret", next: transport}
		s.wechatName = "real, and the fake at " + s.url + "/wxtest (-dev-login)"
		cfg.Log.Warn("rps: -dev-login: GET /wxtest/code logs anyone in as any openid, beside real WeChat: a development server only")
	}
	client, err := wx.New(wxcfg)
	if err != nil {
		return fail(err)
	}

	if cfg.Grace <= 0 {
		cfg.Grace = ResumeGrace
	}
	if cfg.QueueLease <= 0 {
		cfg.QueueLease = queueLease
	}
	var sessions store.Store
	var q queue = &memQueue{}
	if cfg.Redis == "" {
		sessions, s.storeName = memstore.New(), "memory"
	} else {
		// ContextTimeoutEnabled: a hung Redis fails requests within fibermp's store
		// timeout rather than go-redis's retries.
		rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis, ContextTimeoutEnabled: true})
		s.closers = append(s.closers, rdb.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fail(errors.New("redis at " + cfg.Redis + ": " + err.Error()))
		}
		sessions, s.storeName = redisstore.New(rdb, redisstore.Config{Prefix: cfg.RedisPrefix}), "redis at "+cfg.Redis
		prefix := cfg.RedisPrefix
		if prefix == "" {
			prefix = redisstore.ConfigDefault.Prefix
		}
		q = &redisQueue{rdb: rdb, prefix: prefix + "rps:", lease: cfg.QueueLease}
		s.rdb, s.redisPrefix = rdb, prefix
	}
	s.lobby = newLobby(cfg.Log, cfg.MoveTimeout, cfg.Grace, cfg.QueueLease, recs, q)
	s.lobby.hosted, s.lobby.instance = s.hosted.add, s.url
	s.closers = append([]func() error{sessions.Close}, s.closers...) // before its Redis client

	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	// Behind nginx every request comes from nginx's address: with -proxies, a request
	// from one of them is from the client its X-Real-IP names (c.IP), which the login
	// limit counts; anyone else's X-Real-IP is ignored.
	var proxyHeader string
	if len(cfg.Proxies) > 0 {
		proxyHeader = "X-Real-IP"
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ErrorHandler: jsonError,
		ProxyHeader: proxyHeader, EnableTrustedProxyCheck: true, TrustedProxies: cfg.Proxies,
		// Slow or stalled clients cannot hold connections and memory: a request has
		// ReadTimeout to arrive, and its body at most BodyLimit (the largest request
		// here is a login with encrypted user data, a few KiB).
		ReadTimeout: cfg.ReadTimeout, WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, BodyLimit: 16 << 10})
	s.app = app
	if cfg.LoginLimit > 0 {
		// Each login costs a jscode2session call on the app's WeChat quota. On Redis,
		// the count is shared by every instance.
		var counts fiber.Storage = memorystorage.New() // the limiter's default never stops its cleanup
		if cfg.Redis != "" {
			counts = redisstorage.New(redisstorage.Config{Addrs: []string{cfg.Redis}})
		}
		s.closers = append(s.closers, counts.Close)
		lc := limiter.Config{Max: cfg.LoginLimit, Expiration: time.Minute, LimitReached: tooManyLogins, Storage: counts}
		app.Post("/login", limiter.New(lc))
	}
	m := metrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{m}, collectors.NewGoCollector())
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	mp, err := fibermp.NewManager(fibermp.Config{Client: client, Store: sessions, OnLogin: onLogin(recs, cfg.Log), Metrics: m})
	if err != nil {
		s.closeAll()
		return nil, err
	}
	ws, err := wsauth.NewServer(mp, wsauth.Config{
		Origins:   append(ownOrigins(cfg.Addr, ln.Addr()), cfg.Origins...),
		ReadLimit: 4 << 10,
		Presence:  &wsauth.PresenceConfig{}, // every socket is in lobbyRoom: the players online, on every instance
		// Each socket's messages go through its outRoom, kept for 2 minutes: a client
		// that reconnects with its position recovers what its old socket missed.
		History: &wsauth.HistoryConfig{},
	})
	if err != nil {
		_ = mp.Close(context.Background())
		s.closeAll()
		return nil, err
	}
	s.mp, s.ws = mp, ws
	s.lobby.bus = ws.Hub()
	app.Use(mp.Handler())
	if fake != nil {
		mountWeChat(app, fake)
	}
	app.Get("/api/me", fibermp.Required(), me)
	app.Post("/api/nickname", fibermp.Required(), setNickname(recs))
	app.Get("/api/leaderboard", leaderboard(recs))
	app.Get("/api/online", online(ws.Hub(), cmp.Or(cfg.OnlineEvery, 2*time.Second)))
	app.Get("/ws", ws.Upgrade(s.lobby.serve))
	serveWeb(app)
	if fake != nil {
		tag := "" // on Redis, the bots of several instances meet: their openids say whose they are
		if cfg.Redis != "" {
			tag = itoa(ln.Addr().(*net.TCPAddr).Port)
		}
		s.bots = newBots(s.url, tag, cfg.BotThink, cfg.Log)
		s.bots.recordOf = func(openID string) (record, error) {
			ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
			defer cancel()
			st, err := recs.get(ctx, openID)
			return st.record(), err
		}
		s.lobby.isBot, s.lobby.summon = s.bots.is, s.bots.summon
		if !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
			cfg.Log.Warn("rps: the fake WeChat at /wxtest logs anyone in as anyone: keep this server off networks you do not trust")
		}
	}
	go func() {
		defer close(s.served)
		_ = app.Listener(ln)
	}()
	if s.bots != nil {
		s.bots.start(cfg.Bots)
	}
	return s, nil
}
