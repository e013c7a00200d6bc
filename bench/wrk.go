package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mpsession/mpsession/fibermp"
)

// The side-by-side with an external load generator: wrk, in a process of its own, so
// that this process only serves and its CPU time is the servers' alone. Requests per
// second and server CPU per request are both reported: on a machine wrk shares with the
// servers, the rate depends on how the two split the cores; the CPU per request does
// not.

// wrkResult is one wrk run of one contender.
type wrkResult struct {
	rate   float64       // requests per second, as wrk counts them
	cpu    time.Duration // this process's CPU time during the run
	reqs   int64         // requests wrk completed
	redis  time.Duration // the Redis server's CPU time during the run, for a contender with Redis
	errors string        // what wrk reported besides 2xx answers, if anything
}

func (r wrkResult) cpuPerRequest() float64 {
	return float64(r.cpu.Nanoseconds()) / 1e3 / float64(r.reqs)
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkRate     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkErrors   = regexp.MustCompile(`(Non-2xx or 3xx responses: \d+|Socket errors: [^\n]+)`)
)

// runWrk drives c with wrk for d (whole seconds, at least one), with conns connections
// on threads threads.
func runWrk(c *contender, script string, conns, threads int, d time.Duration) (wrkResult, error) {
	cpu0, redis0, _, err := c.cpuTime()
	if err != nil {
		return wrkResult{}, err
	}
	secs := max(1, int((d+time.Second-1)/time.Second)) // wrk takes whole seconds
	out, err := exec.Command("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", strconv.Itoa(secs)+"s",
		"-s", script, "http://"+c.client.Addr+"/").CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("%s: wrk: %v: %s", c, err, out)
	}
	cpu1, redis1, _, err := c.cpuTime()
	if err != nil {
		return wrkResult{}, err
	}
	r := wrkResult{cpu: cpu1 - cpu0, redis: redis1 - redis0}
	m, n := wrkRate.FindSubmatch(out), wrkRequests.FindSubmatch(out)
	if m == nil || n == nil {
		return wrkResult{}, fmt.Errorf("%s: wrk's output has no rate: %s", c, out)
	}
	r.rate, _ = strconv.ParseFloat(string(m[1]), 64)
	r.reqs, _ = strconv.ParseInt(string(n[1]), 10, 64)
	if e := wrkErrors.FindAll(out, -1); e != nil {
		r.errors = string(slices.Concat(e...))
	}
	if r.reqs == 0 {
		return wrkResult{}, fmt.Errorf("%s: wrk completed no request: %s", c, out)
	}
	return r, nil
}

// wrkScript writes the Lua script that makes wrk send c's request: its method, its
// path and the session's id.
func wrkScript(dir string, c *contender) (string, error) {
	path := strings.TrimPrefix(c.uri, "http://")
	if i := strings.IndexByte(path, '/'); i >= 0 {
		path = path[i:]
	} else {
		path = "/"
	}
	lua := fmt.Sprintf("wrk.method = %q\nwrk.path = %q\nwrk.headers[%q] = %q\n", c.method, path, fibermp.HeaderSessionID, c.sessionID)
	f := filepath.Join(dir, strings.ReplaceAll(c.String(), "/", "_")+".lua")
	return f, os.WriteFile(f, []byte(lua), 0o644)
}

// compareWrk runs the comparisons whose contenders o.only picks with wrk: each
// contender once for o.warmup, then in o.rounds rounds (the two sides of a comparison
// one after the other, in turn), and writes the medians to w.
func compareWrk(w, progress io.Writer, e *env, o options) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("bench: -wrk needs wrk (apt-get install -y wrk)")
	}
	dir, err := os.MkdirTemp("", "mpsession-wrk")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var cs []*contender
	for _, c := range e.contenders {
		if o.only == nil || o.only.MatchString(c.String()) {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return errors.New("bench: -only matches no contender")
	}
	scripts := map[*contender]string{}
	for _, c := range cs {
		if scripts[c], err = wrkScript(dir, c); err != nil {
			return err
		}
		fmt.Fprintf(progress, "warming up %s\n", c)
		if _, err := runWrk(c, scripts[c], o.conns, 1, o.warmup); err != nil {
			return err
		}
	}
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	results := map[*contender][]wrkResult{}
	for round := range o.rounds {
		order := slices.Clone(cs)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			r, err := runWrk(c, scripts[c], o.conns, 1, o.duration)
			if err != nil {
				return err
			}
			if r.errors != "" {
				return fmt.Errorf("%s: wrk reports %s", c, r.errors)
			}
			results[c] = append(results[c], r)
		}
		fmt.Fprintf(progress, "round %d of %d done\n", round+1, o.rounds)
	}

	fmt.Fprintf(w, "wrk in a process of its own (1 thread, %d connections), %d rounds of %v, medians; server CPU is this process's alone\n\n",
		o.conns, o.rounds, o.duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "contender\treq/s\tserver CPU µs/req\tRedis CPU µs/req\t")
	for _, c := range cs {
		rs := results[c]
		redis := "-"
		if c.admin != nil {
			redis = fmt.Sprintf("%.1f", median(mapSlice(rs, func(r wrkResult) float64 {
				return float64(r.redis.Nanoseconds()) / 1e3 / float64(r.reqs)
			})))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%s\t\n", c, median(mapSlice(rs, func(r wrkResult) float64 { return r.rate })),
			median(mapSlice(rs, wrkResult.cpuPerRequest)), redis)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "comparison\treq/s ratio\tCPU µs/req, ours - base\ttarget\tmet\t")
	for _, cmp := range comparisons {
		ours, base := e.contender(cmp.ours), e.contender(cmp.base)
		if ours == nil || base == nil || results[ours] == nil || results[base] == nil {
			continue
		}
		// The ratio of each round's rates, then the median: both sides of a round ran
		// back to back, under the same noise.
		var ratios, extra []float64
		for i := range results[ours] {
			o, b := results[ours][i], results[base][i]
			ratios = append(ratios, o.rate/b.rate)
			extra = append(extra, o.cpuPerRequest()-b.cpuPerRequest())
		}
		r := median(ratios)
		fmt.Fprintf(tw, "%s\t%s\t%+.2f\t%s\t%s\t\n", cmp.what, ratio(r), median(extra), cmp.targetText(), cmp.metText(r))
	}
	return tw.Flush()
}
