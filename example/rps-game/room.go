package main

import (
	"context"
	"sync"
	"time"
)

// room runs one match on its own goroutine, which owns the match and its timers, on
// the instance that paired the players. The players' sockets, on this instance or
// another, talk to it through its room on the bus, matchRoom(id), and it answers each
// at its own, playerRoom(addr).
//
// A match first offers itself to both sockets and starts when both accept; a socket
// gone meanwhile (its instance died with its ticket in the queue) costs the other a
// requeue. A player whose socket drops is away: the move timer stops, the opponent is
// told, and the match waits the grace period for a socket of the player's session,
// which may connect to any instance, to take the seat back. After it the player
// forfeits the match, as one who leaves it, logs out or is logged out does: a loss for
// them and a win for the opponent, recorded like any result (forfeit). A match ended
// by its instance shutting down counts for nobody: that is the server's fault.
type room struct {
	l     *lobby
	id    string
	bus   bus
	seats [2]seat
	again bool // opened by a rematch: only sockets that asked for it accept its offer
	// final is what over told each seat, again for a socket that takes the seat back
	// while the room waits for a rematch.
	final [2]playerMsg

	mu      sync.Mutex
	inbox   []roomMsg
	notify  chan struct{} // a message is in the inbox
	unsub   func()
	stopped bool
}

type seat struct {
	t     ticket // Addr: the socket playing the seat now
	ready bool
	away  *time.Timer // the grace period of a player whose socket dropped; nil when present
	gone  int         // counts the seat's absences, so that a stale grace timer is told apart
	// log is what the seat was told of the match's course (matched, then each round),
	// numbered from 1: a socket taking the seat back gets it again, so that a client
	// whose socket dropped as a round ended, or a new page, has every round.
	log []serverMsg
}

// start opens a match between the first to queue, a, and b, on this instance.
func (l *lobby) start(b bus, first, second ticket) { l.open(b, first, second, false) }

// open opens a match between first and second: a pairing, or a rematch.
func (l *lobby) open(b bus, first, second ticket, rematch bool) {
	r := &room{l: l, id: newID(), bus: b, seats: [2]seat{{t: first}, {t: second}}, again: rematch, notify: make(chan struct{}, 1)}
	unsub, err := b.Subscribe(matchRoom(r.id), r.post)
	if err != nil {
		l.log.Error("rps: match not opened", "err", err)
		// Nobody is told: the pairing socket's offer never comes, nor the other's;
		// both stay queued without a ticket. Requeue them as a failed offer would.
		for _, s := range r.seats {
			r.to(s.t.Addr, playerMsg{Kind: "requeue"})
		}
		return
	}
	r.unsub = unsub
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		unsub()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	l.log.Debug("rps: paired", "match", r.id, "a", first.OpenID, "b", second.OpenID)
	go r.run()
}

// post is the room's subscription: messages wait in the inbox, so the bus never waits
// for the room.
func (r *room) post(data []byte) {
	m, ok := decodeRoomMsg(data)
	if !ok {
		r.l.log.Warn("rps: a malformed message for a match", "match", r.id, "len", len(data))
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.inbox = append(r.inbox, m)
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *room) take() []roomMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.inbox
	r.inbox = nil
	return in
}

func (r *room) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.unsub()
	for _, s := range r.seats {
		if s.away != nil {
			s.away.Stop()
		}
	}
}

// to sends a message to the socket at addr.
func (r *room) to(addr string, m playerMsg) {
	m.Match = r.id
	if err := publish(r.bus, playerRoom(addr), m); err != nil {
		r.l.log.Warn("rps: message to a player lost", "match", r.id, "kind", m.Kind, "err", err)
	}
}

func (r *room) send(i int, msg serverMsg) {
	r.to(r.seats[i].t.Addr, playerMsg{Kind: "send", Msg: &msg})
}

// logged numbers msg in seat i's log, and keeps it there.
func (r *room) logged(i int, msg serverMsg) *serverMsg {
	s := &r.seats[i]
	msg.Match, msg.Seq = r.id, len(s.log)+1
	s.log = append(s.log, msg)
	return &msg
}

// seatOf returns the seat of the player openID, or -1.
func (r *room) seatOf(openID string) int {
	for i, s := range r.seats {
		if s.t.OpenID == openID {
			return i
		}
	}
	return -1
}

// from finds the seat of a message, or -1 for one from a socket no longer playing it.
func (r *room) from(m roomMsg) int {
	if r.seats[m.Seat].t.Addr != m.Addr {
		return -1
	}
	return m.Seat
}

