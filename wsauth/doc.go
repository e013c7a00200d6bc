// Package wsauth authenticates WebSocket upgrades with mini-program sessions and gives
// each socket's handler a live session handle.
//
// It runs on the upgrade request, after fibermp.New and before contrib/websocket's
// websocket.New, so an upgrade without valid credentials is refused with 401 (and the
// protocol's invalid-session body) before anything is upgraded:
//
//	app.Use(fibermp.New(fibermp.Config{AppID: appID, AppSecret: secret, Store: sessions}))
//	app.Get("/tunnel", wsauth.Tickets(wsauth.TicketConfig{Path: "/ws"}))
//	app.Get("/ws", wsauth.New(wsauth.Config{Origins: []string{"https://game.example"}}),
//		websocket.New(wsauth.Handler(func(c *wsauth.Conn) {
//			// c: one writer at a time, a read limit, pings
//			s := c.Session() // the live session
//			for {
//				var move Move
//				if err := c.ReadJSON(&move); err != nil {
//					return // the socket closed, or the session ended (see s.Err)
//				}
//				score, _ := s.Incr("score", move.Points) // exact, alongside HTTP requests
//				_ = c.WriteJSON(fiber.Map{"score": score})
//			}
//		})))
//
// # Credentials
//
// A client authenticates the upgrade in one of three ways:
//   - the fibermp protocol's headers, which wx.connectSocket({header}) can send;
//   - a subprotocol, the browser way: new WebSocket(url, ["mpsession", credential]),
//     where the credential is the Token protocol's token, the Wafer2 skey, or the Wafer
//     id and skey joined by a dot. The server echoes "mpsession", never the credential,
//     and hides the credential from the handler;
//   - a ticket in the URL, from the Tickets endpoint: single use, valid 30 seconds, in
//     every process sharing the store. wafer-client-sdk's Tunnel works this way.
//
// A browser's Origin must be on Config.Origins; requests without an Origin (mini
// programs, native apps) pass on their credentials alone. One session holds at most
// Config.MaxSocketsPerSession sockets, one user Config.MaxSocketsPerUser (per process);
// an upgrade past a cap is refused with 429.
//
// # The live handle
//
// Handler is the one way to serve an authenticated socket. Conn.Session returns the
// socket's *Handle, which is a *fibermp.Session (the same getters, writers and errors
// as on a request) that stays live: it starts from the session the upgrade loaded, its
// reads reflect changes made since by HTTP requests and other processes, its writes go
// to the store at once, and it keeps the session alive while the socket is open. When
// the session is logged out, revoked or expires, in any process, Done closes and the
// socket is closed with CloseLoggedOut, CloseRevoked or CloseExpired.
//
// The handles of one fibermp middleware share one store subscription and one
// keep-alive goroutine; the pings of every Conn share another. At shutdown,
// CloseAll(ctx, app, reason) closes the sockets of app and waits for their handlers:
// Fiber's Shutdown does not wait for upgraded connections.
package wsauth
