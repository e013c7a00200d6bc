package wsauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	fws "github.com/gofiber/contrib/websocket"

	"github.com/mpsession/mpsession/internal/counting"
	"github.com/mpsession/mpsession/store"
)

// MaxRoomBytes is the longest room name.
const MaxRoomBytes = 128

// ErrRoom is returned for an empty room name, one longer than MaxRoomBytes, or one
// that is not UTF-8.
var ErrRoom = errors.New("wsauth: room name must be 1 to 128 bytes of UTF-8")

// ErrNoRecipient is returned by ToUser and ToSession for an empty openid or session id.
var ErrNoRecipient = errors.New("wsauth: empty openid or session id")

// CloseTooSlow is the close code of a socket whose queue of messages overflowed (see
// Config.QueueSize): its client stopped reading, or reads slower than it is sent to.
// The client may reconnect; it missed messages.
const CloseTooSlow = 4008

// subscriptionQueue is how many messages wait for a slow Hub.Subscribe callback before
// the hub drops further ones (and counts them in HubStats.Dropped).
const subscriptionQueue = 1 << 16

// Hub sends application messages to sockets in every process that shares the store of
// one fibermp.Manager: to every socket of a user (ToUser), of one session (ToSession),
// or of a room (ToRoom) that sockets Join and Leave. Get it from Server.Hub (or
// Conn.Hub on a socket) and keep it: it works from any goroutine until the Server's
// Shutdown.
//
// Messages reach sockets as text frames written by wsauth, at most once (with
// Config.History, a reconnecting client recovers what it missed: see Recovery in the
// package doc), in the order
// each sender (one goroutine sending one message after another) sent them to one user,
// session or room (a message to a user and one to a room may cross). Sending
// never waits for sockets: each socket has a queue (Config.QueueSize), and one that
// overflows is closed with CloseTooSlow. See the package doc for how messages cross
// processes.
//
// A Hub is safe for use by several goroutines.
type Hub struct {
	id        [hubIDLen]byte   // marks this hub's messages, which it delivers itself when sent
	broker    store.Broker     // nil: this process only
	m         *counting.Counts // the middleware's metrics; nil: not counted
	hist      store.History    // nil: Config.History is off
	keep      store.Retention  // Config.History's bounds
	rejoin    func(c *Conn, room string) bool
	maxReplay int // Config.History's MaxReplay

	presence       store.Presence // nil: Config.Presence is off
	presenceEvents bool           // Config.Presence.Events
	quiet          atomic.Bool    // Shutdown began: no leave events for the sockets it closes

	sent, received, delivered, tooSlow, dropped, listenErrors atomic.Uint64

	mu     sync.Mutex
	topics map[string]*hubTopic
	closed bool // guarded by mu: Server.Shutdown ran
}

// hubTopic is a user, session or room that this process holds members of.
type hubTopic struct {
	one  *Conn              // the only socket, the common case for users and sessions
	many map[*Conn]struct{} // the sockets, when more than one
	subs []*subscription

	stop    func()        // ends the store listener; nil while there is none
	pending chan struct{} // closed when the Listen under way returns
	err     error         // why the last Listen failed
}

func (t *hubTopic) empty() bool { return t.one == nil && len(t.many) == 0 && len(t.subs) == 0 }

func (t *hubTopic) addConn(c *Conn) {
	switch {
	case t.one == nil && len(t.many) == 0:
		t.one = c
	case t.one == c:
	default:
		if t.many == nil {
			t.many = map[*Conn]struct{}{}
		}
		if t.one != nil {
			t.many[t.one] = struct{}{}
			t.one = nil
		}
		t.many[c] = struct{}{}
	}
}

func (t *hubTopic) removeConn(c *Conn) {
	if t.one == c {
		t.one = nil
		return
	}
	delete(t.many, c)
	if len(t.many) == 0 {
		t.many = nil
	}
}

// HubStats counts what a hub did since it was made.
type HubStats struct {
	// Sent counts the messages sent through the hub (ToUser, ToSession, ToRoom).
	Sent uint64
	// Received counts the messages the store delivered to this process from other
	// processes, and its own sent back: only those of the users, sessions and rooms
	// this process holds sockets or subscriptions of.
	Received uint64
	// Delivered counts the messages queued to this process's sockets and
	// subscriptions, one per recipient.
	Delivered uint64
	// TooSlow counts the sockets closed with CloseTooSlow.
	TooSlow uint64
	// Dropped counts the messages a Subscribe callback lost because it fell 65,536
	// messages behind.
	Dropped uint64
	// ListenErrors counts the times the store could not subscribe to a user's,
	// session's or room's messages.
	ListenErrors uint64
	// Topics is how many users, sessions and rooms the process listens to now.
	Topics int
}

