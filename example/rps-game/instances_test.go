package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
)

// twoInstances starts two game servers on Redis, as two processes would run: each has
// its own redisstore and go-redis client, its own port and its own fake WeChat, and both
// share the Redis (sessions, the matchmaking queue, the hub's messages) and the
// players' records (one SQLite file).
func twoInstances(t *testing.T, cfg config) (a, b *server) {
	t.Helper()
	rdb := testenv.Redis(t)
	cfg.Redis, cfg.RedisPrefix = testenv.RedisAddr(), testenv.RedisPrefix(t, rdb)
	cfg.DB = filepath.Join(t.TempDir(), "rps.db")
	return startServer(t, cfg), startServer(t, cfg)
}

// dropped cuts the client's connection without a close frame, as a phone losing its
// network does.
func (c *client) drop() { _ = c.conn.UnderlyingConn().Close() }

// recordIn reads a player's record in the database.
func recordIn(t *testing.T, s *server, openID string) record {
	t.Helper()
	st, err := s.lobby.records.get(context.Background(), openID)
	if err != nil {
		t.Fatalf("%s's row: %v", openID, err)
	}
	return record{Wins: st.Wins, Losses: st.Losses, Draws: st.Draws}
}

// playRounds plays a whole match of the given rounds and returns a's match_over.
func playRounds(t *testing.T, a, b *client, rounds [][2]Choice) (oa, ob msg) {
	t.Helper()
	for i, r := range rounds {
		playRound(t, i+1, a, b, r[0], r[1])
	}
	return a.expect("match_over"), b.expect("match_over")
}

// Players connected to different instances are paired through the Redis queue, and
// play whole matches whose moves and results cross instances through the hub; the
// database counts every result exactly once, and every session shows it.
func TestMatchAcrossInstances(t *testing.T) {
	a, b := twoInstances(t, config{})
	type pairing struct {
		first, second *user
		cf, cs        *client
	}
	var ps []pairing
	for _, names := range [][2]string{{"o-alice", "o-bob"}, {"o-carol", "o-dave"}} {
		first, second := login(t, a, names[0]), login(t, b, names[1])
		cf, cs := first.dial(false), second.dial(false)
		cf.send(clientMsg{Type: "queue"})
		cf.expect("queued")
		cs.send(clientMsg{Type: "queue"}) // on the other instance
		if m := cs.expect("matched"); !strings.Contains(string(m.Opponent), `"nickname":"玩家`+names[0][len(names[0])-6:]) {
			t.Errorf("%s's opponent: want %s; got %s", names[1], names[0], m.Opponent)
		}
		cf.expect("matched")
		ps = append(ps, pairing{first, second, cf, cs})
	}

	// Both pairs play at once, a win for the first player, then a draw. Between the two
	// the pairs queue one after the other, so that each pair meets again.
	both := func(name string, play func(p pairing)) {
		t.Run(name, func(t *testing.T) {
			for _, p := range ps {
				t.Run(p.first.openID, func(t *testing.T) {
					t.Parallel()
					p.cf.t, p.cs.t = t, t // a failure ends this subtest's goroutine only
					play(p)
				})
			}
		})
		for _, p := range ps {
			p.cf.t, p.cs.t = t, t
		}
	}
	both("match 1", func(p pairing) {
		t := p.cf.t
		if oa, ob := playRounds(t, p.cf, p.cs, [][2]Choice{{Rock, Scissors}, {Paper, Rock}}); oa.Result != Win || ob.Result != Lose ||
			*oa.Record != (record{Wins: 1}) || *ob.Record != (record{Losses: 1}) {
			t.Errorf("match 1: want a win (1-0-0) and a loss (0-1-0); got %s %+v and %s %+v", oa.Result, oa.Record, ob.Result, ob.Record)
		}
	})
	for _, p := range ps {
		p.cs.send(clientMsg{Type: "queue"}) // this time the second player queues first, on b
		p.cs.expect("queued")
		p.cf.send(clientMsg{Type: "queue"})
		p.cf.expect("matched")
		p.cs.expect("matched")
	}
	both("match 2", func(p pairing) {
		t := p.cf.t
		if oa, ob := playRounds(t, p.cf, p.cs, [][2]Choice{{Rock, Rock}, {Scissors, Paper}, {Scissors, Rock}}); oa.Result != Draw || ob.Result != Draw ||
			*oa.Record != (record{Wins: 1, Draws: 1}) || *ob.Record != (record{Losses: 1, Draws: 1}) {
			t.Errorf("match 2: want draws (1-0-1, 0-1-1); got %s %+v and %s %+v", oa.Result, oa.Record, ob.Result, ob.Record)
		}
	})
	for _, p := range ps {
		if got := recordIn(t, a, p.first.openID); got != (record{Wins: 1, Draws: 1}) {
			t.Errorf("%s in the database: want 1-0-1; got %+v", p.first.openID, got)
		}
		if got := recordIn(t, b, p.second.openID); got != (record{Losses: 1, Draws: 1}) {
			t.Errorf("%s in the database: want 0-1-1; got %+v", p.second.openID, got)
		}
		if got := p.first.at(b).me().record; got != (record{Wins: 1, Draws: 1}) {
			t.Errorf("%s's session, read on the other instance: want 1-0-1; got %+v", p.first.openID, got)
		}
		if got := p.second.at(a).me().record; got != (record{Losses: 1, Draws: 1}) {
			t.Errorf("%s's session, read on the other instance: want 0-1-1; got %+v", p.second.openID, got)
		}
	}
}

