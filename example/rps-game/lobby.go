package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	fws "github.com/gofiber/contrib/websocket"

	"github.com/mpsession/mpsession/wsauth"
)

// player is one open socket. A user may have several, in several tabs: each plays its
// own matches, and all of them count in the one session.
type player struct {
	conn   *wsauth.Conn
	s      *wsauth.Handle // the live session
	openID string
	bot    bool

	// Guarded by lobby.mu.
	room    *room
	queued  bool
	wantBot bool

	// Messages go out through one writer goroutine per socket, in the order they were
	// queued, so the room and the socket's handler never block on a slow client.
	mu     sync.Mutex // guards closed and sends on out
	closed bool       // the handler is returning: conn must not be used any more
	out    chan serverMsg
}

// outboxSize is how many messages a client may fall behind by before it is dropped.
const outboxSize = 32

// send queues a message for the client. It never blocks: a client that stopped
// reading is disconnected.
func (p *player) send(m serverMsg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	select {
	case p.out <- m:
	default:
		_ = p.conn.Close()
	}
}

// close closes the socket with a close code, unless its handler has finished with it.
func (p *player) close(code int, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		_ = p.conn.CloseWith(code, reason)
	}
}

func (p *player) writeLoop(done chan<- struct{}) {
	defer close(done)
	for m := range p.out {
		if err := p.conn.WriteJSON(m); err != nil {
			_ = p.conn.Close() // the handler's read fails and it cleans up
		}
	}
}

// lobby pairs players into rooms. It lives in one process: with several instances
// behind a load balancer, players are matched with those on the same instance, while
// their sessions are shared through Redis and their records through the database.
type lobby struct {
	log         *slog.Logger
	records     *records
	moveTimeout time.Duration
	isBot       func(openID string) bool
	// summon starts a bot for a player who asked for one and found none waiting; nil
	// when this server has no bots.
	summon func() error

	mu      sync.Mutex
	waiting []*player // in the order they queued
	players map[*player]struct{}
	closed  bool
	wg      sync.WaitGroup // socket handlers and rooms
}

func newLobby(log *slog.Logger, moveTimeout time.Duration, recs *records) *lobby {
	return &lobby{
		log:         log,
		records:     recs,
		moveTimeout: moveTimeout,
		isBot:       func(string) bool { return false },
		players:     map[*player]struct{}{},
	}
}

// serve runs one socket: the handler given to wsauth.Handler. wsauth has authenticated
// the upgrade, so c.Session() is the player's live session.
func (l *lobby) serve(c *wsauth.Conn) {
	s := c.Session()
	p := &player{conn: c, s: s, openID: s.OpenID(), bot: l.isBot(s.OpenID()), out: make(chan serverMsg, outboxSize)}
	if !l.join(p) {
		_ = c.CloseWith(fws.CloseGoingAway, "server shutting down")
		return
	}
	written := make(chan struct{})
	go p.writeLoop(written)
	defer func() {
		p.mu.Lock()
		p.closed = true
		close(p.out)
		p.mu.Unlock()
		_ = c.Close() // a write stuck on a client that stopped reading fails now
		<-written
		l.part(p)
	}()

	rec := readRecord(s.Session)
	p.send(serverMsg{Type: "welcome", OpenID: p.openID, Nickname: s.GetString(fieldNickname), Record: &rec})
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			// The client went away, or wsauth closed the socket because the session
			// ended (logout in another tab, expiry): Err says which.
			l.leave(p, leaveReason(s.Err()))
			return
		}
		var m clientMsg
		if err := json.Unmarshal(data, &m); err != nil {
			p.send(errorMsg("malformed message: " + err.Error()))
			continue
		}
		switch m.Type {
		case "queue":
			l.queue(p, m.Opponent == "bot")
		case "move":
			choice, err := ParseChoice(m.Choice)
			if err != nil {
				p.send(errorMsg(err.Error()))
				continue
			}
			l.move(p, choice)
		case "leave":
			l.leave(p, "left")
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

func (l *lobby) join(p *player) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.players[p] = struct{}{}
	l.wg.Add(1)
	return true
}

func (l *lobby) part(p *player) {
	l.mu.Lock()
	delete(l.players, p)
	l.mu.Unlock()
	l.wg.Done()
}

