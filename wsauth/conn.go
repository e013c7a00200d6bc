package wsauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
)

// ConnConfig defines the config of the sockets Handler serves.
type ConnConfig struct {
	// ReadLimit is the largest message the peer may send; a larger one closes the
	// socket with 1009 (message too big).
	//
	// Optional. Default: 64 << 10
	ReadLimit int64

	// PingInterval is how often a ping frame is sent. Below 60 s it also keeps proxies
	// such as nginx (proxy_read_timeout 60 s) from closing a quiet socket.
	//
	// Optional. Default: 25 * time.Second
	PingInterval time.Duration

	// ReadTimeout closes the socket when nothing, not even a pong, arrives for this
	// long: the peer is gone.
	//
	// Optional. Default: 60 * time.Second
	ReadTimeout time.Duration

	// WriteTimeout bounds every write.
	//
	// Optional. Default: 10 * time.Second
	WriteTimeout time.Duration

	// QueueSize is how many messages from the Hub (ToUser, ToSession, ToRoom) may wait
	// to be written to the socket. A socket whose queue is full when another message
	// comes is closed with CloseTooSlow, so that a client that stopped reading holds
	// neither memory nor the other sockets up.
	//
	// Optional. Default: 256
	QueueSize int
}

// ConnConfigDefault is the default config of the sockets Handler serves.
var ConnConfigDefault = ConnConfig{
	ReadLimit:    64 << 10,
	PingInterval: 25 * time.Second,
	ReadTimeout:  60 * time.Second,
	WriteTimeout: 10 * time.Second,
	QueueSize:    256,
}

// Conn is a WebSocket with what contrib/websocket leaves to every handler: writes from
// several goroutines one at a time (a game broadcasting to a socket while its handler
// answers it would otherwise panic with "concurrent write to websocket connection"),
// a read limit, and a read deadline kept alive by pings. One goroutine reads; any may
// write.
type Conn struct {
	c        *fws.Conn
	h        *Handle // the live session
	cfg      ConnConfig
	wmu      sync.Mutex
	once     sync.Once
	pmu      sync.Mutex  // held by a ping in flight; Close waits for it
	closed   bool        // guarded by pmu
	pinging  atomic.Bool // a ping is in flight: the next one waits
	nextPing time.Time   // guarded by liveConns.mu
	gone     bool        // guarded by wmu: closed, writes fail

	// Messages from the hub (hub.go).
	hub     *Hub
	rooms   []string // topics of the rooms joined, guarded by hub.mu
	hubGone bool     // guarded by hub.mu: out of every topic, joins none
	outMu   sync.Mutex
	out     [][]byte // waiting to be written
	sending bool     // a goroutine writes out
	outDone bool     // closed, or too slow: queue nothing more
}

// Handler returns a contrib/websocket handler that runs fn with the socket of a session
// wsauth.New authenticated:
//
//	app.Get("/ws", wsauth.New(), websocket.New(wsauth.Handler(func(c *wsauth.Conn) { ... })))
//
// The socket is set up as config says (read limit, pings, read deadline), closed with
// CloseLoggedOut, CloseRevoked or CloseExpired when its session ends, and closed when
// fn returns. A socket that wsauth.New did not authenticate (the middleware is missing
// from the route) is closed with 1011 without running fn.
func Handler(fn func(c *Conn), config ...ConnConfig) func(*fws.Conn) {
	cfg := connConfigDefault(config...)
	return func(conn *fws.Conn) {
		r, _ := conn.Locals(localsKey).(*release)
		if r == nil {
			_ = conn.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseInternalServerErr, "socket not authenticated by wsauth.New"), time.Now().Add(time.Second))
			return
		}
		if !r.h.claim() {
			_ = conn.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseTryAgainLater, "handshake took too long"), time.Now().Add(time.Second))
			return
		}
		r.dropRequest()
		c := wrap(conn, r.h, cfg)
		defer c.Close()
		fn(c)
	}
}

func connConfigDefault(config ...ConnConfig) ConnConfig {
	cfg := ConnConfigDefault
	if len(config) > 0 {
		cfg = config[0]
		if cfg.ReadLimit <= 0 {
			cfg.ReadLimit = ConnConfigDefault.ReadLimit
		}
		if cfg.PingInterval <= 0 {
			cfg.PingInterval = ConnConfigDefault.PingInterval
		}
		if cfg.ReadTimeout <= 0 {
			cfg.ReadTimeout = ConnConfigDefault.ReadTimeout
		}
		if cfg.WriteTimeout <= 0 {
			cfg.WriteTimeout = ConnConfigDefault.WriteTimeout
		}
		if cfg.QueueSize <= 0 {
			cfg.QueueSize = ConnConfigDefault.QueueSize
		}
	}
	return cfg
}