// A player whose socket drops in the middle of a match reconnects to the other
// instance within the grace period and finishes the match; the opponent is told they
// are reconnecting, and that they are back.
func TestResumeOnOtherInstance(t *testing.T) {
	a, b := twoInstances(t, config{})
	bob, alice := login(t, b, "o-bob"), login(t, a, "o-alice")
	cb := bob.dial(false)
	cb.send(clientMsg{Type: "queue"})
	cb.expect("queued")
	ca := alice.dial(true)
	ca.send(clientMsg{Type: "queue"}) // alice pairs: the match runs on a, her instance
	ca.expect("matched")
	cb.expect("matched")
	playRound(t, 1, ca, cb, Rock, Scissors)
	cb.send(clientMsg{Type: "move", Choice: "paper"}) // bob has moved in round 2

	ca.drop()
	if m := cb.expect("opponent_away"); m.Grace != int(ResumeGrace/time.Second) {
		t.Errorf("opponent_away: want %d s of grace; got %+v", int(ResumeGrace/time.Second), m)
	}
	ca = alice.at(b).dial(true) // back, on b, while the match runs on a
	// A socket that takes the seat back is told the match's course so far, then where
	// it stands: a new page has every round.
	ca.expect("matched")
	if r := ca.expect("round"); r.Round != 1 || *r.You != Rock || *r.Them != Scissors || r.Result != Win {
		t.Errorf("resumed socket: want round 1 again, alice's rock beating scissors; got %+v", r)
	}
	m := ca.expect("resumed")
	var opp peer
	if json.Unmarshal(m.Opponent, &opp) != nil || opp.Nickname != "玩家o-bob" || m.Round != 1 || *m.Score != (Score{1, 0}) || *m.Moved || m.Away {
		t.Errorf("resumed: want bob as the opponent, 1 round played, 1-0, no move yet; got %+v (%s)", m, m.Opponent)
	}
	cb.expect("opponent_back")
	ca.send(clientMsg{Type: "move", Choice: "scissors"})
	ra, rb := ca.expect("round"), cb.expect("round")
	if ra.Round != 2 || ra.Result != Win || rb.Result != Lose {
		t.Errorf("round 2: want alice's scissors to beat bob's paper; got %+v, %+v", ra, rb)
	}
	oa, ob := ca.expect("match_over"), cb.expect("match_over")
	if oa.Result != Win || *oa.Record != (record{Wins: 1}) || ob.Result != Lose || *ob.Record != (record{Losses: 1}) {
		t.Errorf("want alice 1-0-0 and bob 0-1-0; got %+v, %+v", oa, ob)
	}
	if got := recordIn(t, a, "o-alice"); got != (record{Wins: 1}) {
		t.Errorf("alice in the database: want 1-0-0; got %+v", got)
	}
	if got := recordIn(t, a, "o-bob"); got != (record{Losses: 1}) {
		t.Errorf("bob in the database: want 0-1-0; got %+v", got)
	}

	// The match is over: a new socket of alice's session starts in the lobby.
	ca.drop()
	ca = alice.dial(false)
	ca.send(clientMsg{Type: "queue"})
	ca.expect("queued")
}

