package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/mpsession/mpsession/internal/testenv"
)

// The web page, in a real browser: headless Chromium driven over the Chrome DevTools
// Protocol (no npm, no Playwright), at a phone's size (390x844). The page logs in
// through the fake WeChat and waits for a person; the test's own client joins and plays
// three scripted rounds, so each check sees a known state: both hands revealed, the
// status line reset when a round starts, the result in view. Then the page plays a bot,
// and is logged out from "another tab", and must say so.
//
// Screenshots go to a temporary folder, or to testdata/screenshots with
// MPSESSION_SCREENSHOTS=1.
func TestWebPage(t *testing.T) {
	s := startServer(t, config{}) // bots are called on demand
	page := openChromium(t)
	page.phone()
	page.navigate(s.url)
	page.waitFor("the page to connect", `$('status').textContent.includes('Pick an opponent')`)
	page.checkPlayerView()
	if note := page.eval(`$('tabs-note').checkVisibility() && $('tabs-note').textContent`); !strings.Contains(note, "same player") {
		t.Errorf("want a visible notice that two tabs are the same player; got %s", note)
	}
	// A second tab of the browser is the same player, and both tabs say so.
	tab := page.newTab()
	tab.phone()
	tab.navigate(s.url)
	for _, note := range []func(string, string) string{page.waitFor, tab.waitFor} {
		note("the notice that another tab is open", `$('tabs-note').textContent.includes('another tab too') &&
			$('tabs-note').textContent.includes('same player')`)
	}
	tab.close()
	page.waitFor("the notice to drop the other tab", `!$('tabs-note').textContent.includes('another tab too')`)

	// The lobby counts the players online (GET /api/online, wsauth's presence).
	page.waitFor("the count of players online", `$('online').checkVisibility() && $('online').textContent.includes('only player online')`)

	// A nickname too long is refused with a word, not cut: typed (as a person types or
	// pastes), not set by script, which maxlength would not stop.
	page.eval(`$('nickname').focus(), $('nickname').select()`)
	page.typeText("An extremely long nickname of thirty-one")
	page.eval(`$('save-nickname').click()`)
	page.waitFor("the refusal of a nickname too long", `$('status').textContent.includes('1 to 24')`)

	// Alone in the queue, the page may still switch to a bot, and suggests one.
	page.eval(`$('play').click()`)
	page.waitFor("the page to queue", `$('status').textContent.includes('Waiting for an opponent')`)
	if page.eval(`$('play-bot').disabled`) != "false" {
		t.Error(`want "Play a bot" enabled while queued for a person`)
	}
	page.waitFor("the hint to play a bot", `$('queue-hint').checkVisibility() && !$('hint-bot').disabled`)
	page.screenshot("phone-queued")

	// A person joins: the test plays them.
	bobUser := login(t, s, "oBob")
	bob := bobUser.dial(false)
	bob.send(clientMsg{Type: "queue"})
	bob.expect("matched")
	page.waitFor("the match to start", `$('match').checkVisibility() && !$('moves').querySelector('button').disabled`)

	// Before a round is revealed, the opponent's slot shows a "?" that reads as one: the
	// mirror that turns their hand toward you is not applied to it.
	if got := page.eval(`$('hand-them').dataset.hand === '' && getComputedStyle($('hand-them').querySelector('svg')).transform`); got != `"none"` {
		t.Errorf("the opponent's empty slot: want no transform on its \"?\"; got %s", got)
	}

	// A reload before the first round ends resumes the match at round 1 (the resumed
	// message has no round yet: it read "Round NaN of 3").
	page.navigate(s.url)
	page.waitFor("the match to resume at round 1", `$('match').checkVisibility() && $('status').textContent.includes('Back in the match. Round 1:')`)
	if text := page.eval(`document.body.innerText`); strings.Contains(text, "NaN") {
		t.Errorf("after a reload in round 1, the page shows NaN:\n%s", text)
	}

	// Round 1: Bob moves first; the page sees it, then plays paper and wins.
	bob.send(clientMsg{Type: "move", Choice: "rock"})
	page.waitFor("the page to show that the opponent has chosen", `$('status').textContent.includes('has chosen')`)
	page.move("paper")
	bob.expect("round", "opponent_away", "opponent_back") // Bob saw the reload
	page.checkRound(1, "paper", "rock")

	// Round 2: the page moves first (its status says it waits), then Bob wins.
	page.move("scissors")
	page.waitFor("the page to wait for the opponent", `$('status').textContent.includes('Waiting for')`)
	bob.send(clientMsg{Type: "move", Choice: "rock"})
	bob.expect("round")
	page.checkRound(2, "scissors", "rock")
	page.screenshot("phone-mid-match")
	page.desktop()
	page.screenshot("desktop-mid-match")
	page.phone()

	// Bob's connection drops: the page shows him reconnecting, then back.
	bob.drop()
	page.waitFor("the page to show the opponent reconnecting", `!$('away-badge').hidden && $('status').textContent.includes('lost the connection')`)
	page.screenshot("phone-opponent-reconnecting")
	bob = bobUser.redial(bob, false) // with his recovery state: the rounds he has are not told again
	if m := bob.expect("resumed", "welcome"); m.Round != 2 || *m.Score != (Score{1, 1}) || !bob.recovered {
		t.Errorf("bob's resumed: want 2 rounds played, 1-1, recovered; got %+v (recovered %v)", m, bob.recovered)
	}
	page.waitFor("the page to show the opponent back", `$('away-badge').hidden && $('status').textContent.includes('is back')`)

	// The page's own connection drops: it reconnects and goes on with the match.
	page.eval(`ws.close()`)
	bob.expect("opponent_away")
	bob.expect("opponent_back")
	page.waitFor("the page to resume the match", `$('status').textContent.includes('Back in the match') &&
		$('match').checkVisibility() && !$('moves').querySelector('button').disabled && $('score-you').textContent === '1'`)

	// Round 3 decides: scissors beat paper, and the page wins 2-1. The page's network
	// goes as the round ends: the result and match_over reach its socket and are lost;
	// then the socket drops. The match is over, so no server tells them again: the page
	// reconnects with its recovery state and the Hub gives it what it missed.
	bob.send(clientMsg{Type: "move", Choice: "paper"})
	page.waitFor("the page to show that the opponent has chosen", `$('status').textContent.includes('has chosen')`)
	oldID := page.eval(`recovery.id`)
	page.eval(`window.lost = []; ws.onmessage = (e) => lost.push(JSON.parse(e.data).msg.type)`)
	page.move("scissors")
	bob.expect("round")
	bob.expect("match_over")
	page.waitFor("the result to reach the deaf page", `lost.includes('match_over') && $('rounds').children.length === 2`)
	page.eval(`ws.close()`)
	page.waitFor("a new socket with a new recovery id", `ws && recovery && recovery.id !== `+oldID)
	if r := page.waitFor("the match result", `$('outcome-text').dataset.result`); r != "win" {
		t.Fatalf("want the page to win 2-1; got %q", r)
	}
	page.checkHands("scissors", "paper")
	page.checkInView("the match result", "outcome-text")
	page.checkInView("the buttons to play again", "again")
	page.checkPlayerView()
	page.checkLeaderboard(s)
	page.screenshot("phone-after-match")
	page.desktop()
	page.screenshot("desktop-after-match")
	page.phone()

	// Queued for a person, "Play a bot" calls a bot instead; the page plays it to the end.
	page.eval(`$('again').click()`)
	page.waitFor("the page to queue", `$('status').textContent.includes('Waiting for an opponent')`)
	page.eval(`$('play-bot').click()`)
	page.waitFor("a bot", `$('match').checkVisibility() && !$('bot-badge').hidden && !$('moves').hidden`)
	result := page.waitFor("a match result", `(() => {
		const r = $('outcome-text').dataset.result;
		if (r) return r;
		const moves = [...document.querySelectorAll('#moves button:not(:disabled)')];
		if (moves.length) moves[Math.floor(Math.random() * moves.length)].click();
		return '';
	})()`)
	if result != "win" && result != "lose" && result != "draw" {
		t.Fatalf("want a match result; got %q", result)
	}
	page.checkInView("the match result", "outcome-text")
	// The record on the page comes from GET /api/me, which read the live session.
	page.waitFor("the record to show both matches", `['wins','losses','draws'].map(id => +$(id).textContent).reduce((a, b) => a + b) === 2`)

	// Another tab logs out: the page's socket closes with 4001 and the page says so.
	var token string
	if err := json.Unmarshal([]byte(page.eval(`localStorage.getItem('rps.token')`)), &token); err != nil || token == "" {
		t.Fatalf("want the token in localStorage; got %v", err)
	}
	req, _ := http.NewRequest("POST", s.url+"/logout", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: want 204; got %v, %v", resp, err)
	}
	resp.Body.Close()
	page.waitFor("the page to say it was logged out", `$('notice').checkVisibility() &&
		$('notice-text').textContent.includes('logged out in another tab')`)
	if got := page.eval(`$('openid').textContent`); got != `""` {
		t.Errorf(`after the logout, "How it works" still shows an openid: %s`, got)
	}
	page.screenshot("phone-logged-out")
}

