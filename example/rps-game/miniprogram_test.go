package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/wsauth"
)

// nodeMatch is what miniprogram/test/run.js saw, step by step.
type nodeMatch struct {
	Steps struct {
		Welcome struct {
			Status, Nickname, Token string
			Record                  record
			Logins                  int
			Header                  map[string]string
			Online                  int
		}
		Matched struct {
			Opponent string
			Bot      bool
			Rounds   int
		}
		Match struct {
			Result, Outcome, RoundText, Status string
			Score                              []int
			History                            []struct {
				Round     int
				You, Them Choice
				Result    Result
			}
			Record record
		}
		Forfeit struct {
			Result, Outcome, Status string
			Record                  record
		}
		Dropped   struct{ View, Status string }
		Reconnect struct {
			Refused                 bool
			FirstDelay, SecondDelay int
			Logins                  int
			SameToken               bool
			Header                  map[string]string
			View                    string
		}
		Relogin struct {
			LogoutStatus, CloseCode, Logins int
			NewToken                        bool
			OldToken, Status                string
			Record                          record
		}
		Resume struct {
			DroppedView, DroppedStatus, View string
			Round, History, DroppedHistory   int
			Score, Rounds                    []int
			Lost                             []string // the types of the messages the network lost
			Recover                          string   // the reconnect's X-Hub-Recover header
			Recovered                        bool
		}
		Bot struct {
			Opponent string
			Bot      bool
			Result   Result
			Rounds   int
			Record   record
		}
		Logout struct{ Notice, Stored, Token string }
	}
}

