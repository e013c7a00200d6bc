package wsauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mpsession/mpsession/internal/counting"
	"github.com/mpsession/mpsession/store"
)

// HistoryConfig turns on the Hub's history (Config.History): the messages sent to each
// user, session and room are kept in the store for a while, and a client that
// reconnects with its positions receives those it missed. See "Recovery" in the
// package doc.
type HistoryConfig struct {
	// Window is how long the messages sent to a user, session or room are kept: a
	// client that reconnects within it recovers what it missed.
	//
	// Optional. Default: 2 * time.Minute
	Window time.Duration

	// Size is how many messages are kept per user, session and room.
	//
	// Optional. Default: 300
	Size int

	// MaxReplay is the most messages a recovering socket is given across all its
	// streams (each holds at most Size). When it missed more, it is given none: its
	// welcome says recovered: false, and the client resyncs, which is then the cheaper
	// way back.
	//
	// Optional. Default: 1000
	MaxReplay int

	// Rejoin approves each room a recovering socket is put back in (the rooms its
	// predecessor was in, kept by the store for a day): a user removed from a room
	// while offline should not come back to it. It runs before the socket's handler,
	// with the socket's live session. nil: every room is restored.
	//
	// Optional. Default: nil
	Rejoin func(c *Conn, room string) bool
}

// CloseMissed is the close code of a socket that missed messages while it stayed
// open (the store's subscription was cut, or the store lost its history): the client
// reconnects with its positions, and recovers them or is told it cannot.
const CloseMissed = 4009

// RecoverHeader is the upgrade request header in which a reconnecting client sends its
// recovery state: the JSON {"id": ..., "pos": {...}} that package doc's "Recovery"
// describes. A browser, which cannot set headers on a WebSocket, offers it as a
// subprotocol instead: "recover." followed by the same JSON in unpadded base64url.
const RecoverHeader = "X-Hub-Recover"

const recoverProtocolPrefix = "recover."

// MaxRecoverBytes is the longest recovery state a client may send. In a subprotocol
// it grows by a third (base64), and the whole upgrade request must fit fasthttp's
// read buffer (fiber.Config.ReadBufferSize, 4096 bytes by default).
const MaxRecoverBytes = 2 << 10

// ErrNotJSON is returned by ToUser, ToSession and ToRoom with Config.History set for
// a message that is not a JSON value: messages then travel in a JSON envelope.
var ErrNotJSON = errors.New("wsauth: with Config.History, a message must be a JSON value")

// ErrRecover is returned by ParseRecover for a malformed recovery state.
var ErrRecover = errors.New("wsauth: malformed recovery state")

// roomsLife is how long the rooms of a socket are kept for its recovery after they
// last changed.
const roomsLife = 24 * time.Hour

// Recover is the recovery state of a reconnecting client: the id of the socket it had
// (from the welcome message) and its last position in each of the socket's streams, by
// the names the envelopes carry ("user", "session", "room:<name>").
type Recover struct {
	ID  string                    `json:"id"`
	Pos map[string]store.Position `json:"-"`
}