// The page and forfeits: the opponent drops and does not come back within the grace
// period (the page shows them reconnecting, then a win by forfeit with the new record);
// then the page's own connection drops and stays down past the grace period (the page
// says it is reconnecting; once back, that the match is over, with the loss in the
// record). Screenshots of each state, at phone and desktop size.
func TestWebPageForfeit(t *testing.T) {
	const grace = 4 * time.Second // long enough for the screenshots of the states it shows
	s := startServer(t, config{Grace: grace})
	page := openChromium(t)
	page.phone()
	page.navigate(s.url)
	page.waitFor("the page to connect", `$('status').textContent.includes('Pick an opponent')`)
	page.eval(`$('play').click()`)
	page.waitFor("the page to queue", `$('status').textContent.includes('Waiting for an opponent')`)
	bobUser := login(t, s, "oBob")
	bob := bobUser.dial(false)
	bob.send(clientMsg{Type: "queue"})
	bob.expect("matched")
	page.waitFor("the match to start", `$('match').checkVisibility() && !$('moves').querySelector('button').disabled`)
	bob.send(clientMsg{Type: "move", Choice: "rock"})
	page.move("scissors") // Bob leads 1-0, and still loses the match
	bob.expect("round")
	page.checkRound(1, "scissors", "rock")

	both := func(name string) {
		page.screenshot(name)
		page.desktop()
		page.screenshot(name)
		page.phone()
	}
	bob.drop()
	page.waitFor("the page to show the opponent reconnecting", `!$('away-badge').hidden && $('status').textContent.includes('lost the connection')`)
	page.waitFor("the countdown of the opponent's grace period", `$('timer').textContent.includes('s to come back')`)
	page.checkInView("the reconnecting badge", "away-badge")
	both("opponent-reconnecting")
	if r := page.waitFor("the forfeit", `$('outcome-text').dataset.result`); r != "win" {
		t.Fatalf("want a win by forfeit; got %q", r)
	}
	if text := page.eval(`$('outcome-text').textContent`); !strings.Contains(text, "did not come back in time") || !strings.Contains(text, "win by forfeit") {
		t.Errorf("want the page to say the opponent did not come back, a win by forfeit; got %s", text)
	}
	page.waitFor("the record 1-0-0", `$('wins').textContent === '1' && $('losses').textContent === '0' && $('draws').textContent === '0'`)
	page.checkInView("the result", "outcome-text")
	page.checkInView("the buttons to play again", "again")
	page.checkPlayerView()
	both("forfeit-won")

	// Bob's next socket is told his match is over, with the loss in his record.
	bob = bobUser.dial(false)
	if m := bob.expect("resume_failed"); m.Record == nil || *m.Record != (record{Losses: 1}) {
		t.Errorf("bob's resume_failed: want his record 0-1-0; got %+v", m.Record)
	}

	// A second match; the page's connection drops, and it does not reconnect in time.
	page.eval(`$('again').click()`)
	page.waitFor("the page to queue", `$('status').textContent.includes('Waiting for an opponent')`)
	bob.send(clientMsg{Type: "queue"})
	bob.expect("matched")
	page.waitFor("the match to start", `$('match').checkVisibility() && !$('moves').querySelector('button').disabled`)
	page.eval(`window.reconnect = connect; connect = () => {}; ws.close()`) // the network stays down
	page.waitFor("the page to say it is reconnecting", `$('status').textContent.includes('reconnecting')`)
	both("reconnecting")
	bob.expect("opponent_away")
	if m := bob.expect("opponent_left"); !m.Forfeit || m.Result != Win || m.Record == nil || *m.Record != (record{Wins: 1, Losses: 1}) {
		t.Errorf("bob: want a win by forfeit, record 1-1-0; got %+v (record %v)", m, m.Record)
	}
	page.eval(`connect = window.reconnect; connect()`) // the network is back
	if r := page.waitFor("the page to say the match is lost", `$('outcome').checkVisibility() && $('outcome-text').dataset.result`); r != "lose" {
		t.Fatalf("want a loss by forfeit; got %q", r)
	}
	if text := page.eval(`$('outcome-text').textContent`); !strings.Contains(text, "lose by forfeit") {
		t.Errorf("want the page to say the match is lost by forfeit; got %s", text)
	}
	page.waitFor("the record 1-1-0", `$('wins').textContent === '1' && $('losses').textContent === '1' && $('draws').textContent === '0'`)
	page.waitFor("the leaderboard to show the loss", `$('leaders').querySelector('tr.me') && $('leaders').querySelector('tr.me').textContent.includes('1–1–0')`)
	page.checkInView("the result", "outcome-text")
	page.checkPlayerView()
	both("forfeit-lost")
}

