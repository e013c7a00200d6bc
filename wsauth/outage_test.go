package wsauth_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/mpsession/mpsession/wsauth"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// What TestOutageUnderLoad holds the servers to.
const (
	outageStoreTimeout = 500 * time.Millisecond
	// A failing request or socket command answers within it: the store timeout, and a
	// margin for a call that succeeded just before Redis went away.
	outageFailBound = outageStoreTimeout + time.Second
	// Requests and socket writes succeed again, and the event subscriptions are live
	// again, within it of Redis's return.
	outageRecoveryBound = 2 * time.Second
	// A logout through one server closes the socket the other holds within it.
	outageCloseBound = time.Second
	// A client gives up an answer after it: a hang, reported as such.
	outageHang = 10 * time.Second
)

// TestOutageUnderLoad kills Redis for 3 s, then hangs it (SIGSTOP) for 5 s, under two
// servers that share it (the Wafer protocol, StoreTimeout 500 ms) and a load that never
// stops: on both servers, HTTP clients increment and read a counter of their sessions,
// and sockets of the same sessions increment it, set a field of their own and read it.
// It checks that:
//   - while Redis is away, every failing request is a 503 with Retry-After and without
//     the Wafer magic key (which would log every client out), an upgrade too, every
//     failing request and socket command answers within the store timeout and a
//     margin, and no socket is closed;
//   - within 2 s of Redis's return, requests and socket writes succeed again and the
//     event subscriptions are live again; no request fails while Redis is up;
//   - no acknowledged write is lost, and none is applied twice (checkOutageCounts,
//     checkOutageSets);
//   - after each return, a logout through A closes a socket that B holds (4001, then
//     4002 for a logout everywhere), and at the end the load's sockets, which lived
//     through both outages, close on both servers on logout.
//
// A bound on time is checked on the time less what the test process spent stalled (see
// outageClock), so that a loaded machine does not fail it and a hang still does. It
// logs the latencies of the failing requests while Redis is killed and while it is hung,
// the recovery times and the counts. It does not run in parallel: its bounds are for
// its own load.
func TestOutageUnderLoad(t *testing.T) {
	begin := time.Now()
	clock := startOutageClock(t)
	srv := testenv.StartRedis(t)
	newStore := func() *redisstore.Store {
		// Without ContextTimeoutEnabled go-redis ignores the store timeout.
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
		st := redisstore.New(rdb)
		t.Cleanup(func() { _ = st.Close(); _ = rdb.Close() })
		return st
	}
	stA, stB := newStore(), newStore()
	watchA, watchB := watchResyncs(t, stA), watchResyncs(t, stB)
	tally := &outageTally{ok: map[string]int{}, failed: map[string]int{}}
	wechat := wxtest.NewServer(appID, appSecret)
	t.Cleanup(wechat.Close)
	cfg := fibermp.Config{Protocol: fibermp.Wafer, StoreTimeout: outageStoreTimeout}
	a := newServer(t, stA, wechat, cfg, tally.routes)
	b := newServer(t, stB, wechat, cfg, tally.routes)
	servers := map[string]*server{"A": a, "B": b}

	transport := &http.Transport{MaxIdleConnsPerHost: 32}
	client := &http.Client{Transport: transport, Timeout: outageHang}
	t.Cleanup(transport.CloseIdleConnections)

	// The load: per user, an HTTP client and a socket on each server. Two more users
	// hold an idle socket on B each, to be logged out through A after each return.
	const users = 3
	var (
		load    []*outageUser
		workers []*outageWorker
	)
	for i := 0; i < users; i++ {
		u := &outageUser{waferUser: waferLogin(t, a, fmt.Sprintf("o-load-%d", i))}
		load = append(load, u)
		for _, inst := range []string{"A", "B"} {
			s := servers[inst]
			workers = append(workers,
				&outageWorker{name: "http " + inst + " " + u.openid, inst: inst, srv: s, user: u, client: client},
				&outageWorker{name: "socket " + inst + " " + u.openid, inst: inst, srv: s, user: u,
					conn: mustDial(t, s.wsURL(""), u.header())})
		}
	}
	rev1, rev2 := waferLogin(t, a, "o-rev-1"), waferLogin(t, a, "o-rev-2")
	rev1B, rev2B := mustDial(t, b.wsURL(""), rev1.header()), mustDial(t, b.wsURL(""), rev2.header())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	t.Cleanup(stopLoad) // before the servers shut down, should the test end early
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(t, stop, begin.Add(time.Minute))
		}()
	}
	waitOutage(t, workers, "succeeds before the outages", 10*time.Second, func(w *outageWorker) bool {
		return w.lastOK.Load() > begin.UnixNano()
	})

	// outage takes Redis away for hold (and until every worker has failed), gives it
	// back, and waits until every worker has succeeded for a while again.
	var phases []*outagePhase
	outage := func(name string, cut, restore func(), hold time.Duration) *outagePhase {
		t.Helper()
		p := &outagePhase{name: name}
		phases = append(phases, p)
		p.cut = time.Now()
		cut()
		p.down = time.Now()
		p.upgrade = probeUpgrade(t, clock, b, load[0].waferUser)
		waitOutage(t, workers, "fails while Redis is "+name, hold+10*time.Second, func(w *outageWorker) bool {
			return time.Since(p.down) >= hold && w.lastFail.Load() >= p.cut.UnixNano()
		})
		p.up = time.Now()
		restore()
		p.back = time.Now()
		settled := p.back.Add(outageRecoveryBound)
		waitOutage(t, workers, "succeeds 2 s after Redis "+name+" is back", outageRecoveryBound+10*time.Second, func(w *outageWorker) bool {
			return time.Now().After(settled) && w.lastOK.Load() >= settled.UnixNano()
		})
		return p
	}

	// Phase 1: Redis killed, as a crash would, then started again on its data.
	resyncsA, resyncsB := watchA.count.Load(), watchB.count.Load()
	killed := outage("killed", srv.Stop, func() { srv.Start(t) }, 3*time.Second)
	// The subscriptions broke with their connections: each must be confirmed again
	// (EventResync) for a logout's event to reach the other server.
	deadline := time.Now().Add(10 * time.Second)
	for watchA.count.Load() == resyncsA || watchB.count.Load() == resyncsB {
		if time.Now().After(deadline) {
			t.Fatalf("Redis restarted: the event subscriptions are not confirmed again (EventResync) within 10 s: A %v, B %v",
				watchA.count.Load() > resyncsA, watchB.count.Load() > resyncsB)
		}
		time.Sleep(10 * time.Millisecond)
	}
	killed.resubscribed = []time.Duration{watchA.at().Sub(killed.back), watchB.at().Sub(killed.back)}
	for i, d := range killed.resubscribed {
		if ok, stalled := clock.within(killed.back, d, outageRecoveryBound); !ok {
			t.Errorf("Redis restarted: the event subscription of %s is live again %v after Redis's return (%v of it stalled); want within %v",
				"AB"[i:i+1], d, stalled, outageRecoveryBound)
		}
	}
	revoked := []time.Duration{revokeAcross(t, clock, a, client, rev1, rev1B, "/logout", wsauth.CloseLoggedOut)}

	// Phase 2: Redis hung (SIGSTOP): its connections stay open and nothing answers.
	resyncsA, resyncsB = watchA.count.Load(), watchB.count.Load()
	hung := outage("hung", func() { srv.Pause(t) }, func() { srv.Resume(t) }, 5*time.Second)
	hung.resyncs = []int64{watchA.count.Load() - resyncsA, watchB.count.Load() - resyncsB}
	revoked = append(revoked, revokeAcross(t, clock, a, client, rev2, rev2B, "/logout-all", wsauth.CloseRevoked))

	stopLoad()
	end := time.Now()

	// Every answer, judged.
	var ops []outageOp
	for _, w := range workers {
		ops = append(ops, w.ops...)
	}
	problems, excused := 0, 0
	problem := func(op outageOp, format string, args ...any) {
		if problems++; problems <= 20 {
			t.Errorf("%s: %s at %v (%s): %s", op.worker, op.cmd, op.start.Sub(begin).Round(time.Millisecond),
				phaseOf(phases, op), fmt.Sprintf(format, args...))
		}
	}
	for _, op := range ops {
		if op.problem != "" {
			problem(op, "%s", op.problem)
			continue
		}
		if op.ok && !op.read {
			continue
		}
		// A failure, or a socket read (answered from memory when it cannot reload).
		if ok, stalled := clock.within(op.start, op.took, outageFailBound); !ok {
			problem(op, "answered in %v (%v of it stalled); want within %v", op.took.Round(time.Millisecond), stalled, outageFailBound)
		} else if op.took > outageFailBound {
			excused++
		}
		// A failure while Redis was up: only a timeout that the process's own stall
		// made fire is excused.
		if !op.ok && phaseOf(phases, op) == "Redis up" {
			if stalled := clock.stalled(op.start, op.end()); op.took < outageStoreTimeout || op.took-stalled >= outageStoreTimeout {
				problem(op, "failed in %v while Redis was up: %s", op.took.Round(time.Millisecond), op.reply)
			} else {
				excused++
			}
		}
	}
	if problems > 20 {
		t.Errorf("... %d problems in all", problems)
	}
	for i, p := range phases {
		next := end
		if i+1 < len(phases) {
			next = phases[i+1].cut
		}
		p.judge(t, clock, ops, next)
	}

	// No write lost.
	checkOutageCounts(t, client, servers, load, tally)
	for _, w := range workers {
		if w.conn != nil {
			checkOutageSets(t, client, a, w)
		}
	}

	// The load's sockets lived through both outages: a logout through A closes them on
	// both servers.
	for _, u := range load {
		start := time.Now()
		if st, body := outageDo(client, "POST", a.url+"/logout", u.waferUser); st != 200 || strings.Contains(body, fibermp.MagicID) {
			t.Errorf("logout %s through A: %d %s", u.openid, st, body)
		}
		for _, w := range workers {
			if w.user != u || w.conn == nil {
				continue
			}
			code, reason := closeCode(w.conn, 5*time.Second)
			d := time.Since(start)
			revoked = append(revoked, d)
			if code != wsauth.CloseLoggedOut {
				t.Errorf("%s after a logout through A: want close %d; got %d %q", w.name, wsauth.CloseLoggedOut, code, reason)
			} else if ok, stalled := clock.within(start, d, outageCloseBound); !ok {
				t.Errorf("%s after a logout through A: closed in %v (%v of it stalled); want within %v", w.name, d, stalled, outageCloseBound)
			}
		}
	}
	waitHandles(t, 0)

	// The figures.
	httpN, sockN := 0, 0
	for _, op := range ops {
		if op.http {
			httpN++
		} else {
			sockN++
		}
	}
	t.Logf("load: %d HTTP requests and %d socket commands from %d clients in %v", httpN, sockN, len(workers), end.Sub(begin).Round(time.Millisecond))
	for _, p := range phases {
		p.log(t, begin)
	}
	sort.Slice(revoked, func(i, j int) bool { return revoked[i] < revoked[j] })
	t.Logf("logout through A -> close frame from the other server (one after each return, %d at the end): %v", len(revoked)-2, roundAll(revoked))
	total, longest := clock.summary()
	t.Logf("the test process stalled %v in all, %v at most; %d late answers excused by a stall", total, longest, excused)
}

