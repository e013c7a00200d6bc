// Package wsauth serves the WebSockets of a fibermp.Manager's sessions: it
// authenticates each upgrade with the session's credentials before anything is
// upgraded, gives the socket's handler a live session handle, and sends messages to
// users, sessions and rooms across processes.
//
// One Server owns the sockets of one Manager. Make it with NewServer, mount Upgrade on
// a route (and Tickets, for clients that can only set a URL), keep its Hub wherever the
// program sends from, and Shutdown it when the server stops:
//
//	mp, err := fibermp.NewManager(fibermp.Config{AppID: appID, AppSecret: secret, Store: sessions})
//	...
//	ws, err := wsauth.NewServer(mp, wsauth.Config{Origins: []string{"https://game.example"}, TicketURL: "/ws"})
//	...
//	app.Use(mp.Handler())
//	app.Get("/tunnel", ws.Tickets())
//	app.Get("/ws", ws.Upgrade(func(c *wsauth.Conn) {
//		// c: one writer at a time, a read limit, pings
//		s := c.Session() // the live session
//		for {
//			var move Move
//			if err := c.ReadJSON(&move); err != nil {
//				return // the socket closed, or the session ended (see s.Err)
//			}
//			score, _ := s.Incr("score", move.Points) // exact, alongside HTTP requests
//			_ = c.WriteJSON(fiber.Map{"score": score})
//		}
//	}))
//	...
//	_ = app.Shutdown()
//	_ = ws.Shutdown(ctx) // closes the sockets with 1001 and waits for their handlers
//	_ = mp.Close(ctx)
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
// Config.MaxSocketsPerSession sockets, one user Config.MaxSocketsPerUser (per Server,
// so per process); an upgrade past a cap is refused with 429.
//
// # The live handle
//
// Server.Upgrade is the one way to serve an authenticated socket. Conn.Session returns the
// socket's *Handle, which is a *fibermp.Session (the same getters, writers and errors
// as on a request) that stays live: it starts from the session the upgrade loaded, its
// reads reflect changes made since by HTTP requests and other processes, its writes go
// to the store at once, and it keeps the session alive while the socket is open. When
// the session is logged out, revoked or expires, in any process, Done closes and the
// socket is closed with CloseLoggedOut, CloseRevoked or CloseExpired.
//
// The handles of one Server share one store subscription, one keep-alive goroutine and
// one timer for their absolute deadlines; the pings of its Conns share another
// goroutine. Conn.Close and CloseWith close from the server's side: the close frame is
// sent, the socket's place under the caps is freed at once, and the handler's read
// returns ErrClosed when the client answers, or a second later. At shutdown,
// Server.Shutdown closes every socket with 1001 and waits for the handlers: Fiber's
// Shutdown does not wait for upgraded connections.
//
// # Many idle sockets
//
// An idle socket holds its handler's goroutine (a 4 KiB stack), its buffers and what
// wsauth keeps for its live session. wsauth lets go of the upgrade request (fasthttp
// would keep its buffers for the socket's life); the buffers are the application's to
// set. These settings save about 6 KiB of each idle socket's heap: bench/sockets
// measured 17.6 KiB of heap and stack per socket with Fiber's and contrib/websocket's
// defaults and 11.2 KiB with these (19,500 idle sockets, before the Hub):
//
//	app := fiber.New(fiber.Config{
//		// fasthttp lets go of the 4 KiB buffer it read the upgrade request with, at
//		// some CPU cost on every HTTP request (fasthttp's words: "aggressively reduces
//		// memory usage at the cost of higher CPU usage"); serve the sockets from an
//		// app of their own if that matters.
//		ReduceMemoryUsage: true,
//	})
//	ws, err := wsauth.NewServer(mp, wsauth.Config{
//		ReadBufferSize:  128,          // a control frame needs 125; larger messages skip the buffer
//		WriteBufferSize: 1024,         // a buffer per message written, not per socket:
//		WriteBufferPool: &sync.Pool{}, // it goes back to the pool when the message is out
//	})
//
// # Messages to sockets in every process
//
// A Hub (Server.Hub, from anywhere in the program) sends application messages to every
// socket of a user (ToUser), of one session (ToSession) or of a room (ToRoom), in every
// process that shares the store; sockets Join and Leave rooms, and Hub.Subscribe makes
// a server-side member of a room (a match, a bot):
//
//	hub := ws.Hub()
//	_ = c.Join(ctx, "match:42") // this socket, until Leave or the socket closes
//	_ = hub.ToRoom(ctx, "match:42", []byte(`{"move":"rock"}`))
//	_ = hub.ToUser(ctx, openid, []byte(`{"notice":"your turn"}`))
//
// Messages reach sockets as text frames written by wsauth, at most once, in the order
// each sender sent them to one user, session or room; messages to two of them (a user
// and a room the user's socket is in) may arrive in either order, as on a Cluster they
// travel on different shards. A sender never waits for sockets: the sockets of its own
// process get the message queued before the call returns, and the store carries it to
// the others. Each socket has a queue of Config.QueueSize messages (256), drained
// by a goroutine that exists only while the queue is not empty; a socket whose queue
// overflows (its client stopped reading) is closed with CloseTooSlow (4008), and the
// others do not wait for it.
//
// The store carries messages when it declares a Broker (Capabilities): redisstore on Redis
// pub/sub, memstore within its process. fiberstore declares none: with it, messages
// reach the sockets of the sending process only. On Redis each user, session and room
// is a channel of its own ("<prefix>m:{u:<hash of openid>}", "m:{s:<hash of session
// id>}", "m:{r:<room>}"), and a process subscribes to a channel only while it holds a socket of
// that user or session, or a member of that room: a process receives the messages of
// its own sockets and members, and nothing else (HubStats counts them; its own sends to
// them come back too, and are skipped). On a Cluster the channels are
// sharded (SPUBLISH, SSUBSCRIBE): a message crosses only the shard that owns its
// channel (its master, and its replicas), never the rest of the Cluster.
// Messages published while a process's pub/sub connection is down are lost to that
// process; go-redis subscribes again when it reconnects. When a Cluster moves a
// channel's slot to another shard, Redis ends that channel's subscription: the room or
// user stays silent in that process until its members all leave and one joins again
// (or the sockets reconnect); reshard while traffic is low.
//
// # Recovery
//
// Without Config.History, the Hub delivers at most once: a message sent while a
// socket is reconnecting is lost to it. With it, the store (memstore, redisstore) keeps
// the messages of every user, session and room for HistoryConfig.Window (2 minutes)
// and at most HistoryConfig.Size (300) of them, each at a position: the stream's epoch
// and an offset, 1, 2, 3, ... with no gap. On Redis, a send is then one round trip, a
// script that adds the message to the topic's stream and publishes it; every process,
// the sender's too, delivers it from the channel, so that each socket receives each of
// its streams in order. Messages must then be JSON values (ErrNotJSON), and reach the
// client in an envelope:
//
//	{"topic":"room:go","pos":"6f1c2a9e0b7d4c35.17","msg":{"move":"rock"}}
//
// where topic is "user", "session" or "room:<name>". A socket's first message is its
// welcome, with its id and where each of its streams stands:
//
//	{"recovery":{"id":"<32 hex>","recovered":false,"pos":{"user":"….0","session":"….4"}}}
//
// and a Join is followed by an envelope with the room's position and no msg. The client
// keeps the id and the last pos of each topic. When its socket drops (no close frame
// needed), it reconnects, to any instance, with that state as JSON, {"id": ...,
// "pos": {...}}: in the RecoverHeader (a mini program's wx.connectSocket({header}),
// native apps), or, from a browser, as one more subprotocol, "recover." followed by the
// JSON in unpadded base64url, after its credential: new WebSocket(url, ["mpsession",
// token, "recover." + state]). The new socket is put back in the old one's rooms (kept
// in the store for a day after they last changed, and only for the same session), and
// its welcome says recovered: true when every message of its streams after the
// positions sent was still kept: those follow the welcome, in order, then the live
// ones, with none twice (the socket listens before it reads the streams, and skips what
// it already wrote). recovered is false when the window or the size was exceeded, the
// socket missed more than HistoryConfig.MaxReplay (1,000) messages across its streams,
// the store lost the history (a Redis restarted empty), or the client sent no state: the
// application then resyncs its client, as after a first connection. A socket that
// stays open and misses a message (its process's pub/sub connection was cut) is closed
// with CloseMissed (4009) when the next message of that stream shows the gap, so that
// the client reconnects and recovers; so is a socket whose process cannot listen to
// one of its streams, and one open for a day on a stream quiet for a day (its epoch
// ended: the client is then told recovered: false). The rooms come back as they were
// last kept: when keeping them fails, Join returns the error and the socket is not in
// the room; when Leave cannot keep them, it returns the error and a recovery may put
// the socket back in the room. HistoryConfig.Rejoin lets the application refuse a room
// (a user removed from it while offline). The recovery state must fit MaxRecoverBytes
// (2 KiB), and the upgrade request fasthttp's read buffer. wafer-client-sdk's
// Tunnel connects to a URL it is given, with no header of the application's: its
// sockets start afresh.
//
// # Presence
//
// With Config.Presence, Hub.Presence tells who is in a room now, from any process:
// the openids of its sockets and how many sockets. Each Join (which waits for it) and
// Leave, and each socket's close, costs one store round trip, one more with
// PresenceConfig.Events. On Redis a room is one hash: a field per member, named by the
// process that added it, and a field per process saying until when it vouches for its
// members, renewed every redisstore.Config.PresenceTTL/3 (PresenceTTL is 10 s by
// default), so that the members of a process that crashed (SIGKILL, a lost machine)
// stop being listed within PresenceTTL. A Presence call reads the room's hash (one
// HGETALL: its cost grows with the room). With Events, a room's members (the joining
// socket too) get {"presence":{"join":"<openid>"}} and {"presence":{"leave":"<openid>"}}
// as messages of the room; none for the sockets Shutdown closes or a crash loses.
//
// # At scale: 10 instances x 100,000 sockets
//
// On paper, for a fleet of 10 instances holding 100,000 sockets each (one socket per
// user, 1,000,000 in all), where each socket is sent 1 message a second (a game's moves
// and results) and each socket's session is written once every 10 seconds (a score):
//
//   - Messages. The fleet sends 1,000,000 messages a second. Routed per user, session
//     and room, an instance receives about 100,000 a second: those of its own sockets,
//     which it must write to them anyway, plus its own sends to topics it also listens
//     to, which come back and are skipped (a tenth of its sends when users are spread
//     evenly). Redis runs 1,000,000 PUBLISH a second and writes each message once or
//     twice (a room of two players on two instances): this needs a Cluster, whose
//     sharded channels spread it over the shards (6 shards: about 170,000 a second
//     each). Had every instance received every message, each would take 1,000,000 a
//     second, 90% of them for sockets it does not hold, and Redis would write
//     10,000,000 a second. Each socket costs Redis two subscribed channels (its user's
//     and its session's): about 280 bytes each (measured: 100,000 channels on Redis
//     7.0 took 28 MB, subscribed in 0.4 s), so 2,000,000 channels, 570 MB, spread over
//     the Cluster; each instance holds 200,000 of them on one pub/sub connection per
//     node.
//   - Session events are routed the same way: each session's events go on a channel
//     of its own, and an instance subscribes to the channels of the sessions it holds
//     (a socket's, for as long as the socket is open; a cached copy's, for as long as
//     the cache keeps it: store.Watcher). The fleet's 1,000,000 sockets make 100,000
//     events a second, and an instance receives those of its own sessions, about a
//     tenth, whatever the size of the fleet; Redis writes each event once or twice.
//     Measured on this machine with 6 instances (bench/sockets -fleet, docs/SCALING.md):
//     each instance received 1.00x the events of the sessions it held, where
//     before each received every event of the fleet.
//
// Routing costs a SUBSCRIBE for every session an instance starts to hold, which the
// first socket of the session, or the cache's first load of it, waits for (one round
// trip), and an UNSUBSCRIBE when the last one lets go. Events lost in a reconnect
// resync every subscriber as before: go-redis subscribes the new connection to every
// channel held. On a Cluster, the scripts' PUBLISH still reaches every node over the
// Cluster bus (the session channels are not sharded yet).
package wsauth