// move clicks one of the page's hands.
func (p *page) move(choice string) {
	p.t.Helper()
	p.waitFor("the "+choice+" button", `!document.querySelector('#moves [data-choice=`+choice+`]').disabled`)
	p.eval(`document.querySelector('#moves [data-choice=` + choice + `]').click()`)
}

// checkRound waits for round n's result, with both hands revealed, and checks that the
// next round started with a fresh status line.
func (p *page) checkRound(n int, you, them string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("round %d on the page", n), fmt.Sprintf(`$('rounds').children.length === %d`, n))
	p.checkHands(you, them)
	label := p.eval(`$('round-label').textContent`)
	if want := fmt.Sprintf("Round %d of 3", n+1); !strings.Contains(label, want) {
		p.t.Errorf("after round %d: want %q; got %s", n, want, label)
	}
	// Nothing of the last round (the opponent has chosen, we wait for them) carries over.
	status := p.eval(`$('status').textContent`)
	if want := fmt.Sprintf("Round %d", n+1); !strings.Contains(status, want) || strings.Contains(status, "chosen") || strings.Contains(status, "Waiting") {
		p.t.Errorf("at the start of round %d: want a fresh status line; got %s", n+1, status)
	}
}

// checkHands checks that both hands of the last round show, as SVG, in view.
func (p *page) checkHands(you, them string) {
	p.t.Helper()
	for _, h := range []struct{ id, want string }{{"hand-you", you}, {"hand-them", them}} {
		got := p.eval(`(() => { const s = $('` + h.id + `'); const u = s.querySelector('svg use');
			return s.dataset.hand + ' ' + (u && u.getAttribute('href')); })()`)
		if want := quote(h.want + " #hand-" + h.want); got != want {
			p.t.Errorf("%s: want %s; got %s", h.id, want, got)
		}
		p.checkInView("the hand "+h.id, h.id)
	}
}

