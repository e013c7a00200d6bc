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
	"regexp"
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
// three scripted rounds, so each check sees a known state: both hands revealed together
// after a countdown, the status line reset when a round starts, the result in view. Then
// the page plays a bot, and a rematch against it, and is logged out from "another tab",
// and must say so. The browser's language is English, and so is the page.
//
// Screenshots go to a temporary folder, or to testdata/screenshots with
// MPSESSION_SCREENSHOTS=1.
func TestWebPage(t *testing.T) {
	s := startServer(t, config{}) // bots are called on demand
	page := openChromium(t)
	page.phone()
	page.navigate(s.url)
	page.waitFor("the page to connect", `$('status').textContent.includes('Pick an opponent')`)
	if got := page.text(`document.documentElement.lang + ' ' + $('play').textContent + ' ' + $('lang').textContent`); got != `en Play someone 中文` {
		t.Errorf("an English browser: want the page in English, with a switch to Chinese; got %s", got)
	}
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
	page.screenshot("phone-lobby")
	page.desktop()
	page.screenshot("desktop-lobby")
	page.phone()

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

	// Round 1: Bob moves first; the page sees it, then plays paper (tapped, as on a
	// phone) and wins, after the countdown.
	page.watchReveal()
	bob.send(clientMsg{Type: "move", Choice: "rock"})
	page.waitFor("the page to show that the opponent has chosen", `$('status').textContent.includes('has chosen')`)
	page.touch(true)
	page.tap("paper")
	page.screenshotReveal(1, "phone-reveal")
	bob.expect("round", "opponent_away", "opponent_back") // Bob saw the reload
	page.checkRound(1, "paper", "rock")
	page.checkReveal(1, true)
	page.checkNoStickyHover("paper")
	page.touch(false)
	if got := page.eval(`$('pips-you').querySelectorAll('.on').length + '-' + $('pips-them').querySelectorAll('.on').length`); got != `"1-0"` {
		t.Errorf("after round 1: want one dot filled for the page; got %s", got)
	}

	// Round 2: the page moves first (its status says it waits), then Bob wins.
	page.move("scissors")
	page.waitFor("the page to wait for the opponent", `$('status').textContent.includes('Waiting for')`)
	page.desktop()
	page.watchReveal()
	bob.send(clientMsg{Type: "move", Choice: "rock"})
	page.screenshotReveal(2, "desktop-reveal")
	bob.expect("round")
	page.checkRound(2, "scissors", "rock")
	page.checkReveal(2, true)
	page.screenshot("desktop-mid-match")
	page.phone()
	page.screenshot("phone-mid-match")

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
	// The server forgets the match a closed socket played: no rematch to offer.
	if page.eval(`$('rematch').hidden`) != "true" {
		t.Error("after the page's socket closed, want no Rematch button")
	}
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
	page.playOut()
	page.checkInView("the match result", "outcome-text")
	// The record on the page comes from GET /api/me, which read the live session.
	page.waitFor("the record to show both matches", `['wins','losses','draws'].map(id => +$(id).textContent).reduce((a, b) => a + b) === 2`)

	// A rematch: the bot accepts it, and the page plays it.
	page.waitFor("the Rematch button", `$('rematch').checkVisibility() && !$('rematch').disabled && $('rematch').textContent === 'Rematch'`)
	page.checkInView("the Rematch button", "rematch")
	page.checkInView("the buttons to play someone else", "again-bot")
	page.screenshot("phone-outcome-rematch")
	page.desktop()
	page.screenshot("desktop-outcome-rematch")
	page.phone()
	last := page.eval(`seen.match`)
	page.eval(`$('rematch').click()`)
	page.waitFor("the rematch against the bot", `seen.match !== `+last+` && $('match').checkVisibility() && !$('bot-badge').hidden && !$('moves').hidden`)
	page.playOut()
	page.waitFor("the record to show three matches", `['wins','losses','draws'].map(id => +$(id).textContent).reduce((a, b) => a + b) === 3`)

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

// playOut plays the match under way to its end, moving at random, and checks its result.
func (p *page) playOut() {
	p.t.Helper()
	result := p.waitFor("a match result", `(() => {
		const r = $('outcome-text').dataset.result;
		if (r) return r;
		const moves = [...document.querySelectorAll('#moves button:not(:disabled)')];
		if (moves.length) moves[Math.floor(Math.random() * moves.length)].click();
		return '';
	})()`)
	if result != "win" && result != "lose" && result != "draw" {
		p.t.Fatalf("want a match result; got %q", result)
	}
}

// The page in Chinese, the default for a browser whose first language is not English:
// the lobby, a match with its reveals (one without motion), the outcome, a rematch
// offered and accepted, a rematch asked and declined. No English text of the page's
// table shows meanwhile. The switch to English shows every text in English at once, and
// is remembered. Sound is off until the player switches it on.
func TestWebPageChinese(t *testing.T) {
	s := startServer(t, config{})
	page := openChromium(t)
	page.acceptLanguage("zh-CN,zh")
	page.countAudioContexts()
	page.phone()
	page.navigate(s.url)
	if got := page.eval(`navigator.languages[0]`); got != `"zh-CN"` {
		t.Fatalf("want the browser's first language zh-CN; got %s", got)
	}
	page.waitFor("the page to connect", `$('status').textContent.includes('选个对手吧')`)
	if got := page.text(`[document.documentElement.lang, document.title, $('play').textContent, $('play-bot').textContent, $('lang').textContent].join(' ')`); got != `zh-CN 石头剪刀布 找人对战 人机对战 EN` {
		t.Errorf("a Chinese browser: want the page in Chinese, with a switch to English; got %s", got)
	}
	page.checkTable()

	// Both players take names of their own, as players do.
	page.eval(`$('nickname').focus(), $('nickname').select()`)
	page.typeText("小明")
	page.eval(`$('save-nickname').click()`)
	page.waitFor("the new name", `$('status').textContent === '你现在叫 小明 了。'`)
	bobUser := login(t, s, "oBob")
	bobUser.do("POST", "/api/nickname", map[string]string{"nickname": "阿强"}, http.StatusOK, nil)
	page.waitFor("the count of players online", `$('online').checkVisibility() && $('online').textContent === '现在只有你在线'`)
	page.checkChinese("the lobby")
	page.screenshot("zh-lobby")
	page.desktop()
	page.screenshot("zh-lobby")
	page.phone()

	page.eval(`$('play').click()`)
	page.waitFor("the page to queue", `$('status').textContent === '等待对手…' && $('play').textContent === '匹配中…'`)
	bob := bobUser.dial(false)
	bob.send(clientMsg{Type: "queue"})
	bob.expect("matched")
	page.waitFor("the match to start", `$('match').checkVisibility() && !$('moves').querySelector('button').disabled`)
	if got := page.text(`$('status').textContent + ' ' + $('round-label').textContent + ' ' + $('best-of').textContent`); got != `第 1 局：请出拳！ 第 1/3 局 三局两胜` {
		t.Errorf("at the start of the match: want the status, the round and best of 3 in Chinese; got %s", got)
	}
	if got := page.text(`$('match').innerText`); !strings.Contains(got, "对手") || !strings.Contains(got, "阿强") ||
		!strings.Contains(got, "石头") || !strings.Contains(got, "剪刀") || !strings.Contains(got, "布") {
		t.Errorf("want the opponent and the moves in Chinese; got %s", got)
	}
	// Best of 3, and the dots of the rounds won, in view with the moves.
	for _, id := range []string{"best-of", "pips-you", "pips-them", "moves"} {
		page.checkInView(id, id)
	}
	page.checkChinese("the match")

	// Round 1: after the countdown, the page wins.
	page.watchReveal()
	bob.send(clientMsg{Type: "move", Choice: "rock"})
	page.waitFor("the page to show that the opponent has chosen", `$('status').textContent === '阿强 已出拳，该你了！'`)
	page.move("paper")
	page.screenshotReveal(1, "zh-reveal")
	bob.expect("round")
	page.waitFor("round 1 on the page", `$('rounds').children.length === 1`)
	page.checkReveal(1, true)
	page.checkHands("paper", "rock")
	if got := page.text(`[$('round-result').textContent, $('status').textContent, $('round-label').textContent, $('pips-you').querySelectorAll('.on').length].join(' ')`); got != `第 1 局：你赢了（布包石头） 第 2 局：请出拳！ 第 2/3 局 1` {
		t.Errorf("after round 1: want the result, round 2 and a dot for the page, in Chinese; got %s", got)
	}
	page.checkChinese("after round 1")
	page.screenshot("zh-mid-match")

	// Round 2, at a desktop's size: a draw.
	page.desktop()
	page.watchReveal()
	page.move("rock")
	page.waitFor("the page to wait for the opponent", `$('status').textContent === '你出了石头，等待 阿强…'`)
	bob.send(clientMsg{Type: "move", Choice: "rock"})
	page.screenshotReveal(2, "zh-reveal")
	bob.expect("round")
	page.waitFor("round 2 on the page", `$('rounds').children.length === 2`)
	page.checkReveal(2, true)
	if got := page.text(`$('round-result').textContent`); got != `第 2 局：平局（都出了石头）` {
		t.Errorf("after round 2: want a draw, in Chinese; got %s", got)
	}
	page.screenshot("zh-mid-match")
	page.phone()

	// Round 3, for a player who wants no motion: no countdown, both hands at once. The
	// page wins the match 2-0.
	page.emulateMedia("prefers-reduced-motion", "reduce")
	page.watchReveal()
	bob.send(clientMsg{Type: "move", Choice: "scissors"})
	page.move("rock")
	bob.expect("round")
	bob.expect("match_over")
	if r := page.waitFor("the match result", `$('outcome-text').dataset.result`); r != "win" {
		t.Fatalf("want the page to win 2-0; got %q", r)
	}
	page.checkReveal(3, false)
	page.emulateMedia("", "")
	if got := page.text(`[$('outcome-text').textContent, $('status').textContent, $('rematch').textContent].join(' ')`); got != `你赢了！2–0 对局结束。还玩吗？ 再来一局` {
		t.Errorf("the outcome: want it in Chinese, with a rematch; got %s", got)
	}
	for _, id := range []string{"outcome-text", "rematch", "again", "again-bot"} {
		page.checkInView(id, id)
	}
	page.checkChinese("the outcome")
	page.checkPlayerView()
	page.screenshot("zh-outcome")
	page.desktop()
	page.screenshot("zh-outcome")
	page.phone()
	if n := page.eval(`audioContexts`); n != "0" {
		t.Errorf("sound is off by default: want no AudioContext; got %s", n)
	}

	// Bob asks for a rematch: the page shows the offer, with the button to accept it.
	bob.send(clientMsg{Type: "rematch"})
	bob.expect("rematch_wait")
	page.waitFor("the rematch offer", `$('rematch-note').checkVisibility() && $('rematch-text').textContent === '阿强 想再来一局！' &&
		/^（1?\d 秒）$/.test($('rematch-left').textContent) && $('rematch').textContent === '接受' && !$('rematch').disabled`)
	page.checkInView("the rematch offer", "rematch-note")
	page.checkInView("the button to accept", "rematch")
	page.checkChinese("the rematch offer")
	page.screenshot("zh-rematch-offer")
	page.desktop()
	page.screenshot("zh-rematch-offer")
	page.phone()

	// The switch to English shows every text in English at once, the offer included.
	page.eval(`$('lang').click()`)
	if got := page.text(`[document.documentElement.lang, $('lang').textContent, $('rematch-text').textContent, $('rematch').textContent,
		$('outcome-text').textContent, $('status').textContent, $('round-result').textContent].join(' | ')`); got != `en | 中文 | 阿强 wants a rematch! | Accept | You win the match 2–0! | Match over. Play again? | Round 3: you win (rock blunts scissors)` {
		t.Errorf("after the switch to English: got %s", got)
	}
	if len(page.english()) == 0 {
		t.Error("the page in English: want the check for English text to find some")
	}
	page.screenshot("en-rematch-offer")
	page.desktop()
	page.screenshot("en-rematch-offer")
	page.phone()
	page.eval(`$('lang').click()`)
	page.waitFor("the page in Chinese again", `document.documentElement.lang === 'zh-CN' && $('rematch-text').textContent === '阿强 想再来一局！'`)

	// Sound on: the switch makes the AudioContext (in the click, as browsers want), and
	// the rematch plays with its beeps.
	page.eval(`$('sound').click()`)
	if got := page.text(`audioContexts + ' ' + localStorage.getItem('rps.sound') + ' ' + $('sound').getAttribute('aria-label')`); got != `1 on 关闭音效` {
		t.Errorf("after the sound switch: want one AudioContext, sound on, a label to turn it off; got %s", got)
	}
	last := page.eval(`seen.match`)
	page.eval(`$('rematch').click()`)
	bob.expect("matched")
	page.waitFor("the rematch", `seen.match !== `+last+` && $('match').checkVisibility() && !$('moves').hidden && $('rounds').children.length === 0`)
	for n := 1; n <= 2; n++ {
		bob.send(clientMsg{Type: "move", Choice: "rock"})
		page.move("paper")
		bob.expect("round")
	}
	bob.expect("match_over")
	if r := page.waitFor("the rematch's result", `$('outcome-text').dataset.result`); r != "win" {
		t.Fatalf("want the page to win the rematch; got %q", r)
	}

	// The page asks for another: it waits for Bob, and may still play someone else. Bob
	// queues for anyone instead, which declines, and the page says so.
	page.eval(`$('rematch').click()`)
	page.waitFor("the page to wait for Bob", `$('rematch-text').textContent === '等待 阿强 接受…' && $('rematch').disabled &&
		!$('again').disabled && !$('again-bot').disabled`)
	page.checkChinese("the rematch asked")
	page.screenshot("zh-rematch-wait")
	bob.expect("rematch_offered")
	bob.send(clientMsg{Type: "queue"})
	bob.expect("queued")
	page.waitFor("the page to say Bob declined", `$('rematch-text').textContent === '阿强 不想再来了。' && $('rematch').hidden && !$('again').disabled`)
	page.checkChinese("the rematch declined")

	// English is remembered, and so is sound; a new page makes no AudioContext before the
	// player's first click.
	page.eval(`$('lang').click()`)
	page.navigate(s.url)
	page.waitFor("the page to connect", `$('status').textContent.includes('Pick an opponent')`)
	if got := page.text(`[document.documentElement.lang, $('play').textContent, $('sound').getAttribute('aria-label'), audioContexts].join(' ')`); got != `en Play someone Turn sound off 0` {
		t.Errorf("after a reload: want English and sound on, remembered, and no AudioContext yet; got %s", got)
	}
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

// watchReveal records, from now on, what the arena shows at each change (in
// window.revealLog): both slots' hands, the countdown, and how many rounds are listed.
func (p *page) watchReveal() {
	p.t.Helper()
	p.eval(`window.revealWatch && revealWatch.disconnect(), window.revealLog = [],
		window.revealWatch = new MutationObserver(() => revealLog.push({you: $('hand-you').dataset.hand, them: $('hand-them').dataset.hand,
			count: $('count').hidden ? '' : $('count').textContent, listed: $('rounds').children.length})),
		revealWatch.observe($('reveal'), {subtree: true, childList: true, attributes: true, characterData: true})`)
}

// checkReveal checks what watchReveal saw of round n: the countdown "3", "2", "1" over
// both fists shaking (or, with countdown false, none), with the round listed only after
// it; and never one hand shown while the other slot shows the "?".
func (p *page) checkReveal(n int, countdown bool) {
	p.t.Helper()
	var log []struct {
		You, Them, Count string
		Listed           int
	}
	if err := json.Unmarshal([]byte(p.eval(`revealLog`)), &log); err != nil || len(log) == 0 {
		p.t.Fatalf("round %d: the arena did not change (%v)", n, err)
	}
	counts, shook := "", false
	for _, s := range log {
		if (s.You == "") != (s.Them == "") {
			p.t.Errorf("round %d: one hand shown while the other slot shows the \"?\": %+v", n, s)
		}
		shook = shook || s.You == "shake" && s.Them == "shake"
		if s.Count != "" && !strings.HasSuffix(counts, s.Count) {
			counts += s.Count
			if s.Listed != n-1 {
				p.t.Errorf("round %d: listed during the countdown: %+v", n, s)
			}
		}
	}
	want := map[bool]string{true: "321", false: ""}[countdown]
	if counts != want || shook != countdown {
		p.t.Errorf("round %d: want the countdown %q, fists shaking %v; got %q, %v", n, want, countdown, counts, shook)
	}
	if end := log[len(log)-1]; end.You == "" || end.You == "shake" || end.Them == "shake" || end.Count != "" || end.Listed != n {
		p.t.Errorf("round %d: want both hands shown and the round listed at the end; got %+v", n, end)
	}
}

// screenshotReveal takes a screenshot during round n's countdown if it catches one (it
// lasts under a second), else of the round revealed.
func (p *page) screenshotReveal(n int, name string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("round %d's countdown", n), fmt.Sprintf(`!$('count').hidden || $('rounds').children.length === %d`, n))
	p.screenshot(name)
}

// checkNoStickyHover checks that the move button tapped last round (choice) is not
// outlined now that the buttons are back: on a touch screen the button tapped keeps
// :hover, and the outline would make it look chosen. Every :hover rule of the page is
// inside a (hover: hover) media rule, which a touch screen does not match. A probe
// rule outside one shows that the button does keep :hover.
func (p *page) checkNoStickyHover(choice string) {
	p.t.Helper()
	if bare := p.eval(`(() => {
		const out = [];
		const walk = (rules, hover) => { for (const r of rules) {
			if (r instanceof CSSMediaRule) walk(r.cssRules, hover || r.conditionText.includes('(hover: hover)'));
			else if (r.selectorText && r.selectorText.includes(':hover') && !hover) out.push(r.selectorText);
		} };
		for (const s of document.styleSheets) walk(s.cssRules, false);
		return out;
	})()`); bare != "[]" {
		p.t.Errorf("want every :hover rule inside @media (hover: hover); these are not: %s", bare)
	}
	button := `document.querySelector('#moves [data-choice=` + choice + `]')`
	p.waitFor("the "+choice+" button", `!`+button+`.disabled`)
	got := p.text(`(() => {
		const probe = document.head.appendChild(document.createElement('style'));
		probe.textContent = '#moves button:hover { outline: 1px solid rgb(1, 2, 3); }';
		const style = getComputedStyle(` + button + `);
		const got = [matchMedia('(hover: none)').matches, style.outlineColor, style.boxShadow].join(' | ');
		probe.remove();
		return got;
	})()`)
	if want := "true | rgb(1, 2, 3) | rgb(228, 223, 212) 0px 0px 0px 2px inset"; got != want {
		p.t.Errorf("the %s button tapped last round: want it kept hovered on a touch screen, without the hover outline (%s); got %s", choice, want, got)
	}
}

// touch emulates a touch screen, or stops.
func (p *page) touch(on bool) {
	p.t.Helper()
	if err := p.cdp.call(p.session, "Emulation.setTouchEmulationEnabled", map[string]any{"enabled": on, "maxTouchPoints": 5}, nil); err != nil {
		p.t.Fatal(err)
	}
}

// tap taps one of the page's hands with a finger, on an emulated touch screen.
func (p *page) tap(choice string) {
	p.t.Helper()
	button := `document.querySelector('#moves [data-choice=` + choice + `]')`
	p.waitFor("the "+choice+" button", `!`+button+`.disabled`)
	var at struct{ X, Y float64 }
	_ = json.Unmarshal([]byte(p.eval(`(() => { const r = `+button+`.getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()`)), &at)
	for _, e := range []map[string]any{
		{"type": "touchStart", "touchPoints": []map[string]float64{{"x": at.X, "y": at.Y}}},
		{"type": "touchEnd", "touchPoints": []map[string]float64{}},
	} {
		if err := p.cdp.call(p.session, "Input.dispatchTouchEvent", e, nil); err != nil {
			p.t.Fatal(err)
		}
	}
	p.waitFor("the tap on "+choice, button+`.classList.contains('picked')`)
}

// emulateMedia emulates a CSS media feature, as "hover", "none"; "" ends the emulation.
func (p *page) emulateMedia(feature, value string) {
	p.t.Helper()
	features := []map[string]string{}
	if feature != "" {
		features = append(features, map[string]string{"name": feature, "value": value})
	}
	if err := p.cdp.call(p.session, "Emulation.setEmulatedMedia", map[string]any{"features": features}, nil); err != nil {
		p.t.Fatal(err)
	}
}

// acceptLanguage sets the languages the tab's browser prefers (navigator.languages and
// Accept-Language), as "zh-CN,zh", for the pages it loads next.
func (p *page) acceptLanguage(langs string) {
	p.t.Helper()
	var v struct{ UserAgent string }
	if err := p.cdp.call("", "Browser.getVersion", nil, &v); err != nil {
		p.t.Fatal(err)
	}
	if err := p.cdp.call(p.session, "Emulation.setUserAgentOverride", map[string]any{"userAgent": v.UserAgent, "acceptLanguage": langs}, nil); err != nil {
		p.t.Fatal(err)
	}
}

// countAudioContexts counts, in window.audioContexts, the AudioContexts that each page
// the tab loads next makes.
func (p *page) countAudioContexts() {
	p.t.Helper()
	if err := p.cdp.call(p.session, "Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": `window.audioContexts = 0;
		window.AudioContext = class extends AudioContext { constructor(...args) { super(...args); window.audioContexts++; } };`}, nil); err != nil {
		p.t.Fatal(err)
	}
}

