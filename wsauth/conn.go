package wsauth

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	fws "github.com/gofiber/contrib/websocket"
)

// Conn is a WebSocket with what contrib/websocket leaves to every handler: writes from
// several goroutines one at a time (a game broadcasting to a socket while its handler
// answers it would otherwise panic with "concurrent write to websocket connection"),
// a read limit, and a read deadline kept alive by pings. One goroutine reads; any may
// write.
type Conn struct {
	c        *fws.Conn
	h        *Handle // the live session
	srv      *Server
	cfg      *Config // srv.cfg
	wmu      sync.Mutex
	once     sync.Once
	pmu      sync.Mutex   // held by a ping in flight; Close waits for it
	closed   bool         // guarded by pmu
	pinging  atomic.Bool  // a ping is in flight: the next one waits
	nextPing time.Time    // guarded by srv.conns.mu
	gone     bool         // guarded by wmu: closed, writes fail
	closing  atomic.Bool  // Close began: reads drain until the peer's close or the deadline
	closeBy  atomic.Int64 // when the read ends after Close, UnixNano; set before closing

	// The close frame: sent once, never after the handler returned (fasthttp then
	// recycles the connection).
	cmu       sync.Mutex
	closeSent bool // guarded by cmu
	finished  bool // guarded by cmu: the handler returned

	// Messages from the hub (hub.go).
	hub     *Hub
	rooms   []string // topics of the rooms joined, guarded by hub.mu
	hubGone bool     // guarded by hub.mu: out of every topic, joins none
	outMu   sync.Mutex
	out     [][]byte // waiting to be written
	sending bool     // a goroutine writes out
	outDone bool     // closed, or too slow: queue nothing more
	// replayed counts the messages of out queued by a recovery, which QueueSize does
	// not count (a history's size bounds them).
	replayed int

	// Context: made on first use, cancelled by CloseWith.
	ctxMu     sync.Mutex
	ctx       context.Context
	cancel    context.CancelFunc
	ctxClosed bool // guarded by ctxMu: CloseWith ran

	hist *connHistory // with Config.History: the socket's place in its streams (history.go)
	id   string       // with Config.History or Presence: the socket's id, unique in the fleet
}

// wrap sets up conn and starts its pings; nil when the server shut down.
func (s *Server) wrap(conn *fws.Conn, h *Handle) *Conn {
	c := &Conn{c: conn, cfg: &s.cfg, h: h, srv: s, hub: s.hub}
	if s.hub.hist != nil || s.hub.presence != nil {
		c.id = newConnID()
	}
	if !s.conns.add(c) {
		return nil // Shutdown began
	}
	conn.SetReadLimit(s.cfg.ReadLimit)
	_ = conn.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
	conn.SetPongHandler(c.pong)
	s.m.Sockets(1)
	c.hub.attachConn(c)
	h.bind(c)
	return c
}

// connSet is the open Conns of a Server, from the start of their handler to its end.
// One goroutine, which runs while there are Conns, sends their pings (a goroutine per
// socket for a timer would cost more than the socket).
type connSet struct {
	mu    sync.Mutex
	conns map[*Conn]struct{}
	shut  bool // Shutdown began: add refuses
	stop  chan struct{}
	loops sync.WaitGroup // the ping goroutine
}

func (p *connSet) add(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shut {
		return false
	}
	c.nextPing = time.Now().Add(c.cfg.PingInterval)
	p.conns[c] = struct{}{}
	if p.stop == nil {
		p.stop = make(chan struct{})
		p.loops.Add(1)
		go p.run(p.stop)
	}
	return true
}

func (p *connSet) remove(c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	if len(p.conns) == 0 && p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
}

// shutdown refuses Conns from now on and returns those open.
func (p *connSet) shutdown() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shut = true
	cs := make([]*Conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	return cs
}

func (p *connSet) running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// wait waits for the ping goroutine, which stops with the last Conn.
func (p *connSet) wait() { p.loops.Wait() }

// pingTick bounds how late a ping may be.
const pingTick = 500 * time.Millisecond

