package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// The fleet run (-fleet N): N server instances, each a process of its own (see
// fleetserver.go), on one Redis and one key prefix, and one client process per
// instance holding the client ends of that instance's sockets. Socket i belongs to user
// o-sock-i, logs in through instance i mod N and is opened on it; the users whose
// number is a multiple of n/room join room "big". Then, one phase at a time:
//
//   - events: increments on random sessions, each through a random instance (as a
//     load balancer would send them), and each instance's count of the session events
//     it received against the events of the sessions it holds (its sockets', and those
//     its cache loaded); then the same again with every instance also subscribed to
//     every event, as every instance was before events were routed, for Redis's CPU;
//   - ToUser: a message to a user whose socket is on another instance, sent through
//     Hub.ToUser, from the request leaving to the client reading it;
//   - the room: one message to room "big" through instance 0, from the request leaving
//     to the first and the last client reading it;
//   - logouts: a session logged out through another instance than its socket's, from
//     the request leaving to the client reading its close frame (4001).
//
// Times across processes are read on the one wall clock of the machine.

type fleetOptions struct {
	instances int
	n         int // sockets and users
	room      int // members of the big room (about)
	samples   int // ToUser messages, and logouts
	roomMsgs  int // messages to the room
	writes    int // increments in each events phase
	loginConc int
	dialConc  int
	settle    time.Duration
	profile   string // when set, a CPU profile of instance 0 during the room messages goes to this file
	// memprofile, when set, gets a heap profile of instance 0 with its sockets open.
	memprofile string
	redisAddr  string
}

func defaultFleetOptions() fleetOptions {
	return fleetOptions{instances: 5, n: 10000, room: 10000, samples: 200, roomMsgs: 20, writes: 20000,
		loginConc: 32, dialConc: 100, settle: 2 * time.Second}
}

// fleetInstance is one server process and the client process of its sockets.
type fleetInstance struct {
	k       int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	url     string
	client  *clientProc
	sockets []int // global socket numbers, in the client's order
	sources int
	before  serverStats
	with    serverStats
	dial    time.Duration
	opened  int
	failed  int
	exited  chan error
	loaded  map[int]bool // sockets whose session the instance's cache loaded (events phases)
}

// delivery is a message a client read.
type delivery struct {
	instance, socket int // the socket's instance and its number in that client
	at               time.Time
	text             string
}

// fleetClose is a close frame a client read.
type fleetClose struct {
	instance, socket int
	code             int
	at               time.Time
}

type fleetResult struct {
	o            fleetOptions
	inst         []*fleetInstance
	login        time.Duration
	roomMembers  int
	events       []eventCount // per instance, routed
	eventsAll    []eventCount // per instance, every instance subscribed to all
	redisCPU     [2]float64   // seconds of Redis CPU in each events phase: routed, all
	writesDone   int
	toUser       []time.Duration
	roomFirst    []time.Duration
	roomLast     []time.Duration
	roomMissing  int // deliveries that did not arrive
	logouts      []time.Duration
	logoutErrs   []string
	errs         []string
	redisVersion string
	redisClients int64
}

// eventCount is one instance's events in one phase.
type eventCount struct {
	received uint64 // the store's subscription received
	own      int    // events of the sessions it held
	all      uint64 // the subscribe-all subscriber received
}

