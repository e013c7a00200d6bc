// Command chat is the small example of mpsession: WeChat logins, a WebSocket per page,
// chat rooms shared by every instance on Redis, a message from a background goroutine,
// and a nickname set over HTTP that the open socket's lines show without reconnecting.
//
//	go run ./example/chat
//
// then open http://127.0.0.1:8080 in two windows. README.md shows two instances on Redis.
package main

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// page is the web client: one file, plain JavaScript.
//
//go:embed index.html
var page []byte

type config struct {
	Redis         string        // Redis address; "" keeps sessions and rooms in this process
	AppID, Secret string        // real WeChat; "" runs a fake one in-process
	Clock         time.Duration // how often the clock tells the lobby the time; 0: never
}

func main() {
	var cfg config
	addr := flag.String("addr", "127.0.0.1:8080", "listen `address`")
	flag.StringVar(&cfg.Redis, "redis", "", "share sessions and rooms with every instance on the Redis at `address`")
	flag.StringVar(&cfg.AppID, "appid", os.Getenv("WX_APPID"), "mini program AppID (env WX_APPID); empty runs a fake WeChat")
	flag.StringVar(&cfg.Secret, "secret", os.Getenv("WX_SECRET"), "mini program AppSecret (env WX_SECRET)")
	flag.DurationVar(&cfg.Clock, "clock", 30*time.Second, "how often the clock tells the lobby the time")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("chat: open http://%s", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, ln, cfg); err != nil {
		log.Fatal(err)
	}
}

// run serves the chat on ln until ctx is done (Ctrl-C), then shuts down cleanly.
func run(ctx context.Context, ln net.Listener, cfg config) error {
	defer ln.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	mpcfg := fibermp.Config{AppID: cfg.AppID, AppSecret: cfg.Secret} // Protocol: fibermp.Token
	if cfg.AppID == "" {
		// Development: a fake WeChat, and a route that hands out the codes wx.login
		// would. Never run this where others can reach it.
		fake := wxtest.NewServer("wx0000000000000000", "dev-secret")
		defer fake.Close()
		client, err := wx.New(wx.Config{AppID: fake.AppID(), AppSecret: "dev-secret", BaseURL: fake.URL})
		if err != nil {
			return err
		}
		mpcfg.Client = client
		app.Get("/dev/code", func(c *fiber.Ctx) error {
			return c.SendString(fake.NewCode(c.Query("openid", "alice")))
		})
	}
	if cfg.Redis != "" {
		// ContextTimeoutEnabled: a hung Redis fails a request within fibermp's
		// StoreTimeout (1 s) instead of go-redis's retries.
		rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis, ContextTimeoutEnabled: true})
		defer rdb.Close()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis at %s: %w", cfg.Redis, err)
		}
		mpcfg.Store = redisstore.New(rdb) // sessions, and the Hub's messages between instances
		defer mpcfg.Store.Close()         // deferred: after mp.Close, before rdb.Close
	}
	mp, err := fibermp.NewManager(mpcfg) // owns the sessions
	if err != nil {
		return err
	}
	ws, err := wsauth.NewServer(mp, wsauth.Config{Origins: origins(ln.Addr()), ReadLimit: 4 << 10}) // owns the sockets
	if err != nil {
		_ = mp.Close(ctx)
		return err
	}
	hub := ws.Hub()

	app.Get("/", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "no-cache") // a rebuilt server serves its new page
		return c.Type("html").Send(page)
	})
	app.Use(mp.Handler()) // answers POST /login and /logout, loads every request's session
	app.Post("/nick", mp.Required(), setNick)
	app.Get("/ws", ws.Upgrade(func(c *wsauth.Conn) { chat(c, hub) }))

	clocked := make(chan struct{})
	go func() { defer close(clocked); clock(ctx, hub, cfg.Clock, ln.Addr().String()) }()

	stopped := make(chan struct{})
	go func() { // when ctx is done: stop the clock, stop taking requests, close the sockets (1001), stop the rest
		defer close(stopped)
		<-ctx.Done()
		<-clocked
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = app.ShutdownWithContext(sctx)
		_ = ln.Close() // a Shutdown before app.Listener began would not close it
		_ = ws.Shutdown(sctx)
		_ = mp.Close(sctx)
	}()
	err = app.Listener(ln)
	if ctx.Err() != nil {
		err = nil // stopped on purpose
	}
	cancel()
	<-stopped
	return err
}

