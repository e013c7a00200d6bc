package wsauth

import (
	"encoding/json"
	"sync"
	"time"

	fws "github.com/gofiber/contrib/websocket"
)

// ConnConfig defines the config of Wrap.
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
}

// ConnConfigDefault is the default config of Wrap.
var ConnConfigDefault = ConnConfig{
	ReadLimit:    64 << 10,
	PingInterval: 25 * time.Second,
	ReadTimeout:  60 * time.Second,
	WriteTimeout: 10 * time.Second,
}

// Conn is a WebSocket with what contrib/websocket leaves to every handler: writes from
// several goroutines one at a time (a game broadcasting to a socket while its handler
// answers it would otherwise panic with "concurrent write to websocket connection"),
// a read limit, and a read deadline kept alive by pings. One goroutine reads; any may
// write.
type Conn struct {
	c    *fws.Conn
	cfg  ConnConfig
	wmu  sync.Mutex
	stop chan struct{}
	once sync.Once
}

// Wrap sets up conn as the config says and starts its pings. Call Close when the
// handler is done with it (defer c.Close()).
func Wrap(conn *fws.Conn, config ...ConnConfig) *Conn {
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
	}
	c := &Conn{c: conn, cfg: cfg, stop: make(chan struct{})}
	conn.SetReadLimit(cfg.ReadLimit)
	_ = conn.SetReadDeadline(time.Now().Add(cfg.ReadTimeout))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(cfg.ReadTimeout))
	})
	go c.ping()
	return c
}

func (c *Conn) ping() {
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			// WriteControl may run alongside other writes.
			if c.c.WriteControl(fws.PingMessage, nil, time.Now().Add(c.cfg.WriteTimeout)) != nil {
				return
			}
		}
	}
}

// Session returns the socket's live session (see Session), or nil.
func (c *Conn) Session() *Handle { return Session(c.c) }

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

// WriteMessage writes a message. It may be called from several goroutines.
func (c *Conn) WriteMessage(messageType int, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
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
		close(c.stop)
		err = c.c.Close()
	})
	return err
}
