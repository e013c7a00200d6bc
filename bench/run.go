package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"
)

// A result is what one run of one contender measured.
type result struct {
	requests int64
	elapsed  time.Duration
	trips    int64 // Redis round trips of the server during the run
	// calls are the Redis commands run during the run, by name (INFO commandstats
	// deltas, without INFO); nil without Redis.
	calls map[string]int64
	lost  int64 // increments answered but not kept by the store; incr only
	// cpu is the CPU time this process and, for a contender that uses Redis, the Redis
	// server used during the run; 0 when the system does not tell it. redisCPU is the
	// Redis server's part.
	cpu, redisCPU time.Duration
}

func (r result) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r result) tripsPerRequest() float64 { return float64(r.trips) / float64(r.requests) }

func (r result) callsPerRequest() float64 {
	var n int64
	for _, c := range r.calls {
		n += c
	}
	return float64(n) / float64(r.requests)
}

// cpuPerRequest and redisCPUPerRequest are in microseconds.
func (r result) cpuPerRequest() float64 { return float64(r.cpu.Microseconds()) / float64(r.requests) }

func (r result) redisCPUPerRequest() float64 {
	return float64(r.redisCPU.Microseconds()) / float64(r.requests)
}

// run drives c with conns concurrent requests for d, each sent as soon as the previous
// one on its connection is answered. It stops at the first wrong reply.
func run(c *contender, conns int, d time.Duration) (result, error) {
	var first int64
	if c.op == opIncr {
		n, err := c.doOnce()
		if err != nil {
			return result{}, err
		}
		first = n
	}
	var (
		stop     atomic.Bool
		requests atomic.Int64
		errOnce  sync.Once
		runErr   error
		wg       sync.WaitGroup
	)
	proc, redis, cpuOK, err := c.cpuTime()
	if err != nil {
		return result{}, err
	}
	calls, err := c.commandCalls()
	if err != nil {
		return result{}, err
	}
	trips := c.trips.load()
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	for range conns {
		wg.Go(func() {
			req, resp := c.newRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var n int64
			for !stop.Load() {
				if _, err := c.do(req, resp); err != nil {
					errOnce.Do(func() { runErr = err })
					stop.Store(true)
					break
				}
				n++
			}
			requests.Add(n)
		})
	}
	wg.Wait()
	timer.Stop()
	r := result{requests: requests.Load(), elapsed: time.Since(start), trips: c.trips.load() - trips}
	if runErr != nil {
		return r, runErr
	}
	calls2, err := c.commandCalls()
	if err != nil {
		return r, err
	}
	if calls2 != nil {
		r.calls = callsSince(calls, calls2)
	}
	proc2, redis2, cpuOK2, err := c.cpuTime()
	if err != nil {
		return r, err
	}
	if cpuOK && cpuOK2 {
		r.redisCPU = redis2 - redis
		r.cpu = proc2 - proc + r.redisCPU
	}
	if r.requests == 0 {
		return r, fmt.Errorf("%s: no request answered in %v", c, d)
	}
	if c.op == opIncr {
		last, err := c.doOnce()
		if err != nil {
			return r, err
		}
		// The run's requests answered r.requests increments; the counter moved by this.
		r.lost = r.requests - (last - first - 1)
	}
	return r, nil
}

// options are the command's flags.
type options struct {
	duration time.Duration // of one run of one contender
	warmup   time.Duration // of the run of each contender before the first round
	rounds   int
	conns    int // concurrent requests
	// only, when not nil, picks the contenders to run by name; the others are left out.
	only *regexp.Regexp
	// cpuProfile, when not empty, is the file the process's CPU profile of the rounds
	// (not the warm-up) is written to.
	cpuProfile string
}

// A comparison is one of the targets of docs/DESIGN.md: ours serves at least target times the
// requests per second of base. A target of 0 marks a comparison that is no target, only
// a figure to read the others by.
type comparison struct {
	what       string
	ours, base string // contender names
	target     float64
}

// targetText and metText are the comparison's target and whether ratio meets it, as
// the table shows them.
func (c comparison) targetText() string {
	if c.target == 0 {
		return "(none)"
	}
	return fmt.Sprintf(">= %gx", c.target)
}

func (c comparison) metText(ratio float64) string {
	if c.target == 0 {
		return "-"
	}
	return met(ratio, c.target)
}