// Stats returns the hub's counts.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	n := len(h.topics)
	h.mu.Unlock()
	return HubStats{Sent: h.sent.Load(), Received: h.received.Load(), Delivered: h.delivered.Load(),
		TooSlow: h.tooSlow.Load(), Dropped: h.dropped.Load(), ListenErrors: h.listenErrors.Load(), Topics: n}
}

func userTopic(openid string) string  { return "u:" + store.Hash(openid) }
func sessionTopic(hash string) string { return "s:" + hash }
func roomTopic(room string) string    { return "r:" + room }

func checkRoom(room string) error {
	if room == "" || len(room) > MaxRoomBytes || !utf8.ValidString(room) {
		return ErrRoom
	}
	return nil
}

// ToUser sends msg to every socket of the user (openid), in every process.
//
// Without Config.History, the sockets of this process get it before ToUser returns
// (queued, not yet written); with it, every socket gets it from the store, in the
// order of the user's stream. The error, if any, says the store could not take it, and
// is bounded by ctx.
func (h *Hub) ToUser(ctx context.Context, openid string, msg []byte) error {
	if openid == "" {
		return ErrNoRecipient
	}
	return h.send(ctx, userTopic(openid), msg)
}

// ToSession sends msg to every socket of the session whose id is sessionID (what
// fibermp.Session.ID returns), in every process, as ToUser does.
func (h *Hub) ToSession(ctx context.Context, sessionID string, msg []byte) error {
	if sessionID == "" {
		return ErrNoRecipient
	}
	return h.send(ctx, sessionTopic(store.Hash(sessionID)), msg)
}

// ToRoom sends msg to every socket in the room and every Subscribe callback of it, in
// every process, as ToUser does. It returns ErrRoom for a bad room name.
func (h *Hub) ToRoom(ctx context.Context, room string, msg []byte) error {
	if err := checkRoom(room); err != nil {
		return err
	}
	return h.send(ctx, roomTopic(room), msg)
}

func (h *Hub) send(ctx context.Context, topic string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if h.hist != nil {
		return h.publishKept(ctx, topic, msg)
	}
	h.sent.Add(1)
	h.m.Messages(counting.MessageSent, 1)
	frame := encodeFrame(h.id, msg)
	h.deliver(topic, frame[hubIDLen:], nil)
	if h.broker == nil {
		return nil
	}
	if err := h.broker.Publish(ctx, topic, frame); err != nil {
		return fmt.Errorf("wsauth: send: %w", err)
	}
	return nil
}

// hubIDLen is the length of the sending hub's id that starts each message in the store.
const hubIDLen = 8

// encodeFrame returns msg as it travels through the store: the sending hub's id, then
// the message.
func encodeFrame(id [hubIDLen]byte, msg []byte) []byte {
	frame := make([]byte, hubIDLen+len(msg))
	copy(frame, id[:])
	copy(frame[hubIDLen:], msg)
	return frame
}

// decodeFrame reverses encodeFrame. It reports false for a frame too short to hold an
// id: not one a hub sent.
func decodeFrame(frame []byte) (id [hubIDLen]byte, msg []byte, ok bool) {
	if len(frame) < hubIDLen {
		return id, nil, false
	}
	copy(id[:], frame)
	return id, frame[hubIDLen:], true
}

// listener returns the store listener of topic t: it delivers what other processes
// sent, while t is the topic's current entry.
func (h *Hub) listener(topic string, t *hubTopic) func(frame []byte) {
	if h.hist != nil {
		return func(payload []byte) {
			pos, frame, err := store.ParseKept(payload)
			if err != nil {
				return
			}
			if _, msg, ok := decodeFrame(frame); ok {
				h.received.Add(1)
				h.m.Messages(counting.MessageReceived, 1)
				h.deliverKept(topic, store.Kept{Pos: pos, Msg: msg}, t)
			}
		}
	}
	return func(frame []byte) {
		id, msg, ok := decodeFrame(frame)
		if !ok {
			return
		}
		h.received.Add(1)
		h.m.Messages(counting.MessageReceived, 1)
		if id == h.id {
			return // delivered when sent
		}
		h.deliver(topic, msg, t)
	}
}