// checkTable checks the page's table of texts: both languages have the same keys, with
// the same placeholders, and every key that index.html or app.js names is in it.
func (p *page) checkTable() {
	p.t.Helper()
	src, err := os.ReadFile(filepath.Join("web", "app.js"))
	if err != nil {
		p.t.Fatal(err)
	}
	var keys []string // the keys app.js names whole: 'status.hi', not 'outcome.' + result
	for _, m := range regexp.MustCompile(`'([a-z]+(?:\.[A-Za-z0-9_]+)+)'`).FindAllStringSubmatch(string(src), -1) {
		if !strings.HasPrefix(m[1], "rps.") { // localStorage's keys
			keys = append(keys, m[1])
		}
	}
	if len(keys) < 50 {
		p.t.Fatalf("want the keys of the texts that app.js shows; found %q", keys)
	}
	b, _ := json.Marshal(keys)
	if got := p.eval(`(() => {
		const out = [], ph = (s) => (s.match(/\{\w+\}/g) || []).sort().join();
		for (const [a, b] of [['zh', 'en'], ['en', 'zh']]) for (const k of Object.keys(TEXT[a])) {
			if (!(k in TEXT[b])) out.push(b + ' lacks ' + k);
			else if (ph(TEXT[a][k]) !== ph(TEXT[b][k])) out.push(k + ': the placeholders differ');
		}
		const named = [...document.querySelectorAll('[data-i18n], [data-i18n-label], [data-i18n-html], [data-i18n-title], [data-i18n-placeholder]')]
			.flatMap((el) => [el.dataset.i18n, el.dataset.i18nLabel, el.dataset.i18nHtml, el.dataset.i18nTitle, el.dataset.i18nPlaceholder]);
		for (const k of named.concat(` + string(b) + `)) if (k !== undefined && !(k in TEXT.zh)) out.push(k + ' is not in the table');
		return out;
	})()`); got != "[]" {
		p.t.Errorf("the table of texts: %s", got)
	}
}