// queue puts p in the queue, or in a room at once when a partner is waiting.
func (l *lobby) queue(p *player, wantBot bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case p.room != nil:
		p.send(errorMsg("finish or leave your match first"))
		return
	case wantBot && (p.bot || l.summon == nil):
		p.send(errorMsg("this server has no bots (they log in through the fake WeChat of development mode)"))
		return
	}
	l.unqueueLocked(p)
	p.wantBot = wantBot
	if q := l.partnerLocked(p); q != nil {
		l.unqueueLocked(q)
		l.startLocked(q, p)
		return
	}
	want := "any"
	if wantBot {
		// No bot is waiting: call one. It logs in and connects like any client, and
		// finds p in the queue.
		if err := l.summon(); err != nil {
			p.send(errorMsg("no bot is free: " + err.Error()))
			return
		}
		want = "bot"
	}
	p.queued = true
	l.waiting = append(l.waiting, p)
	p.send(serverMsg{Type: "queued", Opponent: want})
	l.log.Debug("rps: queued", "openid", p.openID, "opponent", want, "waiting", len(l.waiting))
}

// partnerLocked finds the player p should play: the first waiting who would play p
// and whom p would play. A bot prefers players who asked for a bot. A user is never
// matched with themselves (two tabs of one session, say).
func (l *lobby) partnerLocked(p *player) *player {
	fits := func(a, b *player) bool { return !a.wantBot || b.bot }
	var first *player
	for _, q := range l.waiting {
		if q.openID == p.openID || !fits(p, q) || !fits(q, p) {
			continue
		}
		if !p.bot || q.wantBot {
			return q
		}
		if first == nil {
			first = q
		}
	}
	return first
}

func (l *lobby) unqueueLocked(p *player) {
	if p.queued {
		p.queued = false
		l.waiting = slices.DeleteFunc(l.waiting, func(q *player) bool { return q == p })
	}
}

// startLocked puts a and b in a new room and starts its goroutine.
func (l *lobby) startLocked(a, b *player) {
	r := &room{l: l, p: [2]*player{a, b}, events: make(chan event, 4), done: make(chan struct{})}
	a.room, b.room = r, r
	l.log.Debug("rps: matched", "a", a.openID, "b", b.openID)
	l.wg.Add(1)
	go r.run(l.moveTimeout)
}

// move hands p's choice to p's room.
func (l *lobby) move(p *player, c Choice) {
	l.mu.Lock()
	r := p.room
	l.mu.Unlock()
	if r == nil {
		p.send(errorMsg("you are not in a match"))
		return
	}
	r.post(event{who: r.seat(p), choice: c})
}

// leave takes p out of the queue, or out of its match, which then ends.
func (l *lobby) leave(p *player, reason string) {
	l.mu.Lock()
	l.unqueueLocked(p)
	r := p.room
	l.mu.Unlock()
	if r != nil {
		r.post(event{who: r.seat(p), left: reason})
	}
}

// close closes every socket (1001, going away) and waits for their handlers and the
// rooms to finish. Sockets opened later are turned away.
func (l *lobby) close() {
	l.mu.Lock()
	l.closed = true
	ps := make([]*player, 0, len(l.players))
	for p := range l.players {
		ps = append(ps, p)
	}
	l.mu.Unlock()
	for _, p := range ps {
		p.close(fws.CloseGoingAway, "server shutting down")
	}
	l.wg.Wait()
}

// room runs one match between two players on its own goroutine, which owns the match
// and its move timer; the players' sockets talk to it through events.
type room struct {
	l      *lobby
	p      [2]*player
	events chan event
	done   chan struct{} // closed when the match is over: events go nowhere
}

// event is a move, or a player leaving (left is the reason).
type event struct {
	who    int
	choice Choice
	left   string
}

func (r *room) seat(p *player) int {
	if r.p[1] == p {
		return 1
	}
	return 0
}

func (r *room) post(e event) {
	select {
	case r.events <- e:
	case <-r.done:
	}
}