// deliver queues msg to the members of topic in this process; from a store listener
// (only is its entry), only while that entry is current, so that a listener being
// replaced never delivers twice.
func (h *Hub) deliver(topic string, msg []byte, only *hubTopic) {
	h.deliverEach(topic, msg, only, func(c *Conn) { c.enqueue(msg) })
}

// deliverEach hands msg to the members of topic in this process: each socket through
// toConn, each subscription as it is; from a store listener (only is its entry), only
// while that entry is current.
func (h *Hub) deliverEach(topic string, msg []byte, only *hubTopic, toConn func(c *Conn)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[topic]
	if t == nil || only != nil && t != only {
		return
	}
	n := 0
	if t.one != nil {
		toConn(t.one)
		n++
	}
	for c := range t.many {
		toConn(c)
		n++
	}
	for _, s := range t.subs {
		s.enqueue(msg)
		n++
	}
	h.delivered.Add(uint64(n))
	h.m.Messages(counting.MessageDelivered, n)
}

// join adds the socket c or the subscription s to topic, and waits until the process
// listens to the topic.
func (h *Hub) join(topic string, c *Conn, s *subscription) error {
	h.mu.Lock()
	if h.closed || c != nil && c.hubGone {
		h.mu.Unlock()
		return ErrClosed
	}
	return h.joinLocked(topic, c, s)
}

// joinLocked is join with h.mu held on entry; it releases it.
func (h *Hub) joinLocked(topic string, c *Conn, s *subscription) error {
	t := h.topics[topic]
	if t == nil {
		t = &hubTopic{}
		h.topics[topic] = t
	}
	if c != nil {
		t.addConn(c)
	} else {
		t.subs = append(t.subs, s)
	}
	return h.listen(topic, t)
}

// listen makes sure the store delivers topic's messages to t, and waits until it does.
// h.mu is held on entry and released on return.
func (h *Hub) listen(topic string, t *hubTopic) error {
	for {
		if h.broker == nil || t.stop != nil {
			h.mu.Unlock()
			return nil
		}
		if p := t.pending; p != nil {
			// Another member started the listener: wait for it.
			h.mu.Unlock()
			<-p
			h.mu.Lock()
			if t.stop == nil && t.pending == nil && t.err != nil {
				err := t.err
				h.mu.Unlock()
				return err
			}
			continue
		}
		p := make(chan struct{})
		t.pending = p
		h.mu.Unlock()
		stop, err := h.broker.Listen(topic, h.listener(topic, t))
		h.mu.Lock()
		t.pending = nil
		close(p)
		if err != nil {
			t.err = err
			h.listenErrors.Add(1)
			h.mu.Unlock()
			return fmt.Errorf("wsauth: listen: %w", err)
		}
		if h.topics[topic] != t {
			h.mu.Unlock()
			stop() // every member left meanwhile
			return nil
		}
		t.stop, t.err = stop, nil
		h.mu.Unlock()
		return nil
	}
}

