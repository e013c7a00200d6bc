package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/wsauth"
)

// nodeMatch is what miniprogram/test/run.js saw in English, step by step.
type nodeMatch struct {
	Steps struct {
		Lang    struct{ Lang, Title string }
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
		Leaders nodeLeaders
		Rename  struct{ Refused, NicknameAfterRefusal, Status, Nickname, Input string }
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
		Resume1 struct {
			Round int
			Texts string
		}
		Rematch struct {
			Offered  bool
			Opponent string
			Result   Result
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

// nodeLeaders is the leaderboard the page showed, and the player's nickname then.
type nodeLeaders struct {
	Nickname string
	Rows     []struct {
		Rank                int
		Nickname            string
		Wins, Losses, Draws int
		Me                  bool
	}
}

// nodeLobby is the lobby as run.js saw it in Chinese: its language, what it said, and
// the language in storage and the one the next launch would pick.
type nodeLobby struct {
	Lang, Status, Play, Title, Record, Online, Stored, Detected, Nickname string
}

// nodeChinese is what run.js saw in Chinese: the steps, how many texts the page said
// in Chinese, and those with English in them.
type nodeChinese struct {
	Steps struct {
		Lobby, English, Chinese nodeLobby
		Match                   struct {
			RoundLabel, Opponent, Chose, RoundText, Result, Outcome, Record string
			Moves, Statuses                                                 []string // Statuses: every status said in the match, in order
			Score                                                           []int
		}
		Leaders nodeLeaders
		Rename  struct{ Refused, Status, Nickname string }
	}
	Said  int
	Leaks []string
}

// startNode runs miniprogram/test/run.js against s, logged in as openID, with WeChat in
// lang. wait waits for node to exit and decodes what it printed into out; should the
// test end first, node is stopped and what it said is logged.
func startNode(t *testing.T, s *server, openID, lang string) (wait func(out any)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	// node 20 has its global WebSocket behind this flag; from node 22 it is on by default.
	cmd := exec.CommandContext(ctx, "node", "--experimental-websocket", "--no-warnings", "run.js", s.url, openID, lang)
	cmd.Dir = filepath.Join("miniprogram", "test")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		cancel()
		if !exited { // the Go side failed: stop node, and show what it said
			_ = cmd.Wait()
			t.Logf("node stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	})
	return func(out any) {
		t.Helper()
		err := cmd.Wait()
		exited = true
		if jerr := json.Unmarshal(stdout.Bytes(), out); err != nil || jerr != nil {
			t.Fatalf("node: %v %v\nstdout:\n%s\nstderr:\n%s", err, jerr, stdout.String(), stderr.String())
		}
	}
}

// The mini program's own scripts (miniprogram/app.js, utils/client.js, utils/i18n.js,
// the page), run by node with a stub wx whose requests and sockets are real
// (miniprogram/test/wx.js), against the real server, once in English and once in Chinese.
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
	t.Run("English", func(t *testing.T) { testMiniProgramEnglish(t, s) })
	t.Run("Chinese", func(t *testing.T) { testMiniProgramChinese(t, s) })
}

// In English, the mini program logs in with wx.login, connects with the token in an
// Authorization header, and plays a best-of-three match against a player this test
// plays, who has the same nickname: the leaderboard marks the mini program's line by
// the server's "me", not by name. It renames its player (a name too long is refused, and
// the page says why), and plays a second match, which the other player leaves (a win by
// forfeit); then its connection drops and it reconnects with backoff, it is logged out
// from another device (4001) and logs in again to the same record, it plays a bot, drops
// its connection in the middle of that match, the round's result lost on the way, and
// resumes it with the round recovered, and it logs out.
func testMiniProgramEnglish(t *testing.T, s *server) {
	const openID = "oMini"
	// The name the server gives the mini program's player, which Bob takes too.
	name := login(t, s, openID).me().Nickname
	bob := login(t, s, "oBob")
	bob.do("POST", "/api/nickname", map[string]string{"nickname": name}, http.StatusOK, nil)
	wait := startNode(t, s, openID, "en")

	// Bob, the mini program's opponent, plays rock every round and loses 0-2.
	bc := bob.dial(false)
	bc.send(clientMsg{Type: "queue"})
	m, err := bc.read()
	if err == nil && m.Type == "queued" { // Bob waits, unless the mini program queued first
		m, err = bc.read()
	}
	if err != nil || m.Type != "matched" {
		t.Fatalf("Bob: want matched; got %+v (%v)", m, err)
	}
	var them struct{ Nickname string }
	if err := json.Unmarshal(m.Opponent, &them); err != nil || them.Nickname == "" {
		t.Fatalf("matched: want the mini program's nickname; got %q (%v)", them.Nickname, err)
	}
	for range 2 {
		bc.send(clientMsg{Type: "move", Choice: "rock"})
		bc.expect("round")
	}
	if over := bc.expect("match_over"); over.Result != Lose {
		t.Errorf("Bob: want a lost match; got %+v", over)
	}
	// A second match: Bob wins round 1 (rock against the mini program's scissors), then
	// leaves, and forfeits it.
	bc.send(clientMsg{Type: "queue"})
	if m, err = bc.read(); err == nil && m.Type == "queued" {
		m, err = bc.read()
	}
	if err != nil || m.Type != "matched" {
		t.Fatalf("Bob: want the second match; got %+v (%v)", m, err)
	}
	bc.send(clientMsg{Type: "move", Choice: "rock"})
	bc.expect("round")
	bc.send(clientMsg{Type: "leave"})
	if over := bc.expect("match_over"); over.Result != Lose || !over.Forfeit || over.Record == nil || *over.Record != (record{Losses: 2}) {
		t.Errorf("Bob: want a loss by forfeit, record 0-2-0; got %+v (record %v)", over, over.Record)
	}

	var got nodeMatch
	wait(&got)
	st := got.Steps
	if l := st.Lang; l.Lang != "en" || l.Title != "Rock, paper, scissors" {
		t.Errorf("WeChat in English: want the page in English; got %+v", l)
	}

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

	lb := st.Leaders
	var mine, same, marked int
	for _, r := range lb.Rows {
		if r.Nickname == lb.Nickname {
			same++
		}
		if r.Me {
			marked++
			if r.Nickname == lb.Nickname && r.Wins == 1 && r.Losses == 0 {
				mine++
			}
		}
	}
	if same != 2 || marked != 1 || mine != 1 {
		t.Errorf("leaderboard: want two lines named %q, the winner's alone marked as the player's; got %+v", lb.Nickname, lb.Rows)
	}
	rn := st.Rename
	if rn.Refused != "⚠ A nickname has 1 to 24 printable characters." || rn.NicknameAfterRefusal != w.Nickname {
		t.Errorf("rename to 25 characters: want the server's refusal said, and the name kept; got %+v", rn)
	}
	if rn.Status != "You are now Mini Tester." || rn.Nickname != "Mini Tester" || rn.Input != "" {
		t.Errorf("rename: want the new name shown; got %+v", rn)
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

	if r1 := st.Resume1; r1.Round != 1 || strings.Contains(r1.Texts, "NaN") || !strings.Contains(r1.Texts, "Round 1") {
		t.Errorf("a drop in round 1: want the match resumed in round 1, no NaN; got %+v", r1)
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
	if rm := st.Rematch; !rm.Offered || rm.Opponent != b.Opponent || rm.Result == "" {
		t.Errorf("rematch: want it offered after the bot match, and played to a result against the same bot (%q); got %+v", b.Opponent, rm)
	}
	want := record{Wins: 2}
	if !want.add(b.Result) {
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
	want.add(st.Rematch.Result) // the rematch, played after the bot match
	if me := login(t, s, openID).me(); me.record != want || me.Nickname != "Mini Tester" {
		t.Errorf("after logging in again: want the record %+v and the new name; got %+v", want, me)
	}
}

// In Chinese, the language of a WeChat in Chinese, the mini program says everything in
// Chinese: the lobby, a match against a bot, its rounds and its outcome, the leaderboard
// and a rename. Its switch shows English at once and keeps the choice in storage, which
// the next launch reads before WeChat's language; switched back, the page is in Chinese
// again. No English of the table is in what the page shows in Chinese.
func testMiniProgramChinese(t *testing.T, s *server) {
	const openID = "oMiniZh"
	var got nodeChinese
	startNode(t, s, openID, "zh_CN")(&got)
	st := got.Steps

	lo := st.Lobby
	hi := "你好，" + lo.Nickname + "！选个对手吧。"
	online := regexp.MustCompile(`^(\d+ 人在线|现在只有你在线)$`)
	if lo.Lang != "zh" || lo.Nickname == "" || lo.Status != hi || lo.Play != "找人对战" || lo.Title != "石头剪刀布" ||
		lo.Record != "0胜 0负 0平" || !online.MatchString(lo.Online) || lo.Stored != "" || lo.Detected != "zh" {
		t.Errorf("lobby: want it in Chinese, no language stored; got %+v", lo)
	}
	en := st.English
	if en.Lang != "en" || en.Status != "Hi "+lo.Nickname+"! Pick an opponent." || en.Play != "Play someone" ||
		en.Title != "Rock, paper, scissors" || en.Record != "0 won · 0 lost · 0 drawn" || en.Stored != "en" || en.Detected != "en" {
		t.Errorf("switched to English: want every text in English at once, and English stored; got %+v", en)
	}
	if zh := st.Chinese; zh.Lang != "zh" || zh.Status != hi || zh.Play != "找人对战" || zh.Title != "石头剪刀布" ||
		zh.Record != lo.Record || zh.Online != lo.Online || zh.Stored != "zh" || zh.Detected != "zh" {
		t.Errorf("switched back: want the lobby in Chinese again, and Chinese stored; got %+v", zh)
	}

	mt := st.Match
	if mt.RoundLabel != "第 1 局 · 三局两胜" || !slices.Equal(mt.Moves, []string{"石头", "布", "剪刀"}) || mt.Chose != "你出了石头，等待 "+mt.Opponent+"…" {
		t.Errorf("match: want round 1 and the move said in Chinese; got %+v", mt)
	}
	for _, want := range []string{"正在叫机器人…", "第 1 局：请出拳！", "第 2 局：请出拳！", "对局结束，再来一局？"} {
		if !slices.Contains(mt.Statuses, want) {
			t.Errorf("match: want the status %q said; got %q", want, mt.Statuses)
		}
	}
	if !strings.HasPrefix(mt.RoundText, "第 1 局：") || !strings.HasSuffix(mt.RoundText, "）") {
		t.Errorf("match: want round 1's result in Chinese; got %q", mt.RoundText)
	}
	outcome := map[string]string{"win": "你赢了！", "lose": "你输了，", "draw": "平局，"}[mt.Result]
	if outcome == "" || len(mt.Score) != 2 || mt.Outcome != fmt.Sprintf("%s%d–%d", outcome, mt.Score[0], mt.Score[1]) {
		t.Errorf("match over: want the outcome in Chinese; got %+v", mt)
	}
	if want := map[string]string{"win": "1胜 0负 0平", "lose": "0胜 1负 0平", "draw": "0胜 0负 1平"}[mt.Result]; mt.Record != want {
		t.Errorf("match over: want the record %q; got %q", want, mt.Record)
	}

	lb := st.Leaders
	marked := 0
	for _, r := range lb.Rows {
		if r.Me {
			marked++
			if r.Nickname != lb.Nickname || r.Wins+r.Losses+r.Draws != 1 {
				t.Errorf("leaderboard: want the player's line with one match; got %+v", r)
			}
		}
	}
	if marked != 1 {
		t.Errorf("leaderboard: want one line marked as the player's; got %+v", lb.Rows)
	}

	rn := st.Rename
	if rn.Refused != "⚠ 昵称要 1 到 24 个字，不能有控制字符。" {
		t.Errorf("rename to 25 characters: want the server's refusal in Chinese; got %q", rn.Refused)
	}
	if rn.Status != "改好了，你现在叫 石头大王。" || rn.Nickname != "石头大王" {
		t.Errorf("rename: want the new name shown; got %+v", rn)
	}
	if me := login(t, s, openID).me(); me.Nickname != "石头大王" {
		t.Errorf("GET /api/me: want the new name; got %q", me.Nickname)
	}

	if got.Said < 100 || len(got.Leaks) > 0 {
		t.Errorf("want no English in what the page said in Chinese (%d texts); found it in:\n%s", got.Said, strings.Join(got.Leaks, "\n"))
	}
}

// The mini program's words: the Chinese and the English table have the same texts,
// with the same placeholders, and every text the page names is in both: in its WXML
// ({{s.group.key}}), in its script ('group.key') and in the server's messages that
// utils/i18n.js knows.
func TestMiniProgramText(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Unavailable(t, "node is not installed")
	}
	cmd := exec.Command("node", "-e", "process.stdout.write(JSON.stringify(require('./utils/i18n.js')))")
	cmd.Dir = "miniprogram"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var tables struct{ Zh, En map[string]map[string]string }
	if err := json.Unmarshal(out, &tables); err != nil || len(tables.Zh) == 0 {
		t.Fatalf("utils/i18n.js: want the tables zh and en; got %s (%v)", out, err)
	}
	placeholder := regexp.MustCompile(`\{\w+\}`)
	params := func(s string) []string {
		p := placeholder.FindAllString(s, -1)
		slices.Sort(p)
		return p
	}
	for _, c := range []struct {
		name        string
		this, other map[string]map[string]string
	}{{"zh", tables.Zh, tables.En}, {"en", tables.En, tables.Zh}} {
		for g, texts := range c.this {
			for k, s := range texts {
				o, ok := c.other[g][k]
				if !ok {
					t.Errorf("%s has %s.%s, the other table has not", c.name, g, k)
				} else if !slices.Equal(params(s), params(o)) {
					t.Errorf("%s.%s: the tables' placeholders differ: %q, %q", g, k, s, o)
				}
				if s == "" {
					t.Errorf("%s: %s.%s is empty", c.name, g, k)
				}
			}
		}
	}

	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("miniprogram", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	keys := map[string][]string{} // file → the keys it names
	wxml := read("pages/index/index.wxml")
	inWXML := regexp.MustCompile(`(?:^|[^\w.])s\.([\w.]+)`)
	for _, expr := range regexp.MustCompile(`\{\{(.*?)\}\}`).FindAllStringSubmatch(wxml, -1) {
		for _, m := range inWXML.FindAllStringSubmatch(expr[1], -1) {
			keys["index.wxml"] = append(keys["index.wxml"], m[1])
		}
	}
	for _, m := range regexp.MustCompile(`'([a-z]+\.[A-Za-z_]+)'`).FindAllStringSubmatch(read("pages/index/index.js"), -1) {
		keys["index.js"] = append(keys["index.js"], m[1])
	}
	for _, m := range regexp.MustCompile(`\['[^']+', '([^']+)'\]`).FindAllStringSubmatch(read("utils/i18n.js"), -1) {
		keys["i18n.js's SERVER"] = append(keys["i18n.js's SERVER"], m[1])
	}
	for file, least := range map[string]int{"index.wxml": 15, "index.js": 60, "i18n.js's SERVER": 10} {
		if len(keys[file]) < least {
			t.Errorf("%s: want at least %d texts named; found %d: %v", file, least, len(keys[file]), keys[file])
		}
		for _, key := range keys[file] {
			g, k, ok := strings.Cut(key, ".")
			_, zh := tables.Zh[g][k]
			_, en := tables.En[g][k]
			if !ok || strings.Contains(k, ".") || !zh || !en {
				t.Errorf("%s names the text %q, which is not in both tables", file, key)
			}
		}
	}
}

// add counts a result in r, and reports whether it is one.
func (r *record) add(res Result) bool {
	switch res {
	case Win:
		r.Wins++
	case Lose:
		r.Losses++
	case Draw:
		r.Draws++
	default:
		return false
	}
	return true
}
