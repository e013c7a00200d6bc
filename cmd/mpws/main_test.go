package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fasthttp/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server answers each message in upper case on /echo when the request carries
// "Authorization: Bearer t", and on /bye closes the socket with 4001 after the first one.
func server(t *testing.T) string {
	up := websocket.Upgrader{Subprotocols: []string{"mpsession"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" && !strings.Contains(r.Header.Get("Sec-WebSocket-Protocol"), "t") {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if r.URL.Path == "/bye" {
				_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "logged out"))
				return
			}
			if c.WriteMessage(websocket.TextMessage, bytes.ToUpper(m)) != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestRun(t *testing.T) {
	url := server(t)
	for _, tc := range []struct {
		name           string
		args           []string
		stdin          string
		code           int
		stdout, stderr string
	}{
		{"messages", []string{"-H", "Authorization: Bearer t", url + "/echo", "a", "b"}, "", 0, "A\nB\n", ""},
		{"lines", []string{"-H", "Authorization: Bearer t", url + "/echo"}, "hi\nthere\n", 0, "HI\nTHERE\n", ""},
		{"subprotocol", []string{"-subprotocol", "mpsession,t", url + "/echo", "x"}, "", 0, "X\n", ""},
		{"refused", []string{url + "/echo", "a"}, "", 1, "", "mpws: refused: HTTP 401 Unauthorized no session\n"},
		{"closed", []string{"-H", "Authorization: Bearer t", url + "/bye", "a"}, "", 1, "", "mpws: closed by the server: 4001 logged out\n"},
		{"bad header", []string{"-H", "nocolon", url}, "", 2, "", "invalid value"},
		{"no url", nil, "", 2, "", "usage: mpws"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.code || stdout.String() != tc.stdout || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("mpws %q: want %d, %q, %q; got %d, %q, %q", tc.args, tc.code, tc.stdout, tc.stderr, code, stdout.String(), stderr.String())
			}
		})
	}
}
