// Command mpws is a small WebSocket client for trying a server by hand: it opens a
// socket with the headers given, sends each message given after the URL and prints
// one reply per message, or, with no message, sends each line of its input and prints
// every message it receives until the socket closes.
//
//	go run github.com/mpsession/mpsession/cmd/mpws -H "Authorization: Bearer $TOKEN" ws://127.0.0.1:3000/ws hello
//
// A refused upgrade prints the HTTP status and body, a close prints its code and
// reason, and both exit with status 1.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// headers is the repeatable -H flag.
type headers http.Header

func (h headers) String() string { return "" }

func (h headers) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("want \"Name: value\"; got %q", v)
	}
	http.Header(h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("mpws", flag.ContinueOnError)
	flags.SetOutput(stderr)
	h := headers{}
	flags.Var(h, "H", "a request header, `Name: value` (repeatable)")
	protocol := flags.String("subprotocol", "", "offer these comma-separated subprotocols, as a browser's new WebSocket(url, [...]) does")
	wait := flags.Duration("wait", 10*time.Second, "how long to wait for each reply")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: mpws [-H 'Name: value']... [-subprotocol a,b] ws://host/path [message...]")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() < 1 {
		flags.Usage()
		return 2
	}
	dialer := *websocket.DefaultDialer
	if *protocol != "" {
		dialer.Subprotocols = strings.Split(*protocol, ",")
	}
	conn, resp, err := dialer.Dial(flags.Arg(0), http.Header(h))
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			fmt.Fprintf(stderr, "mpws: refused: HTTP %s %s\n", resp.Status, strings.TrimSpace(string(body)))
		} else {
			fmt.Fprintf(stderr, "mpws: %v\n", err)
		}
		return 1
	}
	defer conn.Close()

	if messages := flags.Args()[1:]; len(messages) > 0 {
		for _, m := range messages {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
				return closed(stderr, err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(*wait))
			_, reply, err := conn.ReadMessage()
			if err != nil {
				return closed(stderr, err)
			}
			fmt.Fprintf(stdout, "%s\n", reply)
		}
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		return 0
	}

	// Interactive: lines in, messages out, until either side ends.
	go func() {
		in := bufio.NewScanner(stdin)
		for in.Scan() {
			if conn.WriteMessage(websocket.TextMessage, in.Bytes()) != nil {
				return
			}
		}
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	}()
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return 0
			}
			return closed(stderr, err)
		}
		fmt.Fprintf(stdout, "%s\n", msg)
	}
}

// closed reports why the socket ended.
func closed(stderr io.Writer, err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "mpws: closed by the server: %d %s\n", ce.Code, ce.Text)
	} else {
		fmt.Fprintf(stderr, "mpws: %v\n", err)
	}
	return 1
}
