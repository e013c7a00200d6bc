package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/mpsession/mpsession/wsauth"
)

// pair logs alice and bob in, connects them (alice the browser way, bob the mini-program
// way) and has them matched.
func pair(t *testing.T, s *server) (alice, bob *user, a, b *client) {
	t.Helper()
	alice, bob = login(t, s, "o-alice"), login(t, s, "o-bob")
	alice.do("POST", "/api/nickname", map[string]string{"nickname": "Alice"}, http.StatusOK, nil)
	a, b = alice.dial(true), bob.dial(false)
	a.send(clientMsg{Type: "queue"})
	a.expect("queued")
	b.send(clientMsg{Type: "queue"})
	if m := b.expect("matched"); !strings.Contains(string(m.Opponent), `"nickname":"Alice"`) || m.Rounds != Rounds {
		t.Errorf("bob's matched: want Alice, %d rounds; got %s, %d", Rounds, m.Opponent, m.Rounds)
	}
	a.expect("matched")
	return alice, bob, a, b
}

// playRound has both clients move and checks the round's results on both sides.
func playRound(t *testing.T, n int, a, b *client, ca, cb Choice) (ma, mb msg) {
	t.Helper()
	a.send(clientMsg{Type: "move", Choice: string(ca)})
	b.send(clientMsg{Type: "move", Choice: string(cb)})
	ma, mb = a.expect("round"), b.expect("round")
	want := Judge(ca, cb)
	if ma.Round != n || *ma.You != ca || *ma.Them != cb || ma.Result != want {
		t.Errorf("alice's round %d: want %s vs %s: %s; got %+v", n, ca, cb, want, ma)
	}
	if mb.Round != n || *mb.You != cb || *mb.Them != ca || mb.Result != want.Flip() {
		t.Errorf("bob's round %d: want %s vs %s: %s; got %+v", n, cb, ca, want.Flip(), mb)
	}
	return ma, mb
}

func TestMatchEndToEnd(t *testing.T) {
	s := startServer(t, config{})
	alice, bob, a, b := pair(t, s)

	// Match 1: alice wins 2-0.
	playRound(t, 1, a, b, Rock, Scissors)
	ma, _ := playRound(t, 2, a, b, Paper, Rock)
	if *ma.Score != (Score{2, 0}) {
		t.Errorf("alice's score: want 2-0; got %+v", *ma.Score)
	}
	oa, ob := a.expect("match_over"), b.expect("match_over")
	if oa.Result != Win || *oa.Record != (record{Wins: 1}) {
		t.Errorf("alice: want a win, record 1-0-0; got %s, %+v", oa.Result, oa.Record)
	}
	if ob.Result != Lose || *ob.Record != (record{Losses: 1}) {
		t.Errorf("bob: want a loss, record 0-1-0; got %s, %+v", ob.Result, ob.Record)
	}

	// Match 2: one round each and a draw, so a drawn match; bob queues first this time.
	b.send(clientMsg{Type: "queue"})
	b.expect("queued")
	a.send(clientMsg{Type: "queue"})
	a.expect("matched")
	b.expect("matched")
	playRound(t, 1, a, b, Rock, Rock)
	playRound(t, 2, a, b, Scissors, Paper)
	playRound(t, 3, a, b, Scissors, Rock)
	if oa, ob := a.expect("match_over"), b.expect("match_over"); oa.Result != Draw || ob.Result != Draw {
		t.Errorf("want a draw for both; got %s and %s", oa.Result, ob.Result)
	}

	// The sockets wrote the results into the sessions; HTTP reads them at once.
	if got, want := alice.me(), (meReply{"o-alice", "Alice", record{Wins: 1, Draws: 1}}); got != want {
		t.Errorf("alice's /api/me: want %+v; got %+v", want, got)
	}
	if got, want := bob.me(), (meReply{"o-bob", "玩家o-bob", record{Losses: 1, Draws: 1}}); got != want {
		t.Errorf("bob's /api/me: want %+v; got %+v", want, got)
	}
}

