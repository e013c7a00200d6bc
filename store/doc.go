// Package store defines how WeChat Mini Program sessions are kept for fibermp: the Store
// interface every backend implements, what a store declares it can do (Capabilities:
// events, messages between processes), its errors and its events.
//
// A session is a record of named fields (fibermp stores JSON in them) with an owner (the
// user's openid), an idle timeout and an absolute deadline. The Store contract, which
// store/storetest checks for every implementation:
//
//   - Field-level writes. Save sets and deletes only the fields it names, atomically,
//     so two requests changing different fields never overwrite each other; Incr is an
//     atomic counter. Save never brings back a session that expired or was deleted.
//   - Expiry. A session expires at min(last touch + idle, Deadline); Load with touch,
//     Touch and Save extend it, never past the deadline.
//   - No credentials at rest. Stores key sessions and tickets by Hash (SHA-256) of the
//     id, and events name sessions by that hash.
//   - An owner index. Sessions lists an owner's sessions and DeleteOwner logs a user out
//     everywhere, or everywhere but here.
//   - Single-use tickets (for WebSocket URLs), taken atomically by TakeTicket.
//   - Events, declared in Capabilities: Subscribe tells live WebSocket handles, in every
//     process the backend reaches, that a session changed, was deleted, revoked or
//     expired; Shared and EventsLive say whether a cache may rely on them.
//   - Sentinel errors to branch on (ErrNotFound, ErrExists, ErrTooLarge, ...); backend
//     failures, including a done context, are returned as they are.
//
// The stores:
//
//   - store/memstore: in memory, one process, no dependencies; the default.
//   - store/redisstore: Redis (single node, Sentinel or Cluster), for several processes;
//     events travel over Redis pub/sub.
//   - store/fiberstore: an adapter for any fiber.Storage (MySQL, Postgres, MongoDB, ...);
//     its package doc says which guarantees it keeps across processes.
//
// Most applications only choose a store and hand it to fibermp:
//
//	sessions := memstore.New()
//	defer sessions.Close()
//	mp, err := fibermp.NewManager(fibermp.Config{Store: sessions /* ... */})
//
// The methods are for fibermp, wsauth and store implementations. Those who write a store
// use store/storekit for the checks and arithmetic every store shares, and
// store/storetest to check it against the contract.
package store
