package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
)

// backends runs test on each database the records can live in: a SQLite file of the
// test's own, and a table of its own in the MariaDB at MPSESSION_MYSQL_DSN (by default
// the one CI starts). cfg names the database; every server and records given it share
// the same data.
func backends(t *testing.T, test func(t *testing.T, cfg config)) {
	t.Run("sqlite", func(t *testing.T) {
		test(t, config{DB: filepath.Join(t.TempDir(), "rps.db")})
	})
	t.Run("mariadb", func(t *testing.T) {
		dsn := mysqlDSN(t)
		test(t, config{MySQL: dsn, Table: mysqlTable(t, dsn)})
	})
}

// mysqlDSN returns the DSN of the test MariaDB, which fails the test in CI when it is
// not reachable and skips it elsewhere.
func mysqlDSN(t *testing.T) string {
	t.Helper()
	db, dsn := testenv.MySQL(t)
	_ = db.Close()
	return dsn
}

// mysqlTable names a table for this test alone, dropped when it ends, so tests that
// share the database do not see each other's players.
func mysqlTable(t *testing.T, dsn string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	table := "rps_players_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP TABLE IF EXISTS " + table); err != nil {
			t.Errorf("drop %s: %v", table, err)
		}
	})
	return table
}

// openTestRecords opens the records cfg names, as start does.
func openTestRecords(t *testing.T, cfg config) *records {
	t.Helper()
	driver, dsn := "sqlite", cfg.DB
	if cfg.MySQL != "" {
		driver, dsn = "mysql", cfg.MySQL
	}
	r, err := openRecords(context.Background(), driver, dsn, cfg.Table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.close() })
	return r
}

// playMatch has the paired clients play a match alice wins 2-0.
func playMatch(t *testing.T, a, b *client) {
	t.Helper()
	playRound(t, 1, a, b, Rock, Scissors)
	playRound(t, 2, a, b, Paper, Rock)
	if m := a.expect("match_over"); m.Result != Win {
		t.Errorf("alice: want a win; got %+v", m)
	}
	b.expect("match_over")
}

// Logging in again starts a new session with the record the database keeps, and so does
// a restart of the server, whose sessions were in memory.
func TestRecordSurvivesLoginAndRestart(t *testing.T) {
	backends(t, func(t *testing.T, cfg config) {
		s := startServer(t, cfg)
		alice, bob, a, b := pair(t, s)
		playMatch(t, a, b)

		again := login(t, s, "o-alice")
		if again.token == alice.token {
			t.Fatal("want a new session for the new login")
		}
		if got, want := again.me(), (meReply{"o-alice", "Alice", record{Wins: 1}}); got != want {
			t.Errorf("alice logged in again: want %+v; got %+v", want, got)
		}
		bob.do("POST", "/api/nickname", map[string]string{"nickname": "Bob 🎲"}, http.StatusOK, nil)

		// The server closes the sockets (1001) and waits for the clients to answer.
		closed := make(chan struct{})
		go func() { s.close(); close(closed) }()
		for _, c := range []*client{a, b} {
			if code := c.expectClose(); code != 1001 {
				t.Errorf("want close code 1001 at shutdown; got %d", code)
			}
		}
		<-closed
		s = startServer(t, cfg)
		alice, bob = login(t, s, "o-alice"), login(t, s, "o-bob")
		if got, want := alice.me(), (meReply{"o-alice", "Alice", record{Wins: 1}}); got != want {
			t.Errorf("alice after a restart: want %+v; got %+v", want, got)
		}
		if got, want := bob.me(), (meReply{"o-bob", "Bob 🎲", record{Losses: 1}}); got != want {
			t.Errorf("bob after a restart: want %+v; got %+v", want, got)
		}
		// A second match adds to the record the database kept, in the database and in
		// the sessions alike.
		a, b = alice.dial(true), bob.dial(false)
		a.send(clientMsg{Type: "queue"})
		a.expect("queued")
		b.send(clientMsg{Type: "queue"})
		a.expect("matched")
		b.expect("matched")
		playRound(t, 1, a, b, Rock, Scissors)
		playRound(t, 2, a, b, Paper, Rock)
		if m := a.expect("match_over"); *m.Record != (record{Wins: 2}) {
			t.Errorf("alice's second match_over: want record 2-0-0; got %+v", m.Record)
		}
		if m := b.expect("match_over"); *m.Record != (record{Losses: 2}) {
			t.Errorf("bob's second match_over: want record 0-2-0; got %+v", m.Record)
		}
		st, err := s.lobby.records.get(context.Background(), "o-alice")
		if want := (standing{Nickname: "Alice", Wins: 2, Streak: 2, BestStreak: 2}); err != nil || st != want {
			t.Errorf("alice in the database: want %+v; got %+v, %v", want, st, err)
		}
	})
}

