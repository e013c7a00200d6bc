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
	"github.com/mpsession/mpsession/store"
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
	sessions := store.NewMemory()
	defer sessions.Close()

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(fibermp.New(fibermp.Config{Client: client, Store: sessions, Protocol: fibermp.Token}))
	app.Get("/chat/:room", wsauth.New(), fws.New(wsauth.Handler(func(c *wsauth.Conn) {
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
	})))
	// The server-side member, made once the hub is known: on the first post.
	logged := make(chan string, 1)
	var subscribed sync.Once
	app.Post("/say/:room", fibermp.Required(), func(c *fiber.Ctx) error {
		hub := wsauth.HubOf(c)
		subscribed.Do(func() {
			_, _ = hub.Subscribe("lobby", func(msg []byte) { logged <- string(msg) })
		})
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
