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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/mpsession/mpsession/internal/testenv"
)

// The web page, in a real browser: headless Chromium driven over the Chrome DevTools
// Protocol (no npm, no Playwright). It logs in through the fake WeChat, plays a bot to
// the end, then is logged out from "another tab" and must say so.
func TestWebPage(t *testing.T) {
	s := startServer(t, config{Bots: 1})
	page := openChromium(t)
	page.navigate(s.url)
	page.waitFor("the page to connect", `document.getElementById('status').textContent.startsWith('Connected')`)

	page.eval(`document.getElementById('play-bot').click()`)
	// Play: click a move whenever the page offers one, until the match is over.
	result := page.waitFor("a match result", `(() => {
		const r = document.getElementById('outcome').dataset.result;
		if (r) return r;
		const moves = [...document.querySelectorAll('#moves button:not(:disabled)')];
		if (moves.length) moves[Math.floor(Math.random() * moves.length)].click();
		return '';
	})()`)
	if result != "win" && result != "lose" && result != "draw" {
		t.Fatalf("want a match result; got %q", result)
	}
	// The record on the page comes from GET /api/me, which read the live session.
	page.waitFor("the record to show the match", `['wins','losses','draws'].map(id => +document.getElementById(id).textContent).reduce((a, b) => a + b) === 1`)
	page.screenshot("/tmp/rps.png")

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
	page.waitFor("the page to say it was logged out", `!document.getElementById('notice').hidden &&
		document.getElementById('notice-text').textContent.includes('logged out elsewhere')`)
	page.screenshot("/tmp/rps-logged-out.png")
}

// page is one browser tab, driven over its DevTools session.
type page struct {
	t       *testing.T
	cdp     *cdp
	session string
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

	var target struct{ TargetID string }
	if err := c.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		t.Fatal(err)
	}
	var attached struct{ SessionID string }
	if err := c.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		t.Fatal(err)
	}
	p := &page{t: t, cdp: c, session: attached.SessionID}
	for _, m := range []string{"Page.enable", "Runtime.enable"} { // console and errors reach the test log
		if err := c.call(p.session, m, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	return p
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
			p.screenshot("/tmp/rps-timeout.png")
			p.t.Fatalf("timed out waiting for %s; the page shows: %s", what,
				p.eval(`document.body.innerText`))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the visible page as a PNG.
func (p *page) screenshot(path string) {
	p.t.Helper()
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
