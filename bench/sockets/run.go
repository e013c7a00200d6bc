package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	fws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

const (
	appID     = "wx0123456789abcdef"
	appSecret = "sockets-secret-0123456789abcdef0"

	// targetSockets, targetPerSocket and targetP99 are the socket target of docs/DESIGN.md.
	targetSockets   = 100000
	targetPerSocket = 12 << 10 // heap and stack in use per idle socket, bytes
	targetP99       = 100 * time.Millisecond

	// defaultSockets is -n's default: a run of about 1.5 minutes.
	defaultSockets = 10000

	// closeWait bounds the wait for one socket's close frame after its logout.
	closeWait = 5 * time.Second
)

type options struct {
	n         int           // sockets and users
	sample    int           // sessions logged out, one at a time
	loginConc int           // concurrent logins
	dialConc  int           // concurrent dials in the client process
	settle    time.Duration // wait after the sockets open, before measuring memory
	hold      time.Duration // then wait this long, all sockets idle, before the logouts
	spacing   time.Duration // start a logout at most every spacing
	writes    int           // increments per second through A during the logouts
	redisAddr string
	profile   io.Writer // when set, gets a CPU profile of the logout phase
	// memprofile, when set, gets a heap profile of the server process with the
	// sockets open, after a garbage collection.
	memprofile io.Writer
	sock       sockConfig
	sources    int // the client's source addresses; 0: as many as n needs (sourceAddresses)
	// interrupt, when it closes, stops the client process, deletes the run's Redis
	// keys and exits the program. nil in tests.
	interrupt <-chan struct{}
}

func defaultOptions() options {
	return options{n: defaultSockets, sample: 200, loginConc: 32, dialConc: 100, settle: 2 * time.Second,
		hold: 65 * time.Second, spacing: 125 * time.Millisecond, sock: sockConfigLean}
}

// sockConfig is how B serves its sockets: the contrib/websocket Config and the Fiber
// setting that decide what an idle socket holds.
type sockConfig struct {
	readBuffer, writeBuffer int  // websocket.Config.ReadBufferSize, WriteBufferSize (0: contrib's 1024)
	writePool               bool // a websocket.Config.WriteBufferPool: no write buffer held while idle
	reduceMemory            bool // fiber.Config.ReduceMemoryUsage: fasthttp lets go of its 4 KiB read buffer
}

// sockConfigLean is what wsauth recommends for many idle sockets, and what the
// command uses unless told otherwise.
var sockConfigLean = sockConfig{readBuffer: 128, writeBuffer: 1024, writePool: true, reduceMemory: true}

