package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	fws "github.com/gofiber/contrib/websocket"

	"github.com/mpsession/mpsession/wsauth"
)

// player is one open socket. A user may have several, in several tabs: each plays its
// own matches, and all of them count in the one session.
//
// A socket is idle, queued (its ticket waits in the queue), offered (a match wants it;
// the client is told once both players accepted), playing, or resuming (a new socket
// after a dropped one, asking its match to take it back). The match itself runs in a
// room, on whichever instance paired the players (room.go); the socket talks to it over
// the bus, and hears from it on its own room, playerRoom(addr).
type player struct {
	l      *lobby
	conn   *wsauth.Conn
	s      *wsauth.Handle // the live session
	bus    bus
	addr   string // the socket's address on the bus, one per socket
	openID string
	bot    bool

	mu          sync.Mutex // guards everything below, and sends on out
	phase       phase
	ticket      string // queued: the ticket waiting in the queue; "" when this socket made the pair
	wantBot     bool
	match       string // offered, playing, resuming
	seat        int
	resumeTimer *time.Timer
	// last is the match this socket last played to a decision, which the player may
	// ask to play again (rematch) while its room waits; rematching: the player asked,
	// and waits (queued, with no ticket) for the new match's offer.
	last       lastMatch
	rematching bool
	// rematchTimer ends an ask whose room did not answer (rematch_wait) within
	// resumeWait: the room had closed already (its opponent left), and no one will.
	rematchTimer *time.Timer
	catchUp      *time.Timer // brings the session's record up to the database's: catchUpLocked
	// Messages go out through one writer goroutine per socket, in the order they were
	// queued, so a room and the socket's handler never block on a slow client; the
	// match's messages are handled there too, in order.
	closed bool // the handler is returning: conn must not be used any more
	out    chan outItem
}

type lastMatch struct {
	match string
	seat  int
}

type phase int

const (
	idle phase = iota
	queued
	offered
	playing
	resuming
)

// outItem is a message for the client, or one from the match to act on.
type outItem struct {
	msg  *serverMsg
	from *playerMsg
}

// outboxSize is how many messages may wait for the Hub before the socket is closed.
const outboxSize = 32

// send queues a message for the client. It never blocks: a socket whose messages pile
// up is closed.
func (p *player) send(m serverMsg) { p.put(outItem{msg: &m}) }

func (p *player) put(it outItem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.putLocked(it)
}

func (p *player) putLocked(it outItem) {
	if p.closed {
		return
	}
	select {
	case p.out <- it:
	default:
		// The client's messages go out through the Hub, which closes a socket whose
		// client stopped reading (wsauth.CloseTooSlow); a full outbox means they cannot
		// be written to the Hub's store fast enough. The client reconnects later.
		_ = p.conn.CloseWith(fws.CloseTryAgainLater, "try again later")
	}
}

// writeLoop writes the client's messages, through the socket's room on the Hub
// (outRoom), which keeps them for the client's recovery: a client whose socket drops
// reconnects with its position there and is given what it missed, on any instance.
func (p *player) writeLoop(done chan<- struct{}) {
	defer close(done)
	failed := false
	for it := range p.out {
		msgs := []serverMsg{}
		if it.msg != nil {
			msgs = append(msgs, *it.msg)
		} else {
			msgs = p.fromMatch(*it.from)
		}
		for _, m := range msgs {
			if failed {
				break // the socket is closing: what is left would take busTimeout each
			}
			if err := publish(p.bus, outRoom(p.addr), m); err != nil {
				failed = true
				// Not kept, so not recoverable: the client reconnects, and the match, if
				// any, tells the new socket its course again.
				p.l.log.Warn("rps: message to the client lost; closing its socket", "openid", p.openID, "type", m.Type, "err", err)
				_ = p.conn.CloseWith(fws.CloseTryAgainLater, "try again later") // the handler's read fails and it cleans up
			}
		}
	}
}

