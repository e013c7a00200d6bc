// Package readme keeps the README's program true: it builds the program as a reader
// would, in a module of its own, runs it, and replays the quick start against it.
package readme

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// program returns the Go program of the README's "A complete server" section.
func program(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, use, ok := strings.Cut(string(b), "\n## A complete server\n")
	if !ok {
		t.Fatal(`README.md has no "## A complete server" section`)
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindStringSubmatch(use)
	if m == nil {
		t.Fatal(`README.md's "## A complete server" section has no go block`)
	}
	return m[1]
}

// quickStart returns the shell block of the README's "Quick start" section.
func quickStart(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, qs, ok := strings.Cut(string(b), "\n### Quick start\n")
	if !ok {
		t.Fatal(`README.md has no "### Quick start" section`)
	}
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(qs)
	if m == nil {
		t.Fatal(`README.md's "### Quick start" section has no sh block`)
	}
	return m[1]
}

// TestProgram does what the README tells a reader: the program saved as main.go in a
// folder beside a clone named mpsession, then the quick start's block, as written, in
// bash (only its port is changed, so that tests may run side by side). Then it runs the
// program it built and checks what the block does not show.
func TestProgram(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := os.Symlink(root, filepath.Join(tmp, "mpsession")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "scores")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program(t, root)), 0o644); err != nil {
		t.Fatal(err)
	}

	// The block calls the program where it listens by default.
	if !strings.Contains(program(t, root), `cmp.Or(os.Getenv("ADDR"), "127.0.0.1:3000")`) {
		t.Fatal(`the README's program does not listen on 127.0.0.1:3000 by default, where the quick start calls it`)
	}
	addr := freeAddr(t)
	block := strings.ReplaceAll(quickStart(t, root), "127.0.0.1:3000", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-c", block)
	sh.Dir = dir
	// The reader's environment: no workspace, no flags, and the program's own defaults.
	sh.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=", "ADDR="+addr, "WX_APPID=", "WX_SECRET=")
	var stderr bytes.Buffer
	sh.Stderr = &stderr
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("the quick start failed: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.Bytes())
	}
	t.Logf("the quick start printed:\n%s", out)
	// The program's own output (Fiber's banner) comes first, on the same terminal.
	if want := "{\"score\":1}\n{\"score\":2}\n{\"score\":3}\n"; !strings.HasSuffix(string(out), want) {
		t.Errorf("the quick start printed\n%s\nwant it to end with\n%s(stderr:\n%s)", out, want, stderr.Bytes())
	}
	if !strings.Contains(stderr.String(), "mpws: refused: HTTP 401 Unauthorized") {
		t.Errorf("the quick start's socket without a session: want \"mpws: refused: HTTP 401 Unauthorized\" on stderr; got:\n%s", stderr.Bytes())
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "replace github.com/mpsession/mpsession => ../mpsession") {
		t.Errorf("the quick start's go.mod does not use the clone:\n%s", mod)
	}

	addr = freeAddr(t)
	run := exec.Command(filepath.Join(dir, "scores"))
	run.Dir = dir
	run.Env = append(os.Environ(), "ADDR="+addr, "WX_APPID=", "WX_SECRET=")
	var logs bytes.Buffer
	run.Stdout, run.Stderr = &logs, &logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = run.Process.Kill()
		if t.Failed() {
			t.Logf("the program's output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	waitUp(t, addr)

	// 1. a code, as wx.login would give one
	code := do(t, "GET", base+"/dev/code?openid=alice", "", "", 200)
	// 2. log in
	var login struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expiresIn"`
		OpenID    string `json:"openid"`
	}
	if err := json.Unmarshal([]byte(do(t, "POST", base+"/login", `{"code":"`+code+`"}`, "", 200)), &login); err != nil {
		t.Fatal(err)
	}
	if login.Token == "" || login.OpenID != "alice" || login.ExpiresIn != 7200 {
		t.Fatalf("login: got %+v", login)
	}
	// 3. an authenticated call
	if got := do(t, "POST", base+"/score", "", login.Token, 200); got != `{"score":1}` {
		t.Errorf("POST /score: want {\"score\":1}; got %s", got)
	}
	if got := do(t, "POST", base+"/score", "", "", 401); !strings.Contains(got, "ERR_INVALID_SESSION") {
		t.Errorf("POST /score without a token: want ERR_INVALID_SESSION; got %s", got)
	}
	// 4. the socket, with the same credentials
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", http.Header{"Authorization": {"Bearer " + login.Token}})
	if err != nil {
		t.Fatalf("socket: %v (%v)", err, resp)
	}
	defer ws.Close()
	for want := 2; want <= 3; want++ {
		if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if got, wantMsg := string(msg), `{"score":`+strconv.Itoa(want)+`}`; got != wantMsg {
			t.Errorf("socket: want %s; got %s", wantMsg, got)
		}
	}
	// 5. a message to the user's sockets from an HTTP route, through the hub
	do(t, "POST", base+"/poke/alice", "", login.Token, 200)
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != `{"poke":true}` {
		t.Errorf("poke: want {\"poke\":true}; got %s, %v", msg, err)
	}
	// Without a valid token the upgrade is refused: no socket.
	_, resp, err = websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("socket without a token: want 401; got %v, %v", resp, err)
	}
	// Logins are limited per IP: 10 a minute, this test's one included.
	for i := 2; i <= 10; i++ {
		do(t, "POST", base+"/login", `{"code":"made-up"}`, "", 401)
	}
	do(t, "POST", base+"/login", `{"code":"made-up"}`, "", 429)

	// Ctrl-C: the socket is closed with 1001 and the program exits.
	if err := run.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("socket at Ctrl-C: want close 1001; got %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	select {
	case err := <-exited:
		t.Logf("the program exited after Ctrl-C: %v", err)
	case <-time.After(15 * time.Second):
		t.Error("the program did not exit within 15 s of Ctrl-C")
	}
}

// TestModuleGraph checks what the README promises of the module's dependencies: a
// program that imports fibermp, wsauth and redisstore gets none of what only the
// examples and bench use.
func TestModuleGraph(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module consumer\n\ngo 1.26\n\nreplace github.com/mpsession/mpsession => " + root + "\n",
		"main.go": `package main

import (
	_ "github.com/mpsession/mpsession/fibermp"
	_ "github.com/mpsession/mpsession/store/redisstore"
	_ "github.com/mpsession/mpsession/wsauth"
)

func main() {}
`,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gocmd := func(args ...string) string {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	gocmd("mod", "tidy")
	all := gocmd("list", "-m", "all")
	if !strings.Contains(all, "github.com/gofiber/fiber/v2 ") {
		t.Fatalf("go list -m all does not list Fiber; it printed:\n%s", all)
	}
	for _, mod := range []string{"modernc.org/sqlite", "github.com/prometheus/client_golang", "github.com/gofiber/storage/redis", "github.com/maypok86/otter"} {
		if strings.Contains(all, mod) {
			t.Errorf("a program that imports fibermp, wsauth and redisstore has %s in its module graph:\n%s", mod, all)
		}
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitUp(t *testing.T, addr string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the program did not listen on %s within 20 s", addr)
}

// do sends a request as the quick start's curl commands do and returns the body.
func do(t *testing.T, method, url, body, token string, want int) string {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: want HTTP %d; got %d %s", method, url, want, resp.StatusCode, b)
	}
	return string(b)
}