// fleetRun runs the fleet and returns what it measured.
func fleetRun(progress io.Writer, o fleetOptions) (r *fleetResult, err error) {
	r = &fleetResult{o: o}
	progress = &lockedWriter{w: progress} // the children's stderr, each copied by a goroutine of its own
	say := func(format string, args ...any) { fmt.Fprintf(progress, format+"\n", args...) }
	rdb, err := dialRedis(o.redisAddr)
	if err != nil {
		return nil, err
	}
	defer rdb.Close()
	r.redisVersion = redisVersion(rdb)
	prefix := newPrefix()
	defer func() {
		if _, derr := deleteKeys(rdb, prefix); derr != nil && err == nil {
			err = derr
		}
	}()
	wxs := wxtest.NewServer(appID, appSecret)
	defer wxs.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: o.loginConc, MaxConnsPerHost: o.loginConc, IdleConnTimeout: 90 * time.Second}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	roomEvery := 0
	if o.room > 0 {
		roomEvery = max(1, o.n/o.room)
	}
	perInstance := (o.n + o.instances - 1) / o.instances
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var stopAll []func()
	defer func() {
		for i := len(stopAll) - 1; i >= 0; i-- {
			stopAll[i]()
		}
	}()
	first := 0
	for k := range o.instances {
		in := &fleetInstance{k: k, exited: make(chan error, 1)}
		in.cmd = exec.Command(exe, serverFlag, o.redisAddr, prefix, wxs.URL, strconv.Itoa(roomEvery), strconv.Itoa(perInstance))
		in.cmd.Stderr = progress
		if o.memprofile != "" && k == 0 {
			in.cmd.Env = append(os.Environ(), "MPSESSION_FLEET_MEMPROFILE=1")
		}
		dieWithParent(in.cmd)
		if in.stdin, err = in.cmd.StdinPipe(); err != nil {
			return nil, err
		}
		out, err := in.cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := in.cmd.Start(); err != nil {
			return nil, fmt.Errorf("instance %d: %w", k, err)
		}
		go func() { in.exited <- in.cmd.Wait() }()
		stopAll = append(stopAll, func() {
			_ = in.stdin.Close()
			select {
			case <-in.exited:
			case <-time.After(90 * time.Second):
				_ = in.cmd.Process.Kill()
				<-in.exited
			}
		})
		line, err := readLine(out, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("instance %d: %w", k, err)
		}
		url, ok := strings.CutPrefix(line, "listening ")
		if !ok {
			return nil, fmt.Errorf("instance %d said %q", k, line)
		}
		go func() { _, _ = io.Copy(io.Discard, out) }()
		in.url = url
		for i := k; i < o.n; i += o.instances {
			in.sockets = append(in.sockets, i)
		}
		if in.sources, err = sourceAddresses(len(in.sockets)); err != nil {
			return nil, err
		}
		if first+in.sources > maxSources {
			return nil, fmt.Errorf("%d instances of %d sockets need more source addresses than 127.0.0.2 to .254", o.instances, perInstance)
		}
		if in.client, err = startClient("ws"+strings.TrimPrefix(url, "http")+"/ws", o.dialConc, in.sources, progress, strconv.Itoa(first)); err != nil {
			return nil, err
		}
		first += in.sources
		c := in.client
		stopAll = append(stopAll, func() {
			_ = c.send("quit")
			_ = c.pipe.Close()
			_ = c.wait(30 * time.Second)
		})
		r.inst = append(r.inst, in)
	}
	say("fleet: %d instances on Redis %s, %d sockets, room of every %d-th user", o.instances, r.redisVersion, o.n, roomEvery)
	for _, in := range r.inst {
		if in.before, err = fleetStats(hc, in.url); err != nil {
			return nil, err
		}
	}

	// Logins, each through the instance of its socket.
	start := time.Now()
	tokens := make([]string, o.n)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range min(o.loginConc, o.n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= o.n {
					return
				}
				t, err := fleetLogin(hc, r.inst[i%o.instances].url, wxs, openidOf(i))
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					next.Store(int64(o.n))
					return
				}
				tokens[i] = t
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	r.login = time.Since(start)
	say("fleet: %d users logged in in %v", o.n, r.login.Round(time.Millisecond))

	// Sockets: each client dials its instance's, all clients at once.
	var errsMu sync.Mutex
	for _, in := range r.inst {
		for _, i := range in.sockets {
			if err := in.client.send("token " + openidOf(i) + " " + tokens[i]); err != nil {
				return nil, err
			}
		}
	}
	for _, in := range r.inst {
		wg.Go(func() {
			start := time.Now()
			if err := in.client.send("dial"); err != nil {
				in.failed = len(in.sockets)
				return
			}
			for {
				f, err := in.client.next(10 * time.Minute)
				if err != nil {
					in.failed = len(in.sockets)
					return
				}
				if f[0] == "ready" && len(f) >= 3 {
					in.dial = time.Since(start)
					in.opened, _ = strconv.Atoi(f[1])
					in.failed, _ = strconv.Atoi(f[2])
					return
				}
				if f[0] == "fail" {
					errsMu.Lock()
					if len(r.errs) < 5 {
						r.errs = append(r.errs, fmt.Sprintf("instance %d: %s", in.k, strings.Join(f, " ")))
					}
					errsMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, in := range r.inst {
		say("fleet: instance %d: %d sockets open, %d failed, in %v", in.k, in.opened, in.failed, in.dial.Round(time.Millisecond))
		if in.opened != len(in.sockets) {
			return r, fmt.Errorf("instance %d: %d of %d sockets opened (%s)", in.k, in.opened, len(in.sockets), strings.Join(r.errs, "; "))
		}
	}
	time.Sleep(o.settle)
	for _, in := range r.inst {
		if in.with, err = fleetStats(hc, in.url); err != nil {
			return nil, err
		}
		r.roomMembers += int(in.with.Joined)
	}
	if o.memprofile != "" {
		if err := fetchTo(r.inst[0].url+"/fleet/heap", o.memprofile); err != nil {
			return nil, fmt.Errorf("heap profile: %w", err)
		}
	}
	if n, err := rdb.ClientList(context.Background()).Result(); err == nil {
		r.redisClients = int64(strings.Count(n, "\n"))
	}

	// The deliveries and closes the clients report, from now on.
	deliveries := make(chan delivery, 1<<16)
	closes := make(chan fleetClose, 1<<12)
	for _, in := range r.inst {
		go in.forward(deliveries, closes)
	}

	// Events, routed, then as before.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for phase := range 2 {
		if phase == 1 {
			for _, in := range r.inst {
				if err := fleetPost(hc, in.url+"/fleet/subscribe-all", ""); err != nil {
					return nil, err
				}
			}
		}
		counts, cpu, done, err := r.eventsPhase(hc, rdb, tokens, rng)
		if err != nil {
			return nil, err
		}
		r.redisCPU[phase] = cpu
		r.writesDone += done
		if phase == 0 {
			r.events = counts
		} else {
			r.eventsAll = counts
		}
		say("fleet: events phase %d done: %d increments, Redis CPU %.2fs", phase, done, cpu)
	}

	// ToUser across instances.
	for s := range o.samples {
		i := rng.IntN(o.n)
		x := i % o.instances
		y := (x + 1 + rng.IntN(o.instances-1)) % o.instances
		seq := "u" + strconv.Itoa(s)
		sent := time.Now()
		if err := fleetPost(hc, r.inst[y].url+"/fleet/send-user?openid="+openidOf(i)+"&seq="+seq, ""); err != nil {
			return nil, err
		}
		d, err := awaitDelivery(deliveries, "u "+seq, 1, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("ToUser %d: %w", s, err)
		}
		r.toUser = append(r.toUser, d[0].at.Sub(sent))
	}
	say("fleet: %d ToUser messages delivered", len(r.toUser))

	// The room.
	profiled := make(chan error, 1)
	if o.profile != "" {
		go func() {
			profiled <- fetchProfile(r.inst[0].url, time.Duration(o.roomMsgs)*200*time.Millisecond, o.profile)
		}()
	}
	for s := range o.roomMsgs {
		time.Sleep(100 * time.Millisecond)
		seq := "r" + strconv.Itoa(s)
		sent := time.Now()
		if err := fleetPost(hc, r.inst[0].url+"/fleet/send-room?seq="+seq, ""); err != nil {
			return nil, err
		}
		d, err := awaitDelivery(deliveries, "r "+seq, r.roomMembers, 30*time.Second)
		if err != nil {
			r.roomMissing += r.roomMembers - len(d)
		}
		if len(d) == 0 {
			continue
		}
		first, last := d[0].at, d[0].at
		for _, x := range d {
			first, last = minTime(first, x.at), maxTime(last, x.at)
		}
		r.roomFirst = append(r.roomFirst, first.Sub(sent))
		r.roomLast = append(r.roomLast, last.Sub(sent))
	}
	say("fleet: %d room messages to %d members", len(r.roomLast), r.roomMembers)
	if o.profile != "" {
		if err := <-profiled; err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
	}

	// Logouts across instances.
	done := map[int]bool{}
	for range o.samples {
		i := rng.IntN(o.n)
		for done[i] {
			i = rng.IntN(o.n)
		}
		done[i] = true
		x := i % o.instances
		y := (x + 1 + rng.IntN(o.instances-1)) % o.instances
		sent := time.Now()
		if err := fleetPostToken(hc, r.inst[y].url+"/logout", tokens[i], http.StatusNoContent); err != nil {
			return nil, err
		}
		c, err := awaitClose(closes, x, i/o.instances, 5*time.Second)
		switch {
		case err != nil:
			r.logoutErrs = append(r.logoutErrs, fmt.Sprintf("socket %d: %v", i, err))
		case c.code != wsauth.CloseLoggedOut:
			r.logoutErrs = append(r.logoutErrs, fmt.Sprintf("socket %d: close %d", i, c.code))
		default:
			r.logouts = append(r.logouts, c.at.Sub(sent))
		}
	}
	say("fleet: %d logouts", len(r.logouts))
	return r, nil
}

// eventsPhase sends o.writes increments on random sessions through random instances,
// and returns each instance's events: received by its store (routed) or by its
// subscribe-all subscriber, and the events of the sessions it held.
func (r *fleetResult) eventsPhase(hc *http.Client, rdb *redis.Client, tokens []string, rng *rand.Rand) ([]eventCount, float64, int, error) {
	o := r.o
	before := make([]serverStats, o.instances)
	for k, in := range r.inst {
		s, err := fleetStats(hc, in.url)
		if err != nil {
			return nil, 0, 0, err
		}
		before[k] = s
	}
	cpu0, err := redisCPU(rdb)
	if err != nil {
		return nil, 0, 0, err
	}
	type write struct{ socket, via int }
	writes := make([]write, o.writes)
	for w := range writes {
		writes[w] = write{rng.IntN(o.n), rng.IntN(o.instances)}
	}
	// An instance holds a session when the session's socket is on it, or its cache
	// loaded the session (for any request through it, this one included): it watches
	// it from then on (the cache keeps up to 100,000 watches).
	own := make([]int, o.instances)
	loaded := make([]map[int]bool, o.instances)
	for k := range loaded {
		loaded[k] = r.inst[k].loaded
		if loaded[k] == nil {
			loaded[k] = map[int]bool{}
			r.inst[k].loaded = loaded[k]
		}
	}
	for _, w := range writes {
		loaded[w.via][w.socket] = true
		for k := range o.instances {
			if w.socket%o.instances == k || loaded[k][w.socket] {
				own[k]++
			}
		}
	}
	var next, done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range o.loginConc {
		wg.Go(func() {
			for {
				w := int(next.Add(1) - 1)
				if w >= len(writes) {
					return
				}
				if err := fleetPostToken(hc, r.inst[writes[w].via].url+"/incr", tokens[writes[w].socket], http.StatusOK); err != nil {
					errOnce.Do(func() { firstErr = err })
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, 0, 0, firstErr
	}
	time.Sleep(time.Second) // the last events arrive
	cpu1, err := redisCPU(rdb)
	if err != nil {
		return nil, 0, 0, err
	}
	counts := make([]eventCount, o.instances)
	for k, in := range r.inst {
		s, err := fleetStats(hc, in.url)
		if err != nil {
			return nil, 0, 0, err
		}
		counts[k] = eventCount{received: s.EventsReceived - before[k].EventsReceived, own: own[k], all: s.AllEvents - before[k].AllEvents}
	}
	return counts, cpu1 - cpu0, int(done.Load()), nil
}

// forward hands the instance's client's deliveries and closes to the channels, until
// the client's output ends.
func (in *fleetInstance) forward(deliveries chan<- delivery, closes chan<- fleetClose) {
	for f := range in.client.msgs {
		if len(f) < 4 {
			continue
		}
		j, err1 := strconv.Atoi(f[1])
		switch f[0] {
		case "msg":
			ns, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 == nil && err2 == nil {
				deliveries <- delivery{instance: in.k, socket: j, at: time.Unix(0, ns), text: strings.Join(f[3:], " ")}
			}
		case "closed":
			code, err2 := strconv.Atoi(f[2])
			ns, err3 := strconv.ParseInt(f[3], 10, 64)
			if err1 == nil && err2 == nil && err3 == nil {
				closes <- fleetClose{instance: in.k, socket: j, code: code, at: time.Unix(0, ns)}
			}
		}
	}
}

// awaitDelivery collects the deliveries of text until want arrived or timeout passed;
// it drops the others (late ones of earlier messages).
func awaitDelivery(in <-chan delivery, text string, want int, timeout time.Duration) ([]delivery, error) {
	var got []delivery
	t := time.NewTimer(timeout)
	defer t.Stop()
	for len(got) < want {
		select {
		case d := <-in:
			if d.text == text {
				got = append(got, d)
			}
		case <-t.C:
			return got, fmt.Errorf("%d of %d deliveries of %q in %v", len(got), want, text, timeout)
		}
	}
	return got, nil
}

// awaitClose waits for the close frame of socket j of instance x.
func awaitClose(in <-chan fleetClose, x, j int, timeout time.Duration) (fleetClose, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case c := <-in:
			if c.instance == x && c.socket == j {
				return c, nil
			}
		case <-t.C:
			return fleetClose{}, fmt.Errorf("no close frame in %v", timeout)
		}
	}
}

func openidOf(i int) string { return fmt.Sprintf("o-sock-%06d", i) }

// fleetLogin logs openid in through the instance at base, and returns its token.
func fleetLogin(hc *http.Client, base string, wxs *wxtest.Server, openid string) (string, error) {
	resp, err := hc.Post(base+"/login", "application/json", strings.NewReader(`{"code":"`+wxs.NewCode(openid)+`"}`))
	if err != nil {
		return "", fmt.Errorf("login %s: %w", openid, err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Token == "" {
		return "", fmt.Errorf("login %s: HTTP %d, %v", openid, resp.StatusCode, err)
	}
	return body.Token, nil
}

// fleetPost sends a POST with no authentication and expects a 2xx.
func fleetPost(hc *http.Client, url, token string) error {
	return fleetPostToken(hc, url, token, 0)
}

// fleetPostToken sends a POST, with token as a bearer when not "", and checks the
// status (0: any 2xx).
func fleetPostToken(hc *http.Client, url, token string, want int) error {
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if want == 0 && resp.StatusCode/100 == 2 || resp.StatusCode == want {
		return nil
	}
	return fmt.Errorf("POST %s: HTTP %d %s", url, resp.StatusCode, body)
}

// redisCPU returns Redis's CPU time so far (used_cpu_sys + used_cpu_user), seconds.
func redisCPU(rdb *redis.Client) (float64, error) {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		return 0, err
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			total += f
		}
	}
	return total, nil
}

// readLine reads one line of r within timeout.
func readLine(r io.Reader, timeout time.Duration) (string, error) {
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		if sc.Scan() {
			got <- sc.Text()
		}
		close(got)
	}()
	select {
	case l, ok := <-got:
		if !ok {
			return "", errors.New("exited before it listened")
		}
		return l, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("not listening within %v", timeout)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// check returns an error when the run went wrong; timings never fail it.
func (r *fleetResult) check() error {
	var errs []error
	for _, in := range r.inst {
		if in.opened != len(in.sockets) {
			errs = append(errs, fmt.Errorf("instance %d: %d of %d sockets opened", in.k, in.opened, len(in.sockets)))
		}
	}
	if r.roomMissing > 0 {
		errs = append(errs, fmt.Errorf("%d room deliveries missing", r.roomMissing))
	}
	if len(r.logoutErrs) > 0 {
		errs = append(errs, fmt.Errorf("%d logouts failed, e.g. %s", len(r.logoutErrs), r.logoutErrs[0]))
	}
	// An instance starts to hold a session when a request through it first loads it;
	// the writes running alongside that load (up to the concurrency) may have sent their
	// events before it watched, which own counts all the same.
	for k, c := range r.events {
		if c.received+uint64(r.o.loginConc) < uint64(c.own) {
			errs = append(errs, fmt.Errorf("instance %d received %d events of the %d of its sessions", k, c.received, c.own))
		}
	}
	return errors.Join(errs...)
}

// print writes the report.
func (r *fleetResult) print(w io.Writer) {
	kib := func(b uint64) string { return fmt.Sprintf("%.1f KiB", float64(b)/1024) }
	mib := func(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
	fmt.Fprintf(w, "fleet: %d instances, %d sockets, one Redis (%s); logins %v\n\n", r.o.instances, r.o.n, r.redisVersion, r.login.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "instance\tsockets\topen in\theap+stack/socket (KiB)\tgoroutines/socket\tRSS\tevents received\tof its sessions\tratio\tbefore: every event\t")
	for k, in := range r.inst {
		n := uint64(len(in.sockets))
		heap := (in.with.HeapInuse - in.before.HeapInuse) / max(n, 1)
		stack := (in.with.StackInuse - in.before.StackInuse) / max(n, 1)
		gor := float64(in.with.Goroutines-in.before.Goroutines) / float64(max(n, 1))
		var ev eventCount
		if k < len(r.events) {
			ev = r.events[k]
		}
		var all uint64
		if k < len(r.eventsAll) {
			all = r.eventsAll[k].all
		}
		fmt.Fprintf(tw, "%d\t%d\t%v\t%s (%.1f + %.1f)\t%.2f\t%s\t%d\t%d\t%.2fx\t%d\t\n", k, n, in.dial.Round(time.Millisecond),
			kib(heap+stack), float64(heap)/1024, float64(stack)/1024, gor, mib(in.with.RSS),
			ev.received, ev.own, float64(ev.received)/float64(max(ev.own, 1)), all)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nRedis: %d client connections with the sockets open\n", r.redisClients)
	fmt.Fprintf(w, "Redis CPU for %d increments: %.2fs with events routed, %.2fs with every instance also subscribed to every event (as before)\n",
		r.o.writes, r.redisCPU[0], r.redisCPU[1])
	show := func(name string, d []time.Duration) {
		slices.Sort(d)
		fmt.Fprintf(w, "%-34s n=%-4d p50 %-10v p99 %-10v max %v\n", name, len(d), percentile(d, 0.5).Round(10*time.Microsecond),
			percentile(d, 0.99).Round(10*time.Microsecond), percentile(d, 1).Round(10*time.Microsecond))
	}
	show("ToUser, another instance", r.toUser)
	show(fmt.Sprintf("room of %d: first delivery", r.roomMembers), r.roomFirst)
	show(fmt.Sprintf("room of %d: last delivery", r.roomMembers), r.roomLast)
	show("logout -> close, another instance", r.logouts)
}

// fetchProfile writes a CPU profile of the instance at base, over d, to file.
func fetchProfile(base string, d time.Duration, file string) error {
	return fetchTo(base+"/fleet/profile?for="+d.String(), file)
}

// fetchTo writes the body of a GET of url to file.
func fetchTo(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