// lobby holds this instance's sockets and the matches it runs, and pairs players
// through the queue: its own (memQueue), or Redis's, shared by every instance.
type lobby struct {
	bus         bus // the socket server's hub
	log         *slog.Logger
	records     *records
	queue       queue
	moveTimeout time.Duration
	grace       time.Duration // how long a dropped player has to come back
	lease       time.Duration // of a ticket in the Redis queue
	isBot       func(openID string) bool
	// summon starts a bot for a player who asked for one and found none waiting; nil
	// when this server has no bots.
	summon   func() error
	instance string // this instance's URL, in its tickets
	// hosted counts the matches this instance ran to a result, a forfeit included, with
	// their bot seats whose sessions got the result and whether the players were on
	// different instances, for the bots' report.
	hosted func(bots int, across bool)

	ctx    context.Context // cancelled by close: the rooms end
	cancel context.CancelFunc

	mu      sync.Mutex
	tickets map[string]*player // this instance's tickets in the queue, whose leases it renews
	closed  bool
	wg      sync.WaitGroup // socket handlers, rooms, the lease renewer
}

// Timing of the match protocol between sockets and rooms. A message on the bus may be
// lost (an instance dies): these bound what waits for an answer.
const (
	// readyWait is how long a match waits for both sockets to accept its offer; the
	// players who did accept are queued again.
	readyWait = 5 * time.Second
	// resumeWait is how long a new socket waits for its match to take it back; then the
	// match is gone (over while the player was away) and the socket goes to the lobby.
	resumeWait = 3 * time.Second
	// ResumeGrace is how long a player whose socket dropped has to come back to the
	// match, on any instance, before it is forfeited.
	ResumeGrace = 15 * time.Second
	// queueLease is how long a ticket stays in the Redis queue without its instance
	// renewing it (every third of it).
	queueLease = 10 * time.Second
)

func newLobby(log *slog.Logger, moveTimeout, grace, lease time.Duration, recs *records, q queue) *lobby {
	ctx, cancel := context.WithCancel(context.Background())
	l := &lobby{
		log:         log,
		records:     recs,
		queue:       q,
		moveTimeout: moveTimeout,
		grace:       grace,
		lease:       lease,
		isBot:       func(string) bool { return false },
		hosted:      func(int, bool) {},
		ctx:         ctx,
		cancel:      cancel,
		tickets:     map[string]*player{},
	}
	if _, ok := q.(*memQueue); !ok {
		l.wg.Add(1)
		go l.renewLeases()
	}
	return l
}

// renewLeases keeps this instance's tickets in the Redis queue until close. A ticket
// that left the queue without an offer reaching its socket within readyWait (the
// offer was lost with an instance, or the lease ran out while this instance stalled)
// is queued again.
func (l *lobby) renewLeases() {
	defer l.wg.Done()
	t := time.NewTicker(l.lease / 3)
	defer t.Stop()
	lost := map[string]time.Time{} // tickets out of the queue, and since when
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		ids := make([]string, 0, len(l.tickets))
		for id := range l.tickets {
			ids = append(ids, id)
		}
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(l.ctx, l.lease/3)
		gone, err := l.queue.renew(ctx, ids)
		cancel()
		if err != nil {
			l.log.Warn("rps: queue leases not renewed", "tickets", len(ids), "err", err)
			continue
		}
		now := time.Now()
		for _, id := range gone {
			if _, ok := lost[id]; !ok {
				lost[id] = now
			}
		}
		for id, since := range lost {
			l.mu.Lock()
			p := l.tickets[id]
			l.mu.Unlock()
			switch {
			case p == nil: // an offer came, or the socket left the queue
				delete(lost, id)
			case now.Sub(since) >= readyWait:
				delete(lost, id)
				p.ticketLost(id)
			}
		}
	}
}

// track records that p holds ticket id in the queue; a nil p forgets the ticket.
func (l *lobby) track(id string, p *player) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p != nil {
		l.tickets[id] = p
	} else {
		delete(l.tickets, id)
	}
}

// ticketLost queues p again when it still waits on ticket id, which left the queue
// without an offer reaching p.
func (p *player) ticketLost(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.phase != queued || p.ticket != id {
		return
	}
	p.l.log.Info("rps: ticket lost; queued again", "openid", p.openID)
	p.l.track(id, nil)
	p.ticket = ""
	p.queueLocked(p.wantBot)
}