// ParseRecover reads a recovery state: {"id":"...","pos":{"user":"e.5",...}}. It
// returns ErrRecover for anything else, or for more than MaxRecoverBytes.
func ParseRecover(b []byte) (*Recover, error) {
	if len(b) > MaxRecoverBytes {
		return nil, ErrRecover
	}
	var raw struct {
		ID  string            `json:"id"`
		Pos map[string]string `json:"pos"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || !validConnID(raw.ID) {
		return nil, ErrRecover
	}
	r := &Recover{ID: raw.ID, Pos: make(map[string]store.Position, len(raw.Pos))}
	for name, p := range raw.Pos {
		pos, err := store.ParsePosition(p)
		if err != nil || !validStreamName(name) {
			return nil, ErrRecover
		}
		if !pos.IsZero() { // "": the stream was empty when the client learned of it
			r.Pos[name] = pos
		}
	}
	return r, nil
}

func validConnID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func validStreamName(name string) bool {
	if name == "user" || name == "session" {
		return true
	}
	room, ok := strings.CutPrefix(name, "room:")
	return ok && checkRoom(room) == nil
}

// recoverFrom reads the recovery state of an upgrade request from its header or its
// subprotocols; nil when it sends none or a malformed one (the socket then starts
// afresh, and its welcome says recovered: false).
func recoverFrom(header, protocols string) *Recover {
	var b []byte
	if header != "" {
		b = []byte(header)
	} else {
		for _, p := range strings.Split(protocols, ",") {
			if enc, ok := strings.CutPrefix(strings.TrimSpace(p), recoverProtocolPrefix); ok {
				b, _ = base64.RawURLEncoding.DecodeString(enc)
				break
			}
		}
	}
	if b == nil {
		return nil
	}
	r, _ := ParseRecover(b)
	return r
}

// streamName is the name a client knows a topic of its socket by.
func streamName(topic string) string {
	switch {
	case strings.HasPrefix(topic, "u:"):
		return "user"
	case strings.HasPrefix(topic, "s:"):
		return "session"
	default:
		return "room:" + strings.TrimPrefix(topic, "r:")
	}
}

// connHistory is a socket's place in each of its streams, with Config.History. It is
// guarded by the hub's mu.
type connHistory struct {
	id      string
	pos     map[string]store.Position // by topic: the last message written, or where the socket started
	waiting map[string][]store.Kept   // by topic: what arrived while the topic's start was read
	broken  bool                      // a message was missed: the socket is closing with CloseMissed

	snapMu sync.Mutex // held while the socket's rooms are written, so the last write wins
}

func newConnID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// envelope is a Hub message as a socket with Config.History receives it.
func envelope(topic string, pos store.Position, msg []byte) []byte {
	name, _ := json.Marshal(streamName(topic))
	b := make([]byte, 0, len(name)+len(msg)+64)
	b = append(b, `{"topic":`...)
	b = append(b, name...)
	b = append(b, `,"pos":"`...)
	b = append(b, pos.String()...)
	if msg == nil {
		return append(b, `"}`...)
	}
	b = append(b, `","msg":`...)
	b = append(b, msg...)
	return append(b, '}')
}

// welcome is the first message of a socket with Config.History.
func welcome(id string, recovered bool, pos map[string]store.Position) []byte {
	p := make(map[string]string, len(pos))
	for topic, at := range pos {
		if !at.IsZero() {
			p[streamName(topic)] = at.String()
		}
	}
	b, _ := json.Marshal(map[string]any{"recovery": map[string]any{"id": id, "recovered": recovered, "pos": p}})
	return b
}

// keptArrived hands a kept message to the socket: held while the topic's start is
// read, else written when it is the next of its stream. h.mu is held.
func (c *Conn) keptArrived(topic string, k store.Kept) {
	hs := c.hist
	if w, ok := hs.waiting[topic]; ok {
		hs.waiting[topic] = append(w, k)
		return
	}
	c.sendKept(topic, k, false)
}

// sendKept writes k to the socket when it is the next message of its stream, skips it
// when the socket had it, and closes the socket with CloseMissed when messages are
// missing before it. h.mu is held.
func (c *Conn) sendKept(topic string, k store.Kept, replay bool) {
	hs := c.hist
	if hs.broken {
		return
	}
	last, tracked := hs.pos[topic]
	switch {
	case tracked && last.Epoch == k.Pos.Epoch && k.Pos.Offset <= last.Offset:
		return // written already
	case !tracked, last.IsZero(), last.Epoch == k.Pos.Epoch && k.Pos.Offset == last.Offset+1:
		// Untracked or zero: where the stream stood could not be read (the client was
		// told recovered: false), so the socket starts at this message.
		hs.pos[topic] = k.Pos
		if replay {
			c.enqueueReplay(envelope(topic, k.Pos, k.Msg))
		} else {
			c.enqueue(envelope(topic, k.Pos, k.Msg))
		}
	default:
		hs.broken = true
		go func() { _ = c.CloseWith(CloseMissed, "missed messages: reconnect to recover them") }()
	}
}

// startKept sets where the socket starts in topic's stream, writes what it missed
// (replay, from start on), then what arrived meanwhile. h.mu is held.
func (c *Conn) startKept(topic string, start store.Position, replay []store.Kept) {
	hs := c.hist
	hs.pos[topic] = start
	for _, k := range replay {
		c.sendKept(topic, k, true)
	}
	waiting := hs.waiting[topic]
	delete(hs.waiting, topic)
	for _, k := range waiting {
		c.sendKept(topic, k, true)
	}
}

// enqueueReplay queues msg without the queue's limit: what a socket missed may be more
// than Config.QueueSize, and is bounded by the history's size.
func (c *Conn) enqueueReplay(msg []byte) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.outDone {
		return
	}
	c.out = append(c.out, msg)
	c.replayed++
	if !c.sending {
		c.sending = true
		go c.sendQueued()
	}
}

// since reads what topic's stream holds after after: every message, however many
// calls that takes.
func (h *Hub) since(ctx context.Context, topic string, after store.Position) ([]store.Kept, store.Position, bool, error) {
	var all []store.Kept
	for {
		msgs, last, complete, err := h.hist.Since(ctx, topic, after, h.keep.Size)
		if err != nil || !complete {
			return nil, last, false, err
		}
		for _, k := range msgs {
			if _, msg, ok := decodeFrame(k.Msg); ok {
				all = append(all, store.Kept{Pos: k.Pos, Msg: msg})
			}
		}
		if len(msgs) < h.keep.Size {
			return all, last, true, nil
		}
		after = msgs[len(msgs)-1].Pos
	}
}

// attachKept puts a new socket in its user's and session's streams, and with a
// recovery state, back in the rooms of the socket it replaces, and writes first the
// welcome, then what the socket missed, then the live messages.
func (h *Hub) attachKept(c *Conn, req *Recover) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs := &connHistory{id: c.id, pos: map[string]store.Position{}, waiting: map[string][]store.Kept{}}
	topics := connTopics(c)
	recovered := req != nil
	var rooms []string
	if req != nil {
		var ok bool
		rooms, ok = h.loadRooms(ctx, req.ID, c.h.hash)
		recovered = recovered && ok
		if h.rejoin != nil {
			rooms = slices.DeleteFunc(rooms, func(room string) bool { return !h.rejoin(c, room) })
		}
	}
	h.mu.Lock()
	c.hist = hs
	for _, topic := range topics {
		hs.waiting[topic] = nil
	}
	for _, room := range rooms {
		topic := roomTopic(room)
		hs.waiting[topic] = nil
		c.rooms = append(c.rooms, topic)
		topics = append(topics, topic)
	}
	h.mu.Unlock()

	deaf := false
	for _, topic := range topics {
		if err := h.join(topic, c, nil); err != nil {
			deaf = true // with History every message comes from the store's channel
		}
	}
	if deaf {
		// The socket would miss its messages without a word: it reconnects instead.
		go func() { _ = c.CloseWith(CloseMissed, "cannot listen to the store: reconnect") }()
		return
	}
	start := make(map[string]store.Position, len(topics))
	last := make(map[string]store.Position, len(topics))
	replay := make(map[string][]store.Kept, len(topics))
	missed := 0
	for _, topic := range topics {
		var after store.Position
		if req != nil {
			after = req.Pos[streamName(topic)]
		}
		msgs, at, complete, err := h.since(ctx, topic, after)
		switch {
		case err != nil:
			recovered = false // no position to give: start from the next message that arrives
		case after.IsZero() || !complete:
			recovered = false
			start[topic] = at
		default:
			start[topic], last[topic] = after, at
			replay[topic] = msgs
			missed += len(msgs)
		}
	}
	if missed > h.maxReplay {
		recovered = false // the client resyncs instead: each stream starts where it stands
		maps.Copy(start, last)
		clear(replay)
	}

	h.mu.Lock()
	c.enqueueReplay(welcome(hs.id, recovered, start))
	for _, topic := range topics {
		c.startKept(topic, start[topic], replay[topic]) // the zero position when unknown
	}
	h.mu.Unlock()
	if len(rooms) > 0 {
		_ = h.saveRooms(c) // the next Join or Leave writes them again
	}
	for _, room := range rooms {
		h.entered(ctx, c, room)
	}
}