// A client whose network goes as a round ends (the result reaches its socket but never
// the client) reconnects on the other instance with its recovery state, the browser
// way (a subprotocol): the Hub gives it the round from its old socket's room, exactly
// once (the match tells the new socket its course again, and the client skips what it
// has), then the match goes on, live.
func TestRecoverAcrossInstances(t *testing.T) {
	a, b := twoInstances(t, config{})
	alice, bob := login(t, a, "o-alice"), login(t, b, "o-bob")
	ca, cb := alice.dial(true), bob.dial(false)
	ca.send(clientMsg{Type: "queue"})
	ca.expect("queued")
	cb.send(clientMsg{Type: "queue"})
	ca.expect("matched")
	cb.expect("matched")

	read := *ca // what the client has read: the round below is lost on the way
	read.pos = maps.Clone(ca.pos)
	ca.send(clientMsg{Type: "move", Choice: "rock"})
	cb.send(clientMsg{Type: "move", Choice: "scissors"})
	ca.expect("round")
	cb.expect("round")
	ca.drop()
	cb.expect("opponent_away")

	cn := alice.at(b).redial(&read, true)
	r := cn.expect("round")
	if _, old := read.pos[r.stream]; !old || r.Round != 1 || r.Result != Win || *r.Score != (Score{1, 0}) {
		t.Errorf("want round 1, won, from the old socket's stream %v; got %+v", slices.Collect(maps.Keys(read.pos)), r)
	}
	cn.expect("welcome")
	if m := cn.expect("resumed"); m.Round != 1 || *m.Score != (Score{1, 0}) || !cn.recovered {
		t.Errorf("want the match resumed after round 1, 1-0, and the socket recovered; got %+v (recovered %v)", m, cn.recovered)
	}
	cb.expect("opponent_back")
	playRound(t, 2, cn, cb, Paper, Rock)
	if oa, ob := cn.expect("match_over"), cb.expect("match_over"); oa.Result != Win || ob.Result != Lose {
		t.Errorf("want alice to win 2-0 live; got %+v, %+v", oa, ob)
	}
}