// checkInView checks that the element is shown, wholly inside the viewport: the player
// sees it without scrolling.
func (p *page) checkInView(what, id string) {
	p.t.Helper()
	got := p.eval(`(() => { const e = $('` + id + `'); const r = e.getBoundingClientRect();
		return e.checkVisibility() && r.height > 0 && r.top >= 0 && r.left >= 0 &&
			r.bottom <= innerHeight && r.right <= innerWidth ? 'yes' :
			JSON.stringify({top: r.top, bottom: r.bottom, left: r.left, right: r.right, innerWidth, innerHeight, scrollY}); })()`)
	if got != `"yes"` {
		p.t.Errorf("want %s in view at %s; got %s", what, p.size, got)
	}
}

// checkPlayerView checks that the player's view holds no developer text: that stays in
// "How it works".
func (p *page) checkPlayerView() {
	p.t.Helper()
	var view string
	_ = json.Unmarshal([]byte(p.eval(`$('game').innerText`)), &view)
	openID := p.eval(`localStorage.getItem('rps.openid')`)
	for _, dev := range []string{"openid", "GET /", "POST /", "/api", "/wxtest", "localStorage", "token", "subprotocol", "-appid", strings.Trim(openID, `"`)} {
		if strings.Contains(strings.ToLower(view), strings.ToLower(dev)) {
			p.t.Errorf("want no developer text in the player's view; found %q in:\n%s", dev, view)
		}
	}
}