var comparisons = []comparison{
	{"authenticated read, memory store", "read/fibermp-memory", "read/bare-fiber", 0.8},
	{"read, Redis", "read/fibermp-redis", "read/fibersession-redis", 1.5},
	// Not a target: the most any read with one Redis round trip could reach against
	// Fiber's session here, the load generator, HTTP and the round trip being shared.
	{"ceiling of read, Redis: no session, one GET", "read/bare-fiber-redis-get", "read/fibersession-redis", 0},
	{"increment, Redis", "incr/fibermp-redis", "incr/fibersession-redis", 2},
	{"read, Redis + cache, against bare Fiber", "read/fibermp-redis-cached", "read/bare-fiber", 0.75},
	{"read, Redis + cache", "read/fibermp-redis-cached", "read/fibersession-redis", 3},
	{"increment, Redis + cache", "incr/fibermp-redis-cached", "incr/fibersession-redis", 2},
}

// compare runs the contenders of e in rounds and writes the table to w, and what it is
// doing to progress. Within a round every contender runs once, the two sides of a
// comparison one after the other, in the reverse order on odd rounds, so that noise
// on the machine hits both sides alike. It reports the median of the rounds.
//
// Besides requests per second it reports the CPU time a request costs: this process
// (servers and load generator) plus, with Redis, the Redis server. Programs that take
// CPU time from the run lower its requests per second but not its CPU cost, so the
// ratio of CPU costs is a second estimate of the throughput ratio, for a run bound by
// the CPU; a neighbour that slows the CPU down (a shared core, a shared cache) moves
// both.
func compare(w, progress io.Writer, e *env, o options) (err error) {
	if o.rounds < 1 || o.conns < 1 || o.duration <= 0 {
		return errors.New("bench: rounds, conns and duration must be positive")
	}
	if e.redisErr != nil {
		fmt.Fprintf(progress, "%v: the Redis contenders are left out\n", e.redisErr)
	}
	var cs []*contender
	for _, c := range e.contenders {
		if o.only == nil || o.only.MatchString(c.String()) {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return fmt.Errorf("bench: no contender matches %v", o.only)
	}
	results := make(map[*contender][]result, len(cs))
	if o.warmup > 0 {
		for _, c := range cs {
			fmt.Fprintf(progress, "warm-up %s\n", c)
			if _, err := run(c, o.conns, o.warmup); err != nil {
				return err
			}
		}
	}
	var stopProfile func()
	if o.cpuProfile != "" {
		if stopProfile, err = startCPUProfile(o.cpuProfile); err != nil {
			return err
		}
		defer func() {
			if stopProfile != nil {
				stopProfile()
			}
		}()
	}
	for round := range o.rounds {
		order := slices.Clone(cs)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			// Garbage left by the previous contender is not this one's to collect.
			runtime.GC()
			r, err := run(c, o.conns, o.duration)
			if err != nil {
				return err
			}
			results[c] = append(results[c], r)
			fmt.Fprintf(progress, "round %d/%d  %-26s %9.0f req/s %7.1f µs CPU/req\n", round+1, o.rounds, c, r.rate(), r.cpuPerRequest())
		}
	}
	if stopProfile != nil {
		stopProfile()
		stopProfile = nil
	}

	writeHeader(w, e, o)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "contender\treq/s (median)\tmin\tmax\tCPU µs/req\tof which Redis\tRedis commands/req\tround trips/req\tlost increments\t")
	for _, c := range cs {
		rs := results[c]
		rates := mapSlice(rs, result.rate)
		cpu, redisCPU, calls, trips, lost := "-", "-", "-", "-", "-"
		if rs[0].cpu > 0 {
			cpu = fmt.Sprintf("%.1f", median(mapSlice(rs, result.cpuPerRequest)))
		}
		if c.trips != nil {
			redisCPU = fmt.Sprintf("%.1f", median(mapSlice(rs, result.redisCPUPerRequest)))
			calls = fmt.Sprintf("%.2f", median(mapSlice(rs, result.callsPerRequest)))
			trips = fmt.Sprintf("%.2f", median(mapSlice(rs, result.tripsPerRequest)))
		}
		if c.op == opIncr {
			var n, of int64
			for _, r := range rs {
				n, of = n+r.lost, of+r.requests
			}
			lost = fmt.Sprintf("%d of %d (%.1f%%)", n, of, 100*float64(n)/float64(of))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", c, median(rates), slices.Min(rates), slices.Max(rates), cpu, redisCPU, calls, trips, lost)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writeCalls(w, cs, results); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "comparison\tours / base\treq/s ratio (median)\tmin..max\tCPU ratio (median)\tmin..max\ttarget\tmet by req/s\tby CPU\t")
	for _, cmp := range comparisons {
		ours, base := e.contender(cmp.ours), e.contender(cmp.base)
		if results[ours] == nil || results[base] == nil {
			fmt.Fprintf(tw, "%s\t%s / %s\t-\t-\t-\t-\t%s\tnot run\tnot run\t\n", cmp.what, cmp.ours, cmp.base, cmp.targetText())
			continue
		}
		// Ratios of one round, whose two sides ran one after the other.
		rate := make([]float64, o.rounds)
		cpu := make([]float64, o.rounds)
		for i := range o.rounds {
			a, b := results[ours][i], results[base][i]
			rate[i] = a.rate() / b.rate()
			cpu[i] = b.cpuPerRequest() / a.cpuPerRequest()
		}
		cpuMedian, cpuRange, cpuMet := "-", "-", "-"
		if results[ours][0].cpu > 0 && results[base][0].cpu > 0 {
			cpuMedian, cpuRange, cpuMet = ratio(median(cpu)), ratio(slices.Min(cpu))+".."+ratio(slices.Max(cpu)), cmp.metText(median(cpu))
		}
		fmt.Fprintf(tw, "%s\t%s / %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", cmp.what, cmp.ours, cmp.base,
			ratio(median(rate)), ratio(slices.Min(rate))+".."+ratio(slices.Max(rate)),
			cpuMedian, cpuRange, cmp.targetText(), cmp.metText(median(rate)), cpuMet)
	}
	return tw.Flush()
}

// writeCalls writes, for each contender on Redis, the commands Redis ran per request
// by name, over all rounds: what the "Redis commands/req" column adds up.
func writeCalls(w io.Writer, cs []*contender, results map[*contender][]result) error {
	var lines []string
	for _, c := range cs {
		if c.admin == nil {
			continue
		}
		total, requests := make(map[string]int64), int64(0)
		for _, r := range results[c] {
			requests += r.requests
			for name, n := range r.calls {
				total[name] += n
			}
		}
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(total)) {
			parts = append(parts, fmt.Sprintf("%s %.4g", name, float64(total[name])/float64(requests)))
		}
		if len(parts) == 0 {
			parts = []string{"none"}
		}
		lines = append(lines, fmt.Sprintf("  %s: %s\n", c, strings.Join(parts, ", ")))
	}
	if len(lines) == 0 {
		return nil
	}
	if _, err := fmt.Fprintf(w, "\nRedis commands per request, by name (INFO commandstats over all rounds; a script's commands besides its EVALSHA):\n"); err != nil {
		return err
	}
	for _, l := range lines {
		if _, err := io.WriteString(w, l); err != nil {
			return err
		}
	}
	return nil
}