// outageUser is a session of the load, and what its clients know of its counter "n".
type outageUser struct {
	waferUser
	acked     atomic.Int64 // increments acknowledged: HTTP 200, or a number on a socket
	httpAcked atomic.Int64 // of which over HTTP
	unknown   atomic.Int64 // increments the client cannot tell the outcome of: no answer, or an error on a socket
}

// waferUser is a Wafer session's credentials.
type waferUser struct{ openid, id, skey string }

func (u waferUser) header() http.Header {
	return http.Header{fibermp.HeaderID: {u.id}, fibermp.HeaderSkey: {u.skey}}
}

// waferLogin logs openID in through s with the Wafer protocol.
func waferLogin(t testing.TB, s *server, openID string) waferUser {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/login", nil)
	req.Header.Set(fibermp.HeaderCode, s.wx.NewCode(openID))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Session struct{ ID, Skey string } }
	if err := decode(resp.Body, &r); err != nil || r.Session.ID == "" {
		t.Fatalf("wafer login: %d %v", resp.StatusCode, err)
	}
	return waferUser{openid: openID, id: r.Session.ID, skey: r.Session.Skey}
}

// outageResponse is an HTTP answer, read whole.
type outageResponse struct {
	status int
	header http.Header
	body   string
}

// outageSend sends a request with u's credentials and reads the answer.
func outageSend(client *http.Client, method, url string, u waferUser) (*outageResponse, time.Duration, error) {
	req, _ := http.NewRequest(method, url, nil)
	req.Header = u.header()
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return nil, time.Since(start), err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, time.Since(start), err
	}
	return &outageResponse{status: resp.StatusCode, header: resp.Header, body: string(body)}, time.Since(start), nil
}