// The mini program's own scripts (miniprogram/app.js, utils/client.js, the page), run
// by node with a stub wx whose requests and sockets are real (miniprogram/test/wx.js),
// against the real server. The mini program logs in with wx.login, connects with the
// token in an Authorization header, and plays a best-of-three match against a player
// this test plays, and a second one that player leaves (a win by forfeit); then its
// connection drops and it reconnects with backoff, it is logged out from another device
// (4001) and logs in again to the same record, it plays a bot, drops its connection in
// the middle of that match, the round's result lost on the way, and resumes it with the
// round recovered, and it logs out.
func TestMiniProgram(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Unavailable(t, "node is not installed")
	}
	// go test caches a result until a file the test opened changes; node's reads do not
	// count, so the test opens the mini program's files itself.
	walk := filepath.WalkDir("miniprogram", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			_, err = os.ReadFile(path)
		}
		return err
	})
	if walk != nil {
		t.Fatal(walk)
	}
	s := startServer(t, config{}) // bots are called on demand
	const openID = "oMini"

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// node 20 has its global WebSocket behind this flag; from node 22 it is on by default.
	cmd := exec.CommandContext(ctx, "node", "--experimental-websocket", "--no-warnings", "run.js", s.url, openID)
	cmd.Dir = filepath.Join("miniprogram", "test")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited { // Bob's side failed: stop node, and show what it said
			cancel()
			_ = cmd.Wait()
			t.Logf("node stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	}()

	// Bob, the mini program's opponent, plays rock every round and loses 0-2.
	bob := login(t, s, "oBob").dial(false)
	bob.send(clientMsg{Type: "queue"})
	m, err := bob.read()
	if err == nil && m.Type == "queued" { // Bob waits, unless the mini program queued first
		m, err = bob.read()
	}
	if err != nil || m.Type != "matched" {
		t.Fatalf("Bob: want matched; got %+v (%v)", m, err)
	}
	var them struct{ Nickname string }
	if err := json.Unmarshal(m.Opponent, &them); err != nil || them.Nickname == "" {
		t.Fatalf("matched: want the mini program's nickname; got %q (%v)", them.Nickname, err)
	}
	for range 2 {
		bob.send(clientMsg{Type: "move", Choice: "rock"})
		bob.expect("round")
	}
	if over := bob.expect("match_over"); over.Result != Lose {
		t.Errorf("Bob: want a lost match; got %+v", over)
	}
	// A second match: Bob wins round 1 (rock against the mini program's scissors), then
	// leaves, and forfeits it.
	bob.send(clientMsg{Type: "queue"})
	if m, err = bob.read(); err == nil && m.Type == "queued" {
		m, err = bob.read()
	}
	if err != nil || m.Type != "matched" {
		t.Fatalf("Bob: want the second match; got %+v (%v)", m, err)
	}
	bob.send(clientMsg{Type: "move", Choice: "rock"})
	bob.expect("round")
	bob.send(clientMsg{Type: "leave"})
	if over := bob.expect("match_over"); over.Result != Lose || !over.Forfeit || over.Record == nil || *over.Record != (record{Losses: 2}) {
		t.Errorf("Bob: want a loss by forfeit, record 0-2-0; got %+v (record %v)", over, over.Record)
	}

	err = cmd.Wait()
	exited = true
	var got nodeMatch
	if jerr := json.Unmarshal(stdout.Bytes(), &got); err != nil || jerr != nil {
		t.Fatalf("node: %v %v\nstdout:\n%s\nstderr:\n%s", err, jerr, stdout.String(), stderr.String())
	}
	st := got.Steps

	w := st.Welcome
	if w.Logins != 1 || w.Token == "" || w.Nickname != them.Nickname || w.Record != (record{}) || !strings.HasPrefix(w.Status, "Hi ") {
		t.Errorf("welcome: want one wx.login, a stored token, Bob's opponent's nickname and 0-0-0; got %+v", w)
	}
	if w.Online < 1 {
		t.Errorf("welcome: want the lobby to count at least this player online; got %d", w.Online)
	}
	if want := "Bearer " + w.Token; w.Header["Authorization"] != want {
		t.Errorf("connectSocket: want the header Authorization: %s; got %v", want, w.Header)
	}

	if m := st.Matched; m.Opponent == "" || m.Bot || m.Rounds != 3 {
		t.Errorf("matched: want a person, 3 rounds; got %+v", m)
	}
	mt := st.Match
	if mt.Result != "win" || mt.Outcome != "You win the match 2–0!" || len(mt.Score) != 2 || mt.Score[0] != 2 || mt.Score[1] != 0 {
		t.Errorf("match: want a 2-0 win; got %+v", mt)
	}
	if len(mt.History) != 2 || mt.History[1].You != Paper || mt.History[1].Them != Rock || mt.History[1].Result != Win {
		t.Errorf("match: want two rounds of paper against rock; got %+v", mt.History)
	}
	if !strings.Contains(mt.RoundText, "paper covers rock") || mt.Record != (record{Wins: 1}) {
		t.Errorf("match: want the last round told and the record 1-0-0; got %q, %+v", mt.RoundText, mt.Record)
	}

	if f := st.Forfeit; f.Result != "win" || !strings.Contains(f.Outcome, "you win by forfeit") || f.Record != (record{Wins: 2}) {
		t.Errorf("forfeit: want a win by forfeit, said so, and the record 2-0-0; got %+v", f)
	}

	if d := st.Dropped; d.View != "connecting" || !strings.Contains(d.Status, "Connection lost") {
		t.Errorf("dropped: want the page to say the connection is lost; got %+v", d)
	}
	rc := st.Reconnect
	// Backoff: about 1 s (0.8-1 s with jitter) after the drop, then about 2 s.
	if !rc.Refused || rc.FirstDelay < 700 || rc.SecondDelay < 1500 || rc.SecondDelay <= rc.FirstDelay {
		t.Errorf("reconnect: want a growing delay, about 1 s then 2 s; got %d ms, %d ms", rc.FirstDelay, rc.SecondDelay)
	}
	if rc.Logins != 1 || !rc.SameToken || rc.Header["Authorization"] != "Bearer "+w.Token || rc.View == "connecting" {
		t.Errorf("reconnect: want the same token, no new login, and connected; got %+v", rc)
	}

	rl := st.Relogin
	if rl.LogoutStatus/100 != 2 || rl.CloseCode != 4001 || rl.Logins != 2 || !rl.NewToken || rl.Record != (record{Wins: 2}) {
		t.Errorf("relogin: want close 4001, a second wx.login, a new token and the record kept; got %+v", rl)
	}
	if want := "You were logged out on another device, and have logged in again. Pick an opponent."; rl.Status != want {
		t.Errorf("relogin: want the status %q; got %q", want, rl.Status)
	}

	rs := st.Resume
	if rs.DroppedView != "match" || !strings.Contains(rs.DroppedStatus, "your match waits") {
		t.Errorf("a drop in the bot match: want the match kept on screen, waiting; got %+v", rs)
	}
	if rs.DroppedHistory != 0 || !slices.Contains(rs.Lost, "round") {
		t.Errorf("a drop in the bot match: want round 1's result lost on the way; got %+v", rs)
	}
	if rs.View != "match" || rs.Round != 2 || !slices.Equal(rs.Rounds, []int{1}) || len(rs.Score) != 2 || rs.Score[0]+rs.Score[1] > 1 {
		t.Errorf("resumed: want the match in round 2, with round 1 recovered once; got %+v", rs)
	}
	if st, err := wsauth.ParseRecover([]byte(rs.Recover)); err != nil || len(st.Pos) == 0 || !rs.Recovered {
		t.Errorf("resumed: want the reconnect to send its recovery state and recover; got %q (%v), recovered %v", rs.Recover, err, rs.Recovered)
	}

	b := st.Bot
	if !b.Bot || b.Opponent == "" || b.Rounds < 2 || b.Rounds > 3 {
		t.Errorf("bot: want a match of 2 or 3 rounds against a bot; got %+v", b)
	}
	want := record{Wins: 2}
	switch b.Result {
	case Win:
		want.Wins++
	case Lose:
		want.Losses++
	case Draw:
		want.Draws++
	default:
		t.Errorf("bot: want a result; got %q", b.Result)
	}
	if b.Record != want {
		t.Errorf("bot: want the record %+v; got %+v", want, b.Record)
	}

	lo := st.Logout
	if lo.Stored != "" || lo.Notice != "You logged out." {
		t.Errorf("logout: want no stored token and the notice; got %+v", lo)
	}
	// Both tokens the mini program held are dead on the server; its record is in the
	// database.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	for _, tok := range []string{rl.OldToken, lo.Token} {
		u := &user{t: t, base: s.url, token: tok, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
		u.do("GET", "/api/me", nil, http.StatusUnauthorized, nil)
	}
	if me := login(t, s, openID).me(); me.record != want {
		t.Errorf("after logging in again: want the record %+v; got %+v", want, me.record)
	}
}