// wrap sets up conn and starts its pings.
func wrap(conn *fws.Conn, h *Handle, cfg ConnConfig) *Conn {
	c := &Conn{c: conn, cfg: cfg, h: h, hub: hubOf(h.reg.key)}
	// The inner connection, not contrib's Conn, which goes back to a pool.
	h.bind(conn.Conn)
	conn.SetReadLimit(cfg.ReadLimit)
	_ = conn.SetReadDeadline(time.Now().Add(cfg.ReadTimeout))
	conn.SetPongHandler(c.pong)
	liveConns.add(c)
	h.reg.key.Metrics.Sockets(1)
	c.hub.attachConn(c)
	return c
}

// liveConns is every open Conn of the process. One goroutine, which runs while there are
// Conns, sends their pings (a goroutine per socket for a timer would cost more than the
// socket); CloseAll closes those of one app.
var liveConns = connSet{conns: map[*Conn]struct{}{}}

type connSet struct {
	mu    sync.Mutex
	conns map[*Conn]struct{}
	stop  chan struct{}
}

func (p *connSet) add(c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.nextPing = time.Now().Add(c.cfg.PingInterval)
	p.conns[c] = struct{}{}
	if p.stop == nil {
		p.stop = make(chan struct{})
		go p.run(p.stop)
	}
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

// of returns the open Conns of app.
func (p *connSet) of(app *fiber.App) []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var cs []*Conn
	for c := range p.conns {
		if c.h.app == app {
			cs = append(cs, c)
		}
	}
	return cs
}

// CloseAll closes every socket of app that Handler serves with 1001 (going away) and
// reason, and waits until their handlers have returned or ctx is done. Call it when the
// server shuts down, after app.Shutdown, which does not wait for upgraded connections.
// Sockets of other apps in the process are left alone.
func CloseAll(ctx context.Context, app *fiber.App, reason string) error {
	for _, c := range liveConns.of(app) {
		go c.goAway(reason)
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		n := len(liveConns.of(app))
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wsauth: %d sockets still open: %w", n, ctx.Err())
		case <-t.C:
		}
	}
}

// goAway sends the close frame and ends the handler's read soon after, unless the
// handler has closed the socket already.
func (c *Conn) goAway(reason string) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.closed {
		return
	}
	deadline := time.Now().Add(time.Second)
	_ = c.c.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseGoingAway, reason), deadline)
	_ = c.c.SetReadDeadline(deadline.Add(time.Second))
}

// pingTick bounds how late a ping may be.
const pingTick = 500 * time.Millisecond

func (p *connSet) run(stop <-chan struct{}) {
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
	return c.c.SetReadDeadline(time.Now().Add(c.cfg.ReadTimeout))
}

// Session returns the socket's live session.
func (c *Conn) Session() *Handle { return c.h }

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
// deadline.
func (c *Conn) ReadMessage() (messageType int, p []byte, err error) {
	mt, p, err := c.c.ReadMessage()
	if err == nil {
		_ = c.c.SetReadDeadline(time.Now().Add(c.cfg.ReadTimeout))
	}
	return mt, p, err
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

// CloseWith sends a close frame with code and reason (at most 123 bytes), then closes
// the socket.
func (c *Conn) CloseWith(code int, reason string) error {
	_ = c.c.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(code, reason), time.Now().Add(c.cfg.WriteTimeout))
	return c.Close()
}

// Close stops the pings and closes the socket. It is safe to call more than once.
func (c *Conn) Close() error {
	var err error
	c.once.Do(func() {
		liveConns.remove(c)
		c.h.reg.key.Metrics.Sockets(-1)
		c.hub.detachConn(c)
		c.outMu.Lock()
		c.outDone, c.out = true, nil
		c.outMu.Unlock()
		// fasthttp closes the connection when the handler returns (closing it here
		// does nothing unless the server keeps hijacked connections), and recycles it:
		// wait for the writes under way, a ping or a message stuck on a peer that
		// stopped reading failing at once.
		err = c.c.Close()
		lockAborting(&c.pmu, c.c.NetConn())
		c.closed = true
		c.pmu.Unlock()
		lockAborting(&c.wmu, c.c.NetConn())
		c.gone = true
		c.wmu.Unlock()
		c.h.bind(nil)
	})
	return err
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