// serve runs one socket: the handler given to ws.Upgrade. wsauth has authenticated
// the upgrade, so c.Session() is the player's live session.
func (l *lobby) serve(c *wsauth.Conn) {
	s := c.Session()
	p := &player{l: l, conn: c, s: s, bus: l.bus, addr: newID(), openID: s.OpenID(), bot: l.isBot(s.OpenID()),
		out: make(chan outItem, outboxSize)}
	if !l.join() {
		_ = c.CloseWith(fws.CloseGoingAway, "server shutting down")
		return
	}
	defer l.part()
	unsubscribe, err := p.bus.Subscribe(playerRoom(p.addr), func(data []byte) {
		if m, ok := decodePlayerMsg(data); ok {
			p.put(outItem{from: &m})
		} else {
			l.log.Warn("rps: a malformed message for a socket", "openid", p.openID, "len", len(data))
		}
	})
	if err != nil {
		l.log.Error("rps: socket not subscribed", "openid", p.openID, "err", err)
		_ = c.CloseWith(fws.CloseTryAgainLater, "try again later")
		return
	}
	defer unsubscribe()
	jctx, jcancel := context.WithTimeout(c.Context(), 2*time.Second)
	defer jcancel()
	// A socket that recovered its predecessor's rooms has been given what that one
	// missed of its outRoom: from now on its own is the one written to.
	for _, room := range c.Rooms() {
		if strings.HasPrefix(room, outPrefix) {
			_ = c.Leave(jctx, room)
		}
	}
	if err := c.Join(jctx, outRoom(p.addr)); err != nil {
		l.log.Error("rps: socket not joined to its room", "openid", p.openID, "err", err)
		_ = c.CloseWith(fws.CloseTryAgainLater, "try again later")
		return
	}
	// The socket counts among the players online (GET /api/online) until it closes.
	// A store that cannot say so costs the count, not the game.
	if err := c.Join(jctx, lobbyRoom); err != nil {
		l.log.Warn("rps: socket not counted online", "openid", p.openID, "err", err)
	}
	jcancel()
	written := make(chan struct{})
	go p.writeLoop(written)
	var reason string
	defer func() {
		p.gone(reason)
		p.mu.Lock()
		p.closed = true
		close(p.out)
		if p.catchUp != nil {
			p.catchUp.Stop()
		}
		p.mu.Unlock()
		_ = c.Close() // a write stuck on a client that stopped reading fails now
		<-written
	}()

	p.send(serverMsg{Type: "welcome", OpenID: p.openID, Nickname: s.GetString(fieldNickname), Record: ptr(p.welcomeRecord())})
	p.rejoin()
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			// The client went away, or wsauth closed the socket because the session
			// ended (logout in another tab, expiry): Err says which.
			reason = leaveReason(s.Err())
			return
		}
		var m clientMsg
		if err := json.Unmarshal(data, &m); err != nil {
			p.send(errorMsg("malformed message: " + err.Error()))
			continue
		}
		switch m.Type {
		case "queue":
			p.queue(m.Opponent == "bot")
		case "move":
			choice, err := ParseChoice(m.Choice)
			if err != nil {
				p.send(errorMsg(err.Error()))
				continue
			}
			p.move(choice)
		case "leave":
			p.leave(m.From == "queue")
		case "rematch":
			p.rematch()
		default:
			p.send(errorMsg("unknown message type " + strconv.Quote(m.Type)))
		}
	}
}

// leaveReason names why a socket closed, for the opponent.
func leaveReason(err error) string {
	switch {
	case errors.Is(err, wsauth.ErrLoggedOut):
		return "logged_out"
	case errors.Is(err, wsauth.ErrRevoked):
		return "revoked"
	case errors.Is(err, wsauth.ErrExpired):
		return "expired"
	}
	return "disconnected"
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (l *lobby) join() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.wg.Add(1)
	return true
}

func (l *lobby) part() { l.wg.Done() }

