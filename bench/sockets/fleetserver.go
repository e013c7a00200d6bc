package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx"
)

// A fleet's server instance is this program started again as
//
//	<this program> -server <Redis address> <key prefix> <fake WeChat URL> <room every> <most sockets>
//
// It serves, on a loopback listener of its own, what one instance of an application
// would: fibermp (Token protocol) with the session cache in front of a redisstore,
// /incr (a write to the session), and /ws through wsauth with its Hub, whose handler
// answers "who" with the socket's openid and joins room "big" when the user's number
// (o-sock-NNNNNN) is a multiple of <room every> (0: none). For the parent it also
// serves, without authentication (a measurement, not an application):
//
//	GET  /fleet/stats                 the instance's memory, goroutines, handles and events (JSON)
//	POST /fleet/send-user?openid=&seq=  Hub.ToUser(openid, "m u <seq>")
//	POST /fleet/send-room?seq=          Hub.ToRoom("big", "m r <seq>")
//	GET  /fleet/profile?for=<duration>  a CPU profile of the instance over that time
//	GET  /fleet/heap                  a heap profile (sampled every 1 KiB when the
//	                                  environment has MPSESSION_FLEET_MEMPROFILE=1)
//	POST /fleet/subscribe-all         subscribes to every session's events, counted, as
//	                                  every instance did before events were routed
//
// It prints "listening <base URL>" on stdout once it serves, and shuts down when its
// stdin ends.
const serverFlag = "-server"

// isServer reports whether this process was started as a fleet's server instance.
func isServer() bool { return len(os.Args) > 1 && os.Args[1] == serverFlag }

// bigRoom is the room the fleet's room message goes to.
const bigRoom = "big"

// serverStats is what /fleet/stats reports.
type serverStats struct {
	HeapInuse      uint64 `json:"heap_inuse"`
	StackInuse     uint64 `json:"stack_inuse"`
	Goroutines     int    `json:"goroutines"`
	RSS            uint64 `json:"rss"`
	Handles        int64  `json:"handles"`         // socket handlers running with a live handle
	Joined         int64  `json:"joined"`          // of which in the big room
	EventsReceived uint64 `json:"events_received"` // session events the store's subscription received
	AllEvents      uint64 `json:"all_events"`      // events the subscribe-all subscriber received
}

