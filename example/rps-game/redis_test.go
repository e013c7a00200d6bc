package main

import (
	"net/http"
	"testing"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/wsauth"
)

// Two instances sharing sessions through Redis: a token from one works on the other,
// results written by one are read by the other, and a logout on one closes the socket
// on the other, forfeiting the match. Here both players connect to the same instance; instances_test.go has
// them on different ones.
func TestTwoInstancesOnRedis(t *testing.T) {
	rdb := testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, rdb)
	a := startServer(t, config{Redis: testenv.RedisAddr(), RedisPrefix: prefix})
	b := startServer(t, config{Redis: testenv.RedisAddr(), RedisPrefix: prefix})

	alice, bob := login(t, a, "o-alice"), login(t, b, "o-bob") // on different instances
	ca, cb := alice.at(b).dial(false), bob.dial(false)
	ca.send(clientMsg{Type: "queue"})
	ca.expect("queued")
	cb.send(clientMsg{Type: "queue"})
	ca.expect("matched")
	cb.expect("matched")
	playRound(t, 1, ca, cb, Paper, Rock)
	playRound(t, 2, ca, cb, Scissors, Paper)
	ca.expect("match_over")
	cb.expect("match_over")
	if got := alice.me().record; got != (record{Wins: 1}) { // written on b, read on a
		t.Errorf("alice's record on the other instance: want 1-0-0; got %+v", got)
	}
	if got := bob.at(a).me().record; got != (record{Losses: 1}) {
		t.Errorf("bob's record on the other instance: want 0-1-0; got %+v", got)
	}

	ca.send(clientMsg{Type: "queue"})
	ca.expect("queued")
	cb.send(clientMsg{Type: "queue"})
	ca.expect("matched")
	cb.expect("matched")
	alice.do("POST", "/logout", nil, http.StatusNoContent, nil) // on a; her socket is on b
	if code := ca.expectClose(); code != wsauth.CloseLoggedOut {
		t.Errorf("alice's socket: want close code %d; got %d", wsauth.CloseLoggedOut, code)
	}
	// The logout forfeits the match: a win for bob, written on b, read on a.
	if m := cb.expect("opponent_left"); m.Reason != "logged_out" || !m.Forfeit || m.Record == nil || *m.Record != (record{Wins: 1, Losses: 1}) {
		t.Errorf("bob: want opponent_left for logged_out, a win by forfeit, record 1-1-0; got %+v (record %v)", m, m.Record)
	}
	if got := bob.at(a).me().record; got != (record{Wins: 1, Losses: 1}) {
		t.Errorf("bob's record on the other instance: want 1-1-0; got %+v", got)
	}
}