// A player who does not come back within the grace period forfeits the match, across
// two instances: alice on a drops from a match that runs on b. After the grace period
// bob is told (opponent_left, disconnected, forfeit) with his new record; the database
// has a loss for alice and a win for bob, exactly once, and bob's session has it. Alice's
// session, which no socket of hers was there to update, catches up when her next socket
// fails to resume the match (resume_failed, with the record), and she plays on. A match
// then ended by its instance stopping counts for nobody.
func TestForfeitAfterGrace(t *testing.T) {
	const grace = time.Second
	a, b := twoInstances(t, config{Grace: grace})
	alice, bob := login(t, a, "o-alice"), login(t, b, "o-bob")
	ca, cb := alice.dial(false), bob.dial(false)
	ca.send(clientMsg{Type: "queue"})
	ca.expect("queued")
	cb.send(clientMsg{Type: "queue"}) // bob pairs: the match runs on b
	cb.expect("matched")
	ca.expect("matched")
	playRound(t, 1, ca, cb, Rock, Scissors) // alice leads 1-0, and loses the match

	dropped := time.Now()
	ca.drop()
	if m := cb.expect("opponent_away"); m.Grace != 1 {
		t.Errorf("opponent_away: want 1 s of grace; got %+v", m)
	}
	m := cb.expect("opponent_left")
	waited := time.Since(dropped)
	if m.Reason != "disconnected" || !m.Forfeit || m.Result != Win || m.Record == nil || *m.Record != (record{Wins: 1}) ||
		m.Score == nil || *m.Score != (Score{0, 1}) {
		t.Errorf("want opponent_left for disconnected, a win by forfeit at 0-1, record 1-0-0; got %+v (record %v)", m, m.Record)
	}
	t.Logf("forfeited %v after the drop (grace %v)", waited.Round(time.Millisecond), grace)
	if waited < grace {
		t.Errorf("forfeited after %v, before the grace period of %v", waited, grace)
	}
	if got := recordIn(t, a, "o-alice"); got != (record{Losses: 1}) {
		t.Errorf("alice in the database: want 0-1-0; got %+v", got)
	}
	if got := recordIn(t, a, "o-bob"); got != (record{Wins: 1}) {
		t.Errorf("bob in the database: want 1-0-0; got %+v", got)
	}
	if got := bob.at(a).me().record; got != (record{Wins: 1}) {
		t.Errorf("bob's session, read on the other instance: want 1-0-0; got %+v", got)
	}

	ca = alice.at(b).dial(false)
	if m := ca.expect("resume_failed"); m.Message == "" || m.Record == nil || *m.Record != (record{Losses: 1}) {
		t.Errorf("resume_failed: want a message and the record 0-1-0; got %+v (record %v)", m, m.Record)
	}
	if got := alice.me().record; got != (record{Losses: 1}) {
		t.Errorf("alice's session after the failed resume: want 0-1-0; got %+v", got)
	}

	// A whole match then adds to the records, and the forfeit is not counted again.
	// Alice plays from a, so that the match runs on b with her socket elsewhere.
	_ = ca.conn.Close()
	ca = alice.dial(false)
	ca.send(clientMsg{Type: "queue"})
	ca.expect("queued")
	cb.send(clientMsg{Type: "queue"})
	cb.expect("matched")
	ca.expect("matched")
	if oa, ob := playRounds(t, ca, cb, [][2]Choice{{Paper, Rock}, {Paper, Rock}}); *oa.Record != (record{Wins: 1, Losses: 1}) ||
		*ob.Record != (record{Wins: 1, Losses: 1}) {
		t.Errorf("second match: want 1-1-0 for both; got %+v and %+v", oa.Record, ob.Record)
	}
	for _, who := range []string{"o-alice", "o-bob"} {
		if got := recordIn(t, b, who); got != (record{Wins: 1, Losses: 1}) {
			t.Errorf("%s in the database: want 1-1-0; got %+v", who, got)
		}
	}

	// A third match, run on b, ends when b stops: the server's fault, not a forfeit.
	ca.send(clientMsg{Type: "queue"})
	ca.expect("queued")
	cb.send(clientMsg{Type: "queue"})
	cb.expect("matched")
	ca.expect("matched")
	playRound(t, 1, ca, cb, Rock, Scissors)
	b.close()
	m = ca.expect("opponent_left", "opponent_away") // bob's socket closes too, and may be seen away first
	if m.Reason != "shutdown" || m.Forfeit || m.Record != nil {
		t.Errorf("want opponent_left for shutdown, not a forfeit; got %+v", m)
	}
	for _, who := range []string{"o-alice", "o-bob"} {
		if got := recordIn(t, a, who); got != (record{Wins: 1, Losses: 1}) {
			t.Errorf("%s in the database after the shutdown: want 1-1-0; got %+v", who, got)
		}
	}
}

// An instance that stops while a player waits in the queue does not lose the player:
// the socket closes (1001), the client reconnects to the other instance, which queues
// it again by itself (the session remembers the queueing for the grace period), and a
// player there is paired with it.
func TestQueuedPlayerOutlivesInstance(t *testing.T) {
	a, b := twoInstances(t, config{})
	alice := login(t, a, "o-alice")
	ca := alice.dial(false)
	ca.send(clientMsg{Type: "queue"})
	ca.expect("queued")
	a.close()
	if code := ca.expectClose(); code != 1001 {
		t.Errorf("want 1001 going away; got %d", code)
	}
	ca = alice.at(b).dial(false)
	if m := ca.expect("queued"); string(m.Opponent) != `"any"` {
		t.Errorf("want queued again for anyone; got %+v", m)
	}
	bob := login(t, b, "o-bob")
	cb := bob.dial(false)
	cb.send(clientMsg{Type: "queue"})
	cb.expect("matched")
	ca.expect("matched")
	playRounds(t, ca, cb, [][2]Choice{{Paper, Rock}, {Paper, Rock}})
}