func (p *connSet) run(stop <-chan struct{}) {
	defer p.loops.Done()
	t := time.NewTicker(pingTick)
	defer t.Stop()
	var due []*Conn
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			due = due[:0]
			p.mu.Lock()
			for c := range p.conns {
				if !now.Before(c.nextPing) {
					c.nextPing = now.Add(c.cfg.PingInterval)
					due = append(due, c)
				}
			}
			p.mu.Unlock()
			for _, c := range due {
				// Each ping on its own goroutine: a peer that stopped reading
				// blocks its ping, not everyone else's.
				if c.pinging.CompareAndSwap(false, true) {
					go c.sendPing(now)
				}
			}
		}
	}
}

// sendPing pings the peer unless the handler has closed the socket: fasthttp recycles
// the connection once the handler returns. WriteControl may run alongside the
// handler's writes; a peer that stopped reading fails here or misses its read deadline.
func (c *Conn) sendPing(now time.Time) {
	defer c.pinging.Store(false)
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if !c.closed {
		_ = c.c.WriteControl(fws.PingMessage, nil, now.Add(c.cfg.WriteTimeout))
	}
}

// pong extends the read deadline when a pong arrives. A method value, not a closure
// over the config, for the few bytes it saves each socket.
func (c *Conn) pong(string) error {
	c.extendRead()
	return nil
}

// extendRead extends the read deadline by ReadTimeout, unless Close began: then the
// read ends a second after the close frame, whatever the peer sends meanwhile.
func (c *Conn) extendRead() {
	if c.closing.Load() {
		return
	}
	_ = c.c.SetReadDeadline(time.Now().Add(c.cfg.ReadTimeout))
	if c.closing.Load() { // Close began meanwhile and set its deadline: keep it
		_ = c.c.SetReadDeadline(time.Unix(0, c.closeBy.Load()))
	}
}

// Session returns the socket's live session.
func (c *Conn) Session() *Handle { return c.h }

// Context returns a context that is done once the socket is closed: by Close or
// CloseWith, by wsauth when the session ends or the server shuts down, or when the
// handler returns. Use it for the calls the handler makes for the socket (Join, Leave,
// the Hub's sends, the store), so that none outlives it.
func (c *Conn) Context() context.Context {
	c.ctxMu.Lock()
	defer c.ctxMu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancel(context.Background())
		if c.ctxClosed {
			c.cancel()
		}
	}
	return c.ctx
}

// WebSocket returns contrib's connection, for what Conn does not cover (Cookies,
// NextReader, NextWriter, LocalAddr, RemoteAddr, ...). Writes through it bypass Conn's
// one-writer-at-a-time lock: write through Conn instead, and do not keep it after the
// handler returns.
func (c *Conn) WebSocket() *fws.Conn { return c.c }

// Headers returns a header of the upgrade request. Use fasthttp's spelling of the name
// ("X-Wx-Id", "User-Agent").
func (c *Conn) Headers(key string, defaultValue ...string) string {
	return c.c.Headers(key, defaultValue...)
}

// Locals returns a value the upgrade request stored with c.Locals under a string key.
func (c *Conn) Locals(key string) any { return c.c.Locals(key) }

// Params returns a route parameter of the upgrade request.
func (c *Conn) Params(key string, defaultValue ...string) string {
	return c.c.Params(key, defaultValue...)
}

// Query returns a query parameter of the upgrade request.
func (c *Conn) Query(key string, defaultValue ...string) string {
	return c.c.Query(key, defaultValue...)
}

// IP returns the client's address.
func (c *Conn) IP() string { return c.c.IP() }

// ReadMessage reads the next message. Each message, like each pong, extends the read
// deadline. A text message that is not valid UTF-8 closes the socket with 1007
// (invalid payload). After Close, no message reaches the caller: ReadMessage returns
// ErrClosed once the peer has answered the close frame, or a second after it was sent.
func (c *Conn) ReadMessage() (messageType int, p []byte, err error) {
	for {
		mt, p, err := c.c.ReadMessage()
		if c.closing.Load() {
			if err != nil {
				return 0, nil, ErrClosed
			}
			continue // sent after the close frame: dropped
		}
		if err != nil {
			return mt, p, err
		}
		if mt == fws.TextMessage && !utf8.Valid(p) {
			_ = c.CloseWith(fws.CloseInvalidFramePayloadData, "invalid UTF-8 in a text message")
			continue
		}
		c.extendRead()
		return mt, p, nil
	}
}