// leave removes the socket c or the subscription s from topic, and stops listening to
// the topic when it was the last member.
func (h *Hub) leave(topic string, c *Conn, s *subscription) {
	h.mu.Lock()
	stop := h.removeLocked(topic, c, s)
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// removeLocked removes a member and returns the topic's listener to stop when it was
// the last; h.mu must be held.
func (h *Hub) removeLocked(topic string, c *Conn, s *subscription) func() {
	t := h.topics[topic]
	if t == nil {
		return nil
	}
	if c != nil {
		t.removeConn(c)
	} else if i := slices.Index(t.subs, s); i >= 0 {
		t.subs = slices.Delete(slices.Clone(t.subs), i, i+1)
	}
	if !t.empty() {
		return nil
	}
	delete(h.topics, topic)
	return t.stop
}

// connTopics are the topics a socket is in from the start: its user's and its
// session's.
func connTopics(c *Conn) []string {
	topics := []string{sessionTopic(c.h.hash)}
	if openid := c.h.st.OpenID(); openid != "" {
		topics = append(topics, userTopic(openid))
	}
	return topics
}

// attachConn puts a new socket in its user's and its session's topics. When the store
// cannot listen to them the socket still gets what this process sends (and
// HubStats.ListenErrors counts it); the next socket of the user or session tries again.
func (h *Hub) attachConn(c *Conn) {
	if h.hist != nil {
		h.attachKept(c, c.h.recover)
		return
	}
	for _, topic := range connTopics(c) {
		_ = h.join(topic, c, nil)
	}
}

// detachConn takes a closing socket out of every topic; it joins none after.
func (h *Hub) detachConn(c *Conn) {
	h.mu.Lock()
	c.hubGone = true
	rooms := c.roomsLocked()
	var stops []func()
	for _, topic := range append(connTopics(c), c.rooms...) {
		if stop := h.removeLocked(topic, c, nil); stop != nil {
			stops = append(stops, stop)
		}
	}
	c.rooms = nil
	h.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	h.left(c, rooms)
}

// Hub returns the hub of the socket's Server (Server.Hub), which works from any
// goroutine until the Server's Shutdown.
func (c *Conn) Hub() *Hub { return c.hub }

// Join puts the socket in room: from when Join returns until Leave returns or the
// socket closes, it receives the messages sent to the room from any process. Joining a
// room twice is the same as once. Join waits until the store delivers the room's
// messages to this process (redisstore: a SUBSCRIBE round trip, the first time the
// process has a member of the room); it returns ErrRoom for a bad name, ErrClosed after
// the socket closed, and the store's error when it cannot listen to the room, in which
// case the socket is not in the room.
func (c *Conn) Join(ctx context.Context, room string) error {
	if err := checkRoom(room); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, topic := c.hub, roomTopic(room)
	h.mu.Lock()
	if c.hubGone {
		h.mu.Unlock()
		return ErrClosed
	}
	// The room and the topic's membership change together, under one lock, so that a
	// Leave from another goroutine finds both or neither.
	joined := !slices.Contains(c.rooms, topic)
	if joined {
		c.rooms = append(c.rooms, topic)
		if c.hist != nil {
			c.hist.waiting[topic] = nil // what arrives before the room's start is read
		}
	}
	if err := h.joinLocked(topic, c, nil); err != nil {
		return h.joinFailed(topic, c, err)
	}
	if joined && h.hist != nil {
		if err := h.joinKept(ctx, c, topic); err != nil {
			// The socket's rooms could not be kept for its recovery: out of the room
			// again, as for a failed listen.
			h.drop(c, topic)
			return fmt.Errorf("wsauth: join: keeping the socket's rooms: %w", err)
		}
	}
	if joined {
		h.entered(ctx, c, room)
	}
	return nil
}

// joinFailed handles a Join whose listener failed with err. Another Join of the room
// may have started a listener meanwhile: when it is live the socket is in the room;
// while one is under way Join waits for it; when none is, the socket leaves the room,
// in the same critical section as that check, and Join returns err.
func (h *Hub) joinFailed(topic string, c *Conn, err error) error {
	for {
		h.mu.Lock()
		t := h.topics[topic]
		if t != nil && t.stop != nil && slices.Contains(c.rooms, topic) {
			h.mu.Unlock()
			return nil
		}
		if t != nil && t.pending != nil {
			p := t.pending
			h.mu.Unlock()
			<-p
			continue
		}
		_, stop := h.dropLocked(c, topic)
		h.mu.Unlock()
		if stop != nil {
			stop()
		}
		return err
	}
}

// Leave takes the socket out of room: no message sent to the room after Leave returns
// reaches it (one sent before may still be on its way). Leaving a room the socket is not
// in does nothing.
func (c *Conn) Leave(ctx context.Context, room string) error {
	if err := checkRoom(room); err != nil {
		return err
	}
	h := c.hub
	if !h.drop(c, roomTopic(room)) {
		return nil
	}
	h.left(c, []string{room})
	if h.hist != nil {
		if err := h.saveRooms(c); err != nil {
			// The socket has left; a recovery may put it back in the room.
			return fmt.Errorf("wsauth: leave: keeping the socket's rooms: %w", err)
		}
	}
	return nil
}

// drop takes the socket out of the room topic, and reports whether it was in it.
func (h *Hub) drop(c *Conn, topic string) bool {
	h.mu.Lock()
	was, stop := h.dropLocked(c, topic)
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
	return was
}

// dropLocked takes the socket out of the room topic, with h.mu held, and returns
// whether it was in it and the topic's listener to stop when it was the last member.
func (h *Hub) dropLocked(c *Conn, topic string) (was bool, stop func()) {
	i := slices.Index(c.rooms, topic)
	if i < 0 {
		return false, nil
	}
	c.rooms = slices.Delete(c.rooms, i, i+1)
	c.forget(topic)
	return true, h.removeLocked(topic, c, nil)
}

// Rooms returns the rooms the socket is in.
func (c *Conn) Rooms() []string {
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	return c.roomsLocked()
}

// subscription is a server-side member of a room.
type subscription struct {
	h      *Hub
	fn     func(msg []byte)
	active atomic.Bool

	mu      sync.Mutex
	queue   [][]byte
	running bool // a goroutine is calling fn
}

// Subscribe makes fn a member of room that is not a socket: a match or a chat bot on
// the server. fn gets every message sent to the room from any process after Subscribe
// returns, in the order each sender sent them, one at a time on a goroutine of the
// subscription (started when a message arrives, gone when fn has caught up). fn must
// not block long: a subscription 65,536 messages behind drops further ones, and
// HubStats.Dropped counts them. Listeners share msg: fn must not change it.
//
// unsubscribe takes fn out of the room: no message sent after it returns reaches fn,
// and of those queued, at most the one being handed to fn when it was called may still
// reach fn after it returns. It is safe to call more than once, and from fn.
func (h *Hub) Subscribe(room string, fn func(msg []byte)) (unsubscribe func(), err error) {
	if err := checkRoom(room); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errors.New("wsauth: subscribe: nil func")
	}
	s := &subscription{h: h, fn: fn}
	s.active.Store(true)
	topic := roomTopic(room)
	var once sync.Once
	unsubscribe = func() {
		once.Do(func() {
			s.active.Store(false)
			h.leave(topic, nil, s)
			s.mu.Lock()
			s.queue = nil
			s.mu.Unlock()
		})
	}
	if err := h.join(topic, nil, s); err != nil {
		unsubscribe()
		return nil, err
	}
	return unsubscribe, nil
}