// checkLeaderboard checks that the page shows GET /api/leaderboard, or hides its table
// where the server has none.
func (p *page) checkLeaderboard(s *server) {
	p.t.Helper()
	resp, err := http.Get(s.url + "/api/leaderboard")
	if err != nil {
		p.t.Fatal(err)
	}
	var lb struct{ Players []struct{ Nickname string } }
	_ = json.NewDecoder(resp.Body).Decode(&lb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(lb.Players) == 0 {
		p.waitFor("the leaderboard to be hidden", `$('leaderboard').hidden`)
		return
	}
	p.waitFor("the leaderboard", fmt.Sprintf(`$('leaderboard').checkVisibility() && $('leaders').children.length === %d`, min(len(lb.Players), 10)))
}

// page is one browser tab, driven over its DevTools session.
type page struct {
	t       *testing.T
	cdp     *cdp
	session string
	target  string
	shots   string // where screenshots go
	size    string // the viewport, as "390x844"
}

// openChromium starts headless Chromium and opens a tab. Without Chromium the test
// fails in CI and skips elsewhere.
func openChromium(t *testing.T) *page {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if bin, err = exec.LookPath("/usr/bin/chromium"); err != nil {
			testenv.Unavailable(t, "chromium is not installed (apt-get install -y chromium)")
		}
	}
	dir := t.TempDir() // removed after the browser has exited: cleanups run last-first
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--user-data-dir="+dir, "--remote-debugging-port=0",
		"--window-size=720,1000", "about:blank")
	stderr := &devToolsURL{found: make(chan string, 1)}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var c *cdp
	t.Cleanup(func() {
		if c != nil {
			_ = c.call("", "Browser.close", nil, nil)
			c.close()
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	var url string
	select {
	case url = <-stderr.found:
	case <-exited:
		t.Fatalf("chromium exited: %s", stderr.text())
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium did not print its DevTools URL: %s", stderr.text())
	}
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("DevTools at %s: %v", url, err)
	}
	c = newCDP(conn, t)
	shots := t.TempDir()
	if os.Getenv("MPSESSION_SCREENSHOTS") == "1" {
		shots = filepath.Join("testdata", "screenshots")
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return (&page{t: t, cdp: c, shots: shots}).newTab()
}

// newTab opens another tab of the same browser: it shares localStorage, and so the login.
func (p *page) newTab() *page {
	p.t.Helper()
	var target struct{ TargetID string }
	if err := p.cdp.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		p.t.Fatal(err)
	}
	var attached struct{ SessionID string }
	if err := p.cdp.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		p.t.Fatal(err)
	}
	tab := &page{t: p.t, cdp: p.cdp, session: attached.SessionID, target: target.TargetID, shots: p.shots}
	for _, m := range []string{"Page.enable", "Runtime.enable"} { // console and errors reach the test log
		if err := p.cdp.call(tab.session, m, nil, nil); err != nil {
			p.t.Fatal(err)
		}
	}
	return tab
}

// close closes the tab.
func (p *page) close() {
	p.t.Helper()
	if err := p.cdp.call("", "Target.closeTarget", map[string]any{"targetId": p.target}, nil); err != nil {
		p.t.Fatal(err)
	}
}

// devToolsURL takes Chromium's stderr and finds "DevTools listening on ws://...".
type devToolsURL struct {
	mu    sync.Mutex
	buf   strings.Builder
	found chan string
	sent  bool
}

func (d *devToolsURL) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.buf.Write(p)
	if !d.sent {
		sc := bufio.NewScanner(strings.NewReader(d.buf.String()))
		for sc.Scan() {
			if _, url, ok := strings.Cut(sc.Text(), "DevTools listening on "); ok {
				d.found <- strings.TrimSpace(url)
				d.sent = true
				break
			}
		}
	}
	return len(p), nil
}

func (d *devToolsURL) text() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.buf.String()
}

func (p *page) navigate(url string) {
	p.t.Helper()
	if err := p.cdp.call(p.session, "Page.navigate", map[string]any{"url": url}, nil); err != nil {
		p.t.Fatal(err)
	}
	p.waitFor("the page to load", `document.readyState === 'complete' && location.href.startsWith(`+quote(url)+`)`)
}

// eval evaluates a JavaScript expression in the page and returns its value as JSON.
// typeText types text into the focused element, as a keyboard or a paste would.
func (p *page) typeText(text string) {
	p.t.Helper()
	if err := p.cdp.call(p.session, "Input.insertText", map[string]any{"text": text}, nil); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) eval(expr string) string {
	p.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage
		}
		ExceptionDetails *struct {
			Text      string
			Exception struct{ Description string }
		}
	}
	if err := p.cdp.call(p.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true}, &res); err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	if e := res.ExceptionDetails; e != nil {
		p.t.Fatalf("evaluate %s: %s %s", expr, e.Text, e.Exception.Description)
	}
	return string(res.Result.Value)
}

