// Package redisstore keeps sessions in Redis: a single node, Sentinel or Cluster,
// through any go-redis v9 UniversalClient.
//
//	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
//	defer client.Close()
//	sessions := redisstore.New(client, redisstore.Config{Prefix: "myapp:"})
//	defer sessions.Close()
//	// hand sessions to fibermp.Config.Store
//
// # Layout
//
// Every key starts with Config.Prefix and carries a hash tag, so Cluster can place it:
//
//	<prefix>s:{<Hash(id)>}     hash: one session; user fields, and the reserved
//	                           fields "\x00o" (owner) and "\x00d" (deadline, unix ms)
//	<prefix>o:{<Hash(owner)>}  set: hashes of the owner's sessions
//	<prefix>t:{<Hash(ticket)>} string: a ticket's value, as given
//	<prefix>events             pub/sub channel of fences (store.Fencer), and of the
//	                           session events of earlier versions
//	<prefix>events:<Hash(id)>  pub/sub channel of one session's events (Watch)
//
// Keys hold hashes of session ids and tickets, never the ids themselves, so a dump of
// Redis holds no usable credential. Values are stored as given: a ticket's value is
// opaque to the store, and a caller that puts a credential in it seals it first, as
// wsauth does for every store. The store never runs FLUSHDB or KEYS.
//
// A session key expires at min(last touch + idle, deadline). An owner index expires
// with the latest deadline of the sessions added to it, or never if one of them has no
// deadline; its entries for sessions that are gone are pruned by Sessions, DeleteOwner
// and Delete.
//
// # Round trips
//
// Create, Load, Save, Incr, Touch, PutTicket and TakeTicket cost one round trip each:
// Load is a pipeline of plain commands (HGETALL with PTTL, or with PEXPIREAT to touch),
// the writes are Lua scripts that check, write, extend the expiry and publish their
// event in one step, and tickets are SET PX and GETDEL. The first run of a script on a
// node that has not cached it costs one more (EVALSHA, then EVAL). Operations across an
// owner's sessions (Delete of an owned session, Sessions, DeleteOwner) cost two or
// three: see their comments.
//
// # Time
//
// The store takes "now" from the application's clock, as the session deadline does,
// passes it to the scripts and sets absolute expiries (PEXPIREAT), so every expiry is
// storekit.ExpiresAt computed on one clock, and scripts stay deterministic for
// replication. Skew between the application's clock and Redis's shifts when Redis
// drops keys by the skew; keep clocks in sync.
//
// Every operation checks a session's deadline itself rather than trust Redis to have
// dropped it: Load with touch extends the expiry without knowing the deadline (a script
// would cost Redis more), so a session touched shortly before its deadline may stay in
// Redis after it, for the touch duration at most, unseen.
//
// # Events and outages
//
// Store.Capabilities declares the store's events (store.Events: Subscribe and
// EventsLive are the Store's own methods, Shared is true, and From returns the view
// whose writes carry an origin) and its messages between processes (store.Broker:
// Publish and Listen).
//
// The scripts publish their events on the session's channel themselves, at no extra
// round trip. An event is one payload:
//
//	<kind><hash>[<len>:<field>]...[@<ms>][#<origin>]
//
// kind is one byte (store.EventKind: 1 changed, 2 deleted, 3 revoked, 4 expired), hash
// the 64 hex characters of the session's hash, then each changed field as its length
// in decimal, a colon and its name, then "@" and the time of the write in Unix
// milliseconds, then "#" and the origin of the view the write was made through
// (store.Events.From), when it was made through one; the origin runs to the end of the
// payload. A payload without an origin is what versions before origins sent, but a
// process of such a version drops an event that carries one. Subscribers drop any
// payload they cannot read.
//
// Subscribe opens one subscription per Store, whatever the number of subscribers, read
// by one goroutine; go-redis reconnects and resubscribes it after a network error.
// Events published while it is disconnected are lost, so once it is subscribed again
// every subscriber receives a store.EventResync and should check again what it caches.
//
// A second goroutine checks the subscription's health: it sends a PING on the
// subscription's connection every 250 ms, and the reading goroutine counts the pong,
// like any event, as a sign of life. Store.EventsLive (store.Events) reports true
// only while the subscription is confirmed, no read has failed since, and a pong or an
// event arrived within the last second; a Redis that hangs, or a connection that
// silently stops carrying anything, turns it false within a second, a broken
// connection at once. When it turns true again, every subscriber has received a
// store.EventResync first, so a cache of sessions (fibermp's) that serves from memory
// only while it reports true never serves what a lost event would have changed. The
// health check costs Redis four PINGs a second per subscribed Store. A silence alone
// does not make go-redis replace the connection: one that stays open without answering
// (a hung Redis, a peer gone without a reset) keeps EventsLive false until it answers
// again or the operating system gives it up.
//
// On one Redis (a single node, or a Sentinel group's master), the events implement
// store.Fencer: Fence publishes a store.EventFence on the store's events channel, and
// Redis, which runs PUBLISHes one at a time and writes each to a subscribed connection
// before it runs the next, hands it to every subscriber after the event of every write
// acknowledged before Fence was called, whichever session's channel that event went on:
// a Store receives the fences and its sessions' events on one connection.
// fibermp's session cache bounds its staleness with them (CacheConfig.MaxLag). On a
// Cluster the nodes relay each other's messages with no order between nodes, so the
// events do not implement it. Subscribers ignore fences, and versions of this package
// before fences drop their payload (an unknown kind) without a word.
//
// While Redis is unreachable every method returns an error that wraps the cause (and
// ctx.Err() when ctx ended), never store.ErrNotFound, as soon as ctx ends or go-redis
// gives up (see its DialTimeout, ReadTimeout and MaxRetries options): callers answer
// 503. go-redis reconnects by itself; with its default options operations succeed again
// within about a second of Redis coming back.
//
// # Sentinel
//
// With Sentinel, give New a failover client, which sends every command to the master
// the Sentinels name (redis.NewUniversalClient with MasterName set makes the same):
//
//	client := redis.NewFailoverClient(&redis.FailoverOptions{
//		MasterName:    "mymaster",
//		SentinelAddrs: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
//	})
//
// When the master fails, operations fail as in an outage until the Sentinels have
// promoted a replica: down-after-milliseconds, then a second or so (2.2 to 2.5 s after
// a SIGKILL in wsauth's TestSentinelFailover, at 1000 ms). The subscription then comes
// back on the new master, and every subscriber, such as wsauth's live handles,
// receives a store.EventResync. Replication is asynchronous, so a failover loses the
// writes the old master acknowledged but had not yet sent to the promoted replica: a
// session created in that window disappears (its user logs in again), an Incr goes
// back, and a session deleted in it, at logout, comes back.
//
// # Cluster
//
// On a sharded client (Cluster, or a Ring) every script touches one key, so every
// operation is legal there. On a single node or Sentinel (a *redis.Client), Create
// writes the session and adds it to its owner's index in one atomic script; on a
// sharded client the two keys live in different slots, and Create sends two scripts in
// one pipeline instead, which go-redis runs on both nodes at once. Operations across an owner's sessions read the index first and then
// act on each session in a pipeline, checking on the session itself that it still
// belongs to the owner, so a stale index entry is never trusted.
package redisstore