// joinKept finishes a Join with Config.History: it reads where the room's stream
// stands, tells the socket (an envelope with the position and no message), and keeps
// the socket's rooms for its recovery.
func (h *Hub) joinKept(ctx context.Context, c *Conn, topic string) error {
	_, last, _, err := h.hist.Since(ctx, topic, store.Position{}, 1)
	h.mu.Lock()
	// Only while this Join's messages are still held: a Leave and another Join
	// meanwhile start the room again themselves.
	if _, held := c.hist.waiting[topic]; held && slices.Contains(c.rooms, topic) && !c.hubGone {
		if err == nil {
			c.enqueue(envelope(topic, last, nil))
		}
		c.startKept(topic, last, nil)
	}
	h.mu.Unlock()
	if err := h.saveRooms(c); err != nil {
		return err
	}
	return nil
}

// roomsRecord is what the store keeps of a socket's rooms for its recovery.
type roomsRecord struct {
	Session string   `json:"s"` // the session's hash: another session cannot take the rooms
	Rooms   []string `json:"r"`
}

func roomsTopic(id string) string { return "c:" + id }

// saveRooms keeps the socket's rooms in the store, as its recovery will read them.
func (h *Hub) saveRooms(c *Conn) error {
	hs := c.hist
	hs.snapMu.Lock()
	defer hs.snapMu.Unlock()
	h.mu.Lock()
	rec := roomsRecord{Session: c.h.hash, Rooms: c.roomsLocked()}
	h.mu.Unlock()
	b, _ := json.Marshal(rec)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := h.hist.PublishKept(ctx, roomsTopic(hs.id), b, store.Retention{Size: 1, Age: roomsLife})
	return err
}

