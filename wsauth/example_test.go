package wsauth_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// A socket that keeps a score in the session, next to an HTTP route that reads it.
// The browser way of sending the credential is used: a subprotocol.
func Example() {
	wechat := wxtest.NewServer("wx0123456789abcdef", "secret")
	defer wechat.Close()
	client, _ := wx.New(wx.Config{AppID: "wx0123456789abcdef", AppSecret: "secret", BaseURL: wechat.URL})
	mp, err := fibermp.NewManager(fibermp.Config{Client: client}) // in memory, Token protocol
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mp.Close(context.Background())
	ws, err := wsauth.NewServer(mp, wsauth.Config{Origins: []string{"https://game.example"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ws.Shutdown(context.Background())

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(mp.Handler())
	app.Get("/score", mp.Required(), func(c *fiber.Ctx) error {
		return c.SendString(fmt.Sprint(fibermp.Get(c).GetInt("score")))
	})
	app.Get("/ws", ws.Upgrade(func(c *wsauth.Conn) {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
			n, _ := c.Session().Incr("score", 10)
			_ = c.WriteMessage(fws.TextMessage, []byte(fmt.Sprint(n)))
		}
	}))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = app.Listener(ln) }()
	defer func() { _ = app.ShutdownWithTimeout(time.Second) }()
	base := "http://" + ln.Addr().String()

	resp, _ := http.Post(base+"/login", "application/json", strings.NewReader(`{"code":"`+wechat.NewCode("o-player")+`"}`))
	var login struct{ Token string }
	_ = decode(resp.Body, &login)

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws",
		http.Header{"Origin": {"https://game.example"}, "Sec-WebSocket-Protocol": {"mpsession, " + login.Token}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	for i := 0; i < 2; i++ {
		_ = conn.WriteMessage(websocket.TextMessage, []byte("move"))
		_, msg, _ := conn.ReadMessage()
		fmt.Println("socket:", string(msg))
	}
	req, _ := http.NewRequest("GET", base+"/score", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	resp, _ = http.DefaultClient.Do(req)
	var score string
	_, _ = fmt.Fscan(resp.Body, &score)
	fmt.Println("http:", score)
	// Output:
	// socket: 10
	// socket: 20
	// http: 20
}