// waitFor evaluates expr until it is truthy, and returns it (strings unquoted).
func (p *page) waitFor(what, expr string) string {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		v := p.eval(expr)
		switch v {
		case "", "false", `""`, "null", "0":
		default:
			var s string
			if json.Unmarshal([]byte(v), &s) == nil {
				return s
			}
			return v
		}
		if time.Now().After(deadline) {
			p.screenshot("timeout")
			p.t.Fatalf("timed out waiting for %s; the page shows: %s", what,
				p.eval(`document.body.innerText`))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// phone sizes the viewport as a phone's, 390x844 CSS pixels.
func (p *page) phone() { p.viewport(390, 844, 2, true) }

// desktop sizes the viewport as a laptop's browser window.
func (p *page) desktop() { p.viewport(1280, 800, 1, false) }

func (p *page) viewport(w, h int, scale float64, mobile bool) {
	p.t.Helper()
	if err := p.cdp.call(p.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": w, "height": h, "deviceScaleFactor": scale, "mobile": mobile}, nil); err != nil {
		p.t.Fatal(err)
	}
	p.size = fmt.Sprintf("%dx%d", w, h)
	p.waitFor("the viewport", fmt.Sprintf(`location.href === "about:blank" || innerWidth === %d && innerHeight === %d`, w, h))
}

// screenshot saves the visible page as <name>-<size>.png in p.shots.
func (p *page) screenshot(name string) {
	p.t.Helper()
	path := filepath.Join(p.shots, name+"-"+p.size+".png")
	var shot struct{ Data string }
	if err := p.cdp.call(p.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot); err != nil {
		p.t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// cdp is a minimal Chrome DevTools Protocol client: commands with ids, replies matched
// to them, events logged.
type cdp struct {
	conn    *websocket.Conn
	t       *testing.T
	wmu     sync.Mutex
	mu      sync.Mutex
	nextID  int
	pending map[int]chan cdpReply
	done    chan struct{}
}

type cdpReply struct {
	ID     int
	Method string
	Params json.RawMessage
	Result json.RawMessage
	Error  *struct {
		Code    int
		Message string
	}
	SessionID string
}

func newCDP(conn *websocket.Conn, t *testing.T) *cdp {
	c := &cdp{conn: conn, t: t, pending: map[int]chan cdpReply{}, done: make(chan struct{})}
	go c.read()
	return c
}

func (c *cdp) read() {
	defer close(c.done)
	for {
		var r cdpReply
		if err := c.conn.ReadJSON(&r); err != nil {
			c.mu.Lock()
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		if r.ID == 0 {
			c.event(r)
			continue
		}
		c.mu.Lock()
		ch := c.pending[r.ID]
		delete(c.pending, r.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

// event logs the page's console output and uncaught exceptions.
func (c *cdp) event(r cdpReply) {
	switch r.Method {
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string
			Args []struct {
				Value       any
				Description string
			}
		}
		_ = json.Unmarshal(r.Params, &e)
		parts := make([]string, len(e.Args))
		for i, a := range e.Args {
			parts[i] = fmt.Sprint(a.Value)
			if a.Value == nil {
				parts[i] = a.Description
			}
		}
		c.t.Logf("console.%s: %s", e.Type, strings.Join(parts, " "))
	case "Runtime.exceptionThrown":
		c.t.Errorf("the page threw: %s", r.Params)
	}
}

// call sends a command (to the browser when session is "") and decodes its result.
func (c *cdp) call(session, method string, params, result any) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan cdpReply, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	c.wmu.Lock()
	err := c.conn.WriteJSON(msg)
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case r, ok := <-ch:
		switch {
		case !ok:
			return fmt.Errorf("%s: %w", method, io.ErrUnexpectedEOF)
		case r.Error != nil:
			return fmt.Errorf("%s: %d %s", method, r.Error.Code, r.Error.Message)
		case result != nil:
			return json.Unmarshal(r.Result, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: no reply: %w", method, ctx.Err())
	}
}

func (c *cdp) close() {
	_ = c.conn.Close()
	<-c.done
}