func (r *room) run() {
	defer r.l.wg.Done()
	defer r.stop()
	if !r.offer() {
		return
	}
	for i := range r.seats {
		o := r.seats[1-i].t
		r.to(r.seats[i].t.Addr, playerMsg{Kind: "start", Msg: r.logged(i, serverMsg{Type: "matched", Opponent: peer{Nickname: o.Nickname, Bot: o.Bot},
			Rounds: Rounds, MoveTimeout: int(r.l.moveTimeout / time.Second)})})
	}
	if r.play() {
		r.rematch()
	}
}

// offer asks both sockets to accept the match, and returns true when both do. When one
// does not, in time or at all, the others are queued again.
func (r *room) offer() bool {
	for i, s := range r.seats {
		r.to(s.t.Addr, playerMsg{Kind: "offer", Seat: i, Rematch: r.again})
	}
	timer := time.NewTimer(readyWait)
	defer timer.Stop()
	for !r.seats[0].ready || !r.seats[1].ready {
		select {
		case <-r.notify:
			for _, m := range r.take() {
				i := r.from(m)
				switch {
				case i < 0:
				case m.Kind == "ready":
					r.seats[i].ready = true
				case m.Kind == "leave" || m.Kind == "away":
					r.requeue(1 - i)
					return false
				}
			}
		case <-timer.C:
			r.l.log.Info("rps: offer not accepted in time", "match", r.id, "a", r.seats[0].t.OpenID, "b", r.seats[1].t.OpenID)
			r.requeue(0)
			r.requeue(1)
			return false
		case <-r.l.ctx.Done():
			r.requeue(0)
			r.requeue(1)
			return false
		}
	}
	return true
}

func (r *room) requeue(i int) { r.to(r.seats[i].t.Addr, playerMsg{Kind: "requeue"}) }

// play runs the rounds, and reports whether the match was decided by them (no forfeit,
// no shutdown).
func (r *room) play() bool {
	var m Match
	var moves [2]Choice
	timer := time.NewTimer(r.l.moveTimeout)
	defer timer.Stop()
	type graceEnd struct{ seat, gone int }
	graceOver := make(chan graceEnd)
	done := make(chan struct{})
	defer close(done)
	present := func() bool { return r.seats[0].away == nil && r.seats[1].away == nil }
	for !m.Over() {
		select {
		case <-r.notify:
			for _, e := range r.take() {
				if e.Kind == "back" {
					i := r.back(e, &m, moves)
					if i >= 0 && present() {
						timer.Reset(r.l.moveTimeout) // the round starts over for both
					}
					continue
				}
				i := r.from(e)
				if i < 0 {
					continue
				}
				switch e.Kind {
				case "leave":
					if e.Reason == "declined" {
						// Both had accepted, but the start crossed the player's leaving the
						// queue: they never saw the match, and cannot forfeit it.
						r.to(r.seats[1-i].t.Addr, playerMsg{Kind: "ended", Msg: &serverMsg{Type: "opponent_left", Reason: "declined"}})
						r.l.log.Info("rps: match declined as it started", "match", r.id, "left", r.seats[i].t.OpenID)
						return false
					}
					r.forfeit(&m, 1-i, e.Reason)
					return false
				case "away":
					if r.seats[i].away != nil {
						continue
					}
					r.seats[i].gone++
					end := graceEnd{i, r.seats[i].gone}
					r.seats[i].away = time.AfterFunc(r.l.grace, func() {
						select {
						case graceOver <- end:
						case <-done:
						}
					})
					timer.Stop()
					r.send(1-i, serverMsg{Type: "opponent_away", Grace: int((r.l.grace + time.Second - 1) / time.Second)})
					r.l.log.Info("rps: player away", "match", r.id, "openid", r.seats[i].t.OpenID)
				case "move":
					if moves[i] != "" {
						r.send(i, errorMsg("you have already moved this round"))
						continue
					}
					moves[i] = e.Choice
					r.send(1-i, serverMsg{Type: "opponent_moved"})
				}
			}
			// A round whose player is away waits for them, even with both moves in: its
			// result, and the match's end, go to a socket that is there to get them.
			if moves[0] == "" || moves[1] == "" || !present() {
				continue
			}
		case e := <-graceOver:
			if r.seats[e.seat].away == nil || r.seats[e.seat].gone != e.gone {
				continue // back in time; the timer's send was already on its way
			}
			r.forfeit(&m, 1-e.seat, "disconnected")
			return false
		case <-timer.C:
			// A missing move loses the round.
		case <-r.l.ctx.Done():
			for i := range r.seats {
				r.to(r.seats[i].t.Addr, playerMsg{Kind: "ended", Msg: &serverMsg{Type: "opponent_left", Reason: "shutdown"}})
			}
			r.l.log.Info("rps: match ended by shutdown", "match", r.id)
			return false
		}
		res := m.Play(moves[0], moves[1])
		for i := range r.seats {
			res := res
			if i == 1 {
				res = res.Flip()
			}
			score := m.Score(i)
			you, them := moves[i], moves[1-i] // copies: the log outlives this round's moves
			r.to(r.seats[i].t.Addr, playerMsg{Kind: "send", Msg: r.logged(i, serverMsg{Type: "round", Round: m.Round, You: &you, Them: &them, Result: res, Score: &score})})
		}
		moves = [2]Choice{}
		// A timer that fired or stopped delivers nothing stale (Go 1.23). While a player
		// is away, the next round waits for them.
		if present() {
			timer.Reset(r.l.moveTimeout)
		} else {
			timer.Stop()
		}
	}
	r.over(&m)
	return true
}