// serverMain runs a fleet's server instance and returns its exit status.
func serverMain(args []string, in io.Reader, out io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "sockets server:", err)
		return 1
	}
	if len(args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: sockets -server <Redis address> <key prefix> <fake WeChat URL> <room every> <most sockets>")
		return 2
	}
	roomEvery, err1 := strconv.Atoi(args[3])
	most, err2 := strconv.Atoi(args[4])
	if err1 != nil || err2 != nil || roomEvery < 0 || most < 0 {
		fmt.Fprintln(os.Stderr, "sockets server: bad room every or most sockets:", args[3], args[4])
		return 2
	}
	if os.Getenv("MPSESSION_FLEET_MEMPROFILE") == "1" {
		runtime.MemProfileRate = 1024 // before anything is allocated: see -memprofile
	}
	if limit, err := raiseFileLimit(uint64(most) + 256); err != nil {
		return fail(fmt.Errorf("open files limit %d: %v", limit, err))
	}
	rdb, err := dialRedis(args[0])
	if err != nil {
		return fail(err)
	}
	defer rdb.Close()
	st := redisstore.New(rdb, redisstore.Config{Prefix: args[1]})
	defer st.Close()
	client, err := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: args[2]})
	if err != nil {
		return fail(err)
	}
	mp, err := fibermp.NewManager(fibermp.Config{Client: client, Store: st, Cache: &fibermp.CacheConfig{}})
	if err != nil {
		return fail(err)
	}
	defer mp.Close(context.Background())
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ReduceMemoryUsage: sockConfigLean.reduceMemory})
	app.Use(mp.Handler())
	app.Post("/incr", fibermp.Required(), func(c *fiber.Ctx) error {
		_, err := fibermp.Get(c).Incr("n", 1)
		return err
	})
	ws, err := wsauth.NewServer(mp, wsauth.Config{ReadBufferSize: sockConfigLean.readBuffer,
		WriteBufferSize: sockConfigLean.writeBuffer, WriteBufferPool: &sync.Pool{}})
	if err != nil {
		return fail(err)
	}
	hub := ws.Hub()
	var handles, joined atomic.Int64
	app.Get("/ws", ws.Upgrade(func(c *wsauth.Conn) {
		h := c.Session()
		if h == nil {
			return
		}
		handles.Add(1)
		defer handles.Add(-1)
		if n, err := strconv.Atoi(strings.TrimPrefix(h.OpenID(), "o-sock-")); err == nil && roomEvery > 0 && n%roomEvery == 0 {
			if err := c.Join(c.Context(), bigRoom); err != nil {
				fmt.Fprintln(os.Stderr, "sockets server: join:", err)
				return
			}
			joined.Add(1)
			defer joined.Add(-1)
		}
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if string(msg) == "who" && c.WriteMessage(fws.TextMessage, []byte(h.OpenID())) != nil {
				return
			}
		}
	}))

	var allEvents atomic.Uint64
	var subMu sync.Mutex
	var unsubscribeAll func()
	app.Post("/fleet/subscribe-all", func(c *fiber.Ctx) error {
		subMu.Lock()
		defer subMu.Unlock()
		if unsubscribeAll == nil {
			u, err := st.Subscribe(func(store.Event) { allEvents.Add(1) })
			if err != nil {
				return err
			}
			unsubscribeAll = u
		}
		return c.SendStatus(http.StatusNoContent)
	})
	app.Get("/fleet/stats", func(c *fiber.Ctx) error {
		s := takeSnapshot()
		return c.JSON(serverStats{HeapInuse: s.heap, StackInuse: s.stack, Goroutines: s.goroutines, RSS: s.rss,
			Handles: handles.Load(), Joined: joined.Load(), EventsReceived: st.EventsReceived(), AllEvents: allEvents.Load()})
	})
	app.Post("/fleet/send-user", func(c *fiber.Ctx) error {
		return hub.ToUser(c.UserContext(), c.Query("openid"), []byte("m u "+c.Query("seq")))
	})
	app.Get("/fleet/heap", func(c *fiber.Ctx) error {
		runtime.GC()
		var buf bytes.Buffer
		if err := pprof.WriteHeapProfile(&buf); err != nil {
			return err
		}
		return c.Send(buf.Bytes())
	})
	app.Get("/fleet/profile", func(c *fiber.Ctx) error {
		d, err := time.ParseDuration(c.Query("for"))
		if err != nil {
			return fiber.NewError(http.StatusBadRequest, err.Error())
		}
		var buf bytes.Buffer
		if err := pprof.StartCPUProfile(&buf); err != nil {
			return err
		}
		time.Sleep(d)
		pprof.StopCPUProfile()
		return c.Send(buf.Bytes())
	})
	app.Post("/fleet/send-room", func(c *fiber.Ctx) error {
		return hub.ToRoom(c.UserContext(), bigRoom, []byte("m r "+c.Query("seq")))
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	w := bufio.NewWriter(out)
	fmt.Fprintf(w, "listening http://%s\n", ln.Addr())
	_ = w.Flush()

	_, _ = io.Copy(io.Discard, in) // until the parent closes stdin, or dies
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = app.ShutdownWithTimeout(5 * time.Second)
	<-served
	if err := ws.Shutdown(ctx); err != nil {
		return fail(err)
	}
	subMu.Lock()
	if unsubscribeAll != nil {
		unsubscribeAll()
	}
	subMu.Unlock()
	return 0
}

// fleetStats decodes an instance's /fleet/stats.
func fleetStats(hc *http.Client, base string) (serverStats, error) {
	var s serverStats
	resp, err := hc.Get(base + "/fleet/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("%s/fleet/stats: HTTP %d", base, resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}
