package wsauth_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store/memstore"
)

// TestAbortedUpgradeLeaksHandle: an upgrade whose client resets the connection before
// the 101 is flushed runs no Handler (fasthttp neither runs the hijack handler nor
// resets the request), and still leaves no live handle behind.
func TestAbortedUpgradeLeavesNoHandle(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	s := newServer(t, mem, nil, fibermp.Config{Protocol: fibermp.Token})
	tok := s.login(t, "o-leak")
	addr := strings.TrimPrefix(s.url, "http://")
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		req := fmt.Sprintf("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer %s\r\n\r\n", tok)
		_, _ = c.Write([]byte(req))
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}
	// Each handle waits for its Handler a moment, then gives up.
	waitHandles(t, 0)
}

// TestAbortedUpgradesKeepNoPlace: aborted upgrades do not use up a session's socket cap.
func TestAbortedUpgradesKeepNoPlace(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	s := newServer(t, mem, nil, fibermp.Config{Protocol: fibermp.Token})
	tok := s.login(t, "o-cap")
	addr := strings.TrimPrefix(s.url, "http://")
	for i := 0; i < 6; i++ {
		c, _ := net.Dial("tcp", addr)
		fmt.Fprintf(c, "GET /capped HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer %s\r\n\r\n", tok)
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	waitHandles(t, 0)
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/capped"
	conn, resp, err := dial(u, bearer(tok))
	if err != nil {
		t.Errorf("no socket open, yet a fresh upgrade is refused: %v (status %d)", err, resp.StatusCode)
		return
	}
	conn.Close()
}
