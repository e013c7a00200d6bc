package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/wsauth"
)

func TestMain(m *testing.M) {
	// The run starts this test binary again as its client process.
	if isClient() {
		os.Exit(clientMain(os.Args[2:], os.Stdin, os.Stdout))
	}
	if isServer() { // and as the fleet's server instances
		os.Exit(serverMain(os.Args[2:], os.Stdin, os.Stdout))
	}
	goleak.VerifyTestMain(m, testenv.IgnoreFasthttp...)
}

// TestRun runs the whole measurement on 200 sockets, so that CI runs its code. Timings
// this small, under the race detector, mean nothing, and none is checked: only that
// every socket opened, every logout closed its socket with 4001, every other socket
// stayed open and answered, and nothing was left behind.
func TestRun(t *testing.T) {
	rdb := testenv.Redis(t) // fails in CI, skips elsewhere, without Redis
	o := defaultOptions()
	o.n, o.sample, o.loginConc, o.dialConc, o.settle = 200, 20, 8, 16, 10*time.Millisecond
	o.hold, o.spacing, o.writes = 0, 10*time.Millisecond, 200
	o.redisAddr = testenv.RedisAddr()
	if loopbackSources {
		o.sources = 3 // as a run of 60,000 sockets would, on Linux's default ports
	}
	var out, progress bytes.Buffer
	r, err := run(&out, &progress, o)
	t.Logf("progress:\n%s", progress.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.Bytes())
	if err := r.check(); err != nil {
		t.Error(err)
	}
	if r.opened != o.n || r.failed != 0 || r.liveHandles != int64(o.n) {
		t.Errorf("want %d sockets open with live handles; got %d open, %d failed, %d handles", o.n, r.opened, r.failed, r.liveHandles)
	}
	if loopbackSources {
		// The client spread its sockets over 127.0.0.2 to 127.0.0.4, evenly.
		want := map[string]int{}
		for i := range o.n {
			want[sourceAddr(i%o.sources).String()]++
		}
		if !maps.Equal(r.peers, want) {
			t.Errorf("want B to see sockets from %v; got %v", want, r.peers)
		}
	}
	if len(r.logouts) != o.sample {
		t.Errorf("want %d logouts; got %d", o.sample, len(r.logouts))
	}
	for _, l := range r.logouts {
		if l.err != nil || l.code != wsauth.CloseLoggedOut {
			t.Errorf("socket %d: want close %d; got %d %q (%v)", l.socket, wsauth.CloseLoggedOut, l.code, l.reason, l.err)
		}
	}
	if toEvent, _ := r.events(); len(toEvent) != o.sample {
		t.Errorf("want B's store to deliver %d logout events; it delivered %d", o.sample, len(toEvent))
	}
	if r.writesDone == 0 || r.writeErrors != 0 {
		t.Errorf("want increments during the logouts, none failed; got %d done, %d failed: %s", r.writesDone, r.writeErrors, r.firstWriteError)
	}
	if want := o.n - o.sample; r.open != want || r.answered != want {
		t.Errorf(`want %d sockets open and answering "who"; got %d open, %d answering`, want, r.open, r.answered)
	}
	if r.closedClean+r.closedForced != o.n-o.sample {
		t.Errorf("want the client to close %d sockets; it closed %d", o.n-o.sample, r.closedClean+r.closedForced)
	}
	for _, s := range []string{"per open socket", "p99", "target"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("the table has no %q", s)
		}
	}
	// The run deleted its keys.
	ctx := context.Background()
	left := 0
	for iter := rdb.Scan(ctx, 0, r.prefix+"*", 1000).Iterator(); iter.Next(ctx); {
		left++
	}
	if left != 0 || r.deletedKeys == 0 {
		t.Errorf("want the run's keys deleted; %d deleted, %d left", r.deletedKeys, left)
	}
}

