package store

import (
	"context"
	"errors"
	"time"
)

// Errors a caller may branch on. Backend failures (a refused connection, a timeout, a
// cancelled context) are returned as they are, wrapped with the store's name, and are never
// one of these.
var (
	// ErrNotFound means the session (or ticket) does not exist: it was never created, it
	// expired, or it was deleted. It is not a backend failure.
	ErrNotFound = errors.New("store: not found")

	// ErrExists is returned by Create when a session with the same id already exists.
	ErrExists = errors.New("store: session already exists")

	// ErrEmptyID is returned for an empty session id, owner or ticket.
	ErrEmptyID = errors.New("store: empty id")

	// ErrTooLarge is returned when a write would make a record larger than the store's
	// limit (DefaultMaxRecordBytes unless the store is configured otherwise). Nothing is
	// written.
	ErrTooLarge = errors.New("store: record too large")

	// ErrReservedField is returned when a field name starts with ReservedPrefix.
	ErrReservedField = errors.New("store: reserved field name")

	// ErrNotInteger is returned by Incr when the field holds something other than a
	// decimal integer.
	ErrNotInteger = errors.New("store: field value is not an integer")
)

// ReservedPrefix starts the names of fields that stores keep for themselves (owner,
// deadline). Callers may not set, delete or increment such fields. Layers above the store
// (fibermp) keep their own fields under their own prefix inside the caller's namespace.
const ReservedPrefix = "\x00"

// DefaultMaxRecordBytes is the record size limit stores use when none is configured.
const DefaultMaxRecordBytes = 64 << 10

// Record is a session as a store holds it.
type Record struct {
	// Fields maps field names to values. Values are opaque to the store except for
	// Incr, which reads and writes decimal integers. Layers above store JSON.
	Fields map[string]string

	// Owner is who the session belongs to (the user's openid); "" if none.
	Owner string

	// Deadline is the absolute expiry set at creation; the session never outlives it.
	// Zero means none.
	Deadline time.Time

	// ExpiresAt is when the session will expire if nothing touches it again:
	// min(last touch + idle timeout, Deadline).
	ExpiresAt time.Time
}

// Change is a set of field writes and deletions applied as one atomic step. A field
// both set and deleted by one Change is deleted.
type Change struct {
	Set    map[string]string
	Delete []string
}

// Empty reports whether the change writes nothing.
func (c Change) Empty() bool { return len(c.Set) == 0 && len(c.Delete) == 0 }

