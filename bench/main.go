// Command bench measures mpsession against what its users would run instead, side by
// side in one run, and prints the ratios docs/DESIGN.md sets as targets:
//
//   - an authenticated read with the memory store: fibermp against bare Fiber serving
//     the same route with no session (target: at least 0.8x);
//   - a read with Redis: fibermp with store/redisstore against Fiber's session
//     middleware with gofiber/storage/redis (target: at least 1.5x);
//   - an increment with Redis, the same two (target: at least 2x);
//   - with the session cache in front of Redis (fibermp.Config.Cache): a read against
//     bare Fiber (at least 0.75x) and against Fiber's session middleware (at least 3x),
//     and an increment against the latter (at least 2x).
//
// For each contender on Redis it also reports the Redis commands per request (INFO
// commandstats deltas: a Lua script's commands count as what they are) and the round
// trips per request (a go-redis hook on the contender's own client).
//
// Every contender serves on its own loopback listener and is driven by a
// fasthttp.HostClient in this process, so the servers, the load and Redis share the
// machine. The contenders run in rounds, the two sides of a comparison one after the
// other, and the table gives the median of the rounds. On a shared machine many short
// rounds (the default: 21 of 1 s) pair the two sides of a comparison more closely in
// time than a few long ones:
//
//	cd bench                         # a module of its own
//	go run .                         # 21 rounds of 1 s, about 3.5 minutes
//	go run . -duration 5s -rounds 5  # 5 rounds of 5 s
//
// The run starts a redis-server of its own (when one is on the PATH), so that the
// Redis CPU time and command counts are its own; -redis names another Redis, and
// without redis-server it uses $MPSESSION_REDIS_ADDR, or 127.0.0.1:6379. Without Redis
// only the memory comparison runs. The run writes its keys under a prefix of its own and
// deletes them when done. -only picks contenders by name (a regular expression), and
// -cpuprofile writes a CPU profile of the rounds:
//
//	go run . -only 'read/fibermp-redis$' -cpuprofile read.pprof
//
// See README.md in this folder for what each contender does.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", time.Second, "how long each contender runs in each round")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "how long each contender runs before the first round")
	flag.IntVar(&o.rounds, "rounds", 21, "number of rounds")
	flag.IntVar(&o.conns, "conns", 32, "concurrent requests (and connections) per contender")
	addr := flag.String("redis", "", "Redis address (default: a redis-server of the run's own, else $MPSESSION_REDIS_ADDR or 127.0.0.1:6379)")
	only := flag.String("only", "", "run only the contenders whose name (op/server) matches this regular expression")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the rounds (servers, load generator) to this file")
	useWrk := flag.Bool("wrk", false, "drive the servers with wrk, a process of its own, and report the servers' CPU per request (default rounds 5, duration 3s)")
	flag.Parse()
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -only:", err)
			os.Exit(2)
		}
		o.only = re
	}

	own := false
	stopRedis := func() error { return nil }
	if *addr == "" {
		a, stop, err := startRedis()
		if err == nil {
			*addr, stopRedis, own = a, stop, true
		} else {
			*addr = redisAddr()
			fmt.Fprintf(os.Stderr, "bench: no Redis of the run's own (%v): using %s\n", err, *addr)
		}
	}
	e, err := newEnv(*addr, o.conns)
	if err != nil {
		_ = stopRedis()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	e.redisOwn = own
	// The run's own Redis stops after the servers and clients.
	e.closers = append([]func() error{stopRedis}, e.closers...)
	// An interrupted run still deletes its Redis keys.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "bench: interrupted, cleaning up")
		_ = e.Close()
		os.Exit(130)
	}()
	if *useWrk {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["rounds"] {
			o.rounds = 5
		}
		if !set["duration"] {
			o.duration = 3 * time.Second
		}
		err = compareWrk(os.Stdout, os.Stderr, e, o)
	} else {
		err = compare(os.Stdout, os.Stderr, e, o)
	}
	signal.Stop(sig)
	if cerr := e.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// redisAddr is the Redis address the tests of this module use (internal/testenv, which
// the command does not import: it is for tests).
func redisAddr() string {
	if a := os.Getenv("MPSESSION_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}
