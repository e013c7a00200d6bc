package wsauth_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// Many idle sockets in one process: with this configuration an idle socket costs about
// 11 KiB of heap and stack instead of 18 (bench/sockets measures it).
func Example_manyIdleSockets() {
	wechat := wxtest.NewServer("wx0123456789abcdef", "secret")
	defer wechat.Close()
	client, _ := wx.New(wx.Config{AppID: "wx0123456789abcdef", AppSecret: "secret", BaseURL: wechat.URL})
	mp, err := fibermp.NewManager(fibermp.Config{Client: client})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mp.Close(context.Background())
	ws, err := wsauth.NewServer(mp, wsauth.Config{
		ReadBufferSize:  128,          // the least a control frame needs; larger messages skip the buffer
		WriteBufferSize: 1024,         // lent by the pool while a message is written,
		WriteBufferPool: &sync.Pool{}, // not held by an idle socket (one pool per WriteBufferSize)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ws.Shutdown(context.Background())

	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		// fasthttp returns the 4 KiB buffer that read the upgrade request to its pool
		// instead of keeping it for the socket's life (at some CPU cost per request).
		ReduceMemoryUsage: true,
	})
	app.Use(mp.Handler())
	app.Get("/ws", ws.Upgrade(func(c *wsauth.Conn) {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
			_ = c.WriteMessage(fws.TextMessage, []byte(c.Session().OpenID()))
		}
	}))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = app.Listener(ln) }()
	defer func() { _ = app.ShutdownWithTimeout(time.Second) }()
	base := "http://" + ln.Addr().String()

	resp, _ := http.Post(base+"/login", "application/json", strings.NewReader(`{"code":"`+wechat.NewCode("o-idle")+`"}`))
	var login struct{ Token string }
	_ = decode(resp.Body, &login)
	resp.Body.Close()

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws",
		http.Header{"Authorization": {"Bearer " + login.Token}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	_ = conn.WriteMessage(websocket.TextMessage, []byte("who"))
	_, msg, _ := conn.ReadMessage()
	fmt.Println(string(msg))
	// Output: o-idle
}