// A ticket left in the Redis queue by an instance that died without removing it (a
// crash, a kill -9): while its lease runs, whoever draws it loses only the time of the
// offer and is queued again; once the lease is out, pairing skips it.
func TestTicketOfDeadInstance(t *testing.T) {
	const lease = time.Second
	a, b := twoInstances(t, config{QueueLease: lease})
	q := a.lobby.queue
	ghost := ticket{ID: newID(), Addr: newID(), OpenID: "o-ghost", Nickname: "Ghost"}
	if p, err := q.pair(context.Background(), ghost); p != nil || err != nil {
		t.Fatalf("the ghost's ticket: want it queued; got %v, %v", p, err)
	}

	// bob draws the ghost: the offer goes unanswered, and bob is queued again.
	bob := login(t, b, "o-bob")
	cb := bob.dial(false)
	drew := time.Now()
	cb.send(clientMsg{Type: "queue"})
	cb.expect("queued") // not at once: after the offer to the ghost went unanswered
	t.Logf("bob queued again %v after drawing the ghost (the offer waits %v)", time.Since(drew).Round(time.Millisecond), readyWait)
	if !queuedTicket(t, b, bob.openID) {
		t.Error("bob has no ticket in the queue")
	}
	alice := login(t, a, "o-alice")
	ca := alice.dial(false)
	ca.send(clientMsg{Type: "queue"})
	ca.expect("matched")
	cb.expect("matched")

	// A second ghost, whose lease runs out before anyone queues: skipped and dropped.
	ghost.ID = newID()
	if p, err := q.pair(context.Background(), ghost); p != nil || err != nil {
		t.Fatalf("the ghost's ticket: want it queued; got %v, %v", p, err)
	}
	rq := a.lobby.queue.(*redisQueue)
	eventually(t, lease+5*time.Second, "the ghost's lease to run out", func() bool {
		n, err := rq.rdb.Exists(context.Background(), rq.prefix+"ticket:"+ghost.ID).Result()
		return err == nil && n == 0
	})
	carol := login(t, a, "o-carol")
	cc := carol.dial(false)
	cc.send(clientMsg{Type: "queue"})
	cc.expect("queued")
	if n, err := rq.rdb.ZScore(context.Background(), rq.prefix+"queue", ghost.ID).Result(); err == nil {
		t.Errorf("the ghost's expired ticket is still in the queue (score %v)", n)
	}
}

// queuedTicket reports whether openID has a ticket in s's queue.
func queuedTicket(t *testing.T, s *server, openID string) bool {
	t.Helper()
	rq := s.lobby.queue.(*redisQueue)
	ctx := context.Background()
	ids, err := rq.rdb.ZRange(ctx, rq.prefix+"queue", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		raw, err := rq.rdb.Get(ctx, rq.prefix+"ticket:"+id).Bytes()
		var tk ticket
		if err == nil && json.Unmarshal(raw, &tk) == nil && tk.OpenID == openID {
			return true
		}
	}
	return false
}

// Bots on two instances play each other through the Redis queue for a while; then the
// run's report adds up both instances' tallies: every match's result is in both bots'
// session records, exactly once.
func TestBotsAcrossInstances(t *testing.T) {
	a, b := twoInstances(t, config{Bots: 6, BotThink: 10 * time.Millisecond})
	botsRun(t, a, b, 3*time.Second, nil)
	if a.hosted.matches.Load() == 0 || b.hosted.matches.Load() == 0 {
		t.Errorf("want matches run on both instances; got %d and %d", a.hosted.matches.Load(), b.hosted.matches.Load())
	}
	if a.hosted.across.Load()+b.hosted.across.Load() == 0 {
		t.Error("want matches between bots connected to different instances; got none")
	}
}

// botsRun runs the bots of a and b for d, as two -bots-for runs with -instances 2 do,
// calls during (when not nil) while they play, and checks both reports, each with the
// fleet's.
func botsRun(t *testing.T, a, b *server, d time.Duration, during func()) {
	t.Helper()
	key := a.redisPrefix + "rps:bots"
	var wg sync.WaitGroup
	var outs [2]bytes.Buffer
	var errs [2]error
	for i, s := range []*server{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = runBots(context.Background(), s, d, 2, s.rdb, key, &outs[i])
		}()
	}
	if during != nil {
		during()
	}
	wg.Wait()
	for i := range outs {
		t.Logf("instance %d:\n%s", i+1, outs[i].String())
		if errs[i] != nil {
			t.Errorf("instance %d: %v", i+1, errs[i])
		}
		if !strings.Contains(outs[i].String(), "2 instances: ") {
			t.Errorf("instance %d: want the fleet's report", i+1)
		}
	}
}

