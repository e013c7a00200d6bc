package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// bots are real clients of the server they run in: each logs in through the fake
// WeChat (GET /wxtest/code, POST /login), names itself (POST /api/nickname), opens the
// socket over the network with an Authorization header, as a mini program's
// wx.connectSocket would, and plays random moves. Persistent bots (-bots N) play
// around the clock; a guest bot is called when a player asks for a bot and none is
// waiting, plays one match and logs out.
type bots struct {
	base   string        // the server: http://127.0.0.1:port
	tag    string        // in the bots' openids, so that several instances' bots are told apart
	think  time.Duration // the longest a bot thinks before a move
	log    *slog.Logger
	http   *http.Client
	ctx    context.Context // cancelled by stop
	cancel context.CancelFunc

	mu      sync.Mutex
	openIDs map[string]struct{}
	results map[string][]Result // every match each bot finished, in order
	stopped bool
	wg      sync.WaitGroup
	guests  chan string // free guest openids

	// A run of the persistent bots (main's -bots-for, the bots' tests): finish closes
	// finishing, each bot then finishes its match and goes idle, adding the matches
	// its record in the database gained during the run to records.
	finishing chan struct{}
	finishOne sync.Once
	idleWG    sync.WaitGroup                      // the persistent bots not yet idle
	records   int64                               // matches the idle bots' records in the database gained
	recordOf  func(openID string) (record, error) // a bot's record in the database
	started   map[string]record                   // each persistent bot's record in the database as the run started
	samples   []time.Duration                     // from a move that completed a round to the round's result
}

// Guest bots: how many may play at once, and how long one waits for its player.
const (
	maxGuests = 8
	guestWait = 30 * time.Second
)

func newBots(base, tag string, think time.Duration, log *slog.Logger) *bots {
	ctx, cancel := context.WithCancel(context.Background())
	b := &bots{
		base: base, tag: tag, think: think, log: log, ctx: ctx, cancel: cancel, finishing: make(chan struct{}),
		http:    &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}},
		openIDs: map[string]struct{}{},
		results: map[string][]Result{},
		started: map[string]record{},
		guests:  make(chan string, maxGuests),
	}
	for i := 1; i <= maxGuests; i++ {
		b.guests <- fmt.Sprintf("bot-guest-%d", i)
	}
	return b
}

// is reports whether openID is one of the bots: the lobby matches players who ask for
// a bot with these only.
func (b *bots) is(openID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.openIDs[openID]
	return ok
}

// played returns the results of the matches a bot has finished, in order.
func (b *bots) played(openID string) []Result {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.results[openID])
}

// goBot runs fn on a new goroutine that stop waits for, unless the bots are stopping.
func (b *bots) goBot(openID string, fn func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return false
	}
	b.openIDs[openID] = struct{}{}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
	return true
}

// start starts n persistent bots, which reconnect when they lose their socket.
func (b *bots) start(n int) {
	for i := 1; i <= n; i++ {
		openID, nickname := fmt.Sprintf("bot-%d", i), fmt.Sprintf("机器人 %d", i)
		if b.tag != "" {
			openID = fmt.Sprintf("bot-%s-%d", b.tag, i)
		}
		b.idleWG.Add(1)
		b.goBot(openID, func() {
			b.baseline(openID)
			for {
				err := b.play(openID, nickname, 0)
				if b.ctx.Err() != nil {
					return
				}
				b.log.Warn("rps: bot lost its socket; again in 2 s", "bot", openID, "err", err)
				if !b.sleep(2 * time.Second) {
					return
				}
			}
		})
	}
}

// summon starts a guest bot for one match.
func (b *bots) summon() error {
	var openID string
	select {
	case openID = <-b.guests:
	default:
		return errors.New("all guest bots are playing")
	}
	ok := b.goBot(openID, func() {
		defer func() { b.guests <- openID }()
		if err := b.play(openID, "陪练机器人 "+strings.TrimPrefix(openID, "bot-guest-"), 1); err != nil && b.ctx.Err() == nil {
			b.log.Warn("rps: guest bot", "bot", openID, "err", err)
		}
	})
	if !ok {
		b.guests <- openID
		return errors.New("the server is shutting down")
	}
	return nil
}

// finish ends the persistent bots' run: each finishes its match, if it plays one, then
// stops playing and adds its session's record to b.records. It returns when all are
// idle, or ctx is done.
func (b *bots) finish(ctx context.Context) error {
	b.finishOne.Do(func() { close(b.finishing) })
	idle := make(chan struct{})
	go func() {
		b.idleWG.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bots still playing: %w", ctx.Err())
	}
}