func (r *room) run(moveTimeout time.Duration) {
	defer r.l.wg.Done()
	for i, p := range r.p {
		o := r.p[1-i]
		p.send(serverMsg{Type: "matched", Opponent: peer{Nickname: o.s.GetString(fieldNickname), Bot: o.bot},
			Rounds: Rounds, MoveTimeout: int(moveTimeout / time.Second)})
	}
	var m Match
	timer := time.NewTimer(moveTimeout)
	defer timer.Stop()
	for !m.Over() {
		var moves [2]Choice
		timer.Reset(moveTimeout) // a timer that fired or stopped delivers nothing stale (Go 1.23)
	round:
		for moves[0] == "" || moves[1] == "" {
			select {
			case e := <-r.events:
				if e.left != "" {
					r.abandon(1-e.who, e.left)
					return
				}
				if moves[e.who] != "" {
					r.p[e.who].send(errorMsg("you have already moved this round"))
					continue
				}
				moves[e.who] = e.choice
				r.p[1-e.who].send(serverMsg{Type: "opponent_moved"})
			// The session ended under an open socket: wsauth is closing it with a
			// 4xxx code; tell the opponent now rather than when the close completes.
			case <-r.p[0].s.Done():
				r.abandon(1, leaveReason(r.p[0].s.Err()))
				return
			case <-r.p[1].s.Done():
				r.abandon(0, leaveReason(r.p[1].s.Err()))
				return
			case <-timer.C:
				break round // a missing move loses the round
			}
		}
		res := m.Play(moves[0], moves[1])
		for i, p := range r.p {
			res := res
			if i == 1 {
				res = res.Flip()
			}
			score := m.Score(i)
			p.send(serverMsg{Type: "round", Round: m.Round, You: &moves[i], Them: &moves[1-i], Result: res, Score: &score})
		}
	}

	// The result goes to the database first, the source of truth, both players in one
	// transaction; then to each player's live session, the copy the page and the
	// sockets read, with Incr: exact even when the same user plays in two tabs and an
	// HTTP request changes the session meanwhile. Bots keep theirs in their sessions
	// only, off the leaderboard.
	var results [2]Result
	var outs []outcome
	for i, p := range r.p {
		results[i] = m.Result()
		if i == 1 {
			results[i] = results[i].Flip()
		}
		if !p.bot {
			outs = append(outs, outcome{OpenID: p.openID, Nickname: p.s.GetString(fieldNickname), Result: results[i]})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	counts, err := r.l.records.played(ctx, outs...)
	cancel()
	if err != nil {
		r.l.log.Error("rps: result not recorded", "a", r.p[0].openID, "b", r.p[1].openID, "err", err)
	}
	var msgs [2]serverMsg
	for i, p := range r.p {
		score := m.Score(i)
		msgs[i] = serverMsg{Type: "match_over", Result: results[i], Score: &score}
		rec := readRecord(p.s.Session)
		msgs[i].Record = &rec
		if err != nil {
			continue // the session must not count what the database does not
		}
		if db, ok := counts[p.openID]; ok {
			// The database's counts, which other sessions of the same player (another
			// device) may have added to since this session loaded them.
			rec = syncRecord(r.l.log, p, db)
			msgs[i].Record = &rec
			continue
		}
		field := resultField[results[i]]
		n, err := p.s.Incr(field, 1)
		if err != nil {
			r.l.log.Warn("rps: result not copied to the session", "openid", p.openID, "err", err)
			continue
		}
		switch field { // the live handle read may lag an Incr of another socket; n is exact
		case fieldWins:
			rec.Wins = n
		case fieldLosses:
			rec.Losses = n
		case fieldDraws:
			rec.Draws = n
		}
	}
	// Out of the room before match_over goes out, so a client may queue again as soon
	// as it reads it.
	r.finish()
	for i, p := range r.p {
		p.send(msgs[i])
	}
	r.l.log.Info("rps: match over", "a", r.p[0].openID, "b", r.p[1].openID, "result", m.Result(), "score", m.Wins)
}

// abandon ends the match because a player left: the other is told, and the match
// counts for nobody.
func (r *room) abandon(stayer int, reason string) {
	r.finish()
	r.p[stayer].send(serverMsg{Type: "opponent_left", Reason: reason})
	r.l.log.Info("rps: match abandoned", "left", r.p[1-stayer].openID, "reason", reason)
}

func (r *room) finish() {
	r.l.mu.Lock()
	for _, p := range r.p {
		if p.room == r {
			p.room = nil
		}
	}
	r.l.mu.Unlock()
	close(r.done)
}

// syncRecord brings the session's copy of the player's record up to the database's,
// and returns it. Counts only grow: a copy already ahead (a later match, written while
// this one was) is left alone.
func syncRecord(log *slog.Logger, p *player, db record) record {
	rec := readRecord(p.s.Session)
	for _, f := range []struct {
		field   string
		db, now *int64
	}{{fieldWins, &db.Wins, &rec.Wins}, {fieldLosses, &db.Losses, &rec.Losses}, {fieldDraws, &db.Draws, &rec.Draws}} {
		if *f.db > *f.now {
			if err := p.s.Set(f.field, *f.db); err != nil {
				log.Warn("rps: result not copied to the session", "openid", p.openID, "err", err)
				continue
			}
			*f.now = *f.db
		}
	}
	return rec
}