// english returns the English texts of the table that the page shows: their parts
// between placeholders longer than 3 characters, found in document.body.innerText.
func (p *page) english() []string {
	p.t.Helper()
	var found []string
	_ = json.Unmarshal([]byte(p.eval(`(() => {
		const shown = document.body.innerText, out = [];
		for (const [k, v] of Object.entries(TEXT.en)) {
			if (v === TEXT.zh[k]) continue;
			for (const part of v.split(/\{\w+\}/).map((s) => s.trim())) if (part.length > 3 && shown.includes(part)) out.push(k + ': ' + part);
		}
		return out;
	})()`)), &found)
	return found
}

// checkChinese checks that the page shows no English text of its table: one not
// translated.
func (p *page) checkChinese(where string) {
	p.t.Helper()
	if found := p.english(); len(found) > 0 {
		p.t.Errorf("%s: English on the Chinese page: %q", where, found)
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
	width   int    // its width
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
		"--disable-sync", "--accept-lang=en-US", "--user-data-dir="+dir, "--remote-debugging-port=0",
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

// text evaluates a JavaScript expression whose value is a string, and returns it.
func (p *page) text(expr string) string {
	p.t.Helper()
	var s string
	if v := p.eval(expr); json.Unmarshal([]byte(v), &s) != nil {
		p.t.Fatalf("evaluate %s: want a string; got %s", expr, v)
	}
	return s
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
	p.width = w
	// On a phone, a page wider than the screen widens the viewport to fit, in proportion:
	// checkFits then says what is too wide.
	p.waitFor("the viewport", fmt.Sprintf(`location.href === "about:blank" ||
		devicePixelRatio === %v && innerWidth >= %d && Math.abs(innerWidth * %d / %[2]d - innerHeight) < 1`, scale, w, h))
	p.checkFits()
}

// checkFits checks that the page is no wider than the viewport: nothing to scroll
// sideways, nothing cut off.
func (p *page) checkFits() {
	p.t.Helper()
	if wide := p.eval(fmt.Sprintf(`location.href === "about:blank" || document.documentElement.scrollWidth <= %d ||
		[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > %[1]d + 0.5 && e.checkVisibility())
			.map((e) => e.tagName + (e.id ? '#' + e.id : '') + ' ' + Math.round(e.getBoundingClientRect().right)).join(', ')`, p.width)); wide != "true" {
		p.t.Errorf("at %s the page is wider than the screen: %s", p.size, wide)
	}
}

// screenshot saves the visible page as <name>-<size>.png in p.shots.
func (p *page) screenshot(name string) {
	p.t.Helper()
	p.checkFits()
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