// baseline keeps a persistent bot's record in the database as the run starts: a bot of
// an earlier run (the same openid, the same database) may have played already.
func (b *bots) baseline(openID string) {
	rec, err := b.recordOf(openID)
	if err != nil && !errors.Is(err, errNoRecord) {
		b.log.Error("rps: bot's record not read: the run's check will fail", "bot", openID, "err", err)
	}
	b.mu.Lock()
	b.started[openID] = rec
	b.mu.Unlock()
}

// idle is a persistent bot done with its run: out of the queue and of any match, the
// matches its record in the database gained counted. It keeps its socket and session
// until stop.
func (b *bots) idle(openID string) error {
	rec, err := b.recordOf(openID)
	b.mu.Lock()
	was := b.started[openID]
	b.records += rec.Wins + rec.Losses + rec.Draws - (was.Wins + was.Losses + was.Draws)
	b.mu.Unlock()
	b.idleWG.Done()
	if err != nil {
		b.log.Error("rps: bot's record not read: the run's check will fail", "bot", openID, "err", err)
	}
	<-b.ctx.Done()
	return b.ctx.Err()
}

// sample keeps the time from a move that completed a round to the round's result.
func (b *bots) sample(d time.Duration) {
	b.mu.Lock()
	b.samples = append(b.samples, d)
	b.mu.Unlock()
}

// stop disconnects every bot, logs them out and waits for them.
func (b *bots) stop() {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
	b.http.CloseIdleConnections()
}

// sleep waits for d, or returns false when the bots are stopping.
func (b *bots) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}

// done closes a guest's socket once it has played its matches.
func (b *bots) done(conn *websocket.Conn) error {
	_ = conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done"), time.Now().Add(time.Second))
	return nil
}

