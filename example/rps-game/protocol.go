package main

import "github.com/mpsession/mpsession/fibermp"

// The messages of the socket protocol, one JSON object per WebSocket text message, told
// apart by "type". README.md lists them with examples.

// clientMsg is anything a client sends: {"type":"queue","opponent":"bot"},
// {"type":"move","choice":"rock"}, {"type":"leave"}, {"type":"leave","from":"queue"},
// {"type":"rematch"} (after a match: another against the same opponent).
type clientMsg struct {
	Type     string `json:"type"`
	Opponent string `json:"opponent,omitempty"` // queue: "any" (default) or "bot"
	Choice   string `json:"choice,omitempty"`   // move
	From     string `json:"from,omitempty"`     // leave: "queue" leaves the queue only, never a match
}

// serverMsg is anything the server sends; each type fills the members it needs.
type serverMsg struct {
	Type        string  `json:"type"`
	OpenID      string  `json:"openid,omitempty"`      // welcome
	Nickname    string  `json:"nickname,omitempty"`    // welcome
	Opponent    any     `json:"opponent,omitempty"`    // queued: "any" or "bot"; matched, rematch_wait, rematch_offered: peer
	Rounds      int     `json:"rounds,omitempty"`      // matched
	MoveTimeout int     `json:"moveTimeout,omitempty"` // matched: seconds per move
	Round       int     `json:"round,omitempty"`       // round
	You         *Choice `json:"you,omitempty"`         // round: "" when the timer ran out
	Them        *Choice `json:"them,omitempty"`        // round
	Result      Result  `json:"result,omitempty"`      // round, match_over, opponent_left (a forfeit)
	Score       *Score  `json:"score,omitempty"`       // round, match_over, opponent_left
	Record      *record `json:"record,omitempty"`      // welcome, match_over, opponent_left (counted), resume_failed
	Reason      string  `json:"reason,omitempty"`      // opponent_left; match_over after a forfeit; rematch_off
	Forfeit     bool    `json:"forfeit,omitempty"`     // opponent_left, match_over: a player left, and the match counts
	Message     string  `json:"message,omitempty"`     // error, resume_failed
	Grace       int     `json:"grace,omitempty"`       // opponent_away: seconds left to come back; rematch_wait, rematch_offered: seconds to accept
	Moved       *bool   `json:"moved,omitempty"`       // resumed: you have moved this round
	Away        bool    `json:"away,omitempty"`        // resumed: the opponent is reconnecting too
	// A match numbers what it tells each player of its course (matched, round): a socket
	// that takes the seat back is told it all again, and a client skips what it has.
	Match string `json:"match,omitempty"`
	Seq   int    `json:"seq,omitempty"`
}

// peer is the opponent as matched shows it.
type peer struct {
	Nickname string `json:"nickname"`
	Bot      bool   `json:"bot"`
}

func errorMsg(msg string) serverMsg { return serverMsg{Type: "error", Message: msg} }

// The session fields of the game: the player's nickname and record, copied from the
// database at login (records.go), then added to by the sockets with the live handle's
// Incr as they write each result to the database, and read by GET /api/me.
const (
	fieldNickname = "nickname"
	fieldWins     = "wins"
	fieldLosses   = "losses"
	fieldDraws    = "draws"
	// fieldMatch holds the id of the match the session is playing, so that a new
	// socket after a dropped one (on any instance) continues it.
	fieldMatch = "match"
	// fieldRequeue holds a queueing cut short by a dropped socket (requeue), so that a
	// new socket within the grace period queues again.
	fieldRequeue = "requeue"
)

// record is a player's tally of matches.
type record struct {
	Wins   int64 `json:"wins"`
	Losses int64 `json:"losses"`
	Draws  int64 `json:"draws"`
}

// readRecord reads the record from a session: an HTTP request's, or a socket's live
// one (a wsauth.Handle is a *fibermp.Session).
func readRecord(f *fibermp.Session) record {
	return record{Wins: f.GetInt(fieldWins), Losses: f.GetInt(fieldLosses), Draws: f.GetInt(fieldDraws)}
}