// Store keeps sessions as records of named fields.
//
// Sessions are identified by the id the client holds; implementations key their storage by
// Hash(id), never by the id itself, so a dump of the store holds no usable credential.
//
// A store that cannot keep a guarantee below across processes (fiberstore, over a
// backend without atomic updates) says which in its package doc; in one process every
// store keeps them all.
//
// Every method honours ctx: when it is done before the backend answers, the method
// returns an error that wraps ctx.Err(). The store/storekit package has the checks and
// arithmetic every implementation shares, and store/storetest checks one against this
// contract. All methods are safe for concurrent use. A
// non-positive idle timeout or ticket TTL is an error. Methods called after Close return
// errors; Close may be called more than once.
type Store interface {
	// Create stores a new session with the given fields, owned by owner (may be ""),
	// expiring at min(now+idle, deadline). idle must be positive; a zero deadline means
	// none. If a live session with the same id exists, Create returns ErrExists and
	// changes nothing. The session is added to its owner's index.
	Create(ctx context.Context, id string, rec Record, idle time.Duration) error

	// Load returns the session's record. If the session does not exist or has expired,
	// Load returns ErrNotFound and a nil error is never paired with a missing record.
	//
	// When touch is positive, Load also extends the session's expiry to
	// min(now+touch, Deadline) in the same round trip, as a read does not otherwise
	// keep a session alive. Record.ExpiresAt reflects the extension. A store whose
	// writes are costly may skip an extension smaller than a fraction of touch that it
	// documents (fiberstore: a quarter).
	Load(ctx context.Context, id string, touch time.Duration) (*Record, error)

	// Save applies ch to an existing session atomically: either every field is written
	// and deleted, or none is. Fields not named in ch are left as they are, so
	// concurrent Saves of different fields never overwrite each other. When idle is
	// positive the expiry is extended to min(now+idle, Deadline).
	//
	// Save never creates a session: if it does not exist (it expired or was deleted
	// meanwhile) Save returns ErrNotFound and writes nothing. A change that would make
	// the record larger than the limit returns ErrTooLarge and writes nothing.
	// Subscribers receive an EventChanged naming the fields.
	Save(ctx context.Context, id string, ch Change, idle time.Duration) error

	// Incr adds delta to the integer in field and returns the new value, atomically
	// with respect to every other writer. A missing field counts as 0. It returns
	// ErrNotFound if the session does not exist, ErrNotInteger if the field holds
	// anything but a decimal integer or the result would overflow int64, and
	// ErrTooLarge if a new field would take the record past the limit. It does not
	// change the expiry. Subscribers receive an EventChanged naming the field.
	Incr(ctx context.Context, id, field string, delta int64) (int64, error)

	// Touch extends the session's expiry to min(now+idle, Deadline) without reading
	// or writing fields. It returns ErrNotFound if the session does not exist.
	Touch(ctx context.Context, id string, idle time.Duration) error

	// Delete removes the session. Deleting a session that does not exist is not an
	// error and sends no event. Subscribers receive an EventDeleted when a live session
	// was removed.
	Delete(ctx context.Context, id string) error

	// Sessions returns the hashes (see Hash) of the owner's live sessions, in no
	// particular order. It returns an empty slice, not an error, for an unknown owner.
	Sessions(ctx context.Context, owner string) ([]string, error)

	// DeleteOwner removes every session of the owner except those whose ids are
	// listed in keep, and returns how many it removed. Subscribers receive an
	// EventRevoked for each.
	DeleteOwner(ctx context.Context, owner string, keep ...string) (int, error)

	// PutTicket stores a single-use ticket holding value for ttl.
	PutTicket(ctx context.Context, ticket string, value string, ttl time.Duration) error

	// TakeTicket returns the ticket's value and removes it in one atomic step, so of
	// any number of concurrent callers, in any process, at most one gets the value.
	// The others, and callers after expiry, get ErrNotFound.
	TakeTicket(ctx context.Context, ticket string) (string, error)

	// TouchMany does what Touch does for each id and returns one error per id, nil
	// where the touch succeeded. A store extends many sessions at once for less than a
	// Touch each where it can (redisstore: one pipelined round trip per node); others
	// call storekit.TouchEach.
	TouchMany(ctx context.Context, ids []string, idle time.Duration) []error

	// Capabilities declares what the store offers beyond sessions and tickets: its
	// events, its messages between processes, and whether it lives in this process. It
	// returns the same value for the store's life. Callers read what a store can do
	// here, never by type assertion.
	Capabilities() Capabilities

	// Close releases the store's background work and subscriptions. It does not close
	// a client the caller passed in.
	Close() error
}

// EventKind says what happened to a session.
type EventKind uint8

const (
	// EventChanged: fields were set, deleted or incremented.
	EventChanged EventKind = iota + 1
	// EventDeleted: the session was deleted (logout, Destroy).
	EventDeleted
	// EventRevoked: the session was removed by DeleteOwner (logout everywhere, or a
	// newer login under the single-session option).
	EventRevoked
	// EventExpired: the store found the session expired. Stores that cannot observe
	// expiry do not send it; live handles also keep their own timer.
	EventExpired
	// EventResync: events may have been lost (the subscription reconnected, or the
	// store's queue overflowed), so subscribers should check again whatever they cache.
	// Its Hash is empty.
	EventResync
	// EventFence: a marker published through Fencer.Fence, which says nothing about
	// any session. Its Origin is the fence's token and its Hash is empty. Only the
	// fence's sender acts on it; every other subscriber ignores it, as it must ignore
	// any kind it does not know (a kind added later is never a change, a resync or an
	// error).
	EventFence
)

