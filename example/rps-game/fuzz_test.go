package main

import (
	"encoding/json"
	"testing"
)

// FuzzBusMessages: what crosses the bus between instances (a match's messages, a
// socket's, a queue ticket from Redis) is checked, never trusted: no input panics,
// and what is accepted has what its kind needs.
func FuzzBusMessages(f *testing.F) {
	for _, v := range []any{
		roomMsg{Kind: "ready", Seat: 1, Addr: "a1"},
		roomMsg{Kind: "move", Seat: 0, Addr: "a1", Choice: Rock},
		roomMsg{Kind: "back", Addr: "a2", OpenID: "o-alice"},
		roomMsg{Kind: "leave", Seat: 1, Addr: "a1", Reason: "left"},
		playerMsg{Kind: "offer", Match: "m1", Seat: 1},
		playerMsg{Kind: "start", Match: "m1", Msg: &serverMsg{Type: "matched"}},
		playerMsg{Kind: "over", Match: "m1", Counted: true, DB: &record{Wins: 1}, Msg: &serverMsg{Type: "match_over", Result: Win}},
		playerMsg{Kind: "ended", Match: "m1", Counted: true, DB: &record{Wins: 2}, Msg: &serverMsg{Type: "opponent_left", Reason: "disconnected", Result: Win, Forfeit: true}},
		playerMsg{Kind: "forfeit", Match: "m1", Seat: 1, Counted: true, Msg: &serverMsg{Type: "match_over", Reason: "left", Result: Lose, Forfeit: true}},
		ticket{ID: "t1", Addr: "a1", OpenID: "o-bob", Nickname: "Bob", WantBot: true},
	} {
		b, _ := json.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte(`{"k":"move","s":7,"a":"x","c":"lizard"}`))
	f.Add([]byte(`{"k":"start","m":"m1"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, ok := decodeRoomMsg(data); ok {
			if m.Seat < 0 || m.Seat > 1 || m.Addr == "" {
				t.Errorf("accepted %q: seat %d, addr %q", data, m.Seat, m.Addr)
			}
			if _, err := ParseChoice(string(m.Choice)); m.Kind == "move" && err != nil {
				t.Errorf("accepted a move of %q", m.Choice)
			}
		}
		if m, ok := decodePlayerMsg(data); ok {
			if m.Match == "" || m.Seat < 0 || m.Seat > 1 {
				t.Errorf("accepted %q: match %q, seat %d", data, m.Match, m.Seat)
			}
			switch m.Kind {
			case "start", "resumed", "send", "ended", "over", "forfeit", "rematch_wait", "rematch_offered", "rematch_off":
				if m.Msg == nil {
					t.Errorf("accepted %s without a message", m.Kind)
				}
			}
		}
		var tk ticket
		_ = json.Unmarshal(data, &tk)
		_ = tk.fits(tk)
	})
}

// FuzzClientMessage: a client's message is read as the socket handler reads it; no
// input panics, and a move is one of the three hands.
func FuzzClientMessage(f *testing.F) {
	for _, s := range []string{`{"type":"queue"}`, `{"type":"queue","opponent":"bot"}`, `{"type":"move","choice":"rock"}`,
		`{"type":"leave"}`, `{"type":"leave","from":"queue"}`, `{"type":"move","choice":"ROCK"}`, `{"type":1}`, `[`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m clientMsg
		if json.Unmarshal(data, &m) != nil {
			return
		}
		if c, err := ParseChoice(m.Choice); err == nil && c != Rock && c != Paper && c != Scissors {
			t.Errorf("ParseChoice(%q) = %q", m.Choice, c)
		}
	})
}
