// Package fiberstore keeps sessions in any fiber.Storage backend: the gofiber/storage
// drivers for MySQL, Postgres, MongoDB, SQLite, memory and the rest.
//
//	storage := mysql.New(mysql.Config{Database: "app", Table: "sessions"}) // any driver
//	defer storage.Close()                                                 // yours to close
//
//	st := fiberstore.New(storage)
//	defer st.Close()
//	mp, err := fibermp.NewManager(fibermp.Config{Store: st /* ... */})
//
// A session is one blob under <Prefix>s:<base64url of SHA-256(id)>, holding its fields,
// owner, deadline and exact expiry; the blob never holds the id. Each owner has one blob
// listing its sessions (<Prefix>o:...), and each ticket one blob (<Prefix>t:...). Backends
// count TTLs in whole seconds, so the exact expiry lives inside the blob and decides; the
// backend is given the time left rounded up to a whole second, plus two seconds, only so
// that it collects the garbage.
//
// # Guarantees
//
// A fiber.Storage can only get, set and delete a key: it has no compare-and-set, no
// atomic increment, no get-and-delete and no publish. This store makes every
// read-modify-write atomic per key with locks inside the Store, which is exact in one
// process and nothing across processes:
//
//	guarantee                                  one process (one Store)   several processes
//	-----------------------------------------  ------------------------  ------------------------------------------
//	a Save or Create is all or nothing          yes                       yes: one Set replaces the whole blob
//	Saves of different fields never overwrite   yes                       no: two writes of one session at the same
//	  each other                                                            instant: the last blob wins, the other
//	                                                                        write is lost
//	Incr is exact                               yes                       no: concurrent increments can be lost
//	a deleted or revoked session stays deleted  yes                       no: a write in flight in another process
//	                                                                        at that instant (read before the delete,
//	                                                                        written after) can bring it back
//	Create of a live id returns ErrExists       yes                       no (ids are random: in practice moot)
//	a ticket is taken at most once              yes                       no: two takers at the same instant may
//	                                                                        both get it
//	exact expiry (to the millisecond)           yes                       yes, if the servers' clocks agree
//	Sessions and DeleteOwner see every session  yes                       nearly: two processes changing one
//	                                                                        owner's index at the same instant can
//	                                                                        drop an entry (see below)
//	EventChanged, EventDeleted, EventRevoked    yes                       no: events stay in the process that made
//	                                                                        the change
//	EventExpired                                only when an operation    the same, in that process only
//	                                            finds the session expired
//	                                            while the backend still
//	                                            holds its blob (2 s or
//	                                            more after expiry)
//
// Use this store with several processes only when those limits are acceptable (one
// process, or sticky routing of a user to one process, keeps every guarantee); otherwise
// use store/redisstore. An owner index entry lost to a race comes back by itself the next
// time the session is extended past the bound its index entry had, about once per idle
// timeout while it is used.
//
// Capabilities declares its events (store.Capabilities.Events) and nothing else: no
// Broker, since the backend carries no messages, and not InProcess, since the backend is
// a database. Writes made through a view from Events.From carry its origin in their events
// like every store's, but the events never leave the process: Events.Shared and
// Events.EventsLive report false, so a per-process session cache cannot learn from them
// what other processes change, and must not be put in front of the store when several
// processes share the backend.
//
// # Expiry on reads
//
// Rewriting the blob on every read to slide the expiry would make every read a write.
// Load with touch rewrites only when that moves the expiry by at least touch/4: after a
// Load the session expires no earlier than min(now + 3/4·touch, Deadline), and
// Record.ExpiresAt, the expiry actually stored, may be up to touch/4 earlier than
// now+touch. Touch and Save with a positive idle always write the exact expiry.
//
// # Contexts
//
// ctx is checked before and after every backend call. The fiber.Storage v2 methods take no
// context, so a call in flight cannot be interrupted, unless the driver also has Fiber v3's
// GetWithContext, SetWithContext and DeleteWithContext (memory/v2 and mysql/v2 do,
// postgres/v3 v3.1.0 does not): then the store uses them and ctx reaches the driver. A
// write the backend has confirmed is reported as done even if ctx ended meanwhile.
//
// # Errors
//
// Backend failures come back as "fiberstore: <op>: <cause>" and are never store.ErrNotFound.
// A blob that cannot be decoded (written by something else, cut short) gives an error
// wrapping ErrCorrupt, never a panic.
//
// # Backends
//
// The store adds 45 bytes to Prefix for its keys; the MySQL and Postgres drivers keep keys
// in VARCHAR(64), so keep Prefix within 19 bytes with them. The MySQL driver keeps values
// in a BLOB (at most 65,535 bytes): with the default MaxRecordBytes, alter the column to
// MEDIUMBLOB (ALTER TABLE t MODIFY v MEDIUMBLOB NOT NULL) or lower the limit.
package fiberstore