// play logs in, connects and plays matches (0: until stopped, or until finish), then
// logs out.
func (b *bots) play(openID, nickname string, matches int) error {
	token, err := b.login(openID)
	if err != nil {
		return err
	}
	defer b.logout(token)
	if err := b.call("POST", "/api/nickname", token, map[string]string{"nickname": nickname}, nil); err != nil {
		return err
	}

	ws := "ws" + strings.TrimPrefix(b.base, "http") + "/ws"
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := dialer.DialContext(b.ctx, ws, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		return fmt.Errorf("dial %s: %w", ws, err)
	}
	defer conn.Close()
	defer context.AfterFunc(b.ctx, func() { _ = conn.Close() })() // stop unblocks the read

	type botMsg struct {
		Type     string
		Round    int
		Score    Score
		Result   Result
		Message  string
		Opponent json.RawMessage // matched: a peer
	}
	msgs := make(chan botMsg)
	readErr := make(chan error, 1)
	go func() {
		for {
			// Every message comes in the Hub's envelope ({"topic","pos","msg"}); a bot
			// never recovers a socket, so it needs only the message.
			var f struct{ Msg *botMsg }
			if err := conn.ReadJSON(&f); err != nil {
				readErr <- err
				return
			}
			if f.Msg == nil { // the Hub's welcome, or a room joined
				continue
			}
			m := *f.Msg
			select {
			case msgs <- m:
			case <-b.ctx.Done():
				readErr <- b.ctx.Err()
				return
			}
		}
	}()
	defer func() { _ = conn.Close(); <-readErr }()

	persistent := matches == 0
	inMatch := false
	var movedAt time.Time // a move sent after the opponent's: its round's result is timed
	queue := func() error {
		if !persistent { // a guest waits for its player only so long
			_ = conn.SetReadDeadline(time.Now().Add(guestWait))
		}
		return conn.WriteJSON(clientMsg{Type: "queue"})
	}
	theirs := false // the opponent has moved this round
	// A move waits for the bot to think, while the bot goes on reading: it learns
	// whether the opponent moved first.
	var think <-chan time.Time
	move := func() error {
		think = time.After(b.think/4 + rand.N(b.think*3/4+1))
		return nil
	}
	finish := b.finishing
	if !persistent {
		finish = nil // a guest plays its one match
	}
	finished := false
	played := 0
	human := false // the opponent of the match being played, or last played
	// After a match, a bot pauses before it queues again (a guest before it leaves):
	// long enough after a person for them to ask for a rematch, which it accepts.
	var pause <-chan time.Time
	for {
		var m botMsg
		select {
		case <-pause:
			pause = nil
			if !persistent && played >= matches {
				return b.done(conn)
			}
			if finished {
				return b.idle(openID)
			}
			err = queue()
			if err != nil {
				return err
			}
			continue
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return err
		case <-finish:
			// The run is over: a bot in a match finishes it first; one waiting for an
			// opponent leaves the queue, and is idle once the server says it is out
			// (left). A match that started meanwhile (matched is on its way, and the
			// server answers the leave with an error) is played first: leaving it would
			// forfeit it, a result the bot could miss.
			finish, finished = nil, true
			if !inMatch {
				if err := conn.WriteJSON(clientMsg{Type: "leave", From: "queue"}); err != nil {
					return err
				}
			}
			continue
		case <-think:
			think = nil
			if theirs {
				movedAt = time.Now()
			}
			if err := conn.WriteJSON(clientMsg{Type: "move", Choice: string(Choices[rand.N(len(Choices))])}); err != nil {
				return err
			}
			continue
		case m = <-msgs:
		}
		switch m.Type {
		case "welcome", "resume_failed":
			if !finished {
				err = queue()
			}
		case "left":
			if finished && !inMatch {
				return b.idle(openID)
			}
		case "matched", "resumed":
			if m.Type == "matched" {
				var o peer
				_ = json.Unmarshal(m.Opponent, &o)
				human = !o.Bot
			}
			inMatch, theirs, pause = true, false, nil
			_ = conn.SetReadDeadline(time.Time{})
			err = move()
		case "opponent_moved":
			theirs = true
		case "round":
			if !movedAt.IsZero() {
				b.sample(time.Since(movedAt))
				movedAt = time.Time{}
			}
			theirs = false
			// The bot knows the rules: no move after the deciding round.
			if state := (Match{Round: m.Round, Wins: [2]int{m.Score.You, m.Score.Them}}); !state.Over() {
				err = move()
			}
		case "match_over", "opponent_left":
			inMatch, movedAt, think = false, time.Time{}, nil
			if m.Type == "match_over" {
				b.mu.Lock()
				b.results[openID] = append(b.results[openID], m.Result)
				b.mu.Unlock()
			}
			played++
			switch {
			case m.Type == "match_over" && human && !finished:
				pause = time.After(rematchWait) // the person may ask for a rematch meanwhile
			case !persistent && played >= matches:
				return b.done(conn)
			case finished:
				return b.idle(openID)
			default:
				// A pause of its own: two bots that finished a match together would
				// otherwise queue together again, and play each other for ever.
				pause = time.After(b.think/2 + rand.N(b.think+1))
			}
		case "rematch_offered": // the person asks for another match: gladly
			if !finished {
				pause = nil
				err = conn.WriteJSON(clientMsg{Type: "rematch"})
			}
		case "rematch_off":
			if pause == nil && !inMatch { // an accepted rematch that did not open
				pause = time.After(0)
			}
		case "error":
			b.log.Warn("rps: bot told", "bot", openID, "message", m.Message)
		}
		if err != nil {
			return err
		}
	}
}

// login gets a code from the fake WeChat, as wx.login would, and logs in with it.
func (b *bots) login(openID string) (string, error) {
	var code struct{ Code string }
	if err := b.call("GET", "/wxtest/code?openid="+url.QueryEscape(openID), "", nil, &code); err != nil {
		return "", err
	}
	var login struct{ Token string }
	if err := b.call("POST", "/login", "", map[string]string{"code": code.Code}, &login); err != nil {
		return "", err
	}
	return login.Token, nil
}

// logout ends the bot's session. It runs when the bot stops, too, so it does not use
// the bots' context.
func (b *bots) logout(token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.callContext(ctx, "POST", "/logout", token, nil, nil); err != nil {
		b.log.Warn("rps: bot logout", "err", err)
	}
}

func (b *bots) call(method, path, token string, in, out any) error {
	return b.callContext(b.ctx, method, path, token, in, out)
}

// callContext sends a JSON request to the server and decodes its JSON reply.
func (b *bots) callContext(ctx context.Context, method, path, token string, in, out any) error {
	var body bytes.Buffer
	if in != nil {
		if err := json.NewEncoder(&body).Encode(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct{ Error, Message string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s %s: %s: %s %s", method, path, resp.Status, e.Error, e.Message)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
