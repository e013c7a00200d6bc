package main

import (
	"fmt"
	"time"
)

// Choice is a hand: rock, paper or scissors. The zero Choice is no choice at all: a
// player who let the move timer run out.
type Choice string

// The hands.
const (
	Rock     Choice = "rock"
	Paper    Choice = "paper"
	Scissors Choice = "scissors"
)

// Choices lists the hands, for bots and validation.
var Choices = []Choice{Rock, Paper, Scissors}

// ParseChoice checks a hand sent by a client.
func ParseChoice(s string) (Choice, error) {
	switch c := Choice(s); c {
	case Rock, Paper, Scissors:
		return c, nil
	}
	return "", fmt.Errorf("unknown choice %q: want rock, paper or scissors", s)
}

// beats maps each hand to the hand it beats.
var beats = map[Choice]Choice{Rock: Scissors, Paper: Rock, Scissors: Paper}

// Result is the outcome of a round or a match for one player.
type Result string

// The results, as the protocol sends them.
const (
	Win  Result = "win"
	Lose Result = "lose"
	Draw Result = "draw"
)

// Flip returns the result the other player got.
func (r Result) Flip() Result {
	switch r {
	case Win:
		return Lose
	case Lose:
		return Win
	}
	return Draw
}

// Judge returns the result of a round for the player who showed a against b. A hand
// beats no hand (the other player's move timed out); two missing hands draw.
func Judge(a, b Choice) Result {
	switch {
	case a == b:
		return Draw
	case b == "", beats[a] == b:
		return Win
	}
	return Lose
}

// Match rules: best of three. A match ends when a player has won two rounds, or after
// three rounds, whichever comes first; the player who won more rounds wins it, and equal
// round wins (draws, timeouts on both sides) make it a draw. Every match ends after three
// rounds at most, so a match never takes longer than 3 × MoveTimeout.
const (
	Rounds    = 3
	WinsToWin = 2
	// MoveTimeout is how long a player has for each move; a player who lets it run out
	// loses the round.
	MoveTimeout = 20 * time.Second
)

// Score counts the rounds each side of a match has won, from one player's side.
type Score struct {
	You  int `json:"you"`
	Them int `json:"them"`
}

// Match is the state of one best-of-three match between players 0 and 1. It holds no
// lock: the room that owns it runs it on one goroutine.
type Match struct {
	Round int    // rounds played
	Wins  [2]int // rounds won by each player
}

// Play records a round in which player 0 showed a and player 1 showed b, and returns
// player 0's result.
func (m *Match) Play(a, b Choice) Result {
	m.Round++
	r := Judge(a, b)
	switch r {
	case Win:
		m.Wins[0]++
	case Lose:
		m.Wins[1]++
	}
	return r
}

// Over reports whether the match is decided.
func (m *Match) Over() bool {
	return m.Round >= Rounds || m.Wins[0] >= WinsToWin || m.Wins[1] >= WinsToWin
}

// Result returns player 0's result of the match (meaningful once it is Over).
func (m *Match) Result() Result {
	switch {
	case m.Wins[0] > m.Wins[1]:
		return Win
	case m.Wins[0] < m.Wins[1]:
		return Lose
	}
	return Draw
}

// Score returns the score as player i sees it.
func (m *Match) Score(i int) Score {
	return Score{You: m.Wins[i], Them: m.Wins[1-i]}
}