// The move timer forfeits the round of a player who does not move.
func TestMoveTimeout(t *testing.T) {
	s := startServer(t, config{MoveTimeout: 300 * time.Millisecond})
	_, bob, a, b := pair(t, s)
	for n := 1; n <= 2; n++ {
		a.send(clientMsg{Type: "move", Choice: "rock"})
		if m := a.expect("round"); m.Round != n || m.Result != Win || *m.Them != "" {
			t.Errorf("round %d: want a win against no move; got %+v", n, m)
		}
		if m := b.expect("round"); m.Result != Lose || *m.You != "" {
			t.Errorf("round %d: want a loss without a move; got %+v", n, m)
		}
	}
	a.expect("match_over")
	if m := b.expect("match_over"); m.Result != Lose {
		t.Errorf("want a lost match; got %+v", m)
	}
	if got := bob.me().record; got != (record{Losses: 1}) {
		t.Errorf("bob's record: want 0-1-0; got %+v", got)
	}
}

// A logout (over HTTP, as from another tab) during a match closes that player's socket
// with wsauth.CloseLoggedOut, and forfeits the match: a loss for the player who logged
// out, a win for the opponent, who is told (opponent_left, forfeit) with the new record.
// The loss is in the database, where the next login finds it.
func TestLogoutDuringMatch(t *testing.T) {
	s := startServer(t, config{})
	alice, bob, a, b := pair(t, s)
	playRound(t, 1, a, b, Rock, Scissors) // alice leads 1-0, and still loses the match

	alice.do("POST", "/logout", nil, http.StatusNoContent, nil)
	if code := a.expectClose(); code != wsauth.CloseLoggedOut {
		t.Errorf("alice's socket: want close code %d; got %d", wsauth.CloseLoggedOut, code)
	}
	m := b.expect("opponent_left")
	if m.Reason != "logged_out" || !m.Forfeit || m.Result != Win || m.Record == nil || *m.Record != (record{Wins: 1}) ||
		m.Score == nil || *m.Score != (Score{0, 1}) {
		t.Errorf("bob: want opponent_left for logged_out, a win by forfeit at 0-1, record 1-0-0; got %+v (record %v)", m, m.Record)
	}
	alice.do("GET", "/api/me", nil, http.StatusUnauthorized, nil)
	if got := bob.me().record; got != (record{Wins: 1}) {
		t.Errorf("bob's session: want 1-0-0; got %+v", got)
	}
	if got := recordIn(t, s, "o-alice"); got != (record{Losses: 1}) {
		t.Errorf("alice in the database: want 0-1-0; got %+v", got)
	}
	if got := recordIn(t, s, "o-bob"); got != (record{Wins: 1}) {
		t.Errorf("bob in the database: want 1-0-0; got %+v", got)
	}
	// Bob is out of the room and may play again.
	b.send(clientMsg{Type: "move", Choice: "rock"})
	if m := b.expect("error"); !strings.Contains(m.Message, "not in a match") {
		t.Errorf("want not in a match; got %q", m.Message)
	}
	b.send(clientMsg{Type: "queue"})
	b.expect("queued")
	// Alice's next login starts from the database's record, the loss included.
	if got := login(t, s, "o-alice").me().record; got != (record{Losses: 1}) {
		t.Errorf("alice logged in again: want 0-1-0; got %+v", got)
	}
}