// A ticket taken by an instance that died before its offer went out: the player's own
// instance sees the ticket gone from the queue when it renews the lease, waits for the
// offer as long as a match would, and queues the player again.
func TestOfferLostWithInstance(t *testing.T) {
	a, b := twoInstances(t, config{QueueLease: time.Second})
	alice := login(t, a, "o-alice")
	ca := alice.dial(false)
	ca.send(clientMsg{Type: "queue"})
	ca.expect("queued")
	eventually(t, 5*time.Second, "alice's ticket in the queue", func() bool { return queuedTicket(t, a, alice.openID) })
	rq := a.lobby.queue.(*redisQueue)
	ids, err := rq.rdb.ZRange(context.Background(), rq.prefix+"queue", 0, -1).Result()
	if err != nil || len(ids) != 1 {
		t.Fatalf("want alice's ticket alone in the queue; got %v, %v", ids, err)
	}
	taken := time.Now()
	if ok, err := rq.remove(context.Background(), ids[0]); !ok || err != nil { // as a pair call would
		t.Fatalf("taking alice's ticket: %v, %v", ok, err)
	}
	ca.expect("queued")
	t.Logf("alice queued again %v after her ticket was taken (an offer has %v)", time.Since(taken).Round(time.Millisecond), readyWait)
	bob := login(t, b, "o-bob")
	cb := bob.dial(false)
	cb.send(clientMsg{Type: "queue"})
	cb.expect("matched")
	ca.expect("matched")
}

// The move timer waits while a player is away: rounds are not lost to it meanwhile.
func TestMoveTimerWaitsForAwayPlayer(t *testing.T) {
	const moveTimeout = time.Second // the drop reaches the match well within it, even on a loaded machine
	a, b := twoInstances(t, config{MoveTimeout: moveTimeout})
	alice, bob := login(t, a, "o-alice"), login(t, b, "o-bob")
	ca, cb := alice.dial(false), bob.dial(false)
	ca.send(clientMsg{Type: "queue"})
	ca.expect("queued")
	cb.send(clientMsg{Type: "queue"})
	cb.expect("matched")
	ca.expect("matched")
	ca.drop()
	cb.expect("opponent_away")
	time.Sleep(3*moveTimeout + moveTimeout/2) // three rounds' worth of move timers, were they running
	ca = alice.at(b).dial(false)
	if m := ca.expect("resumed", "matched"); m.Round != 0 || *m.Score != (Score{}) {
		t.Errorf("want the match where it was, no round played; got round %d, %+v", m.Round, *m.Score)
	}
	cb.expect("opponent_back")
	playRounds(t, ca, cb, [][2]Choice{{Rock, Paper}, {Rock, Paper}})
}

// TestOnlineAcrossInstances: GET /api/online counts the players with a socket open on
// every instance, each once however many sockets they hold, and forgets a closed one.
func TestOnlineAcrossInstances(t *testing.T) {
	a, b := twoInstances(t, config{OnlineEvery: time.Nanosecond}) // every request reads the count
	var online struct{ Players, Sockets int }
	count := func(s *server) (int, int) {
		t.Helper()
		login(t, s, "o-counter").do("GET", "/api/online", nil, 200, &online)
		return online.Players, online.Sockets
	}
	if p, n := count(a); p != 0 || n != 0 {
		t.Fatalf("nobody connected: want 0 players, 0 sockets; got %d, %d", p, n)
	}
	ann, bob := login(t, a, "o-ann"), login(t, b, "o-bob")
	ann.dial(false) // each dial reads the welcome
	bob.dial(false)
	bob2 := bob.dial(false)
	// A socket is counted once its handler joined the lobby room, before the welcome.
	deadline := time.Now().Add(5 * time.Second)
	for {
		pa, na := count(a)
		pb, nb := count(b)
		if pa == 2 && na == 3 && pb == 2 && nb == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ann on A, bob twice on B: want 2 players, 3 sockets from both; got %d, %d from A and %d, %d from B", pa, na, pb, nb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = bob2.conn.Close()
	for {
		if p, n := count(a); p == 2 && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after one of bob's sockets closed: want 2 players, 2 sockets")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