func TestPercentile(t *testing.T) {
	d := make([]time.Duration, 200)
	for i := range d {
		d[i] = time.Duration(i + 1)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 100}, {0.99, 198}, {1, 200}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("percentile(1..200, %v): want %d; got %d", c.p, c.want, got)
		}
	}
	if got := percentile(nil, 0.99); got != 0 {
		t.Errorf("percentile of nothing: want 0; got %v", got)
	}
}

// TestSourceAddresses: the client gets enough source addresses that none needs more
// than half the ephemeral ports, and the command refuses more sockets than 127.0.0.2
// to 127.0.0.254 can hold.
func TestSourceAddresses(t *testing.T) {
	ports, ok := portRange()
	if !ok {
		ports = defaultPorts
	}
	perAddr := ports / 2
	for _, n := range []int{1, 200, perAddr, perAddr + 1, 100000, maxSources * perAddr} {
		got, err := sourceAddresses(n)
		if !loopbackSources {
			if n <= perAddr && (err != nil || got != 0) {
				t.Errorf("%d sockets: want the system's address (0); got %d, %v", n, got, err)
			}
			continue
		}
		if want := (n + perAddr - 1) / perAddr; err != nil || got != want {
			t.Errorf("%d sockets: want %d addresses; got %d, %v", n, want, got, err)
		}
	}
	if got, err := sourceAddresses(maxSources*perAddr + 1); err == nil {
		t.Errorf("%d sockets: want an error; got %d addresses", maxSources*perAddr+1, got)
	}
}

// TestFileLimit: the limit raiseFileLimit leaves is at least what was asked, or it says
// why not.
func TestFileLimit(t *testing.T) {
	for _, need := range []uint64{64, 1 << 40} {
		limit, err := raiseFileLimit(need)
		if limit != 0 && limit < need && err == nil {
			t.Errorf("raiseFileLimit(%d): the limit is %d, and no error says why", need, limit)
		}
		if limit >= need && err != nil {
			t.Errorf("raiseFileLimit(%d): limit %d, yet %v", need, limit, err)
		}
		t.Logf("raiseFileLimit(%d): %d, %v", need, limit, err)
	}
}

// TestFleet runs the fleet on 3 instances of 150 sockets, so that CI runs its code:
// every socket opens, every room member and every ToUser target receives its message,
// every logout through another instance closes its socket with 4001, and each
// instance receives the events of the sessions it holds and, with events routed, few
// others: at most 1.2 times as many (the target of the fleet run), where before every
// instance received every event.
func TestFleet(t *testing.T) {
	testenv.Redis(t) // fails in CI, skips elsewhere, without Redis
	o := defaultFleetOptions()
	o.instances, o.n, o.room, o.samples, o.roomMsgs, o.writes = 3, 450, 150, 20, 3, 600
	o.loginConc, o.dialConc, o.settle, o.redisAddr = 8, 16, 10*time.Millisecond, testenv.RedisAddr()
	var progress bytes.Buffer
	r, err := fleetRun(&progress, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	var out bytes.Buffer
	r.print(&out)
	t.Logf("\n%s", out.String())
	if err := r.check(); err != nil {
		t.Fatal(err)
	}
	if r.roomMembers != 150 || len(r.roomLast) != o.roomMsgs {
		t.Errorf("room: want %d messages to 150 members; got %d to %d", o.roomMsgs, len(r.roomLast), r.roomMembers)
	}
	if len(r.toUser) != o.samples || len(r.logouts) != o.samples {
		t.Errorf("want %d ToUser deliveries and logouts; got %d and %d", o.samples, len(r.toUser), len(r.logouts))
	}
	for k, c := range r.events {
		if c.own == 0 || float64(c.received) > 1.2*float64(c.own) {
			t.Errorf("instance %d received %d events, of which its sessions' %d: want at most 1.2x", k, c.received, c.own)
		}
		if all := r.eventsAll[k].all; all < uint64(o.writes) {
			t.Errorf("instance %d subscribed to every event received %d; want %d or more", k, all, o.writes)
		}
	}
}