// welcomeRecord is the record a new socket shows: the database's, copied into the
// session should a result have missed it (its store was down when the match ended);
// the session's when the database cannot be read, or when the socket is to resume a
// match: should that have ended meanwhile, resume_failed brings the record, and the
// client compares the two to tell a forfeit.
func (p *player) welcomeRecord() record {
	if p.s.GetString(fieldMatch) != "" {
		return readRecord(p.s.Session)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	st, err := p.l.records.get(ctx, p.openID)
	cancel()
	if err != nil {
		if !errors.Is(err, errNoRecord) {
			p.l.log.Warn("rps: record not read for a new socket", "openid", p.openID, "err", err)
		}
		return readRecord(p.s.Session)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := syncRecord(p.l.log, p, st.record()); !ok {
		p.catchUpLocked()
	}
	return st.record()
}

// requeueState is fieldRequeue's value: the queueing a dropped socket cut short.
type requeueState struct {
	Opponent string `json:"opponent"` // "any" or "bot"
	Until    int64  `json:"until"`    // Unix ms: a socket opened later does not queue
}

// rejoin continues what a dropped socket of the session was doing: a match (the
// session's match field), or waiting in the queue.
func (p *player) rejoin() {
	if id := p.s.GetString(fieldMatch); id != "" {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.phase, p.match = resuming, id
		p.resumeTimer = time.AfterFunc(resumeWait, func() { p.resumeFailed(id) })
		p.tell(roomMsg{Kind: "back", Addr: p.addr, OpenID: p.openID})
		return
	}
	var rq requeueState
	if p.s.Decode(fieldRequeue, &rq) != nil || rq.Opponent == "" {
		return
	}
	if err := p.s.Delete(fieldRequeue); err != nil {
		p.l.log.Warn("rps: session not written", "openid", p.openID, "err", err)
	}
	if time.Now().UnixMilli() < rq.Until {
		p.queue(rq.Opponent == "bot")
	}
}

// resumeFailed sends a resuming socket to the lobby when its match did not answer: it
// ended while the player was away, most likely forfeited when the grace period ran out,
// a loss no socket of this session was there to copy into it. So the session's record
// is brought up to the database's, and resume_failed carries it.
func (p *player) resumeFailed(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.phase != resuming || p.match != id {
		return
	}
	p.phase, p.match = idle, ""
	p.clearMatchField(id)
	msg := serverMsg{Type: "resume_failed", Message: "that match is over"}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	st, err := p.l.records.get(ctx, p.openID)
	cancel()
	switch {
	case err == nil:
		if _, ok := syncRecord(p.l.log, p, st.record()); !ok {
			p.catchUpLocked()
		}
		rec := st.record()
		msg.Record = &rec
	case !errors.Is(err, errNoRecord):
		p.l.log.Warn("rps: record not read after a failed resume", "openid", p.openID, "err", err)
	}
	p.putLocked(outItem{msg: &msg})
}

// tell sends a message to the socket's match. p.mu is held.
func (p *player) tell(m roomMsg) {
	m.Seat = p.seat
	if m.Addr == "" {
		m.Addr = p.addr
	}
	if err := publish(p.bus, matchRoom(p.match), m); err != nil {
		p.l.log.Warn("rps: message to the match lost", "match", p.match, "kind", m.Kind, "err", err)
	}
}

// queue puts p in the queue, or offers a match at once when a partner is waiting.
func (p *player) queue(wantBot bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.phase == offered || p.phase == playing || p.phase == resuming:
		p.putLocked(outItem{msg: ptr(errorMsg("finish or leave your match first"))})
		return
	case wantBot && (p.bot || p.l.summon == nil):
		p.putLocked(outItem{msg: ptr(errorMsg("this server has no bots (they log in through the fake WeChat of development mode)"))})
		return
	}
	p.queueLocked(wantBot)
}

func ptr[T any](v T) *T { return &v }

func (p *player) queueLocked(wantBot bool) {
	p.dropLast() // queueing for anyone declines a rematch
	p.unqueueLocked()
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	t := ticket{ID: newID(), Addr: p.addr, OpenID: p.openID, Nickname: p.s.GetString(fieldNickname), Bot: p.bot, WantBot: wantBot,
		Instance: p.l.instance}
	p.phase, p.wantBot = queued, wantBot
	partner, err := p.l.queue.pair(ctx, t)
	if err != nil {
		p.phase = idle
		p.l.log.Error("rps: not queued", "openid", p.openID, "err", err)
		p.putLocked(outItem{msg: ptr(errorMsg("matchmaking is unavailable, try again"))})
		return
	}
	if partner != nil {
		// The offers follow, to both; this socket stays queued until its own arrives.
		p.l.start(p.bus, *partner, t)
		return
	}
	p.ticket = t.ID
	p.l.track(t.ID, p)
	want := "any"
	if wantBot {
		// No bot is waiting: call one. It logs in and connects like any client, and
		// finds p in the queue.
		if err := p.l.summon(); err != nil {
			p.unqueueLocked()
			p.phase = idle
			p.putLocked(outItem{msg: ptr(errorMsg("no bot is free: " + err.Error()))})
			return
		}
		want = "bot"
	}
	p.putLocked(outItem{msg: &serverMsg{Type: "queued", Opponent: want}})
	p.l.log.Debug("rps: queued", "openid", p.openID, "opponent", want)
}

// unqueueLocked takes p's ticket out of the queue. When a pair call took it already,
// the offer on its way finds p no longer queued and is declined.
func (p *player) unqueueLocked() {
	if p.ticket == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	if _, err := p.l.queue.remove(ctx, p.ticket); err != nil {
		p.l.log.Warn("rps: ticket not removed; its lease ends it", "openid", p.openID, "err", err)
	}
	p.l.track(p.ticket, nil)
	p.ticket = ""
}

// rematch asks p's last opponent for another match, or accepts their ask: the last
// match's room opens the new one once both have asked. Meanwhile p is queued with no
// ticket, as a socket whose pair call found a partner is, and the new match's offer
// finds it so.
func (p *player) rematch() {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.rematching:
		return
	case p.phase != idle || p.last.match == "":
		p.putLocked(outItem{msg: ptr(errorMsg("no match to play again"))})
		return
	}
	p.phase, p.rematching = queued, true
	p.tellLast(roomMsg{Kind: "rematch"})
	p.armRematch(resumeWait, "gone")
}