// back gives seat of e's user to e's socket, a new one after a dropped one, or the
// session's newer socket taking the match over from an older that still runs. It
// returns the seat, or -1 when the user plays none here.
func (r *room) back(e roomMsg, m *Match, moves [2]Choice) int {
	i := -1
	for j, s := range r.seats {
		if s.t.OpenID == e.OpenID {
			i = j
		}
	}
	if i < 0 || e.Addr == "" {
		return -1
	}
	s := &r.seats[i]
	old := s.t.Addr
	s.t.Addr = e.Addr
	if s.away != nil {
		s.away.Stop()
		s.away = nil
		r.send(1-i, serverMsg{Type: "opponent_back"})
	} else if old != e.Addr {
		r.to(old, playerMsg{Kind: "replaced"})
	}
	o := r.seats[1-i].t
	score := m.Score(i)
	moved := moves[i] != ""
	r.to(e.Addr, playerMsg{Kind: "resumed", Seat: i, Log: s.log, Msg: &serverMsg{Type: "resumed", Match: r.id, Opponent: peer{Nickname: o.Nickname, Bot: o.Bot},
		Rounds: Rounds, MoveTimeout: int(r.l.moveTimeout / time.Second), Round: m.Round, Score: &score, Moved: &moved,
		Away: r.seats[1-i].away != nil}})
	r.l.log.Info("rps: player back", "match", r.id, "openid", e.OpenID)
	return i
}

