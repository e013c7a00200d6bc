package main

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/wsauth"
)

// server is the running game: main starts one, and so do the tests.
type server struct {
	url                   string // http://127.0.0.1:port, also for the server's own clients
	storeName, wechatName string
	recordsName           string
	app                   *fiber.App
	ln                    net.Listener
	served                chan struct{}
	lobby                 *lobby
	mp                    *fibermp.Manager
	ws                    *wsauth.Server
	bots                  *bots // nil with real WeChat
	hosted                hostedCount
	rdb                   *redis.Client // with -redis
	redisPrefix           string        // of the store's keys and the game's
	idle                  func()        // closes the idle connections of the server's wx.Client
	closers               []func() error
	closeOnce             sync.Once
}

// close stops the bots (they log out), stops listening, ends the matches this instance
// runs, closes the sockets (1001) and waits for their handlers and rooms, then closes the store and the database. Calls
// after the first do nothing.
func (s *server) close() { s.closeOnce.Do(s.shutdown) }

func (s *server) shutdown() {
	if s.bots != nil {
		s.bots.stop()
	}
	// A connection the server's own clients opened and never used counts as busy
	// for 5 s (fasthttp's StateNew), holding up the shutdown: close those first.
	s.idle()
	_ = s.app.ShutdownWithTimeout(5 * time.Second)
	// A Shutdown that came before app.Listener began serving has no listener to close:
	// close it here, or the Listener would serve on.
	_ = s.ln.Close()
	<-s.served
	// Fiber's Shutdown leaves upgraded connections open: close them (1001), and end
	// the reads of clients that do not answer the close frame.
	s.lobby.close(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.ws.Shutdown(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.mp.Close(ctx)
	s.closeAll()
}

func (s *server) closeAll() {
	for _, c := range s.closers {
		_ = c()
	}
}

// loopback is the address the server's own clients (its wx.Client, its bots) reach it
// at: the listener's, with 127.0.0.1 for an unspecified host.
func loopback(a net.Addr) string {
	t := a.(*net.TCPAddr)
	if t.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", itoa(t.Port))
	}
	return t.String()
}

// ownOrigins are the origins of the page this server serves: the -addr host on the
// listening port, and the loopback names when it listens on loopback or everywhere.
func ownOrigins(addr string, ln net.Addr) []string {
	host, _, _ := net.SplitHostPort(addr)
	port := itoa(ln.(*net.TCPAddr).Port)
	ip := net.ParseIP(host)
	if host == "" || host == "localhost" || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		return []string{"http://127.0.0.1:" + port, "http://localhost:" + port, "http://[::1]:" + port}
	}
	return []string{"http://" + net.JoinHostPort(host, port)}
}
