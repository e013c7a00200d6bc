package testenv

import (
	"net"
	"sync"
	"testing"
)

// HungServer accepts connections and never answers, as a Redis that hangs looks to
// its clients, without the cost of a redis-server of the test's own.
type HungServer struct {
	Addr string

	ln     net.Listener
	done   chan struct{} // closed when the accept loop returns
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

// StartHung starts a HungServer on a free loopback port, closed when the test ends.
func StartHung(tb testing.TB) *HungServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	h := &HungServer{Addr: ln.Addr().String(), ln: ln, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			if h.closed {
				_ = c.Close()
			} else {
				h.conns = append(h.conns, c)
			}
			h.mu.Unlock()
		}
	}()
	tb.Cleanup(h.Close)
	return h
}

// Close stops accepting and closes every connection, as a server that dies: the
// clients' reads fail at once and their dials are refused.
func (h *HungServer) Close() {
	h.mu.Lock()
	h.closed = true
	conns := h.conns
	h.conns = nil
	h.mu.Unlock()
	_ = h.ln.Close()
	<-h.done
	for _, c := range conns {
		_ = c.Close()
	}
}
