package main

import (
	"context"
	"encoding/json"
	"time"
)

// bus is what the game needs of wsauth.Hub: messages to a named room, and server-side
// members of a room. With the memory store it stays in the process; on Redis it reaches
// every instance, so a match runs on one instance while its players' sockets are on any.
//
// The game does not let the hub write to the sockets itself (Conn.Join): every message
// of a match goes to a server-side subscription of the socket's own room, "rps:p:<addr>",
// whose handler keeps the socket's state (in a match or not, the session's match
// field, the record) in step with what it forwards to the client.
type bus interface {
	ToRoom(ctx context.Context, room string, msg []byte) error
	Subscribe(room string, fn func(msg []byte)) (unsubscribe func(), err error)
}

// The rooms of the game on the bus.
func playerRoom(addr string) string   { return "rps:p:" + addr }
func matchRoom(matchID string) string { return "rps:m:" + matchID }

// outRoom is the Hub room a socket's messages to its client go through: the socket is
// its one member, and with the Hub's history, a client that reconnects with its
// position (wsauth's recovery) is given what it missed there.
func outRoom(addr string) string { return "rps:o:" + addr }

const outPrefix = "rps:o:"

// lobbyRoom is the Hub room every socket joins, so that its presence counts the players
// online on every instance. Nothing is sent to it.
const lobbyRoom = "rps:lobby"

// busTimeout bounds one message's send.
const busTimeout = 2 * time.Second

// roomMsg is what a socket tells a match, at matchRoom.
type roomMsg struct {
	Kind   string `json:"k"`           // ready, move, leave, away, back, rematch
	Seat   int    `json:"s"`           // the sender's seat (back: found by OpenID)
	Addr   string `json:"a"`           // the sending socket
	OpenID string `json:"o,omitempty"` // back
	Choice Choice `json:"c,omitempty"` // move
	Reason string `json:"r,omitempty"` // leave: why (left, logged_out, ...; busy, declined: an offer the client was not told of)
}

// playerMsg is what a match tells a socket, at playerRoom.
type playerMsg struct {
	Kind  string     `json:"k"` // offer, requeue, start, send, resumed, replaced, over, ended, forfeit, rematch_wait, rematch_offered, rematch_off
	Match string     `json:"m"`
	Seat  int        `json:"s,omitempty"`
	Msg   *serverMsg `json:"msg,omitempty"` // for the client (over: the record is the socket's to fill)
	// resumed: what the match told the seat of its course so far, for the client to
	// skip what it has and take what it missed while its socket was away.
	Log []serverMsg `json:"log,omitempty"`
	// over, ended, forfeit: whether the result is in the database, and the player's
	// counts there.
	Counted bool    `json:"counted,omitempty"`
	DB      *record `json:"db,omitempty"`
	// offer: the match is a rematch, which only a socket that asked for it accepts.
	Rematch bool `json:"rematch,omitempty"`
}

// decodeRoomMsg reads a message for a match. It reports false for anything a socket
// of the game would not send: the bus crosses processes, so a match checks what it gets.
func decodeRoomMsg(data []byte) (roomMsg, bool) {
	var m roomMsg
	if json.Unmarshal(data, &m) != nil || m.Seat < 0 || m.Seat > 1 || m.Addr == "" {
		return m, false
	}
	switch m.Kind {
	case "ready", "leave", "away", "rematch":
	case "back":
		return m, m.OpenID != ""
	case "move":
		_, err := ParseChoice(string(m.Choice))
		return m, err == nil
	default:
		return m, false
	}
	return m, true
}

// decodePlayerMsg reads a message for a socket. It reports false for anything a match
// would not send.
func decodePlayerMsg(data []byte) (playerMsg, bool) {
	var m playerMsg
	if json.Unmarshal(data, &m) != nil || m.Match == "" || m.Seat < 0 || m.Seat > 1 {
		return m, false
	}
	switch m.Kind {
	case "offer", "requeue", "replaced":
		return m, true
	case "start", "resumed", "send", "ended", "over", "forfeit", "rematch_wait", "rematch_offered", "rematch_off":
		return m, m.Msg != nil
	}
	return m, false
}

// publish sends v as JSON to room. Delivery is at most once: the game copes with a lost
// message by timers (an offer not accepted, a resume not answered, a move not made).
func publish(b bus, room string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	return b.ToRoom(ctx, room, data)
}