// over records the result: in the database, the source of truth, both players in one
// transaction (bots too, off the leaderboard); then each player's socket copies its
// counts into its live session (see player.recordResult), and a session that cannot be
// written then (its store is down) catches up later. A result is never only in a
// session.
func (r *room) over(m *Match) {
	var results [2]Result
	var outs []outcome
	for i, s := range r.seats {
		results[i] = m.Result()
		if i == 1 {
			results[i] = results[i].Flip()
		}
		outs = append(outs, outcome{OpenID: s.t.OpenID, Nickname: s.t.Nickname, Result: results[i], Bot: s.t.Bot})
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	counts, err := r.l.records.played(ctx, outs...)
	cancel()
	if err != nil {
		r.l.log.Error("rps: result not recorded", "a", r.seats[0].t.OpenID, "b", r.seats[1].t.OpenID, "err", err)
	} else { // counted before a player can hear of it and look
		r.l.hosted(r.bots(), r.seats[0].t.Instance != r.seats[1].t.Instance)
	}
	for i, s := range r.seats {
		score := m.Score(i)
		pm := playerMsg{Kind: "over", Counted: err == nil, Msg: &serverMsg{Type: "match_over", Result: results[i], Score: &score}}
		if db, ok := counts[s.t.OpenID]; ok {
			pm.DB = &db
		}
		r.final[i] = pm
		r.to(s.t.Addr, pm)
	}
	r.l.log.Info("rps: match over", "match", r.id, "a", r.seats[0].t.OpenID, "b", r.seats[1].t.OpenID, "result", m.Result(), "score", m.Wins)
}

// bots counts the bot seats, for the bots' tally: each has its result in the database.
func (r *room) bots() int {
	n := 0
	for _, s := range r.seats {
		if s.t.Bot {
			n++
		}
	}
	return n
}

// rematchWait is how long a player's ask for another match against the same opponent
// waits for the opponent to ask too.
const rematchWait = 15 * time.Second

// rematch keeps a decided match's room open for rematchWait: when both players ask for
// another match (rematch), it opens one between them, on this instance, as a pairing
// would. A player who asks first waits (the other is told: rematch_offered); one who
// queues for someone else, leaves or closes declines, and the one who asked is told
// (rematch_off), as when the time runs out.
func (r *room) rematch() {
	deadline := time.Now().Add(rematchWait)
	timer := time.NewTimer(rematchWait)
	defer timer.Stop()
	var asked [2]bool
	off := func(reason string) {
		for i, a := range asked {
			if a {
				r.to(r.seats[i].t.Addr, playerMsg{Kind: "rematch_off", Msg: &serverMsg{Type: "rematch_off", Reason: reason}})
			}
		}
	}
	for {
		select {
		case <-r.notify:
			for _, e := range r.take() {
				if e.Kind == "back" {
					// A socket of a player whose old one missed the end: the course of the
					// match, then its end, as over told it.
					if i := r.seatOf(e.OpenID); i >= 0 && e.Addr != "" {
						r.seats[i].t.Addr = e.Addr
						score := r.final[i].Msg.Score
						moved := false
						o := r.seats[1-i].t
						r.to(e.Addr, playerMsg{Kind: "resumed", Seat: i, Log: r.seats[i].log, Msg: &serverMsg{Type: "resumed", Match: r.id,
							Opponent: peer{Nickname: o.Nickname, Bot: o.Bot}, Rounds: Rounds, MoveTimeout: int(r.l.moveTimeout / time.Second),
							Round: len(r.seats[i].log) - 1, Score: score, Moved: &moved}})
						r.to(e.Addr, r.final[i])
					}
					continue
				}
				i := r.from(e)
				switch {
				case i < 0:
				case e.Kind == "rematch" && !asked[i]:
					asked[i] = true
					if asked[1-i] {
						r.l.log.Debug("rps: rematch", "match", r.id)
						r.l.open(r.bus, r.seats[1-i].t, r.seats[i].t, true)
						return
					}
					grace := int(time.Until(deadline).Round(time.Second) / time.Second)
					for j, kind := range map[int]string{i: "rematch_wait", 1 - i: "rematch_offered"} {
						o := r.seats[1-j].t
						r.to(r.seats[j].t.Addr, playerMsg{Kind: kind, Msg: &serverMsg{Type: kind, Opponent: peer{Nickname: o.Nickname, Bot: o.Bot}, Grace: grace}})
					}
				case e.Kind == "leave" || e.Kind == "away":
					asked[i] = false
					off(map[bool]string{true: "declined", false: "gone"}[e.Kind == "leave" && e.Reason == "declined"])
					return
				}
			}
		case <-timer.C:
			off("timeout")
			return
		case <-r.l.ctx.Done():
			off("gone")
			return
		}
	}
}

// forfeit ends the match because a player left it (reason: left, disconnected after
// the grace period, logged_out, revoked, expired): the leaver loses it and the stayer
// wins it, whatever the score, written as over writes a result (one transaction, then
// each socket copies its player's counts into its live session). The stayer gets
// opponent_left with forfeit and the record; the leaver's socket, when it is still open
// (it sent leave), gets match_over with forfeit; a leaver without one finds the loss in
// the database at the next login, or when a new socket of the session fails to resume.
func (r *room) forfeit(m *Match, stayer int, reason string) {
	leaver := 1 - stayer
	var outs []outcome
	for i, s := range r.seats {
		res := Win
		if i == leaver {
			res = Lose
		}
		outs = append(outs, outcome{OpenID: s.t.OpenID, Nickname: s.t.Nickname, Result: res, Bot: s.t.Bot})
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	counts, err := r.l.records.played(ctx, outs...)
	cancel()
	if err != nil {
		r.l.log.Error("rps: forfeit not recorded", "stayer", r.seats[stayer].t.OpenID, "leaver", r.seats[leaver].t.OpenID, "err", err)
	}
	counted := err == nil
	if counted { // counted before a player can hear of it and look
		r.l.hosted(r.bots(), r.seats[0].t.Instance != r.seats[1].t.Instance)
	}
	tell := func(i int, msg serverMsg, kind string) {
		score := m.Score(i)
		msg.Score, msg.Forfeit = &score, counted
		pm := playerMsg{Kind: kind, Counted: counted, Msg: &msg}
		if db, ok := counts[r.seats[i].t.OpenID]; ok {
			pm.DB = &db
		}
		r.to(r.seats[i].t.Addr, pm)
	}
	tell(stayer, serverMsg{Type: "opponent_left", Reason: reason, Result: Win}, "ended")
	// Sent whatever the reason: a socket that closed (logged out, dropped) is no longer
	// subscribed, and the message goes nowhere.
	tell(leaver, serverMsg{Type: "match_over", Reason: reason, Result: Lose}, "forfeit")
	r.l.log.Info("rps: match forfeited", "match", r.id, "left", r.seats[leaver].t.OpenID, "reason", reason, "counted", counted)
}
