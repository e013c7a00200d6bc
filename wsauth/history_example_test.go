package wsauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// A client whose socket drops reconnects with its recovery state and receives what was
// sent meanwhile. With redisstore instead of the memory store, it may reconnect to any
// instance.
func ExampleHistoryConfig() {
	wechat := wxtest.NewServer("wx0123456789abcdef", "secret")
	defer wechat.Close()
	client, _ := wx.New(wx.Config{AppID: "wx0123456789abcdef", AppSecret: "secret", BaseURL: wechat.URL})
	mp, err := fibermp.NewManager(fibermp.Config{Client: client})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mp.Close(context.Background())
	ws, err := wsauth.NewServer(mp, wsauth.Config{History: &wsauth.HistoryConfig{Window: 2 * time.Minute}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ws.Shutdown(context.Background())

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(mp.Handler())
	app.Get("/ws", ws.Upgrade(func(c *wsauth.Conn) {
		for { // the hub writes the messages; the handler only reads
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = app.Listener(ln) }()
	defer func() { _ = app.ShutdownWithTimeout(time.Second) }()
	resp, err := http.Post("http://"+ln.Addr().String()+"/login", "application/json",
		strings.NewReader(`{"code":"`+wechat.NewCode("o-ann")+`"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	var login struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()

	// The client's side: it keeps the socket's id and its last position in each stream.
	state := struct {
		ID  string            `json:"id"`
		Pos map[string]string `json:"pos"`
	}{Pos: map[string]string{}}
	read := func(conn *websocket.Conn) {
		_, b, _ := conn.ReadMessage()
		var m struct {
			Recovery *struct {
				ID        string
				Recovered bool
				Pos       map[string]string
			}
			Topic, Pos string
			Msg        json.RawMessage
		}
		_ = json.Unmarshal(b, &m)
		if r := m.Recovery; r != nil {
			state.ID = r.ID
			for k, v := range r.Pos {
				state.Pos[k] = v
			}
			fmt.Println("welcome, recovered:", r.Recovered)
			return
		}
		state.Pos[m.Topic] = m.Pos
		fmt.Printf("%s: %s\n", m.Topic, m.Msg)
	}
	dial := func(recover string) *websocket.Conn {
		h := http.Header{"Authorization": {"Bearer " + login.Token}}
		if recover != "" {
			h.Set(wsauth.RecoverHeader, recover)
		}
		conn, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/ws", h)
		if err != nil {
			fmt.Println(err)
		}
		return conn
	}

	conn := dial("")
	if conn == nil {
		return
	}
	read(conn) // the welcome
	hub := ws.Hub()
	_ = hub.ToUser(context.Background(), "o-ann", []byte(`{"turn":1}`))
	read(conn)
	_ = conn.UnderlyingConn().Close() // the phone loses its network: no close frame

	_ = hub.ToUser(context.Background(), "o-ann", []byte(`{"turn":2}`))
	_ = hub.ToUser(context.Background(), "o-ann", []byte(`{"turn":3}`))

	saved, _ := json.Marshal(state)
	conn = dial(string(saved))
	if conn == nil {
		return
	}
	defer conn.Close()
	for range 3 { // the welcome, then what the socket missed
		read(conn)
	}
	// Output:
	// welcome, recovered: false
	// user: {"turn":1}
	// welcome, recovered: true
	// user: {"turn":2}
	// user: {"turn":3}
}