// armRematch gives up the rematch p asked for after d, telling the client reason and
// the room that the ask is withdrawn: the room did not answer (it had closed), or did
// and then never said how it ended (its instance died). p.mu is held.
func (p *player) armRematch(d time.Duration, reason string) {
	p.rematchAnswered()
	id := p.last.match
	p.rematchTimer = time.AfterFunc(d, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed || !p.rematching || p.last.match != id || p.phase != queued || p.ticket != "" {
			return
		}
		p.tellLast(roomMsg{Kind: "leave", Reason: "declined"})
		p.phase, p.last, p.rematching = idle, lastMatch{}, false
		p.putLocked(outItem{msg: &serverMsg{Type: "rematch_off", Reason: reason}})
	})
}

// rematchAnswered stops the rematch timer: the room has answered. p.mu is held.
func (p *player) rematchAnswered() {
	if p.rematchTimer != nil {
		p.rematchTimer.Stop()
		p.rematchTimer = nil
	}
}

// tellLast sends a message to the room of p's last match. p.mu is held.
func (p *player) tellLast(m roomMsg) {
	m.Seat, m.Addr = p.last.seat, p.addr
	if err := publish(p.bus, matchRoom(p.last.match), m); err != nil {
		p.l.log.Warn("rps: message to the last match lost", "match", p.last.match, "kind", m.Kind, "err", err)
	}
}

// dropLast declines a rematch of p's last match, asked or not, so that the opponent
// waiting for an answer is told at once. p.mu is held.
func (p *player) dropLast() {
	if p.last.match == "" {
		return
	}
	p.tellLast(roomMsg{Kind: "leave", Reason: "declined"})
	if p.rematching && p.phase == queued && p.ticket == "" {
		p.phase = idle
	}
	p.last, p.rematching = lastMatch{}, false
}

// move hands p's choice to p's match.
func (p *player) move(c Choice) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.phase != playing {
		p.putLocked(outItem{msg: ptr(errorMsg("you are not in a match"))})
		return
	}
	p.tell(roomMsg{Kind: "move", Choice: c})
}

// leave takes p out of the queue, or out of its match, which the player forfeits: the
// match answers with match_over (forfeit). Out of the queue, the client is told left.
//
// A match the client has not been told of (offered: matched goes out once both accept)
// is declined, never forfeited. onlyQueue (the client sent "from":"queue") leaves a
// match alone: a client that meant to stop waiting as its match started (matched was on
// its way) plays it, and is told so.
func (p *player) leave(onlyQueue bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.phase {
	case playing, resuming:
		if onlyQueue {
			p.putLocked(outItem{msg: ptr(errorMsg("your match has started"))})
			return
		}
		p.tell(roomMsg{Kind: "leave", Reason: "left"})
		p.clearMatchField(p.match)
		p.phase, p.match = idle, ""
		return
	case queued:
		p.unqueueLocked()
	case offered:
		p.tell(roomMsg{Kind: "leave", Reason: "declined"})
		p.match = ""
	}
	p.dropLast()
	p.phase = idle
	p.putLocked(outItem{msg: &serverMsg{Type: "left"}})
}