// Matches one player finishes at the same moment all count, and the streaks follow the
// order of the results.
func TestRecordsConcurrentResults(t *testing.T) {
	backends(t, func(t *testing.T, cfg config) {
		r := openTestRecords(t, cfg)
		ctx := context.Background()
		const wins, losses, draws = 40, 20, 10
		var wg sync.WaitGroup
		for i := range wins + losses + draws {
			res := Win
			switch {
			case i >= wins+losses:
				res = Draw
			case i >= wins:
				res = Lose
			}
			wg.Go(func() {
				// Half the matches seat the player first, half second: the rows are
				// locked in one order all the same.
				outs := []outcome{{OpenID: "o-many", Nickname: "Many", Result: res}, {OpenID: fmt.Sprintf("o-opp%02d", i), Nickname: "Opp", Result: res.Flip()}}
				if i%2 == 1 {
					outs[0], outs[1] = outs[1], outs[0]
				}
				if _, err := r.played(ctx, outs...); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		st, err := r.get(ctx, "o-many")
		if err != nil {
			t.Fatal(err)
		}
		if st.Wins != wins || st.Losses != losses || st.Draws != draws || st.BestStreak < 1 || st.BestStreak > wins {
			t.Errorf("want %d-%d-%d and a best streak in 1..%d; got %+v", wins, losses, draws, wins, st)
		}

		for i, res := range []Result{Win, Win, Lose, Win, Win, Win, Draw, Win} {
			if _, err := r.played(ctx, outcome{OpenID: "o-streak", Nickname: "Streak", Result: res}); err != nil {
				t.Fatalf("result %d: %v", i, err)
			}
		}
		st, err = r.get(ctx, "o-streak")
		if want := (standing{Nickname: "Streak", Wins: 6, Losses: 1, Draws: 1, Streak: 1, BestStreak: 3}); err != nil || st != want {
			t.Errorf("want %+v; got %+v, %v", want, st, err)
		}
		if _, err := r.get(ctx, "o-nobody"); err != errNoRecord {
			t.Errorf("a player never seen: want errNoRecord; got %v", err)
		}
	})
}

// GET /api/leaderboard lists the ten players with the most wins, by nickname alone.
func TestLeaderboard(t *testing.T) {
	backends(t, func(t *testing.T, cfg config) {
		s := startServer(t, cfg)
		anon := &user{t: t, base: s.url, http: &http.Client{Timeout: 10 * time.Second}}
		var empty json.RawMessage
		anon.do("GET", "/api/leaderboard", nil, http.StatusOK, &empty)
		if string(empty) != `{"players":[]}` {
			t.Errorf("with no players: want an empty list; got %s", empty)
		}

		// p00 wins 0 matches, p01 one, ..., p11 eleven, against a player who only loses.
		r := openTestRecords(t, cfg)
		ctx := context.Background()
		for i := range 12 {
			for range i {
				if _, err := r.played(ctx, outcome{OpenID: fmt.Sprintf("o-p%02d", i), Nickname: fmt.Sprintf("P%02d", i), Result: Win}, outcome{OpenID: "o-loser", Nickname: "Loser", Result: Lose}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := r.played(ctx, outcome{OpenID: "o-p00", Nickname: "P00", Result: Draw}); err != nil { // played, no win
			t.Fatal(err)
		}
		// Ties on wins: fewer losses first.
		if _, err := r.played(ctx, outcome{OpenID: "o-tie", Nickname: "Tie", Result: Win}, outcome{OpenID: "o-tie2", Nickname: "Tie2", Result: Win}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.played(ctx, outcome{OpenID: "o-tie2", Nickname: "Tie2", Result: Lose}); err != nil {
			t.Fatal(err)
		}
		if err := r.rename(ctx, "o-idle", "Idle"); err != nil { // has a name, never played
			t.Fatal(err)
		}

		var raw json.RawMessage
		anon.do("GET", "/api/leaderboard", nil, http.StatusOK, &raw)
		if strings.Contains(string(raw), "o-") || strings.Contains(string(raw), "openid") {
			t.Errorf("the leaderboard shows openids: %s", raw)
		}
		var board struct{ Players []ranked }
		if err := json.Unmarshal(raw, &board); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range board.Players {
			got = append(got, fmt.Sprintf("%s %d-%d-%d best %d", p.Nickname, p.Wins, p.Losses, p.Draws, p.BestStreak))
		}
		want := []string{
			"P11 11-0-0 best 11", "P10 10-0-0 best 10", "P09 9-0-0 best 9", "P08 8-0-0 best 8",
			"P07 7-0-0 best 7", "P06 6-0-0 best 6", "P05 5-0-0 best 5", "P04 4-0-0 best 4",
			"P03 3-0-0 best 3", "P02 2-0-0 best 2",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("top ten:\nwant %q\ngot  %q", want, got)
		}

		all, err := r.top(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, p := range all[10:] {
			got = append(got, p.Nickname)
		}
		if want := []string{"P01", "Tie", "Tie2", "P00", "Loser"}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("the rest: want %v; got %v", want, got)
		}
	})
}

// TestTwoSessionsOneRecord: a player logged in twice (two devices) plays on both; each
// session's record follows the database, not only the matches it saw.
func TestTwoSessionsOneRecord(t *testing.T) {
	s := startServer(t, config{})
	alice, _, a, b := pair(t, s)
	playMatch(t, a, b) // 1-0-0, through session A
	again := login(t, s, "o-alice")
	a2 := again.dial(true)
	a2.send(clientMsg{Type: "queue"})
	a2.expect("queued")
	b.send(clientMsg{Type: "queue"})
	a2.expect("matched")
	b.expect("matched")
	playMatch(t, a2, b)              // 2-0-0, through session B
	a.send(clientMsg{Type: "queue"}) // session A, still connected, saw 1-0-0
	a.expect("queued")
	b.send(clientMsg{Type: "queue"})
	a.expect("matched")
	b.expect("matched")
	playRound(t, 1, a, b, Rock, Scissors)
	playRound(t, 2, a, b, Paper, Rock)
	m := a.expect("match_over")
	want := record{Wins: 3}
	if *m.Record != want {
		t.Errorf("session A's match_over: want %+v; got %+v", want, *m.Record)
	}
	if got := alice.me().record; got != want {
		t.Errorf("session A's /api/me: want %+v; got %+v", want, got)
	}
}

// TestLeaderboardMe: the asker's line is marked by openid, so that of two players named
// alike only the asker's is "me"; an anonymous request marks none.
func TestLeaderboardMe(t *testing.T) {
	backends(t, func(t *testing.T, cfg config) {
		s := startServer(t, cfg)
		r := openTestRecords(t, cfg)
		if _, err := r.played(context.Background(), outcome{OpenID: "o-bob1", Nickname: "Bob", Result: Win}, outcome{OpenID: "o-bob2", Nickname: "Bob", Result: Lose}); err != nil {
			t.Fatal(err)
		}
		var board struct{ Players []ranked }
		login(t, s, "o-bob2").do("GET", "/api/leaderboard", nil, http.StatusOK, &board)
		var mine []string
		for _, p := range board.Players {
			if p.Me {
				mine = append(mine, fmt.Sprintf("%s %d-%d", p.Nickname, p.Wins, p.Losses))
			}
		}
		if len(board.Players) != 2 || len(mine) != 1 || mine[0] != "Bob 0-1" {
			t.Errorf("o-bob2 asks: want 2 lines, its own (Bob 0-1) alone marked; got %+v", board.Players)
		}
		anon := &user{t: t, base: s.url, http: &http.Client{Timeout: 10 * time.Second}}
		var raw json.RawMessage
		anon.do("GET", "/api/leaderboard", nil, http.StatusOK, &raw)
		if strings.Contains(string(raw), `"me"`) {
			t.Errorf("an anonymous request: want no line marked; got %s", raw)
		}
	})
}

// TestBotsInRecords: a bot's results are kept like a player's, off the leaderboard; a
// table made before bots were kept (no bot column) gets the column when the server
// opens it, its rows kept.
func TestBotsInRecords(t *testing.T) {
	backends(t, func(t *testing.T, cfg config) {
		table := cmp.Or(cfg.Table, "players")
		driver, dsn := "sqlite", "file:"+cfg.DB
		if cfg.MySQL != "" {
			driver, dsn = "mysql", cfg.MySQL
		}
		old, err := sql.Open(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			"CREATE TABLE " + table + ` (openid VARCHAR(64) NOT NULL PRIMARY KEY, nickname VARCHAR(100) NOT NULL DEFAULT '',
				wins BIGINT NOT NULL DEFAULT 0, losses BIGINT NOT NULL DEFAULT 0, draws BIGINT NOT NULL DEFAULT 0,
				streak BIGINT NOT NULL DEFAULT 0, best_streak BIGINT NOT NULL DEFAULT 0, updated_at BIGINT NOT NULL DEFAULT 0)`,
			"INSERT INTO " + table + " (openid, nickname, wins) VALUES ('o-old', 'Old', 3)",
		} {
			if _, err := old.Exec(q); err != nil {
				t.Fatalf("the old table: %v", err)
			}
		}
		_ = old.Close()

		r := openTestRecords(t, cfg)
		ctx := context.Background()
		got, err := r.played(ctx, outcome{OpenID: "o-alice", Nickname: "Alice", Result: Lose}, outcome{OpenID: "bot-1", Nickname: "Bot 1", Result: Win, Bot: true})
		if err != nil {
			t.Fatal(err)
		}
		if got["bot-1"] != (record{Wins: 1}) {
			t.Errorf("the bot's record: want 1-0-0; got %+v", got["bot-1"])
		}
		top, err := r.top(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range top {
			names = append(names, p.Nickname)
		}
		if strings.Join(names, ",") != "Old,Alice" {
			t.Errorf("the leaderboard: want Old (kept from the old table), then Alice, and no bot; got %v", names)
		}
	})
}