func (c sockConfig) String() string {
	size := func(n int) string {
		if n == 0 {
			return "default"
		}
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("websocket.Config{ReadBufferSize: %s, WriteBufferSize: %s, WriteBufferPool: %v}, fiber.Config{ReduceMemoryUsage: %v}",
		size(c.readBuffer), size(c.writeBuffer), c.writePool, c.reduceMemory)
}

// A snapshot is the server process's memory and goroutines at one moment, after a
// garbage collection.
type snapshot struct {
	heap, stack uint64 // HeapInuse, StackInuse: the spans in use, the figure the target is on
	live        uint64 // HeapAlloc: the bytes of the objects alone
	goroutines  int
	rss         uint64 // 0 when the system does not tell
}

func takeSnapshot() snapshot {
	runtime.GC()
	runtime.GC() // the second empties sync.Pool's victim cache
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := snapshot{heap: m.HeapInuse, stack: m.StackInuse, live: m.HeapAlloc, goroutines: runtime.NumGoroutine()}
	s.rss, _ = rss(0)
	return s
}

// A logout is one session of the sample, logged out through A.
type logout struct {
	socket int
	http   time.Duration // the logout request's round trip
	delay  time.Duration // from the logout request leaving to the client seeing the close frame
	event  time.Duration // from the logout request leaving to B's store delivering the event; 0 if unseen
	code   int           // the close code the client received
	reason string
	err    error
}

// result is what a run measured.
type result struct {
	n                 int
	prefix            string
	redisVersion      string
	fdLimit           uint64
	sources           int            // the client's source addresses (0: the system's choice)
	peers             map[string]int // B's sockets by the client's address, as B saw them
	login, dial       time.Duration
	opened, failed    int
	failures          []string // the first few dial failures
	liveHandles       int64    // handlers running with a live handle, once all sockets opened
	before, with      snapshot // the server process, before the sockets and with them
	clientHeapStack   uint64
	clientGoroutines  int
	clientRSS         uint64
	logouts           []logout
	logoutPhase       time.Duration // how long the logouts took, first to last
	writesDone        int64         // increments answered during the logouts
	writeErrors       int64
	firstWriteError   string
	unexpected        []int // sockets that closed without being logged out
	unexpectedReasons []string
	open, answered    int // sockets still open at the check, and how many answered "who"
	closedClean       int // sockets the client closed that the server closed in turn
	closedForced      int
	drained           time.Duration // from the client's exit to no live handle on B
	handlesAfter      int64
	goroutinesAfter   int
	deletedKeys       int64
}

// check returns an error when the run went wrong: a socket that did not open, a close
// code other than 4001, a socket closed that should not have been, one that stopped
// answering, or handles left behind. It does not look at the timings.
func (r *result) check() error {
	var errs []error
	if r.opened != r.n {
		errs = append(errs, fmt.Errorf("%d of %d sockets opened", r.opened, r.n))
	}
	for _, l := range r.logouts {
		switch {
		case l.err != nil:
			errs = append(errs, fmt.Errorf("socket %d: %v", l.socket, l.err))
		case l.code != wsauth.CloseLoggedOut:
			errs = append(errs, fmt.Errorf("socket %d: want close %d; got %d %q", l.socket, wsauth.CloseLoggedOut, l.code, l.reason))
		}
	}
	if len(r.unexpected) > 0 {
		errs = append(errs, fmt.Errorf("%d sockets closed without a logout, e.g. %d: %s", len(r.unexpected), r.unexpected[0], r.unexpectedReasons[0]))
	}
	if want := r.opened - len(r.logouts) - len(r.unexpected); r.open != want || r.answered != r.open {
		errs = append(errs, fmt.Errorf(`%d sockets should be open; %d are, %d answered "who"`, want, r.open, r.answered))
	}
	if r.writeErrors != 0 {
		errs = append(errs, fmt.Errorf("%d increments failed: %s", r.writeErrors, r.firstWriteError))
	}
	if r.handlesAfter != 0 {
		errs = append(errs, fmt.Errorf("%d live handles after the client left", r.handlesAfter))
	}
	return errors.Join(errs...)
}

// eventWatch notes when B's store delivers the deletion of the sessions it watches.
type eventWatch struct {
	mu sync.Mutex
	at map[string]time.Time // by session hash; zero until seen
}

func (w *eventWatch) add(hash string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.at == nil {
		w.at = map[string]time.Time{}
	}
	w.at[hash] = time.Time{}
}

func (w *eventWatch) onEvent(ev store.Event) {
	if ev.Kind != store.EventDeleted {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if at, ok := w.at[ev.Hash]; ok && at.IsZero() {
		w.at[ev.Hash] = now
	}
}

func (w *eventWatch) seen(hash string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at := w.at[hash]
	return at, !at.IsZero()
}

// events returns, sorted, for the logouts that closed their socket with 4001 and whose
// event B's store delivered: from the logout request leaving to the event, and from the
// event to the close frame at the client.
func (r *result) events() (toEvent, toClose []time.Duration) {
	for _, l := range r.logouts {
		if l.err == nil && l.code == wsauth.CloseLoggedOut && l.event > 0 {
			toEvent = append(toEvent, l.event)
			toClose = append(toClose, l.delay-l.event)
		}
	}
	slices.Sort(toEvent)
	slices.Sort(toClose)
	return toEvent, toClose
}

// delays returns, sorted, for the logouts that closed their socket with 4001: the
// delays, the logout requests' round trips, and the delays after the logout replies
// (negative when the close frame came first).
func (r *result) delays() (delay, rtt, after []time.Duration) {
	for _, l := range r.logouts {
		if l.err == nil && l.code == wsauth.CloseLoggedOut {
			delay = append(delay, l.delay)
			rtt = append(rtt, l.http)
			after = append(after, l.delay-l.http)
		}
	}
	slices.Sort(delay)
	slices.Sort(rtt)
	slices.Sort(after)
	return delay, rtt, after
}

// percentile returns the nearest-rank percentile p (0 < p <= 1) of sorted d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d))*p+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

// env is the two servers and what they need.
type env struct {
	wxs       *wxtest.Server
	wxHTTP    *http.Client
	rdbA      *redis.Client
	rdbB      *redis.Client
	prefix    string
	urlA      string // http://127.0.0.1:port
	urlB      string
	httpA     *http.Client // to A, for logins and logouts
	live      atomic.Int64 // B's socket handlers running with a live handle
	peersMu   sync.Mutex
	peers     map[string]int // B's sockets by client address, counted as they open
	child     *clientProc
	watch     eventWatch // when B's store delivers the events of the sample
	closers   []func() error
	closeOnce sync.Once
	closeErr  error
	deleted   int64
}

func (e *env) onClose(f func() error) { e.closers = append(e.closers, f) }

// close stops everything, last started first, and deletes the run's Redis keys.
func (e *env) close() error {
	e.closeOnce.Do(func() {
		var errs []error
		for i := len(e.closers) - 1; i >= 0; i-- {
			errs = append(errs, e.closers[i]())
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// newEnv starts A and B, each with its own Redis client and store on one prefix, and
// the fake WeChat server they share.
func newEnv(o options) (_ *env, err error) {
	e := &env{peers: map[string]int{}}
	defer func() {
		if err != nil {
			_ = e.close()
		}
	}()
	e.wxs = wxtest.NewServer(appID, appSecret)
	e.onClose(func() error { e.wxs.Close(); return nil })
	wxTransport := &http.Transport{MaxIdleConnsPerHost: o.loginConc, IdleConnTimeout: 90 * time.Second}
	e.wxHTTP = &http.Client{Transport: wxTransport, Timeout: 10 * time.Second}
	e.onClose(func() error { wxTransport.CloseIdleConnections(); return nil })
	transportA := &http.Transport{MaxIdleConnsPerHost: o.loginConc, MaxConnsPerHost: o.loginConc, IdleConnTimeout: 90 * time.Second}
	e.httpA = &http.Client{Transport: transportA, Timeout: 30 * time.Second}
	e.onClose(func() error { transportA.CloseIdleConnections(); return nil })

	if e.rdbA, err = dialRedis(o.redisAddr); err != nil {
		return nil, err
	}
	e.onClose(e.rdbA.Close)
	if e.rdbB, err = dialRedis(o.redisAddr); err != nil {
		return nil, err
	}
	e.onClose(e.rdbB.Close)
	e.prefix = newPrefix()
	// Registered after the clients' closers, so it runs before them, and before the
	// servers' closers, so it runs after the servers stopped.
	e.onClose(func() error {
		n, err := deleteKeys(e.rdbA, e.prefix)
		e.deleted = n
		if err != nil {
			return fmt.Errorf("deleting the run's Redis keys %s*: %w", e.prefix, err)
		}
		return nil
	})

	newApp := func(rdb *redis.Client, reduceMemory bool) (*fiber.App, *fibermp.Manager, *redisstore.Store, error) {
		st := redisstore.New(rdb, redisstore.Config{Prefix: e.prefix})
		e.onClose(st.Close)
		client, err := wx.New(wx.Config{AppID: appID, AppSecret: appSecret, BaseURL: e.wxs.URL, HTTPClient: e.wxHTTP})
		if err != nil {
			return nil, nil, nil, err
		}
		mp, err := fibermp.NewManager(fibermp.Config{Client: client, Store: st})
		if err != nil {
			return nil, nil, nil, err
		}
		e.onClose(func() error { return mp.Close(context.Background()) })
		app := fiber.New(fiber.Config{DisableStartupMessage: true, ReduceMemoryUsage: reduceMemory})
		app.Use(mp.Handler())
		return app, mp, st, nil
	}
	a, _, _, err := newApp(e.rdbA, false)
	if err != nil {
		return nil, err
	}
	// The background writes: each changes a session that has a socket on B.
	a.Post("/incr", fibermp.Required(), func(c *fiber.Ctx) error {
		_, err := fibermp.Get(c).Incr("n", 1)
		return err
	})
	if e.urlA, err = e.serve(a); err != nil {
		return nil, err
	}
	b, mpB, stB, err := newApp(e.rdbB, o.sock.reduceMemory)
	if err != nil {
		return nil, err
	}
	// B's store calls its subscribers in order, on one goroutine: this one, then the
	// wsauth registry, which subscribes with the first socket. Both receive the events
	// of the sessions B watches (those of its sockets); Subscribe's subscribers, which
	// receive every event, would get each one after the registry has acted on it.
	unsubscribe, err := stB.SubscribeWatched(e.watch.onEvent)
	if err != nil {
		return nil, err
	}
	e.onClose(func() error { unsubscribe(); return nil })
	wsConfig := wsauth.Config{ReadBufferSize: o.sock.readBuffer, WriteBufferSize: o.sock.writeBuffer}
	if o.sock.writePool {
		wsConfig.WriteBufferPool = &sync.Pool{}
	}
	ws, err := wsauth.NewServer(mpB, wsConfig)
	if err != nil {
		return nil, err
	}
	e.onClose(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return ws.Shutdown(ctx)
	})
	b.Get("/ws", ws.Upgrade(e.socket))
	if e.urlB, err = e.serve(b); err != nil {
		return nil, err
	}
	return e, nil
}

// socket is B's socket handler: it idles reading, and answers "who" with the openid of
// the socket's session.
func (e *env) socket(c *wsauth.Conn) {
	h := c.Session()
	if h == nil {
		return
	}
	e.live.Add(1)
	e.peersMu.Lock()
	e.peers[c.IP()]++
	e.peersMu.Unlock()
	defer e.live.Add(-1)
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return // closed, or the session ended
		}
		if string(msg) == "who" {
			if c.WriteMessage(fws.TextMessage, []byte(h.OpenID())) != nil {
				return
			}
		}
	}
}

// serve runs app on a loopback listener until e closes, and returns its base URL.
func (e *env) serve(app *fiber.App) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = app.Listener(ln)
	}()
	e.onClose(func() error {
		err := app.ShutdownWithTimeout(5 * time.Second)
		<-done
		return err
	})
	return "http://" + ln.Addr().String(), nil
}

// login logs openid in through A and returns its token.
func (e *env) login(openid string) (string, error) {
	body := `{"code":"` + e.wxs.NewCode(openid) + `"}`
	resp, err := e.httpA.Post(e.urlA+"/login", "application/json", strings.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("login %s: %w", openid, err)
	}
	defer resp.Body.Close()
	var r struct {
		Token  string `json:"token"`
		OpenID string `json:"openid"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("login %s: HTTP %d, %v", openid, resp.StatusCode, err)
	}
	if r.Token == "" || strings.ContainsAny(r.Token, " \t\r\n") || r.OpenID != openid {
		return "", fmt.Errorf("login %s: unexpected reply (openid %q, token of %d bytes)", openid, r.OpenID, len(r.Token))
	}
	return r.Token, nil
}

// logout logs token out through A.
func (e *env) logout(token string) error {
	return e.post("/logout", token, http.StatusNoContent)
}

// incr increments field n of token's session through A.
func (e *env) incr(token string) error { return e.post("/incr", token, http.StatusOK) }

// post sends an authenticated POST to A and checks the status.
func (e *env) post(path, token string, want int) error {
	req, err := http.NewRequest(http.MethodPost, e.urlA+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.httpA.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s: want HTTP %d; got %d", path, want, resp.StatusCode)
	}
	return nil
}

// writeLoad sends rate increments per second through A, spread over tokens, until
// stop closes, and counts them in r.
func (e *env) writeLoad(rate int, tokens []string, stop <-chan struct{}, r *result) {
	var (
		k  atomic.Int64
		wg sync.WaitGroup
		mu sync.Mutex
	)
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for range min(16, rate) {
		wg.Go(func() {
			for {
				n := k.Add(1) - 1
				if d := time.Until(start.Add(time.Duration(n) * interval)); d > 0 {
					select {
					case <-stop:
						return
					case <-time.After(d):
					}
				}
				select {
				case <-stop:
					return
				default:
				}
				if err := e.incr(tokens[int(n)%len(tokens)]); err != nil {
					mu.Lock()
					if r.writeErrors == 0 {
						r.firstWriteError = err.Error()
					}
					r.writeErrors++
					mu.Unlock()
					continue
				}
				mu.Lock()
				r.writesDone++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// loginAll logs n users in through A, conc at a time, and returns their openids and
// tokens.
func (e *env) loginAll(n, conc int) (openids, tokens []string, err error) {
	openids, tokens = make([]string, n), make([]string, n)
	var (
		next    atomic.Int64
		errOnce sync.Once
		first   error
		failed  atomic.Bool
		wg      sync.WaitGroup
	)
	for range min(conc, n) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				openids[i] = fmt.Sprintf("o-sock-%06d", i)
				t, err := e.login(openids[i])
				if err != nil {
					errOnce.Do(func() { first = err })
					failed.Store(true)
					return
				}
				tokens[i] = t
			}
		})
	}
	wg.Wait()
	return openids, tokens, first
}

// run measures, printing the table on out and progress on progress.
func run(out, progress io.Writer, o options) (*result, error) {
	if o.n < 1 || o.sample < 1 || o.loginConc < 1 || o.dialConc < 1 {
		return nil, errors.New("-n, -sample, -login-conc and -dial-conc must be at least 1")
	}
	o.sample = min(o.sample, o.n)
	r := &result{n: o.n}
	// The client process's stderr goes there too, from a goroutine of os/exec.
	progress = &lockedWriter{w: progress}
	logf := func(format string, args ...any) {
		fmt.Fprintf(progress, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}

	// Each process holds one end of every socket, and a few more files. The client
	// process inherits the limit.
	need := uint64(o.n) + 256
	limit, err := raiseFileLimit(need)
	r.fdLimit = limit
	switch {
	case limit != 0 && limit < need:
		return nil, fmt.Errorf("%d sockets need about %d open files in each process; the limit is %d: %v", o.n, need, limit, err)
	case err != nil:
		return nil, err
	}
	if r.sources = o.sources; r.sources == 0 {
		if r.sources, err = sourceAddresses(o.n); err != nil {
			return nil, err
		}
	}

	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	if o.interrupt != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-o.interrupt:
				_ = e.close()
				os.Exit(130)
			case <-stop:
			}
		}()
	}
	r.prefix = e.prefix
	r.redisVersion = redisVersion(e.rdbA)
	logf("servers up: A %s, B %s, Redis %s at %s, key prefix %s", e.urlA, e.urlB, r.redisVersion, o.redisAddr, e.prefix)

	// Log the users in through A.
	logf("logging %d users in through A, %d at a time", o.n, o.loginConc)
	start := time.Now()
	openids, tokens, err := e.loginAll(o.n, o.loginConc)
	if err != nil {
		return nil, err
	}
	r.login = time.Since(start)
	logf("logged in in %v", r.login.Round(time.Millisecond))

	r.before = takeSnapshot()

	// Open the sockets to B from the client process.
	wsURL := "ws" + strings.TrimPrefix(e.urlB, "http") + "/ws"
	child, err := startClient(wsURL, o.dialConc, r.sources, progress)
	if err != nil {
		return nil, err
	}
	e.child = child
	// Registered last, so it runs first: the client leaves before the servers stop.
	e.onClose(func() error { return child.wait(30 * time.Second) })
	lines := make([]string, 0, o.n+1)
	for i := range o.n {
		lines = append(lines, "token "+openids[i]+" "+tokens[i])
	}
	logf("opening %d sockets to B from the client process (pid %d), %d at a time, from %s", o.n, child.cmd.Process.Pid, o.dialConc, sourcesText(r.sources))
	start = time.Now()
	var opened time.Time // when the last socket opened
	if err := child.send(append(lines, "dial")...); err != nil {
		return nil, err
	}
	for {
		f, err := child.next(10 * time.Minute)
		if err != nil {
			return nil, err
		}
		if f[0] == "fail" {
			r.failed++
			if len(r.failures) < 5 {
				r.failures = append(r.failures, strings.Join(f[1:], " "))
			}
			continue
		}
		if f[0] != "ready" || len(f) != 5 {
			return nil, fmt.Errorf("client process: unexpected %q", strings.Join(f, " "))
		}
		v, err := ints(f[1:])
		if err != nil {
			return nil, err
		}
		r.dial = time.Since(start)
		opened = time.Now()
		r.opened, r.clientHeapStack, r.clientGoroutines = int(v[0]), uint64(v[2]), int(v[3])
		break
	}
	r.clientRSS, _ = rss(child.cmd.Process.Pid)
	logf("%d sockets open, %d failed, in %v", r.opened, r.failed, r.dial.Round(time.Millisecond))
	for _, f := range r.failures {
		logf("  failed: %s", f)
	}

	time.Sleep(o.settle)
	r.with = takeSnapshot()
	r.liveHandles = e.live.Load()
	e.peersMu.Lock()
	r.peers = maps.Clone(e.peers)
	e.peersMu.Unlock()
	if o.memprofile != nil {
		if err := pprof.Lookup("heap").WriteTo(o.memprofile, 0); err != nil {
			return nil, err
		}
	}
	logf("B runs %d handlers with a live handle; server process: %d goroutines", r.liveHandles, r.with.goroutines)

	if o.hold > 0 {
		logf("holding the %d sockets open, idle, for %v", r.opened, o.hold)
		time.Sleep(o.hold)
	}

	// Log a sample out through A, one at a time, while the others may write.
	sampled := make([]int, o.sample)
	inSample := map[int]bool{}
	for k := range sampled {
		sampled[k] = k * o.n / o.sample
		inSample[sampled[k]] = true
	}
	stopWrites := make(chan struct{})
	writesDone := make(chan struct{})
	if o.writes > 0 {
		var others []string
		for i, t := range tokens {
			if !inSample[i] {
				others = append(others, t)
			}
		}
		go func() {
			defer close(writesDone)
			e.writeLoad(o.writes, others, stopWrites, r)
		}()
		logf("logging %d sessions out through A, one at a time, at most one every %v, with %d increments/s through A on the others", o.sample, o.spacing, o.writes)
	} else {
		close(writesDone)
		logf("logging %d sessions out through A, one at a time, at most one every %v", o.sample, o.spacing)
	}
	if o.profile != nil {
		if err := pprof.StartCPUProfile(o.profile); err != nil {
			return nil, err
		}
	}
	for _, i := range sampled {
		e.watch.add(store.Hash(tokens[i])) // the Token protocol's token is the session id
	}
	phase := time.Now()
	for k, i := range sampled {
		if d := time.Until(phase.Add(time.Duration(k) * o.spacing)); d > 0 {
			time.Sleep(d)
		}
		l := logout{socket: i}
		start := time.Now()
		if err := e.logout(tokens[i]); err != nil {
			l.err = err
			r.logouts = append(r.logouts, l)
			continue
		}
		l.http = time.Since(start)
		cr, err := child.waitClose(i, closeWait)
		if err != nil {
			l.err = err
		} else {
			l.delay, l.code, l.reason = cr.at.Sub(start), cr.code, cr.reason
		}
		if at, ok := e.watch.seen(store.Hash(tokens[i])); ok {
			l.event = at.Sub(start)
		}
		r.logouts = append(r.logouts, l)
	}
	r.logoutPhase = time.Since(phase)
	if o.profile != nil {
		pprof.StopCPUProfile()
	}
	close(stopWrites)
	<-writesDone
	child.drain()
	for i := range o.n {
		if cr, ok := child.closes[i]; ok && !inSample[i] {
			r.unexpected = append(r.unexpected, i)
			r.unexpectedReasons = append(r.unexpectedReasons, fmt.Sprintf("%d %s, %v after the last socket opened",
				cr.code, cr.reason, cr.at.Sub(opened).Round(time.Millisecond)))
		}
	}
	delay, _, _ := r.delays()
	logf("logouts done: p50 %v, p99 %v", percentile(delay, 0.5), percentile(delay, 0.99))

	// Every other socket must still be open and working.
	logf(`asking "who" on every socket still open`)
	if err := child.send("check"); err != nil {
		return nil, err
	}
	for {
		f, err := child.next(10 * time.Minute)
		if err != nil {
			return nil, err
		}
		if f[0] == "fail" {
			logf("  who failed: %s", strings.Join(f[1:], " "))
			continue
		}
		if f[0] != "checked" || len(f) != 3 {
			return nil, fmt.Errorf("client process: unexpected %q", strings.Join(f, " "))
		}
		v, err := ints(f[1:])
		if err != nil {
			return nil, err
		}
		r.open, r.answered = int(v[0]), int(v[1])
		break
	}
	logf("%d sockets open, %d answered", r.open, r.answered)

	// Shut down: the client closes its sockets; B must let go of every handle.
	logf("closing the sockets")
	start = time.Now()
	if err := child.send("quit"); err != nil {
		return nil, err
	}
	f, err := child.next(time.Minute)
	if err != nil {
		return nil, err
	}
	if f[0] != "bye" || len(f) != 3 {
		return nil, fmt.Errorf("client process: unexpected %q", strings.Join(f, " "))
	}
	v, err := ints(f[1:])
	if err != nil {
		return nil, err
	}
	r.closedClean, r.closedForced = int(v[0]), int(v[1])
	// B lets go of about 10,000 sockets a second on two cores.
	for e.live.Load() != 0 && time.Since(start) < 10*time.Second+time.Duration(o.n)*time.Second/2000 {
		time.Sleep(time.Millisecond)
	}
	r.drained = time.Since(start)
	r.handlesAfter = e.live.Load()
	if err := child.wait(30 * time.Second); err != nil {
		return nil, err
	}
	time.Sleep(100 * time.Millisecond) // for the registry and ping goroutines to end
	r.goroutinesAfter = runtime.NumGoroutine()
	logf("client gone; %d live handles left %v after the quit", r.handlesAfter, r.drained.Round(time.Millisecond))

	if err := e.close(); err != nil {
		return nil, err
	}
	r.deletedKeys = e.deleted
	logf("servers stopped, %d Redis keys deleted", r.deletedKeys)
	r.print(out, o)
	return r, nil
}

// perSocket returns the heap and stack in use per open socket, in bytes: the growth
// from before the sockets to with them, after garbage collections.
func (r *result) perSocket() float64 {
	if r.opened == 0 {
		return 0
	}
	return (float64(r.with.heap+r.with.stack) - float64(r.before.heap+r.before.stack)) / float64(r.opened)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// print writes the table.
func (r *result) print(out io.Writer, o options) {
	fmt.Fprintf(out, "%d sockets; %s %s/%s, GOMAXPROCS %d; Redis %s at %s; open files limit %d; client from %s\nB serves them with %v\n\n",
		r.n, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), r.redisVersion, o.redisAddr, r.fdLimit, sourcesText(r.sources), o.sock)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	row := func(what, format string, args ...any) { fmt.Fprintf(w, "%s\t%s\n", what, fmt.Sprintf(format, args...)) }
	rate := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
	row("what", "figure")
	row(fmt.Sprintf("log %d users in through A (POST /login)", r.n), "%.2f s, %.0f/s, %d at a time", r.login.Seconds(), rate(r.n, r.login), o.loginConc)
	row(fmt.Sprintf(`open %d sockets to B, each checked with "who"`, r.n), "%.2f s, %.0f/s, %d at a time; %d opened, %d failed", r.dial.Seconds(), rate(r.opened, r.dial), o.dialConc, r.opened, r.failed)
	row("B: socket handlers running with a live handle", "%d", r.liveHandles)
	var peers []string
	for _, ip := range slices.Sorted(maps.Keys(r.peers)) {
		peers = append(peers, fmt.Sprintf("%s %d", ip, r.peers[ip]))
	}
	row("  by the client's address, as B saw it", "%s", strings.Join(peers, ", "))
	heapStack := func(s snapshot) uint64 { return s.heap + s.stack }
	rssFigure := func(b uint64) string {
		if b == 0 {
			return "?"
		}
		return fmt.Sprintf("%.0f MiB", mib(b))
	}
	row("server process (A, B, Redis clients, fake WeChat; server ends only)", "heap+stack in use %.1f -> %.1f MiB; RSS %s -> %s; goroutines %d -> %d",
		mib(heapStack(r.before)), mib(heapStack(r.with)), rssFigure(r.before.rss), rssFigure(r.with.rss), r.before.goroutines, r.with.goroutines)
	if r.opened > 0 {
		per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(r.opened) / 1024 }
		row("  per open socket", "%.1f KiB (heap %.1f + stack %.1f; of the heap, %.1f in live objects); %.2f goroutines",
			per(heapStack(r.before), heapStack(r.with)), per(r.before.heap, r.with.heap), per(r.before.stack, r.with.stack),
			per(r.before.live, r.with.live), float64(r.with.goroutines-r.before.goroutines)/float64(r.opened))
	}
	row("client process (client ends only)", "heap+stack in use %.1f MiB; RSS %s; goroutines %d", mib(r.clientHeapStack), rssFigure(r.clientRSS), r.clientGoroutines)
	delay, rtt, after := r.delays()
	row("logout on A -> close frame 4001 at the client of B", "%d of %d sessions: p50 %s, p99 %s, max %s",
		len(delay), len(r.logouts), ms(percentile(delay, 0.5)), ms(percentile(delay, 0.99)), ms(percentile(delay, 1)))
	row("  the logout request's round trip", "p50 %s, p99 %s, max %s", ms(percentile(rtt, 0.5)), ms(percentile(rtt, 0.99)), ms(percentile(rtt, 1)))
	row("  the close frame after the logout reply", "p50 %s, p99 %s, max %s (negative: before it)", ms(percentile(after, 0.5)), ms(percentile(after, 0.99)), ms(percentile(after, 1)))
	toEvent, toClose := r.events()
	row("  the event delivered by B's store, after the request left", "p50 %s, p99 %s, max %s (%d seen)", ms(percentile(toEvent, 0.5)), ms(percentile(toEvent, 0.99)), ms(percentile(toEvent, 1)), len(toEvent))
	row("  the close frame at the client, after that event", "p50 %s, p99 %s, max %s", ms(percentile(toClose, 0.5)), ms(percentile(toClose, 0.99)), ms(percentile(toClose, 1)))
	row("  when", "after %v with every socket idle, over %.1f s (at most one every %v)", o.hold, r.logoutPhase.Seconds(), o.spacing)
	if o.writes > 0 {
		row("  meanwhile, increments through A on other sockets' sessions", "%d/s asked, %.0f/s done, %d failed %s",
			o.writes, float64(r.writesDone)/r.logoutPhase.Seconds(), r.writeErrors, r.firstWriteError)
	}
	row("sockets closed without a logout", "%d", len(r.unexpected))
	row(`sockets still open afterwards, answering "who"`, "%d open, %d answered (expected %d)", r.open, r.answered, r.opened-len(r.logouts))
	row("shutdown", "the client closed %d sockets (%d answered with a close frame, %d dropped); B released every handle %s after the client began (%d left); %d goroutines left",
		r.closedClean+r.closedForced, r.closedClean, r.closedForced, ms(r.drained), r.handlesAfter, r.goroutinesAfter)
	row("Redis keys deleted", "%d", r.deletedKeys)
	_ = w.Flush()

	p99 := percentile(delay, 0.99)
	correct := r.check() == nil
	perSocket := r.perSocket()
	if r.n < targetSockets {
		fmt.Fprintf(out, "\ntarget: %d sockets with live handles on one process: not measured (-n %d)\n", targetSockets, r.n)
	} else {
		fmt.Fprintf(out, "\ntarget: %d sockets with live handles on one process: %s (%d)\n", targetSockets, yes(r.liveHandles >= targetSockets && correct), r.liveHandles)
	}
	fmt.Fprintf(out, "target: at most %d KiB of heap and stack per idle socket: %s (%.1f KiB with %d sockets)\n", targetPerSocket>>10, yes(r.opened > 0 && perSocket <= targetPerSocket), perSocket/1024, r.opened)
	fmt.Fprintf(out, "target: logout in A closes the socket in B within %v (p99): %s (p99 %s over %d logouts)\n", targetP99, yes(correct && len(delay) > 0 && p99 <= targetP99), ms(p99), len(delay))
	if err := r.check(); err != nil {
		fmt.Fprintf(out, "\nERRORS:\n%v\n", err)
	}
}

// lockedWriter lets several goroutines write to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