// startCPUProfile writes the process's CPU profile to path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

func ratio(f float64) string { return fmt.Sprintf("%.2fx", f) }

func met(ratio, target float64) string {
	if ratio >= target {
		return "yes"
	}
	return "NO"
}

// writeHeader says what was measured, where and when.
func writeHeader(w io.Writer, e *env, o options) {
	fmt.Fprintf(w, "\n%s, %s %s/%s, %d CPUs (GOMAXPROCS %d)%s\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel())
	redis := "Redis: not running (" + fmt.Sprint(e.redisErr) + ")"
	if e.redisErr == nil {
		redis = "Redis " + e.redisInfo + " at " + e.redisAddr
		if e.redisOwn {
			redis += " (the run's own)"
		} else {
			redis += " (not the run's own: its CPU time and command counts include any other client's)"
		}
	}
	fmt.Fprintf(w, "%d rounds of %v per contender after a %v warm-up, %d concurrent requests; %s\n\n",
		o.rounds, o.duration, o.warmup, o.conns, redis)
}

// cpuModel returns ", <model name>" on Linux, "" elsewhere.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return ", " + strings.TrimSpace(v)
		}
	}
	return ""
}

func mapSlice[T, U any](s []T, f func(T) U) []U {
	out := make([]U, len(s))
	for i, v := range s {
		out[i] = f(v)
	}
	return out
}

func median(s []float64) float64 {
	s = slices.Sorted(slices.Values(s))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
