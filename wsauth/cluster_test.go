package wsauth_test

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// TestTwoInstances runs two servers that share Redis, as two processes would (each
// with its own client and store): a logout through A closes a socket held by B. It
// reports the delay from the logout reply to the close frame over 100 trials.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	stA, stB := sharedRedisStores(t)
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	a := newServer(t, stA, wechat, fibermp.Config{Protocol: fibermp.Token})
	b := newServer(t, stB, wechat, fibermp.Config{Protocol: fibermp.Token})

	const trials = 100
	delays := make([]time.Duration, 0, trials)
	for i := 0; i < trials; i++ {
		token := a.login(t, fmt.Sprintf("o-%d", i))
		conn := mustDial(t, b.wsURL(""), bearer(token))
		if got := call(t, conn, "who"); got != fmt.Sprintf("o-%d", i) {
			t.Fatalf("trial %d: want o-%d; got %q", i, i, got)
		}
		// From the logout request leaving to the close frame arriving: an upper
		// bound, as it includes the HTTP round trip.
		start := time.Now()
		if st := a.post(t, "/logout", token); st != 204 {
			t.Fatalf("trial %d: logout: %d", i, st)
		}
		code, reason := closeCode(conn, 5*time.Second)
		delay := time.Since(start)
		if code != wsauth.CloseLoggedOut {
			t.Fatalf("trial %d: want close %d; got %d %q", i, wsauth.CloseLoggedOut, code, reason)
		}
		delays = append(delays, delay)
		_ = conn.Close()
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	t.Logf("logout request on A -> close frame from B, %d trials: p50 %v, p99 %v, max %v",
		trials, delays[trials/2], delays[trials*99/100-1], delays[trials-1])
	waitHandles(t, 0)
}

// waitHandles waits until the socket servers of t's top-level test hold want live
// handles.
func waitHandles(t testing.TB, want int) {
	t.Helper()
	handles := func() int {
		servers.Lock()
		defer servers.Unlock()
		n := 0
		for _, s := range servers.of[topTest(t)] {
			n += s.Handles()
		}
		return n
	}
	deadline := time.Now().Add(5 * time.Second)
	for handles() != want {
		if time.Now().After(deadline) {
			t.Fatalf("want %d live handles; got %d", want, handles())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandlesReleased: a socket that closes releases its handle, whichever side
// closes it, and a refused upgrade leaves none.
func TestHandlesReleased(t *testing.T) {
	t.Parallel()
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{Protocol: fibermp.Token})
	token := s.login(t, "o-jack")
	for i := 0; i < 20; i++ {
		conn := mustDial(t, s.wsURL(""), bearer(token))
		call(t, conn, "who")
		_ = conn.Close()
	}
	if _, _, err := dial(s.wsURL(""), nil); err == nil {
		t.Fatal("want a refusal")
	}
	waitHandles(t, 0)
}

// TestIdleSocketMemory measures what one idle authenticated socket costs: sockets
// through fibermp and wsauth (session lookup, handle, registry entry, wsauth.Conn)
// against bare contrib/websocket sockets with the same echo handler. Client and server share the
// process, so the totals count both ends; the difference is wsauth's own cost. Run it
// without -race for real figures:
//
//	go test -run TestIdleSocketMemory -v ./wsauth/
//
// It measures the whole process, so it does not run in parallel.
func TestIdleSocketMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 3,000 sockets")
	}
	const n = 1000
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{Protocol: fibermp.Token})
	token := s.login(t, "o-kate")
	measure := func(url string, header map[string][]string) (heap, stack float64) {
		mem := func() (uint64, uint64) {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return m.HeapInuse, m.StackInuse
		}
		h0, s0 := mem()
		conns := make([]*websocket.Conn, 0, n)
		for i := 0; i < n; i++ {
			c := mustDial(t, url, header)
			call(t, c, "who")
			conns = append(conns, c)
		}
		time.Sleep(100 * time.Millisecond)
		h1, s1 := mem()
		for _, c := range conns {
			_ = c.Close()
		}
		return (float64(h1) - float64(h0)) / n / 1024, (float64(s1) - float64(s0)) / n / 1024
	}
	// A first round warms the server's pools up, so that neither measure pays for it.
	measure(strings.Replace(s.wsURL(""), "/ws", "/idle", 1), bearer(token))
	time.Sleep(200 * time.Millisecond) // let the closed sockets' goroutines end
	bareHeap, bareStack := measure(strings.Replace(s.wsURL(""), "/ws", "/bare", 1), nil)
	time.Sleep(200 * time.Millisecond)
	wsHeap, wsStack := measure(strings.Replace(s.wsURL(""), "/ws", "/idle", 1), bearer(token))
	waitHandles(t, 0)
	t.Logf("%d idle sockets, both ends, KiB per socket: through wsauth %.1f heap + %.1f stack; bare contrib/websocket %.1f heap + %.1f stack",
		n, wsHeap, wsStack, bareHeap, bareStack)
}

// TestEndWhileClosing ends sessions while their sockets close, many times over: the
// close frame must never touch a connection fasthttp has already recycled.
func TestEndWhileClosing(t *testing.T) {
	t.Parallel()
	s := newServer(t, stores(t)["memory"](t), nil, fibermp.Config{Protocol: fibermp.Token})
	for i := 0; i < 100; i++ {
		token := s.login(t, "o-race")
		conn := mustDial(t, s.wsURL(""), bearer(token))
		call(t, conn, "who")
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = conn.Close()
		}()
		s.post(t, "/logout", token)
		<-done
	}
	waitHandles(t, 0)
}

// TestShutdown closes every open socket of one server with 1001 and waits for the
// handlers; the sockets of another server in the same process stay open.
func TestShutdown(t *testing.T) {
	t.Parallel()
	st := stores(t)["memory"](t)
	s := newServer(t, st, nil, fibermp.Config{Protocol: fibermp.Token})
	other := newServer(t, st, s.wx, fibermp.Config{Protocol: fibermp.Token})
	staying := mustDial(t, other.wsURL(""), bearer(other.login(t, "o-staying")))
	token := s.login(t, "o-leaving")
	var conns []*websocket.Conn
	for i := 0; i < 5; i++ {
		c := mustDial(t, s.wsURL(""), bearer(token))
		call(t, c, "who")
		conns = append(conns, c)
	}
	codes := make(chan int, len(conns))
	for _, c := range conns {
		go func() {
			code, _ := closeCode(c, 5*time.Second)
			codes <- code
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.ws.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for range conns {
		if code := <-codes; code != websocket.CloseGoingAway {
			t.Errorf("want close %d; got %d", websocket.CloseGoingAway, code)
		}
	}
	if got := call(t, staying, "who"); got != "o-staying" {
		t.Errorf("the other app's socket: want o-staying; got %q", got)
	}
	waitHandles(t, 1)
	_ = staying.Close()
	waitHandles(t, 0)
}