// gone is the socket closing: the session ended (the match is lost at once), or the
// connection dropped (the match waits for the player to come back, and a queued
// player is queued again by a new socket within the grace period).
func (p *player) gone(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resumeTimer != nil {
		p.resumeTimer.Stop()
	}
	p.rematchAnswered()
	rematching := p.rematching
	if p.last.match != "" {
		p.tellLast(roomMsg{Kind: "leave", Reason: "gone"})
		p.last, p.rematching = lastMatch{}, false
	}
	switch p.phase {
	case queued, offered:
		if p.phase == offered {
			// The client was not told of the match: to it, it was still queued.
			p.tell(roomMsg{Kind: "leave", Reason: "declined"})
		}
		p.unqueueLocked()
		if reason == "disconnected" && !rematching {
			want := "any"
			if p.wantBot {
				want = "bot"
			}
			rq := requeueState{Opponent: want, Until: time.Now().Add(p.l.grace).UnixMilli()}
			if err := p.s.Set(fieldRequeue, rq); err != nil {
				p.l.log.Warn("rps: session not written", "openid", p.openID, "err", err)
			}
		}
	case playing, resuming:
		if reason == "disconnected" {
			p.tell(roomMsg{Kind: "away"})
		} else {
			p.tell(roomMsg{Kind: "leave", Reason: reason})
		}
	}
	p.phase = idle
}

// fromMatch acts on a message of a match, on the writer goroutine, and returns what
// to write to the client.
func (p *player) fromMatch(m playerMsg) []serverMsg {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	mine := p.match == m.Match && (p.phase == offered || p.phase == playing || p.phase == resuming)
	switch m.Kind {
	case "offer":
		// A rematch's offer is for a socket that asked for it and waits with no ticket;
		// any other, for a socket in the queue.
		if p.phase != queued || m.Rematch != (p.rematching && p.ticket == "") {
			_ = publish(p.bus, matchRoom(m.Match), roomMsg{Kind: "leave", Seat: m.Seat, Addr: p.addr, Reason: "busy"})
			return nil
		}
		p.unqueueLocked()
		p.rematchAnswered()
		p.phase, p.match, p.seat = offered, m.Match, m.Seat
		p.tell(roomMsg{Kind: "ready"})
	case "requeue": // the other player did not accept, or the match could not open
		if p.phase == offered && p.match == m.Match || p.phase == queued && p.ticket == "" {
			p.phase, p.match = idle, ""
			if p.rematching { // a rematch is with that opponent or none
				p.rematching, p.last = false, lastMatch{}
				return []serverMsg{{Type: "rematch_off", Reason: "gone"}}
			}
			p.queueLocked(p.wantBot)
		}
	case "start":
		if !mine {
			return nil
		}
		p.phase = playing
		p.last, p.rematching = lastMatch{}, false
		if err := p.s.Set(fieldMatch, m.Match); err != nil {
			p.l.log.Warn("rps: session not written: no resume", "openid", p.openID, "err", err)
		}
		return []serverMsg{*m.Msg}
	case "resumed":
		if p.phase != resuming || p.match != m.Match {
			return nil
		}
		p.resumeTimer.Stop()
		p.phase, p.seat = playing, m.Seat
		// The match's course so far, which the client skips where it has it, then
		// where it stands now.
		return append(m.Log, *m.Msg)
	case "send":
		if mine && m.Msg != nil {
			return []serverMsg{*m.Msg}
		}
	case "replaced": // the session's newer socket plays this match now
		if mine {
			p.phase, p.match = idle, ""
			return []serverMsg{errorMsg("this match goes on in your newer connection")}
		}
	case "ended": // the opponent left: a win by forfeit when counted, nothing on a shutdown
		if mine {
			p.phase, p.match = idle, ""
			p.clearMatchField(m.Match)
			msg := *m.Msg
			if m.Counted {
				rec := p.recordResult(true, m.DB)
				msg.Record = &rec
			}
			return []serverMsg{msg}
		}
	case "forfeit": // this socket left the match, which it lost
		if p.match == m.Match {
			p.phase, p.match = idle, ""
		}
		msg := *m.Msg
		rec := p.recordResult(m.Counted, m.DB)
		msg.Record = &rec
		return []serverMsg{msg}
	case "rematch_wait", "rematch_offered":
		if p.last.match == m.Match {
			if m.Kind == "rematch_wait" && p.rematching { // the room's answer, in time or not, follows
				p.armRematch(time.Duration(m.Msg.Grace)*time.Second+resumeWait, "timeout")
			}
			return []serverMsg{*m.Msg}
		}
	case "rematch_off":
		if p.last.match == m.Match {
			p.rematchAnswered()
			if p.rematching && p.phase == queued && p.ticket == "" {
				p.phase = idle
			}
			p.last, p.rematching = lastMatch{}, false
			return []serverMsg{*m.Msg}
		}
	case "over":
		if mine && m.Msg != nil {
			p.last = lastMatch{match: m.Match, seat: p.seat}
			p.phase, p.match = idle, ""
			p.clearMatchField(m.Match)
			msg := *m.Msg
			rec := p.recordResult(m.Counted, m.DB)
			msg.Record = &rec
			return []serverMsg{msg}
		}
	}
	return nil
}

