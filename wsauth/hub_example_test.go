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

// A chat: sockets join the room their URL names, an HTTP route posts to a room, and
// a server-side member logs what is said. With redisstore instead of the memory
// store, the same code reaches sockets in every process.
func ExampleHub() {
	wechat := wxtest.NewServer("wx0123456789abcdef", "secret")
	defer wechat.Close()
	client, _ := wx.New(wx.Config{AppID: "wx0123456789abcdef", AppSecret: "secret", BaseURL: wechat.URL})
	mp, err := fibermp.NewManager(fibermp.Config{Client: client})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mp.Close(context.Background())
	ws, err := wsauth.NewServer(mp)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ws.Shutdown(context.Background())
	hub := ws.Hub() // usable from anywhere: handlers, goroutines, other apps

	// The server-side member.
	logged := make(chan string, 1)
	if _, err := hub.Subscribe("lobby", func(msg []byte) { logged <- string(msg) }); err != nil {
		fmt.Println(err)
		return
	}

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(mp.Handler())
	app.Get("/chat/:room", ws.Upgrade(func(c *wsauth.Conn) {
		room := c.Params("room")
		if err := c.Join(context.Background(), room); err != nil {
			return
		}
		_ = c.WriteMessage(fws.TextMessage, []byte("joined "+room))
		for { // the hub writes the room's messages; the handler only reads
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	app.Post("/say/:room", mp.Required(), func(c *fiber.Ctx) error {
		msg := fibermp.Get(c).OpenID() + ": " + string(c.Body())
		return hub.ToRoom(c.UserContext(), c.Params("room"), []byte(msg))
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = app.Listener(ln) }()
	defer func() { _ = app.ShutdownWithTimeout(time.Second) }()
	base := "http://" + ln.Addr().String()

	login := func(openid string) string {
		resp, err := http.Post(base+"/login", "application/json", strings.NewReader(`{"code":"`+wechat.NewCode(openid)+`"}`))
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		var r struct{ Token string }
		_ = decode(resp.Body, &r)
		return r.Token
	}
	ann, bob := login("o-ann"), login("o-bob")

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/chat/lobby",
		http.Header{"Authorization": {"Bearer " + ann}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	_, joined, _ := conn.ReadMessage()
	fmt.Println("ann's socket:", string(joined))

	req, _ := http.NewRequest("POST", base+"/say/lobby", strings.NewReader("hello"))
	req.Header.Set("Authorization", "Bearer "+bob)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	_, msg, _ := conn.ReadMessage()
	fmt.Println("ann's socket:", string(msg))
	fmt.Println("log:", <-logged)
	// Output:
	// ann's socket: joined lobby
	// ann's socket: o-bob: hello
	// log: o-bob: hello
}
