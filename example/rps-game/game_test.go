package main

import (
	"fmt"
	"testing"
)

func TestJudge(t *testing.T) {
	tests := []struct {
		a, b Choice
		want Result
	}{
		{Rock, Scissors, Win},
		{Rock, Paper, Lose},
		{Rock, Rock, Draw},
		{Paper, Rock, Win},
		{Paper, Scissors, Lose},
		{Paper, Paper, Draw},
		{Scissors, Paper, Win},
		{Scissors, Rock, Lose},
		{Scissors, Scissors, Draw},
		// A move beats a timed-out one; two timeouts draw.
		{Rock, "", Win},
		{"", Paper, Lose},
		{"", "", Draw},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%s", tt.a, tt.b), func(t *testing.T) {
			if got := Judge(tt.a, tt.b); got != tt.want {
				t.Errorf("Judge(%q, %q): want %s; got %s", tt.a, tt.b, tt.want, got)
			}
			if got := Judge(tt.b, tt.a); got != tt.want.Flip() {
				t.Errorf("Judge(%q, %q): want %s; got %s", tt.b, tt.a, tt.want.Flip(), got)
			}
		})
	}
}

func TestParseChoice(t *testing.T) {
	for _, c := range Choices {
		if got, err := ParseChoice(string(c)); got != c || err != nil {
			t.Errorf("ParseChoice(%q): want %q, nil; got %q, %v", c, c, got, err)
		}
	}
	for _, s := range []string{"", "Rock", "lizard", "spock"} {
		if _, err := ParseChoice(s); err == nil {
			t.Errorf("ParseChoice(%q): want an error", s)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name   string
		rounds [][2]Choice // player 0, player 1
		played int         // rounds played before the match is over
		want   Result      // player 0's result
		score  Score       // player 0's view
	}{
		{"two straight wins", [][2]Choice{{Rock, Scissors}, {Paper, Rock}}, 2, Win, Score{2, 0}},
		{"two straight losses", [][2]Choice{{Rock, Paper}, {Paper, Scissors}}, 2, Lose, Score{0, 2}},
		{"won in the third", [][2]Choice{{Rock, Paper}, {Paper, Rock}, {Scissors, Paper}}, 3, Win, Score{2, 1}},
		{"one each and a draw", [][2]Choice{{Rock, Rock}, {Paper, Rock}, {Scissors, Rock}}, 3, Draw, Score{1, 1}},
		{"one win and two draws", [][2]Choice{{Rock, Rock}, {Paper, Paper}, {Scissors, Paper}}, 3, Win, Score{1, 0}},
		{"three draws", [][2]Choice{{Rock, Rock}, {Paper, Paper}, {Scissors, Scissors}}, 3, Draw, Score{0, 0}},
		{"timeouts lose rounds", [][2]Choice{{"", Rock}, {"", ""}, {Paper, ""}}, 3, Draw, Score{1, 1}},
		{"no moves at all", [][2]Choice{{"", ""}, {"", ""}, {"", ""}}, 3, Draw, Score{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Match
			for _, r := range tt.rounds {
				if m.Over() {
					t.Fatalf("over after %d rounds; want %d", m.Round, tt.played)
				}
				m.Play(r[0], r[1])
			}
			if !m.Over() || m.Round != tt.played {
				t.Fatalf("want over after %d rounds; got over=%v after %d", tt.played, m.Over(), m.Round)
			}
			if got := m.Result(); got != tt.want {
				t.Errorf("want %s; got %s", tt.want, got)
			}
			if got := m.Score(0); got != tt.score {
				t.Errorf("score: want %+v; got %+v", tt.score, got)
			}
			if got, want := m.Score(1), (Score{tt.score.Them, tt.score.You}); got != want {
				t.Errorf("other side's score: want %+v; got %+v", want, got)
			}
		})
	}
}