// setNick is POST /nick {"nick":"..."}. It writes one field of the session; the
// session's open sockets, on every instance, read it once the store's event reaches
// them, a moment after this reply.
func setNick(c *fiber.Ctx) error {
	var in struct{ Nick string }
	if err := c.BodyParser(&in); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, `want {"nick":"..."}`)
	}
	nick := strings.TrimSpace(in.Nick)
	if n := utf8.RuneCountInString(nick); n < 1 || n > 24 || strings.IndexFunc(nick, unicode.IsControl) >= 0 {
		return fiber.NewError(fiber.StatusBadRequest, "a nickname has 1 to 24 printable characters")
	}
	if err := fibermp.Get(c).Set("nick", nick); err != nil { // saved when the handler returns
		return err // a store outage: the middleware answers 503, the client keeps its session
	}
	return c.JSON(fiber.Map{"nick": nick})
}

// line is a chat line, as every member of its room receives it.
type line struct {
	Room string `json:"room"`
	From string `json:"from"`
	Text string `json:"text"`
}

const maxRooms = 8 // per socket: each room an instance listens to is a Redis subscription

// chat serves one socket: {"join":"go"}, {"leave":"go"} and {"room":"go","text":"hi"}.
// The Hub writes the rooms' lines to the socket; the handler answers joins and leaves.
func chat(c *wsauth.Conn, hub *wsauth.Hub) {
	s := c.Session() // the live session: its reads follow what HTTP requests write, on any instance
	for {
		var in struct{ Join, Leave, Room, Text string }
		if err := c.ReadJSON(&in); err != nil {
			return // closed, not JSON, or the session ended (logout closes the socket with 4001)
		}
		ctx, cancel := context.WithTimeout(c.Context(), 5*time.Second) // ends with the socket too
		var reply any
		var err error
		switch rooms := c.Rooms(); {
		case in.Join != "" && len(rooms) >= maxRooms && !slices.Contains(rooms, in.Join):
			err = fmt.Errorf("at most %d rooms", maxRooms)
		case in.Join != "": // replied once Join returned: the room's lines reach the socket from then on
			reply, err = fiber.Map{"joined": in.Join}, c.Join(ctx, in.Join)
		case in.Leave != "":
			reply, err = fiber.Map{"left": in.Leave}, c.Leave(ctx, in.Leave)
		case !slices.Contains(rooms, in.Room):
			err = errors.New("join " + strconv.Quote(in.Room) + " first")
		case in.Text != "":
			nick := cmp.Or(s.GetString("nick"), s.OpenID()) // read on each line: no reconnect after POST /nick
			msg, _ := json.Marshal(line{Room: in.Room, From: nick, Text: in.Text})
			err = hub.ToRoom(ctx, in.Room, msg) // every member, on every instance, this socket too
		}
		cancel()
		if err != nil {
			reply = fiber.Map{"error": err.Error()}
		}
		if reply != nil && c.WriteJSON(reply) != nil {
			return
		}
	}
}

// clock tells the lobby the time every interval until ctx is done: a background
// goroutine sends to a room through the Hub, and the lobby's members on every instance
// get it.
func clock(ctx context.Context, hub *wsauth.Hub, every time.Duration, name string) {
	if every <= 0 {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			msg, _ := json.Marshal(line{Room: "lobby", From: "clock@" + name, Text: "It is " + now.Format("15:04:05")})
			if err := hub.ToRoom(ctx, "lobby", msg); err != nil && ctx.Err() == nil {
				log.Printf("chat: clock: %v", err)
			}
		}
	}
}

// origins are the origins of the page this server serves: wsauth refuses (403) a
// browser's socket from any other.
func origins(a net.Addr) []string {
	t := a.(*net.TCPAddr)
	port := strconv.Itoa(t.Port)
	if t.IP.IsLoopback() || t.IP.IsUnspecified() {
		return []string{"http://127.0.0.1:" + port, "http://localhost:" + port}
	}
	return []string{"http://" + net.JoinHostPort(t.IP.String(), port)}
}
