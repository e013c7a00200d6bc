package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// playOut plays a whole match that a wins 2-0, and reads both match_overs.
func playOut(t *testing.T, a, b *client) {
	t.Helper()
	playRound(t, 1, a, b, Rock, Scissors)
	playRound(t, 2, a, b, Paper, Rock)
	a.expect("match_over")
	b.expect("match_over")
}

// After a match, one player asks for a rematch (rematch_wait, with the opponent and
// the seconds left), the other is offered it (rematch_offered) and accepts: a new
// match between the same two starts, and is played. Asking with no match to play again
// is an error.
func TestRematch(t *testing.T) {
	s := startServer(t, config{})
	_, _, a, b := pair(t, s)
	first := a.match
	playOut(t, a, b)

	a.send(clientMsg{Type: "rematch"})
	w := a.expect("rematch_wait")
	if !strings.Contains(string(w.Opponent), `"nickname":"玩家o-bob"`) || w.Grace < 14 || w.Grace > int(rematchWait/time.Second) {
		t.Errorf("rematch_wait: want bob and about %v; got %s, %d s", rematchWait, w.Opponent, w.Grace)
	}
	if o := b.expect("rematch_offered"); !strings.Contains(string(o.Opponent), `"nickname":"Alice"`) {
		t.Errorf("rematch_offered: want Alice; got %s", o.Opponent)
	}
	b.send(clientMsg{Type: "rematch"})
	ma, mb := a.expect("matched"), b.expect("matched")
	if ma.Match == first || ma.Match != mb.Match || ma.Seq != 1 {
		t.Errorf("want a new match for both; got %q and %q after %q", ma.Match, mb.Match, first)
	}
	playOut(t, a, b)

	// The rematch of the rematch is declined: bob queues for anyone instead, and alice,
	// who asked, is told at once.
	a.send(clientMsg{Type: "rematch"})
	a.expect("rematch_wait")
	b.expect("rematch_offered")
	b.send(clientMsg{Type: "queue"})
	b.expect("queued")
	if m := a.expect("rematch_off"); m.Reason != "declined" {
		t.Errorf("rematch_off: want declined; got %+v", m)
	}
	a.send(clientMsg{Type: "rematch"})
	if m := a.expect("error"); m.Message != "no match to play again" {
		t.Errorf("a second ask: want an error; got %+v", m)
	}
	// alice is idle again: she can queue, and meets bob.
	a.send(clientMsg{Type: "queue"})
	a.expect("matched")
	b.expect("matched")
}

// A player who asks for a rematch after the opponent closed the socket (the match's
// room has closed with it) is told the opponent is gone; a bot, offered a rematch by
// the person it played, accepts.
func TestRematchGoneAndBot(t *testing.T) {
	s := startServer(t, config{})
	_, _, a, b := pair(t, s)
	playOut(t, a, b)
	_ = b.conn.Close()
	eventually(t, 5*time.Second, "bob's socket to close", func() bool {
		p, err := s.ws.Hub().Presence(context.Background(), lobbyRoom)
		return err == nil && p.Sockets == 1
	})
	a.send(clientMsg{Type: "rematch"})
	if m := a.expect("rematch_off"); m.Reason != "gone" {
		t.Errorf("rematch_off: want gone; got %+v", m)
	}

	a.send(clientMsg{Type: "queue", Opponent: "bot"})
	a.expect("queued")
	var opp peer
	if m := a.expect("matched"); json.Unmarshal(m.Opponent, &opp) != nil || !opp.Bot {
		t.Fatalf("want a bot; got %s", m.Opponent)
	}
	for {
		a.send(clientMsg{Type: "move", Choice: "paper"})
		m := a.expect("round")
		if state := (Match{Round: m.Round, Wins: [2]int{m.Score.You, m.Score.Them}}); state.Over() {
			break
		}
	}
	a.expect("match_over")
	a.send(clientMsg{Type: "rematch"})
	a.expect("rematch_wait")
	var again peer
	if m := a.expect("matched"); json.Unmarshal(m.Opponent, &again) != nil || again != opp {
		t.Errorf("want a rematch with %+v; got %s", opp, m.Opponent)
	}
}

// A round whose player dropped after moving waits for them, even once the opponent has
// moved: the deciding round's result and the match's end go to the player's new
// socket, not to the old one, which nobody reads.
func TestDecidingRoundWaitsForAwayPlayer(t *testing.T) {
	s := startServer(t, config{})
	alice, _, a, b := pair(t, s)
	playRound(t, 1, a, b, Rock, Scissors)
	a.send(clientMsg{Type: "move", Choice: "paper"})
	if m, err := b.readAny(); err != nil || m.Type != "opponent_moved" { // read() would skip it
		t.Fatalf("bob: want opponent_moved; got %+v, %v", m, err)
	}
	a.drop()
	b.expect("opponent_away")
	b.send(clientMsg{Type: "move", Choice: "rock"}) // the round would decide the match
	a = alice.dial(true)
	if m := a.expect("resumed", "matched", "round"); !*m.Moved || m.Round != 1 {
		t.Errorf("resumed: want round 1 played and alice's move in; got %+v", m)
	}
	if r := a.expect("round"); r.Round != 2 || r.Result != Win {
		t.Errorf("the deciding round on alice's new socket: want round 2 won; got %+v", r)
	}
	if m := a.expect("match_over"); m.Result != Win || *m.Score != (Score{2, 0}) {
		t.Errorf("match_over on alice's new socket: want a 2-0 win; got %+v", m)
	}
	b.expect("opponent_back")
	if m := b.expect("match_over", "round"); m.Result != Lose {
		t.Errorf("bob: want a loss; got %+v", m)
	}
}