// clearMatchField forgets the session's match, unless another socket of the session
// has started another since.
func (p *player) clearMatchField(id string) {
	if p.s.GetString(fieldMatch) != id {
		return
	}
	if err := p.s.Delete(fieldMatch); err != nil {
		p.l.log.Warn("rps: session not written", "openid", p.openID, "err", err)
	}
}

// recordResult copies a match's result into the live session, the copy the page and
// the sockets read, and returns the record: the database's counts, which other
// sessions of the same player, on another device, may have added to since this session
// loaded them. Nothing is counted when the database did not count it. When the
// session cannot be written (its store is down), the socket tries again until it can.
func (p *player) recordResult(counted bool, db *record) record {
	if !counted || db == nil {
		return readRecord(p.s.Session)
	}
	if _, ok := syncRecord(p.l.log, p, *db); !ok {
		p.catchUpLocked()
	}
	return *db
}

// catchUpLocked brings the session's record up to the database's, again and again,
// 1 s, 2 s, 4 s ... 30 s apart, until a write succeeds or the socket closes. p.mu is
// held.
func (p *player) catchUpLocked() {
	if p.catchUp != nil {
		return
	}
	delay := time.Second
	p.catchUp = time.AfterFunc(delay, func() {
		ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		st, err := p.l.records.get(ctx, p.openID)
		cancel()
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			return
		}
		if err == nil {
			if _, ok := syncRecord(p.l.log, p, st.record()); ok {
				p.l.log.Info("rps: the session has its record again", "openid", p.openID)
				p.catchUp = nil
				return
			}
		}
		delay = min(2*delay, 30*time.Second)
		p.catchUp.Reset(delay)
	})
}

// syncRecord brings the session's copy of the player's record up to the database's,
// and returns it, with whether every write it needed succeeded. Counts only grow: a
// copy already ahead (a later match, written while this one was) is left alone.
func syncRecord(log *slog.Logger, p *player, db record) (record, bool) {
	rec := readRecord(p.s.Session)
	ok := true
	for _, f := range []struct {
		field   string
		db, now *int64
	}{{fieldWins, &db.Wins, &rec.Wins}, {fieldLosses, &db.Losses, &rec.Losses}, {fieldDraws, &db.Draws, &rec.Draws}} {
		if *f.db > *f.now {
			if err := p.s.Set(f.field, *f.db); err != nil {
				log.Warn("rps: result not copied to the session", "openid", p.openID, "err", err)
				ok = false
				continue
			}
			*f.now = *f.db
		}
	}
	return rec, ok
}

// close ends the matches this instance runs (their players are told), closes every
// socket with closeSockets and waits for their handlers and the rooms to finish.
// Sockets opened later are turned away.
func (l *lobby) close(closeSockets func()) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	closeSockets()
	l.wg.Wait()
}