// A player who sends leave during a match forfeits it: their socket gets match_over
// (a loss, forfeit) with the new record, the opponent opponent_left (a win, forfeit),
// and both sessions and the database count it, once. A leave sent "from" the queue
// (the client had not seen matched yet) does not forfeit a match.
func TestLeaveDuringMatch(t *testing.T) {
	s := startServer(t, config{})
	alice, bob, a, b := pair(t, s)
	// A leave meant for the queue (it crossed matched) leaves the match alone.
	b.send(clientMsg{Type: "leave", From: "queue"})
	if m := b.expect("error"); m.Message != "your match has started" {
		t.Errorf("bob's leave from the queue in a match: want told the match has started; got %+v", m)
	}
	playRound(t, 1, a, b, Rock, Scissors)
	b.send(clientMsg{Type: "move", Choice: "paper"}) // a move in, then bob leaves

	b.send(clientMsg{Type: "leave"})
	if m := b.expect("match_over"); !m.Forfeit || m.Reason != "left" || m.Result != Lose || m.Record == nil || *m.Record != (record{Losses: 1}) {
		t.Errorf("bob: want match_over, a loss by forfeit, record 0-1-0; got %+v (record %v)", m, m.Record)
	}
	if m := a.expect("opponent_left"); !m.Forfeit || m.Reason != "left" || m.Result != Win || m.Record == nil || *m.Record != (record{Wins: 1}) {
		t.Errorf("alice: want opponent_left, a win by forfeit, record 1-0-0; got %+v (record %v)", m, m.Record)
	}
	if got := alice.me().record; got != (record{Wins: 1}) {
		t.Errorf("alice's session: want 1-0-0; got %+v", got)
	}
	if got := bob.me().record; got != (record{Losses: 1}) {
		t.Errorf("bob's session: want 0-1-0; got %+v", got)
	}
	if got := recordIn(t, s, "o-alice"); got != (record{Wins: 1}) {
		t.Errorf("alice in the database: want 1-0-0; got %+v", got)
	}
	if got := recordIn(t, s, "o-bob"); got != (record{Losses: 1}) {
		t.Errorf("bob in the database: want 0-1-0; got %+v", got)
	}
	// Both are in the lobby; leaving the queue is answered, and they play again.
	a.send(clientMsg{Type: "queue"})
	a.expect("queued")
	a.send(clientMsg{Type: "leave", From: "queue"})
	a.expect("left")
	a.send(clientMsg{Type: "queue"})
	a.expect("queued")
	b.send(clientMsg{Type: "queue"})
	a.expect("matched")
	b.expect("matched")
	playRound(t, 1, a, b, Rock, Scissors)
	playRound(t, 2, a, b, Rock, Scissors)
	if m := a.expect("match_over"); m.Forfeit || *m.Record != (record{Wins: 2}) {
		t.Errorf("alice's second match: want 2-0-0, no forfeit; got %+v (record %v)", m, m.Record)
	}
	b.expect("match_over")
}