// ReadJSON reads the next message as JSON into v.
func (c *Conn) ReadJSON(v any) error {
	_, p, err := c.ReadMessage()
	if err != nil {
		return err
	}
	return json.Unmarshal(p, v)
}

// WriteMessage writes a message. It may be called from several goroutines; after the
// socket closed it returns ErrClosed.
func (c *Conn) WriteMessage(messageType int, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.gone {
		return ErrClosed
	}
	_ = c.c.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	return c.c.WriteMessage(messageType, data)
}

// WriteJSON writes v as a JSON text message. It may be called from several goroutines.
func (c *Conn) WriteJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.WriteMessage(fws.TextMessage, b)
}

// Close closes the socket with 1000 (normal closure); see CloseWith.
func (c *Conn) Close() error { return c.CloseWith(fws.CloseNormalClosure, "") }

// CloseWith closes the socket with code and reason (at most 123 bytes), from any
// goroutine: it sends the close frame (unless one was sent already), makes later writes
// to the socket fail with ErrClosed, stops the pings and the Hub's messages, and frees
// the socket's place under the caps at once. The session (Session) stays writable until
// the handler returns. The handler's read returns ErrClosed when the peer
// answers the close frame, or a second after it was sent; when the handler returns,
// the connection closes. It is safe to call more than once: the first code is sent.
func (c *Conn) CloseWith(code int, reason string) error {
	c.once.Do(func() {
		c.ctxMu.Lock()
		c.ctxClosed = true
		if c.cancel != nil {
			c.cancel()
		}
		c.ctxMu.Unlock()
		c.closeBy.Store(time.Now().Add(time.Second).UnixNano())
		c.closing.Store(true)
		_ = c.c.SetReadDeadline(time.Unix(0, c.closeBy.Load()))
		// The close frame first, while the connection can still write: it waits up to
		// a second for a write under way. Then writes still under way (stuck on a peer
		// that stopped reading) fail at once, and none starts after.
		c.sendClose(code, reason)
		lockAborting(&c.wmu, c.c.NetConn())
		c.gone = true
		c.wmu.Unlock()
		lockAborting(&c.pmu, c.c.NetConn())
		c.closed = true
		c.pmu.Unlock()
		c.srv.m.Sockets(-1)
		c.hub.detachConn(c)
		c.outMu.Lock()
		c.outDone, c.out = true, nil
		c.outMu.Unlock()
		// Its place under the caps is free now; the handle itself lives until the
		// handler returns, so that the handler may still write the session.
		c.h.reg.remove(c.h)
	})
	return nil
}

// sendClose sends the close frame once, unless the handler has returned.
func (c *Conn) sendClose(code int, reason string) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.closeSent || c.finished {
		return
	}
	c.closeSent = true
	_ = c.c.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(code, reason), time.Unix(0, c.closeBy.Load()))
}

// finish runs when the handler returns: the socket is closed if the handler did not,
// and nothing touches the connection after, which fasthttp closes and recycles.
func (c *Conn) finish() {
	_ = c.Close()
	c.h.bind(nil)
	c.cmu.Lock()
	c.finished = true
	c.cmu.Unlock()
	c.srv.conns.remove(c)
}

// lockAborting locks mu, which a write to nc may hold: such a write fails at once
// instead of waiting up to WriteTimeout for a peer that stopped reading. A write sets
// its own deadline when it starts, so the deadline is set again until mu is had.
func lockAborting(mu *sync.Mutex, nc net.Conn) {
	for !mu.TryLock() {
		if nc != nil {
			_ = nc.SetWriteDeadline(time.Unix(1, 0))
		}
		time.Sleep(time.Millisecond)
	}
}