// enqueue queues msg for fn; h.mu is held, so it must not wait.
func (s *subscription) enqueue(msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.active.Load() {
		return
	}
	if len(s.queue) >= subscriptionQueue {
		s.h.dropped.Add(1)
		return
	}
	s.queue = append(s.queue, msg)
	if !s.running {
		s.running = true
		go s.run()
	}
}

func (s *subscription) run() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || !s.active.Load() {
			s.running = false
			s.queue = nil
			s.mu.Unlock()
			return
		}
		msg := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.mu.Unlock()
		s.fn(msg)
	}
}

// enqueue queues msg for the socket, and starts the goroutine that writes the queue
// when there is none. h.mu is held, so it must not wait: a socket whose queue is full
// is closed with CloseTooSlow on a goroutine of its own.
func (c *Conn) enqueue(msg []byte) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.outDone {
		return
	}
	if len(c.out)-c.replayed >= c.cfg.QueueSize {
		c.outDone, c.out = true, nil
		c.hub.tooSlow.Add(1)
		c.hub.m.TooSlow()
		go c.closeTooSlow()
		return
	}
	c.out = append(c.out, msg)
	if !c.sending {
		c.sending = true
		go c.sendQueued()
	}
}

// sendQueued writes the socket's queue until it is empty, then returns.
func (c *Conn) sendQueued() {
	for {
		c.outMu.Lock()
		if len(c.out) == 0 || c.outDone {
			c.sending = false
			c.out, c.replayed = nil, 0
			c.outMu.Unlock()
			return
		}
		msg := c.out[0]
		c.out[0] = nil
		c.out = c.out[1:]
		if c.replayed > 0 {
			c.replayed--
		}
		c.outMu.Unlock()
		if err := c.WriteMessage(fws.TextMessage, msg); err != nil {
			c.outMu.Lock()
			c.outDone, c.out, c.sending = true, nil, false
			c.outMu.Unlock()
			return
		}
	}
}

// closeTooSlow closes the socket with CloseTooSlow: the handler's read ends (when the
// peer answers, or a second later), and with the handler the connection.
func (c *Conn) closeTooSlow() { _ = c.CloseWith(CloseTooSlow, "too slow") }

// close stops every listener and subscription of the hub, at Server.Shutdown; sends
// after it fail with ErrClosed.
func (h *Hub) close() {
	h.mu.Lock()
	h.closed = true
	var stops []func()
	for topic, t := range h.topics {
		for _, sub := range t.subs {
			sub.active.Store(false)
		}
		if t.stop != nil {
			stops = append(stops, t.stop)
		}
		delete(h.topics, topic)
	}
	h.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}