// One user, two tabs (one session, two sockets), two matches at once, and HTTP writes
// to the same session meanwhile: every result is counted, exactly once.
func TestTwoTabsOneSession(t *testing.T) {
	s := startServer(t, config{})
	alice, bob, carol := login(t, s, "o-alice"), login(t, s, "o-bob"), login(t, s, "o-carol")
	a1, a2 := alice.dial(true), alice.dial(true)
	a1.send(clientMsg{Type: "queue"})
	a1.expect("queued")
	a2.send(clientMsg{Type: "queue"}) // never matched with a1: the same user
	a2.expect("queued")
	b, c := bob.dial(false), carol.dial(false)
	b.send(clientMsg{Type: "queue"})
	b.expect("matched")
	a1.expect("matched")
	c.send(clientMsg{Type: "queue"})
	c.expect("matched")
	a2.expect("matched")

	var renames, matches sync.WaitGroup
	stop := make(chan struct{})
	renames.Add(1)
	go func() { // renames, all the while
		defer renames.Done()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("POST", s.url+"/api/nickname", strings.NewReader(fmt.Sprintf(`{"nickname":"Alice %d"}`, i)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+alice.token)
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	results := make(chan Result, 2)
	for _, p := range [][2]*client{{a1, b}, {a2, c}} {
		matches.Add(1)
		go func(a, o *client) {
			defer matches.Done()
			for _, r := range [][2]Choice{{Rock, Scissors}, {Rock, Rock}, {Paper, Scissors}} {
				_ = a.conn.WriteJSON(clientMsg{Type: "move", Choice: string(r[0])})
				_ = o.conn.WriteJSON(clientMsg{Type: "move", Choice: string(r[1])})
				ma, err1 := a.read()
				mo, err2 := o.read()
				if err1 != nil || err2 != nil || ma.Type != "round" || mo.Type != "round" {
					t.Errorf("want rounds; got %+v %v, %+v %v", ma, err1, mo, err2)
					return
				}
			}
			m, err := a.read()
			if err != nil || m.Type != "match_over" {
				t.Errorf("want match_over; got %+v, %v", m, err)
				return
			}
			results <- m.Result
			_, _ = o.read()
		}(p[0], p[1])
	}
	matches.Wait()
	close(stop)
	renames.Wait()
	close(results)
	var want record
	for r := range results {
		switch r {
		case Win:
			want.Wins++
		case Lose:
			want.Losses++
		case Draw:
			want.Draws++
		}
	}
	if want.Wins+want.Losses+want.Draws != 2 {
		t.Fatalf("want two matches played; got %+v", want)
	}
	if got := alice.me().record; got != want {
		t.Errorf("alice's record: want %+v; got %+v", want, got)
	}
}

// Bots are real clients: two of them log in, connect and play each other, match after
// match, and each match lands in both bots' sessions.
func TestBots(t *testing.T) {
	s := startServer(t, config{Bots: 2})
	eventually(t, 30*time.Second, "two matches between the bots", func() bool {
		return len(s.bots.played("bot-1")) >= 2 && len(s.bots.played("bot-2")) >= 2
	})
	r1, r2 := s.bots.played("bot-1"), s.bots.played("bot-2")
	for i := range min(len(r1), len(r2)) { // they only ever play each other
		if r1[i] != r2[i].Flip() {
			t.Errorf("match %d: bot-1 %s, bot-2 %s", i+1, r1[i], r2[i])
		}
	}
}

// "Play a bot" with no bot running calls a guest bot, which plays one match.
func TestPlayBot(t *testing.T) {
	s := startServer(t, config{})
	alice := login(t, s, "o-alice")
	a := alice.dial(true)
	a.send(clientMsg{Type: "queue", Opponent: "bot"})
	if m := a.expect("queued"); string(m.Opponent) != `"bot"` {
		t.Errorf("want queued for a bot; got %s", m.Opponent)
	}
	var opp peer
	if m := a.expect("matched"); json.Unmarshal(m.Opponent, &opp) != nil || !opp.Bot {
		t.Errorf("want a bot; got %s", m.Opponent)
	}
	for {
		a.send(clientMsg{Type: "move", Choice: "paper"})
		m := a.expect("round")
		if state := (Match{Round: m.Round, Wins: [2]int{m.Score.You, m.Score.Them}}); state.Over() {
			break
		}
	}
	m := a.expect("match_over")
	if got := alice.me().record; got != *m.Record || got.Wins+got.Losses+got.Draws != 1 {
		t.Errorf("want one match in alice's record, as match_over said (%+v); got %+v", m.Record, got)
	}
}

// The socket refuses what wsauth refuses: no session, a foreign origin.
func TestSocketRefused(t *testing.T) {
	s := startServer(t, config{})
	alice := login(t, s, "o-alice")
	ws := "ws" + strings.TrimPrefix(s.url, "http") + "/ws"
	tests := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"no credentials", nil, http.StatusUnauthorized},
		{"unknown token", http.Header{"Authorization": {"Bearer " + strings.Repeat("A", len(alice.token))}}, http.StatusUnauthorized},
		{"foreign origin", http.Header{"Origin": {"https://evil.example"}, "Sec-WebSocket-Protocol": {"mpsession, " + alice.token}}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, resp, err := websocket.DefaultDialer.Dial(ws, tt.header)
			if err == nil {
				conn.Close()
				t.Fatal("want the upgrade refused")
			}
			if resp == nil || resp.StatusCode != tt.want {
				t.Errorf("want status %d; got %v (%v)", tt.want, resp, err)
			}
		})
	}
}

// Codes from /wxtest/code log in the user they were asked for, however many the same
// connection asks for before using them (the fake is mounted through Fiber's adaptor,
// whose request strings point into buffers the next request reuses).
func TestDevCodes(t *testing.T) {
	s := startServer(t, config{})
	u := &user{t: t, base: s.url, http: &http.Client{Transport: &http.Transport{}}}
	defer u.http.CloseIdleConnections()
	codes := map[string]string{}
	for _, id := range []string{"o-alice", "o-bob", "o-carol"} {
		var c struct{ Code string }
		u.do("GET", "/wxtest/code?openid="+id, nil, http.StatusOK, &c)
		codes[id] = c.Code
	}
	for id, code := range codes {
		var l struct{ OpenID string }
		u.do("POST", "/login", map[string]string{"code": code}, http.StatusOK, &l)
		if l.OpenID != id {
			t.Errorf("%s's code logged in %s", id, l.OpenID)
		}
	}
}