// outageDo is outageSend for the test's own requests: it returns the status and the
// body, or 0 and the error.
func outageDo(client *http.Client, method, url string, u waferUser) (int, string) {
	resp, _, err := outageSend(client, method, url, u)
	if err != nil {
		return 0, err.Error()
	}
	return resp.status, resp.body
}

// outageTally counts on the server the increments of the HTTP route that reached the
// store, and how each ended. A client cannot tell a 503 whose increment never started
// (the session failed to load: nothing applied) from one whose increment failed in
// flight (it may have been applied, or may yet be: a command that timed out on a hung
// Redis runs when Redis resumes); counting the second kind here is what makes the
// upper bound of checkOutageCounts tight.
type outageTally struct {
	mu         sync.Mutex
	ok, failed map[string]int // by openid
}

// routes adds /tally/:k, the harness's /incr/:k that also counts and answers the new
// value, and /get/:k, which answers a field's JSON value or null.
func (tl *outageTally) routes(app *app) {
	app.Post("/tally/:k", fibermp.Required(), func(c *fiber.Ctx) error {
		s := fibermp.Get(c)
		n, err := s.Incr(c.Params("k"), 1)
		tl.mu.Lock()
		if err != nil {
			tl.failed[s.OpenID()]++
		} else {
			tl.ok[s.OpenID()]++
		}
		tl.mu.Unlock()
		if err != nil {
			return err
		}
		return c.SendString(strconv.FormatInt(n, 10))
	})
	app.Get("/get/:k", fibermp.Required(), func(c *fiber.Ctx) error {
		raw, ok := fibermp.Get(c).Raw(c.Params("k"))
		if !ok {
			return c.SendString("null")
		}
		return c.Send(raw)
	})
}

