package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// The client process holds the client ends of the sockets. The parent starts it as
//
//	<this program> -client <ws URL> <concurrent dials> <source addresses> [<first source>]
//
// and speaks to it in lines, on its stdin and stdout:
//
//	parent -> client                   client -> parent
//	token <openid> <token>  (N times)
//	dial                               fail <i> <message>  (for each socket that failed)
//	                                   ready <opened> <failed> <heap+stack bytes> <goroutines>
//	check                              fail <i> <message>
//	                                   checked <open> <answered>
//	quit                               bye <closed cleanly> <closed by force>
//
// and, at any time until quit, for every socket whose read ends:
//
//	closed <i> <close code, or 0> <wall clock, unix ns> <reason or error>
//
// and for every text message that starts with "m " (the fleet's deliveries):
//
//	msg <i> <wall clock, unix ns> <the rest of the message>
//
// Sockets are numbered from 0 in the order of their tokens. With k source addresses
// (k > 0), socket i is dialed from 127.0.0.(2 + first + i mod k), so that no one address runs
// out of local ports; with 0, from whatever address the system picks. The client exits
// when its stdin ends.
const clientFlag = "-client"

// isClient reports whether this process was started as the client process.
func isClient() bool { return len(os.Args) > 1 && os.Args[1] == clientFlag }

// whoTimeout bounds the wait for an answer to "who".
const whoTimeout = 10 * time.Second

type clientSocket struct {
	openid, token string
	conn          *websocket.Conn // nil when the dial failed
	replies       chan string
	done          chan struct{} // closed when the reader returns
	closed        atomic.Bool
}

type client struct {
	url      string
	conc     int
	sources  int // source addresses, 127.0.0.(2+first) on; 0: the system's choice
	first    int
	out      *bufio.Writer
	mu       sync.Mutex // guards out and flushDue
	flushDue bool       // a flush of deliveries is scheduled
	quit     atomic.Bool
	sock     []*clientSocket
}

func (c *client) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.out, format+"\n", args...)
	_ = c.out.Flush()
}

// deliveryFlush is how often the lines of deliveries are flushed: each is written
// without a flush, so that 10,000 sockets reading one message at once do not make
// 10,000 writes to the pipe. Their times are taken when they are read.
const deliveryFlush = 5 * time.Millisecond

// printDelivery writes the line of a delivery, flushed within deliveryFlush.
func (c *client) printDelivery(i int, at int64, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.out, "msg %d %d %s\n", i, at, text)
	if !c.flushDue {
		c.flushDue = true
		time.AfterFunc(deliveryFlush, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.flushDue = false
			_ = c.out.Flush()
		})
	}
}

// clientMain runs the client process and returns its exit status.
func clientMain(args []string, in io.Reader, out io.Writer) int {
	if len(args) != 3 && len(args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: sockets -client <ws URL> <concurrent dials> <source addresses> [<first source>]")
		return 2
	}
	first := 0
	if len(args) == 4 {
		var err error
		if first, err = strconv.Atoi(args[3]); err != nil || first < 0 {
			fmt.Fprintln(os.Stderr, "sockets client: bad first source", args[3])
			return 2
		}
	}
	conc, err := strconv.Atoi(args[1])
	if err != nil || conc < 1 {
		fmt.Fprintln(os.Stderr, "sockets client: bad concurrency", args[1])
		return 2
	}
	sources, err := strconv.Atoi(args[2])
	if err != nil || sources < 0 || first+sources > maxSources {
		fmt.Fprintln(os.Stderr, "sockets client: bad number of source addresses", args[2])
		return 2
	}
	c := &client{url: args[0], conc: conc, sources: sources, first: first, out: bufio.NewWriter(out)}
	defer c.closeAll()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "token" && len(f) == 3:
			c.sock = append(c.sock, &clientSocket{openid: f[1], token: f[2]})
		case f[0] == "dial":
			c.dialAll()
		case f[0] == "check":
			c.checkAll()
		case f[0] == "quit":
			return 0
		default:
			fmt.Fprintf(os.Stderr, "sockets client: unknown command %q\n", sc.Text())
			return 2
		}
	}
	return 0
}

