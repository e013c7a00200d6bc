package wsauth_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store/memstore"
)

// TestQueryCredentialsOnOddUpgrade: with QueryCredentials on, an upgrade, however its
// Upgrade header lists "websocket", never takes credentials from the query.
func TestQueryCredentialsOnOddUpgrade(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	t.Cleanup(func() { _ = mem.Close() })
	s := newServer(t, mem, nil, fibermp.Config{Protocol: fibermp.Wafer, QueryCredentials: true})
	id, skey := s.loginWafer(t, "o-q")
	for _, up := range []string{"websocket", "websocket, h2c"} {
		c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /ws?X-WX-Id=%s&X-WX-Skey=%s HTTP/1.1\r\nHost: x\r\nUpgrade: %s\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", id, skey, up)
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.Contains(line, "101") {
			t.Errorf("Upgrade: %q with credentials in the query only: got %s", up, strings.TrimSpace(line))
		}
	}
}