func (k EventKind) String() string {
	switch k {
	case EventChanged:
		return "changed"
	case EventDeleted:
		return "deleted"
	case EventRevoked:
		return "revoked"
	case EventExpired:
		return "expired"
	case EventResync:
		return "resync"
	case EventFence:
		return "fence"
	}
	return "unknown"
}

// Event tells subscribers about a change to one session. It names the session by its
// hash, never by its id. Subscribers share one Event: they must not change it.
type Event struct {
	Kind   EventKind
	Hash   string   // Hash(id) of the session
	Fields []string // the fields changed, for EventChanged

	// At is when the change was made, by the clock of the process that made it, or
	// zero when the store does not say (expiries, resyncs). Subscribers use it to see
	// how late events arrive.
	At time.Time

	// Origin is the origin of the view the write was made through (Events.From), or ""
	// for a write made through the store itself. A cache that applied its own write
	// already skips the event the write sends back.
	Origin string
}

// Capabilities is what a store declares it offers beyond sessions and tickets (see
// Store.Capabilities). The zero value offers nothing: no events, no messages.
type Capabilities struct {
	// InProcess is true for a store that keeps its records in this process and whose
	// calls never wait on I/O (the memory store): callers bound none of its calls with
	// a timeout, and put no cache in front of it.
	InProcess bool

	// Events are the store's session events, or nil for a store that sends none.
	// Live WebSocket handles (wsauth) and the session cache follow them.
	Events Events

	// Broker carries application messages between the processes that share the store,
	// or is nil for a store that carries none. wsauth's Hub sends through it.
	Broker Broker

	// History keeps the recent messages of the Broker's topics, or is nil for a store
	// that keeps none. wsauth's Hub uses it when its Config.History is set.
	History History

	// Presence keeps who is in each room, across the processes sharing the store, or
	// is nil for a store that keeps none. wsauth's Hub uses it when its
	// Config.Presence is set.
	Presence Presence
}

// Events is a store's feed of session events.
type Events interface {
	// Subscribe registers fn to receive events about every session in the store, from
	// every process that shares it when the backend can carry them across processes.
	// The subscription is live when Subscribe returns: every write that starts after it
	// is delivered. Each successful write sends one event (a Save of an empty Change
	// sends none), and events about one session arrive in the order of the writes. fn
	// is called from one goroutine per store and must not block. The returned function
	// unregisters fn; it is safe to call more than once, and a call of fn already in
	// flight may still finish after it returns.
	Subscribe(fn func(Event)) (unsubscribe func(), err error)

	// Shared reports whether the events of the writes of every process sharing the
	// store reach the subscribers of every process (redisstore), or those of one
	// process only (fiberstore). A store used by one process only (memory) reports
	// true. Only shared events can keep a cache of sessions exact.
	Shared() bool

	// EventsLive reports whether every event sent since the last EventResync is known
	// to be delivered or on its way: the subscription is connected and answered a
	// health check within the store's bound (redisstore: 1 second). When it turns
	// true again after being false, subscribers have received an EventResync first.
	// Before the first Subscribe, and always for a store whose events are not Shared,
	// it reports false. A session cache serves from memory only while it is true.
	EventsLive() bool

	// From returns a view of the store whose writes send events with Event.Origin set
	// to origin, so that their writer can tell them from the others' (a cache applies
	// its own writes when they return). origin is 1 to 64 bytes of printable ASCII;
	// From panics on another. The view shares everything else with the store, and
	// closing it closes nothing.
	From(origin string) Store
}