// TestLoginLimitAndMetrics: logins past the per-IP limit get 429 before any WeChat
// call, and /metrics counts the logins for Prometheus.
func TestLoginLimitAndMetrics(t *testing.T) {
	s := startServer(t, config{LoginLimit: 2})
	login(t, s, "o-limit-1")
	login(t, s, "o-limit-2")
	u := &user{t: t, base: s.url, http: &http.Client{Timeout: 10 * time.Second}}
	var refused struct{ Error string }
	u.do("POST", "/login", map[string]string{"code": "any"}, http.StatusTooManyRequests, &refused)
	if refused.Error != "ERR_TOO_MANY_LOGINS" {
		t.Errorf("want ERR_TOO_MANY_LOGINS; got %q", refused.Error)
	}
	resp, err := u.http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := `mpsession_logins_total{outcome="ok"} 2`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics: want %q in\n%s", want, body)
	}
}

// A forfeit against a bot counts in a bots run like any match: the bot's session gets
// the win, and the run's check (one result in a bot's session per bot seat) holds.
func TestForfeitInBotsRun(t *testing.T) {
	s := startServer(t, config{Bots: 1})
	alice := login(t, s, "o-alice")
	a := alice.dial(false)
	a.send(clientMsg{Type: "queue"})
	var opp peer
	if m := a.expect("matched", "queued"); json.Unmarshal(m.Opponent, &opp) != nil || !opp.Bot { // the bot queued first, or after alice
		t.Fatalf("want the bot as the opponent; got %s", m.Opponent)
	}
	a.send(clientMsg{Type: "move", Choice: "rock"})
	a.expect("round")
	a.send(clientMsg{Type: "leave"})
	if m := a.expect("match_over"); !m.Forfeit || m.Result != Lose || m.Record == nil || *m.Record != (record{Losses: 1}) {
		t.Errorf("alice: want a loss by forfeit, record 0-1-0; got %+v (record %v)", m, m.Record)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.bots.finish(ctx); err != nil {
		t.Fatal(err)
	}
	s.bots.mu.Lock()
	records := s.bots.records
	s.bots.mu.Unlock()
	if seats := s.hosted.seats.Load(); records != 1 || seats != 1 {
		t.Errorf("want the forfeit once in the bot's record and once in the tally; got %d results, %d bot seats", records, seats)
	}
	if err := check([]tally{{Seats: s.hosted.seats.Load(), Records: records}}); err != nil {
		t.Error(err)
	}
}

// "Stop waiting" ({"type":"leave","from":"queue"}) racing the start of a match: left
// first, the match is declined (the opponent is queued again, or, if it had started,
// told opponent_left "declined"); the start first, the leave is refused and the match
// is played. Whichever wins, nobody forfeits a match they were not shown, and the
// database counts exactly the matches played.
func TestStopWaitingRacesMatchStart(t *testing.T) {
	t.Run("one instance", func(t *testing.T) {
		s := startServer(t, config{})
		stopWaitingRace(t, s, s)
	})
	t.Run("two instances", func(t *testing.T) { // the match's messages cross Redis: a wider window
		a, b := twoInstances(t, config{})
		stopWaitingRace(t, a, b)
	})
}

func stopWaitingRace(t *testing.T, s, other *server) {
	t.Helper()
	alice, bob := login(t, s, "o-alice"), login(t, other, "o-bob")
	a, b := alice.dial(false), bob.dial(false)
	var played, declined, left int
	for i := range 40 {
		a.send(clientMsg{Type: "queue"})
		a.expect("queued")
		b.send(clientMsg{Type: "queue"})
		// Not a synchronisation: a sweep of the gap, 0 to 4 ms, so that the leave lands
		// before, during and after the pairing and the offer. Every order is checked.
		time.Sleep(time.Duration(i) * 100 * time.Microsecond)
		a.send(clientMsg{Type: "leave", From: "queue"})
		ma, err := a.read()
		if err != nil || ma.Type != "left" && ma.Type != "matched" {
			t.Fatalf("alice: want left or matched; got %+v (%v)", ma, err)
		}
		mb, err := b.read()
		if err != nil || mb.Type != "queued" && mb.Type != "matched" {
			t.Fatalf("bob: want queued or matched; got %+v (%v)", mb, err)
		}
		switch {
		case ma.Type == "matched": // the match had started: it is played
			if m := a.expect("error"); m.Message != "your match has started" {
				t.Fatalf("alice: want her leave refused; got %+v", m)
			}
			if mb.Type != "matched" {
				t.Fatalf("bob: want matched; got %+v", mb)
			}
			if oa, _ := playRounds(t, a, b, [][2]Choice{{Rock, Scissors}, {Rock, Scissors}}); oa.Forfeit || oa.Result != Win {
				t.Fatalf("alice: want a win, played; got %+v", oa)
			}
			played++
		case mb.Type == "matched": // started as alice left: declined
			if m := b.expect("opponent_left"); m.Reason != "declined" || m.Forfeit || m.Record != nil {
				t.Fatalf("bob: want opponent_left declined, nothing counted; got %+v", m)
			}
			declined++
		default: // bob waits alone
			b.send(clientMsg{Type: "leave", From: "queue"})
			b.expect("left")
			left++
		}
	}
	t.Logf("played %d, declined at the start %d, left before the pairing or the start %d", played, declined, left)
	want := [2]record{{Wins: int64(played)}, {Losses: int64(played)}}
	for i, u := range []*user{alice, bob} {
		if got := u.me().record; got != want[i] {
			t.Errorf("%s's session: want %+v; got %+v", u.openID, want[i], got)
		}
		if played == 0 {
			continue // no row yet
		}
		if got := recordIn(t, s, u.openID); got != want[i] {
			t.Errorf("%s in the database: want %+v; got %+v", u.openID, want[i], got)
		}
	}
}

// TestFavicon: /favicon.ico, which browsers ask for whatever the page links, leads to
// the icon.
func TestFavicon(t *testing.T) {
	s := startServer(t, config{})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(s.url + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/favicon.svg" {
		t.Fatalf("/favicon.ico: want 301 to /favicon.svg; got %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = http.Get(s.url + "/favicon.svg")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "image/svg+xml") {
		t.Fatalf("/favicon.svg: want 200 image/svg+xml; got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// With -proxies, the login limit counts the client that a trusted proxy's X-Real-IP
// names; without it, X-Real-IP is anyone's to send, and ignored.
func TestLoginLimitBehindProxy(t *testing.T) {
	logins := func(s *server, ips ...string) []int {
		var codes []int
		for i, ip := range ips {
			var code struct{ Code string }
			u := &user{t: t, base: s.url, http: &http.Client{Timeout: 10 * time.Second}}
			u.do("GET", fmt.Sprintf("/wxtest/code?openid=o-proxied-%d", i), nil, http.StatusOK, &code)
			req, _ := http.NewRequest("POST", s.url+"/login", strings.NewReader(`{"code":"`+code.Code+`"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Real-IP", ip)
			resp, err := u.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			codes = append(codes, resp.StatusCode)
		}
		return codes
	}
	behind := startServer(t, config{LoginLimit: 2, Proxies: []string{"127.0.0.1"}})
	if got := logins(behind, "203.0.113.1", "203.0.113.1", "203.0.113.1", "203.0.113.2"); !slices.Equal(got, []int{200, 200, 429, 200}) {
		t.Errorf("behind a trusted proxy: want two logins per client, then 429; got %v", got)
	}
	open := startServer(t, config{LoginLimit: 2})
	if got := logins(open, "203.0.113.1", "203.0.113.2", "203.0.113.3"); !slices.Equal(got, []int{200, 200, 429}) {
		t.Errorf("no trusted proxy: want X-Real-IP ignored; got %v", got)
	}
}