// parallel runs fn for every socket number, conc at a time.
func (c *client) parallel(fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c.conc, len(c.sock)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(c.sock) {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// clientBufferSize is the client's read and write buffer: it reads close frames and
// the openids "who" answers, and writes "who".
const clientBufferSize = 256

// clientWriteBuffers lends the client's sockets a write buffer only while they write.
var clientWriteBuffers sync.Pool

func (c *client) dialAll() {
	// The parent raised the limit it passed on; this only lifts the soft one.
	if limit, err := raiseFileLimit(uint64(len(c.sock)) + 256); err != nil {
		fmt.Fprintf(os.Stderr, "sockets client: open files limit %d: %v\n", limit, err)
	}
	// One dialer per source address; socket i uses dialers[i mod k].
	dialers := make([]*websocket.Dialer, max(1, c.sources))
	for k := range dialers {
		nd := &net.Dialer{}
		if c.sources > 0 {
			nd.LocalAddr = &net.TCPAddr{IP: sourceAddr(c.first + k)}
		}
		dialers[k] = &websocket.Dialer{HandshakeTimeout: 30 * time.Second, NetDialContext: nd.DialContext,
			ReadBufferSize: clientBufferSize, WriteBufferSize: clientBufferSize, WriteBufferPool: &clientWriteBuffers}
	}
	var failed atomic.Int64
	c.parallel(func(i int) {
		s := c.sock[i]
		if err := c.dial(dialers[i%len(dialers)], i, s); err != nil {
			failed.Add(1)
			c.printf("fail %d %s", i, oneLine(err.Error()))
		}
	})
	heap, goroutines := memory()
	c.printf("ready %d %d %d %d", int64(len(c.sock))-failed.Load(), failed.Load(), heap, goroutines)
}

// maxSources is the most source addresses: 127.0.0.2 to 127.0.0.254.
const maxSources = 253

// sourceAddr returns the k-th source address, from 127.0.0.2.
func sourceAddr(k int) net.IP { return net.IPv4(127, 0, 0, byte(2+k)) }

// dial opens socket i and checks with "who" that the server knows its user.
func (c *client) dial(d *websocket.Dialer, i int, s *clientSocket) error {
	conn, resp, err := d.Dial(c.url, http.Header{"Authorization": {"Bearer " + s.token}})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial: %w (HTTP %d)", err, resp.StatusCode)
		}
		return fmt.Errorf("dial: %w", err)
	}
	s.conn, s.replies, s.done = conn, make(chan string, 1), make(chan struct{})
	go c.read(i, s)
	return s.who()
}

// read reads socket i until it ends, hands text messages to who, and reports the end.
func (c *client) read(i int, s *clientSocket) {
	defer close(s.done)
	for {
		mt, msg, err := s.conn.ReadMessage()
		if err != nil {
			at := time.Now().UnixNano()
			s.closed.Store(true)
			if c.quit.Load() {
				return
			}
			code, reason := 0, err.Error()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				code, reason = ce.Code, ce.Text
			}
			c.printf("closed %d %d %d %s", i, code, at, oneLine(reason))
			return
		}
		if mt == websocket.TextMessage && len(msg) > 2 && msg[0] == 'm' && msg[1] == ' ' {
			c.printDelivery(i, time.Now().UnixNano(), oneLine(string(msg[2:])))
			continue
		}
		if mt == websocket.TextMessage {
			select {
			case s.replies <- string(msg):
			default: // nobody asked
			}
		}
	}
}

// who asks the server who the socket's user is, and checks the answer.
func (s *clientSocket) who() error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(whoTimeout))
	if err := s.conn.WriteMessage(websocket.TextMessage, []byte("who")); err != nil {
		return fmt.Errorf("who: %w", err)
	}
	select {
	case got := <-s.replies:
		if got != s.openid {
			return fmt.Errorf("who: want %s; got %q", s.openid, got)
		}
		return nil
	case <-s.done:
		return errors.New("who: the socket closed")
	case <-time.After(whoTimeout):
		return fmt.Errorf("who: no answer in %v", whoTimeout)
	}
}

// checkAll asks "who" on every socket still open.
func (c *client) checkAll() {
	var open, answered atomic.Int64
	c.parallel(func(i int) {
		s := c.sock[i]
		if s.conn == nil || s.closed.Load() {
			return
		}
		open.Add(1)
		if err := s.who(); err != nil {
			c.printf("fail %d %s", i, oneLine(err.Error()))
			return
		}
		answered.Add(1)
	})
	c.printf("checked %d %d", open.Load(), answered.Load())
}

// closeAll closes every socket that is still open, the polite way: a close frame,
// then the wait for the server's, then the TCP connection. It reports how many
// sockets the server closed in turn, and how many it had to drop.
func (c *client) closeAll() {
	c.quit.Store(true)
	// The server closes its ends one by one: about 10,000 a second on two cores.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second+time.Duration(len(c.sock))*time.Second/2000)
	defer cancel()
	deadline, _ := ctx.Deadline()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	var open []*clientSocket
	for _, s := range c.sock {
		if s.conn == nil {
			continue
		}
		if !s.closed.Load() {
			open = append(open, s)
			_ = s.conn.WriteControl(websocket.CloseMessage, msg, deadline)
		}
	}
	clean, forced := 0, 0
	for _, s := range open {
		select {
		case <-s.done:
			clean++
		case <-ctx.Done():
			forced++
		}
	}
	for _, s := range c.sock {
		if s.conn != nil {
			_ = s.conn.Close()
			<-s.done
		}
	}
	c.printf("bye %d %d", clean, forced)
}

// memory returns the heap and stack in use after a garbage collection, and the
// number of goroutines.
func memory() (heapStack uint64, goroutines int) {
	runtime.GC()
	runtime.GC() // the second empties sync.Pool's victim cache
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, runtime.NumGoroutine()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if s == "" {
		return "-"
	}
	return s
}