func (tl *outageTally) get(openID string) (ok, failed int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.ok[openID], tl.failed[openID]
}

// outageWatch counts the EventResync a store delivers: one each time its event
// subscription is confirmed again after a reconnect.
type outageWatch struct {
	count atomic.Int64
	last  atomic.Int64 // UnixNano of the latest
}

func (w *outageWatch) at() time.Time { return time.Unix(0, w.last.Load()) }

func watchResyncs(t testing.TB, st store.Store) *outageWatch {
	t.Helper()
	w := &outageWatch{}
	unsubscribe, err := st.Capabilities().Events.Subscribe(func(e store.Event) {
		if e.Kind == store.EventResync {
			w.last.Store(time.Now().UnixNano())
			w.count.Add(1)
		}
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(unsubscribe)
	return w
}

// outageClock notices when the test process stalls, as it does on a loaded machine
// that runs something else: a goroutine that should wake every 5 ms records every gap
// past 25 ms. A bound on how long something takes is checked on that time less the
// stalls that overlapped it, so that the test fails on a hang of the code, whose time
// the process spends running, and not on a machine that did not run it.
type outageClock struct {
	mu     sync.Mutex
	stalls [][2]time.Time
}

const outageTick = 5 * time.Millisecond

func startOutageClock(t testing.TB) *outageClock {
	c := &outageClock{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(outageTick)
		defer tick.Stop()
		prev := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			now := time.Now()
			if now.Sub(prev) > 5*outageTick {
				c.mu.Lock()
				c.stalls = append(c.stalls, [2]time.Time{prev.Add(outageTick), now})
				c.mu.Unlock()
			}
			prev = now
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	return c
}

// stalled returns how long the process stalled between from and to.
func (c *outageClock) stalled(from, to time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d time.Duration
	for _, s := range c.stalls {
		lo, hi := s[0], s[1]
		if lo.Before(from) {
			lo = from
		}
		if hi.After(to) {
			hi = to
		}
		if hi.After(lo) {
			d += hi.Sub(lo)
		}
	}
	return d
}

// within reports whether what began at start and took d is within bound once the
// stalls are taken off, and how long they were.
func (c *outageClock) within(start time.Time, d, bound time.Duration) (bool, time.Duration) {
	if d <= bound {
		return true, 0
	}
	stalled := c.stalled(start, start.Add(d))
	return d-stalled <= bound, stalled
}

func (c *outageClock) summary() (total, longest time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.stalls {
		d := s[1].Sub(s[0])
		total += d
		longest = max(longest, d)
	}
	return total.Round(time.Millisecond), longest.Round(time.Millisecond)
}

// outageOp is one request or socket command of the load, as its client saw it.
type outageOp struct {
	worker, inst, cmd string
	http              bool
	read              bool // a socket's read, which the live handle answers from memory when it must
	start             time.Time
	took              time.Duration
	ok                bool   // it succeeded
	reply             string // the answer of a failure
	problem           string // what is wrong with the answer, or ""
}

func (op outageOp) end() time.Time { return op.start.Add(op.took) }

// outageWorker is one client of the load: HTTP requests (conn nil) or a socket's
// commands, on one server, for one session. Its fields other than the atomics are its
// own until run returns.
type outageWorker struct {
	name, inst string
	srv        *server
	user       *outageUser
	client     *http.Client
	conn       *websocket.Conn

	// UnixNano of the start of the latest write (or HTTP read) that succeeded, failed.
	lastOK, lastFail atomic.Int64

	ops []outageOp
	// The socket sets its field s<inst> to 1, 2, 3, ...
	seq          int
	lastSetAcked int
	unknownSets  []int
}

// run sends requests or commands until stop is closed, or the deadline passes should
// the test never close it, or the socket is lost.
func (w *outageWorker) run(t *testing.T, stop <-chan struct{}, deadline time.Time) {
	for i := 0; time.Now().Before(deadline); i++ {
		select {
		case <-stop:
			return
		default:
		}
		var (
			op   outageOp
			lost error
		)
		switch {
		case w.conn == nil && i%2 == 0:
			op = w.httpIncr()
		case w.conn == nil:
			op = w.httpGet()
		case i%3 == 0:
			op, lost = w.socketIncr()
		case i%3 == 1:
			op, lost = w.socketSet()
		default:
			op, _, lost = w.socketCmd("get n")
			op.read = true
		}
		op.worker, op.inst = w.name, w.inst
		if lost != nil {
			t.Errorf("%s: %s: the socket is lost after %v: %v", w.name, op.cmd, op.took.Round(time.Millisecond), lost)
			return
		}
		switch {
		case op.read:
		case op.ok:
			w.lastOK.Store(op.start.UnixNano())
		default:
			w.lastFail.Store(op.start.UnixNano())
		}
		w.ops = append(w.ops, op)
	}
}

// httpAnswer judges an HTTP answer: 200 is a success; a failure must be the outage's
// 503, with Retry-After and without the magic key.
func httpAnswer(op *outageOp, resp *outageResponse) {
	switch {
	case strings.Contains(resp.body, fibermp.MagicID):
		op.problem = fmt.Sprintf("%d carrying the Wafer magic key, which logs the client out: %s", resp.status, resp.body)
	case resp.status == 200:
		op.ok = true
	case resp.status == 503:
		op.reply = resp.body
		var r struct{ Error string }
		if err := json.Unmarshal([]byte(resp.body), &r); err != nil || r.Error != fibermp.ErrCodeUnavailable {
			op.problem = "503 without " + fibermp.ErrCodeUnavailable + ": " + resp.body
		} else if resp.header.Get("Retry-After") == "" {
			op.problem = "503 without Retry-After"
		}
	default:
		op.problem = fmt.Sprintf("want 200 or 503; got %d %s", resp.status, resp.body)
	}
}

func (w *outageWorker) httpIncr() outageOp {
	op := outageOp{cmd: "POST /tally/n", http: true, start: time.Now()}
	resp, took, err := outageSend(w.client, "POST", w.srv.url+"/tally/n", w.user.waferUser)
	op.took = took
	if err != nil {
		op.problem = "no answer: " + err.Error()
		w.user.unknown.Add(1)
		return op
	}
	httpAnswer(&op, resp)
	if op.ok {
		if _, err := strconv.ParseInt(resp.body, 10, 64); err != nil {
			op.ok, op.problem = false, "200 without the new value: "+resp.body
			w.user.unknown.Add(1)
			return op
		}
		w.user.acked.Add(1)
		w.user.httpAcked.Add(1)
	}
	// A failed increment is counted by the server if it reached the store (outageTally).
	return op
}

func (w *outageWorker) httpGet() outageOp {
	op := outageOp{cmd: "GET /get/n", http: true, start: time.Now()}
	resp, took, err := outageSend(w.client, "GET", w.srv.url+"/get/n", w.user.waferUser)
	op.took = took
	if err != nil {
		op.problem = "no answer: " + err.Error()
		return op
	}
	httpAnswer(&op, resp)
	return op
}

// socketCmd sends a command and returns the reply, or why the socket is lost: it
// failed, or did not answer in time.
func (w *outageWorker) socketCmd(cmd string) (outageOp, string, error) {
	op := outageOp{cmd: cmd, start: time.Now()}
	_ = w.conn.SetWriteDeadline(op.start.Add(outageHang))
	err := w.conn.WriteMessage(websocket.TextMessage, []byte(cmd))
	var msg []byte
	if err == nil {
		_ = w.conn.SetReadDeadline(op.start.Add(outageHang))
		_, msg, err = w.conn.ReadMessage()
	}
	op.took = time.Since(op.start)
	op.ok = err == nil
	return op, string(msg), err
}

// socketFailure judges a failed socket write: the reply must be the store outage's
// error, as fibermp.ErrUnavailable words it.
func socketFailure(op *outageOp, reply string) {
	op.ok, op.reply = false, reply
	if !strings.Contains(reply, fibermp.ErrUnavailable.Error()) {
		op.problem = "want a number or the outage's error; got " + strconv.Quote(reply)
	}
}

func (w *outageWorker) socketIncr() (outageOp, error) {
	op, reply, lost := w.socketCmd("incr n")
	switch _, err := strconv.ParseInt(reply, 10, 64); {
	case lost != nil:
		w.user.unknown.Add(1)
	case err == nil:
		w.user.acked.Add(1)
	default:
		w.user.unknown.Add(1) // it failed in the store: it may have been applied
		socketFailure(&op, reply)
	}
	return op, lost
}

func (w *outageWorker) socketSet() (outageOp, error) {
	w.seq++
	op, reply, lost := w.socketCmd(fmt.Sprintf("set s%s %d", w.inst, w.seq))
	switch {
	case lost != nil:
		w.unknownSets = append(w.unknownSets, w.seq)
	case reply == "ok":
		w.lastSetAcked = w.seq
	default:
		w.unknownSets = append(w.unknownSets, w.seq)
		socketFailure(&op, reply)
	}
	return op, lost
}

// outagePhase is one outage: Redis is taken away between cut and down, and given
// back between up and back.
type outagePhase struct {
	name                string
	cut, down, up, back time.Time
	upgrade             string          // how an upgrade during the outage was answered
	resubscribed        []time.Duration // killed: when the subscriptions of A and B were live again, after back
	resyncs             []int64         // hung: how many times the subscriptions of A and B reconnected

	// What judge found.
	recovery                     map[string]time.Duration // first success after back, by kind and server
	httpFails, sockFails         []time.Duration          // latencies of the failures while Redis was away
	httpOK, sockOK, sockReads    int                      // successes while Redis was away
	lastFailHTTP, lastFailSocket time.Duration            // when the last failure after back ended
	lastFailReply                string                   // the reply of the last socket write that failed after back
}

// phaseOf names the outage an op overlaps, with the 2 s of recovery after it, or
// "Redis up".
func phaseOf(phases []*outagePhase, op outageOp) string {
	for _, p := range phases {
		if !op.end().Before(p.cut) && op.start.Before(p.back.Add(outageRecoveryBound)) {
			return "Redis " + p.name
		}
	}
	return "Redis up"
}

// judge looks at the ops that began after the cut and ended before next (an op that
// ended after the next outage began is the next one's): requests and socket writes
// failed while Redis was away, and after its return they succeed within 2 s, on both
// servers.
func (p *outagePhase) judge(t *testing.T, clock *outageClock, ops []outageOp, next time.Time) {
	t.Helper()
	p.recovery = map[string]time.Duration{}
	for _, op := range ops {
		if op.start.Before(p.cut) || !op.end().Before(next) {
			continue
		}
		if !op.ok && !op.start.Before(p.back) {
			if op.http {
				p.lastFailHTTP = max(p.lastFailHTTP, op.end().Sub(p.back))
			} else if d := op.end().Sub(p.back); d > p.lastFailSocket {
				p.lastFailSocket, p.lastFailReply = d, op.reply
			}
		}
		if !op.start.Before(p.down) && op.end().Before(p.up) {
			switch {
			case op.read:
				p.sockReads++
			case op.ok && op.http:
				p.httpOK++
			case op.ok:
				p.sockOK++
			case op.http:
				p.httpFails = append(p.httpFails, op.took)
			default:
				p.sockFails = append(p.sockFails, op.took)
			}
		}
		if op.ok && !op.read && !op.start.Before(p.back) {
			key := "socket " + op.inst
			if op.http {
				key = "HTTP " + op.inst
			}
			if d, seen := p.recovery[key]; !seen || op.end().Sub(p.back) < d {
				p.recovery[key] = op.end().Sub(p.back)
			}
		}
	}
	for _, key := range []string{"HTTP A", "HTTP B", "socket A", "socket B"} {
		d, seen := p.recovery[key]
		if !seen {
			t.Errorf("Redis %s: no %s success after Redis came back", p.name, key)
		} else if ok, stalled := clock.within(p.back, d, outageRecoveryBound); !ok {
			t.Errorf("Redis %s: the first %s success came %v after Redis came back (%v of it stalled); want within %v",
				p.name, key, d, stalled, outageRecoveryBound)
		}
	}
	if len(p.httpFails) == 0 || len(p.sockFails) == 0 {
		t.Errorf("Redis %s: want failing requests and socket writes while Redis was away; got %d and %d",
			p.name, len(p.httpFails), len(p.sockFails))
	}
}

func (p *outagePhase) log(t *testing.T, begin time.Time) {
	t.Helper()
	t.Logf("Redis %s at %v for %v; an upgrade meanwhile: %s", p.name, p.cut.Sub(begin).Round(time.Millisecond),
		p.up.Sub(p.down).Round(time.Millisecond), p.upgrade)
	t.Logf("  failing HTTP requests: %s (succeeded: %d)", latencies(p.httpFails), p.httpOK)
	t.Logf("  failing socket writes: %s (succeeded: %d; socket reads answered: %d)", latencies(p.sockFails), p.sockOK, p.sockReads)
	var rec []string
	for _, key := range []string{"HTTP A", "HTTP B", "socket A", "socket B"} {
		rec = append(rec, fmt.Sprintf("%s %v", key, p.recovery[key].Round(time.Millisecond)))
	}
	t.Logf("  Redis back %v after the restore began; first success after its return: %s; last failure ended: HTTP %v, socket %v",
		p.back.Sub(p.up).Round(time.Millisecond), strings.Join(rec, ", "), p.lastFailHTTP.Round(time.Millisecond), p.lastFailSocket.Round(time.Millisecond))
	if p.lastFailReply != "" {
		t.Logf("  the last socket write to fail after Redis's return: %q", p.lastFailReply)
	}
	if p.resubscribed != nil {
		t.Logf("  event subscriptions live again after Redis's return: A %v, B %v", p.resubscribed[0].Round(time.Millisecond), p.resubscribed[1].Round(time.Millisecond))
	} else {
		t.Logf("  event subscriptions reconnected during the outage: A %d, B %d times", p.resyncs[0], p.resyncs[1])
	}
}

// latencies formats a count and the p50, p99 and max of ds.
func latencies(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(q float64) time.Duration { return ds[int(q*float64(len(ds)-1))].Round(time.Millisecond) }
	return fmt.Sprintf("%d, p50 %v, p99 %v, max %v", len(ds), at(0.5), at(0.99), at(1))
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// checkOutageCounts checks that no acknowledged increment of a counter was lost, and
// that none was applied twice.
//
// A client knows the outcome of an increment that was acknowledged (applied), and of
// one whose request failed before the increment reached the store (not applied). Only
// an increment that failed in the store (a timeout on a hung Redis, a connection
// killed under it), or whose answer never came, may or may not have been applied. So
// the final value lies between the acknowledged increments and those plus the ones of
// unknown outcome: the lower bound is "no acknowledged write lost", the upper bound
// "nothing applied that was not asked for" (a retry applying one twice).
func checkOutageCounts(t *testing.T, client *http.Client, servers map[string]*server, load []*outageUser, tally *outageTally) {
	t.Helper()
	for _, u := range load {
		var final int64
		for _, inst := range []string{"A", "B"} {
			st, body := outageDo(client, "GET", servers[inst].url+"/get/n", u.waferUser)
			n, err := strconv.ParseInt(body, 10, 64)
			if st != 200 || err != nil {
				t.Fatalf("%s: the counter through %s: %d %s", u.openid, inst, st, body)
			}
			if inst == "B" && n != final {
				t.Errorf("%s: the counter reads %d through A and %d through B", u.openid, final, n)
			}
			final = n
		}
		srvOK, srvFailed := tally.get(u.openid)
		acked, unknown := u.acked.Load(), u.unknown.Load()+int64(srvFailed)
		t.Logf("%s: counter %d: acknowledged %d (%d over HTTP, as the server counted %d), outcome unknown %d (%d over HTTP), of which applied %d",
			u.openid, final, acked, u.httpAcked.Load(), srvOK, unknown, srvFailed, final-acked)
		if h := u.httpAcked.Load(); h > int64(srvOK) {
			t.Errorf("%s: %d increments acknowledged over HTTP; the server saw %d succeed", u.openid, h, srvOK)
		}
		if final < acked {
			t.Errorf("%s: the counter is %d after %d acknowledged increments: %d lost", u.openid, final, acked, acked-final)
		}
		if final > acked+unknown {
			t.Errorf("%s: the counter is %d; at most %d increments were applied (%d acknowledged, %d of unknown outcome)",
				u.openid, final, acked+unknown, acked, unknown)
		}
	}
}

// checkOutageSets checks a socket's own field, which it set to 1, 2, 3, ... one after
// the other: it must hold the last acknowledged value, or a later one whose outcome is
// unknown. An earlier one means an acknowledged set was overwritten by an earlier set
// that failed on the client and ran on Redis after it (a command left on a hung Redis
// runs when it resumes).
func checkOutageSets(t *testing.T, client *http.Client, s *server, w *outageWorker) {
	t.Helper()
	st, body := outageDo(client, "GET", s.url+"/get/s"+w.inst, w.user.waferUser)
	var v string
	if st != 200 || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("%s: its field s%s: %d %s", w.name, w.inst, st, body)
	}
	got, _ := strconv.Atoi(v)
	unknown := false
	for _, seq := range w.unknownSets {
		unknown = unknown || seq == got
	}
	switch {
	case got == w.lastSetAcked:
	case unknown && got > w.lastSetAcked:
		// A set after the last acknowledged one failed on the client and was applied.
	case unknown:
		t.Errorf("%s: field s%s holds %d: the acknowledged set of %d was overwritten by an earlier set whose request failed",
			w.name, w.inst, got, w.lastSetAcked)
	default:
		t.Errorf("%s: field s%s holds %q; want the last acknowledged value %d, or a later one of unknown outcome (%v)",
			w.name, w.inst, v, w.lastSetAcked, w.unknownSets)
	}
}

// revokeAcross logs u out through a with path and waits for conn, u's socket on the
// other server, which lived through the outage, to close with want. It returns the
// delay from the logout request to the close frame.
func revokeAcross(t *testing.T, clock *outageClock, a *server, client *http.Client, u waferUser, conn *websocket.Conn, path string, want int) time.Duration {
	t.Helper()
	if got := call(t, conn, "who"); got != u.openid {
		t.Fatalf("%s's socket on B after the outage: want %s; got %q", u.openid, u.openid, got)
	}
	start := time.Now()
	if st, body := outageDo(client, "POST", a.url+path, u); st != 200 || strings.Contains(body, fibermp.MagicID) {
		t.Fatalf("%s %s through A: %d %s", path, u.openid, st, body)
	}
	code, reason := closeCode(conn, 5*time.Second)
	d := time.Since(start)
	if code != want {
		t.Errorf("%s's socket on B after %s through A: want close %d; got %d %q", u.openid, path, want, code, reason)
	} else if ok, stalled := clock.within(start, d, outageCloseBound); !ok {
		t.Errorf("%s's socket on B after %s through A: closed in %v (%v of it stalled); want within %v", u.openid, path, d, stalled, outageCloseBound)
	}
	return d
}

// probeUpgrade opens a socket on s with u's credentials while Redis is away: the
// upgrade must be refused with 503, not 401 (which tells the client to log in again),
// within the bound. It returns how it was answered.
func probeUpgrade(t *testing.T, clock *outageClock, s *server, u waferUser) string {
	t.Helper()
	start := time.Now()
	conn, resp, err := dial(s.wsURL(""), u.header())
	took := time.Since(start)
	switch {
	case err == nil:
		_ = conn.Close()
		t.Errorf("an upgrade while Redis was away: want 503; got a socket")
		return "101"
	case resp == nil:
		t.Errorf("an upgrade while Redis was away: %v", err)
		return err.Error()
	case resp.StatusCode != 503:
		t.Errorf("an upgrade while Redis was away: want 503; got %d", resp.StatusCode)
	}
	if ok, stalled := clock.within(start, took, outageFailBound); !ok {
		t.Errorf("an upgrade while Redis was away: refused in %v (%v of it stalled); want within %v", took, stalled, outageFailBound)
	}
	return fmt.Sprintf("%d in %v", resp.StatusCode, took.Round(time.Millisecond))
}

// waitOutage waits until every worker meets cond, or fails the test after limit,
// naming those that do not.
func waitOutage(t *testing.T, workers []*outageWorker, what string, limit time.Duration, cond func(w *outageWorker) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var behind []string
		for _, w := range workers {
			if !cond(w) {
				behind = append(behind, w.name)
			}
		}
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("every client %s: not within %v: %s", what, limit, strings.Join(behind, ", "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