// loadRooms returns the rooms kept for the socket id of the session hash; ok is false
// when they cannot be read or belong to another session.
func (h *Hub) loadRooms(ctx context.Context, id, hash string) (rooms []string, ok bool) {
	topic := roomsTopic(id)
	// A position of no epoch reads where the record stands without creating one (the
	// zero position would): a client cannot make the store keep keys for made-up ids.
	_, last, _, err := h.hist.Since(ctx, topic, store.Position{Epoch: "none", Offset: 0}, 1)
	if err != nil {
		return nil, false
	}
	if last.Offset == 0 {
		return nil, true // no record: the socket joined no room (or the record, and the streams, are gone)
	}
	msgs, _, complete, err := h.hist.Since(ctx, topic, store.Position{Epoch: last.Epoch, Offset: last.Offset - 1}, 1)
	if err != nil || !complete || len(msgs) != 1 {
		return nil, false
	}
	var rec roomsRecord
	if json.Unmarshal(msgs[0].Msg, &rec) != nil || rec.Session != hash {
		return nil, false
	}
	for _, room := range rec.Rooms {
		if checkRoom(room) != nil {
			return nil, false
		}
	}
	return rec.Rooms, true
}

// roomsLocked is Rooms with the hub's mu held.
func (c *Conn) roomsLocked() []string {
	rooms := make([]string, len(c.rooms))
	for i, topic := range c.rooms {
		rooms[i] = topic[len("r:"):]
	}
	return rooms
}

func (c HistoryConfig) retention() store.Retention {
	return store.Retention{Size: c.Size, Age: c.Window}
}

func historyDefault(c *HistoryConfig) (*HistoryConfig, error) {
	if c == nil {
		return nil, nil
	}
	out := *c
	if out.Window < 0 || out.Size < 0 || out.MaxReplay < 0 {
		return nil, fmt.Errorf("wsauth: Config.History: window %v, size %d and max replay %d must not be negative", out.Window, out.Size, out.MaxReplay)
	}
	if out.MaxReplay == 0 {
		out.MaxReplay = 1000
	}
	if out.Window == 0 {
		out.Window = 2 * time.Minute
	}
	if out.Size == 0 {
		out.Size = 300
	}
	return &out, nil
}

// deliverKept hands a kept message to the members of topic in this process, as deliver
// does: sockets get it in their stream's order, subscriptions as it is.
func (h *Hub) deliverKept(topic string, k store.Kept, only *hubTopic) {
	h.deliverEach(topic, k.Msg, only, func(c *Conn) { c.keptArrived(topic, k) })
}

// publishKept is send with Config.History: the store keeps the message and publishes it
// with its position, and every member, this process's too, gets it from the store, so
// that each socket receives its streams in order.
func (h *Hub) publishKept(ctx context.Context, topic string, msg []byte) error {
	if !json.Valid(msg) {
		return ErrNotJSON
	}
	h.sent.Add(1)
	h.m.Messages(counting.MessageSent, 1)
	if _, err := h.hist.PublishKept(ctx, topic, encodeFrame(h.id, msg), h.keep); err != nil {
		return fmt.Errorf("wsauth: send: %w", err)
	}
	return nil
}

// forget drops the socket's place in topic's stream, when it leaves a room. The hub's
// mu is held.
func (c *Conn) forget(topic string) {
	if c.hist != nil {
		delete(c.hist.pos, topic)
		delete(c.hist.waiting, topic)
	}
}