// Fencer is implemented by the Events of a store that can publish a marker, a fence,
// in the order of its events (redisstore on one Redis, not on a Cluster, whose nodes
// relay events in no common order). The session cache uses fences to bound how late it
// may learn of a write (fibermp's CacheConfig.MaxLag); most applications will not need
// it.
type Fencer interface {
	// Fence publishes an EventFence whose Origin is token to the subscribers of every
	// process sharing the store, and returns once the store has taken it. A subscriber
	// receives the fence after the event of every write that was acknowledged, in any
	// process, before Fence was called: so once a subscriber has received a fence that
	// it sent at time S, it has received every such event of the writes acknowledged
	// before S. token is 1 to 64 bytes for which ValidOrigin is true; Fence returns an
	// error for another.
	Fence(ctx context.Context, token string) error
}

// Watcher is implemented by the Events of a store that can route each session's events
// only to the processes that asked for them (redisstore: a channel per session). A
// fleet's process that holds few of the fleet's sessions then receives the events of
// those, not every event of the store: the session cache watches the sessions it
// holds, wsauth the sessions of its open sockets. A store without it delivers every
// event to every Subscribe; most applications will not need it.
type Watcher interface {
	// SubscribeWatched is Subscribe for the events of the sessions that a Watch of this
	// process holds: fn receives those, every EventResync and every EventFence, and no
	// event of another session. Subscribe's subscribers still receive every event.
	SubscribeWatched(fn func(Event)) (unsubscribe func(), err error)

	// Watch asks for the events of the session whose hash (Hash) is given, until
	// unwatch is called; watches of one session share one subscription. When Watch
	// returns, the subscription is live: the event of every write that starts after
	// since is delivered, as long as EventsLive stays true (after a resync, every
	// watch held is live again). It returns an error when the store cannot confirm the
	// subscription within ctx's deadline or its own bound; unwatch may be called more
	// than once.
	Watch(ctx context.Context, hash string) (unwatch func(), since time.Time, err error)
}

// ValidOrigin reports whether origin can be given to Events.From and carried in events.
func ValidOrigin(origin string) bool {
	if origin == "" || len(origin) > 64 {
		return false
	}
	for i := 0; i < len(origin); i++ {
		if origin[i] < 0x21 || origin[i] > 0x7e {
			return false
		}
	}
	return true
}

// Messages between processes.

// MaxTopicBytes is the longest topic a Broker takes.
const MaxTopicBytes = 256

// ErrTopic is returned by Publish and Listen for an empty topic or one longer than
// MaxTopicBytes.
var ErrTopic = errors.New("store: topic must be 1 to 256 bytes")

// Broker is implemented by stores that carry application messages between the processes
// that share them: redisstore over Redis pub/sub (one channel per topic, sharded pub/sub
// on a Cluster), memstore within its process. fiberstore declares none. wsauth's
// Hub sends messages to sockets through it; most applications will not need it.
//
// Delivery is at most once: a message reaches the listeners of its topic that were live
// when it was published, in every process, and nothing is kept for later. A listener
// misses what is published while its process is disconnected from the backend (a Redis
// reconnect) and never sees messages published before its Listen returned. Messages
// published one after another by one caller on one topic reach every listener in that
// order; messages from different callers may interleave.
type Broker interface {
	// Publish sends msg to the listeners of topic in every process sharing the store,
	// and returns once the backend has taken it, without waiting for delivery. A topic
	// nobody listens to costs one backend call and delivers nothing. Publish keeps no
	// reference to msg.
	Publish(ctx context.Context, topic string, msg []byte) error

	// Listen calls fn with every message published on topic after Listen returns,
	// until stop is called: Listen waits for the backend to confirm the subscription
	// (redisstore: at most its Config.SubscribeTimeout), and returns an error when it cannot. A store
	// holds one backend subscription per topic, however many listeners it has, and
	// drops it with the last one.
	//
	// fn is called from the store's delivery goroutine (or, for memstore, the
	// publisher's) and must not block: hand the message on. Listeners share msg and
	// must not change it. stop is safe to call more than once and from fn; no call of
	// fn starts after it returns.
	Listen(topic string, fn func(msg []byte)) (stop func(), err error)
}
