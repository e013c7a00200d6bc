// Command sockets measures the socket target of docs/DESIGN.md: 100,000 concurrent authenticated
// sockets with live handles on one process at 12 KiB or less each, and a logout in one
// process closing the socket in another within 100 ms (p99).
//
//	cd bench && go run ./sockets -n 100000
//
// It runs two server instances in this process, A and B, as two processes sharing Redis
// would be: each a Fiber app on its own loopback listener with fibermp.New (Token
// protocol), its own Redis client and its own redisstore (one key prefix, unique to the
// run), and one fake WeChat server (wx/wxtest) for both. A logs the users in; B serves
// /ws through wsauth, whose handler answers "who" with the socket's openid.
//
// The sockets' client ends live in a child process (this program started again), so
// that each process holds one end of each socket. Both raise their limit on open files
// (RLIMIT_NOFILE) to what N sockets need, the hard limit too when they may (root with
// CAP_SYS_RESOURCE); when they may not, the command says so and stops. The child dials
// N sockets to B with N distinct tokens, from source addresses 127.0.0.2 on (each
// address has ephemeral ports of its own, 28,232 by Linux's default), and checks each
// with "who". The sockets then stay open and idle for -hold (default 65 s: longer than
// the server's 60 s read timeout, so pings must keep them alive); then a sample of
// sessions is logged out through A, one at a time, at most one every -spacing (default
// 125 ms, 200 logouts spanning one 25 s ping cycle), optionally under -writes increments
// per second through A on the other sessions, and the child reports when each socket
// receives its close frame (4001, wsauth.CloseLoggedOut). Every other socket must stay
// open and answer "who". It prints the time to log in and to connect, the server
// process's memory and goroutines per socket, and the logout delays (p50, p99, max),
// and exits with status 1 if anything went wrong (a socket that did not open, a wrong
// close code, a socket closed without a logout); timings never fail it.
//
// B serves its sockets as wsauth's doc recommends for many idle sockets (-ws-read-buffer,
// -ws-write-buffer, -ws-write-pool, -reduce-memory set it otherwise), and -memprofile
// writes a heap profile of the server process with the sockets open.
//
//	go run ./sockets -n 10000 -hold 0 -writes 5000   # a quick run, under load
//	go run ./sockets -n 10000 -hold 0 -memprofile heap.pprof
//
// Redis is at $MPSESSION_REDIS_ADDR, or 127.0.0.1:6379. The run writes its keys under a
// prefix of its own and deletes them (SCAN and DEL) when it ends, also on Ctrl-C.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

func main() {
	if isClient() {
		os.Exit(clientMain(os.Args[2:], os.Stdin, os.Stdout))
	}
	if isServer() {
		os.Exit(serverMain(os.Args[2:], os.Stdin, os.Stdout))
	}
	o := defaultOptions()
	fo := defaultFleetOptions()
	flag.IntVar(&fo.instances, "fleet", 0, "run the fleet instead: this many server instances, each a process, on one Redis (see fleet.go); -n sockets over them")
	flag.IntVar(&fo.room, "room", fo.room, "fleet: users in the big room (about)")
	flag.IntVar(&fo.writes, "fleet-writes", fo.writes, "fleet: increments in each events phase")
	flag.IntVar(&fo.roomMsgs, "room-msgs", fo.roomMsgs, "fleet: messages to the big room")
	flag.StringVar(&fo.memprofile, "fleet-memprofile", "", "fleet: write a heap profile of instance 0 with its sockets open to this file")
	flag.StringVar(&fo.profile, "fleet-profile", "", "fleet: write a CPU profile of instance 0 during the room messages to this file")
	flag.IntVar(&o.n, "n", o.n, "number of sockets (and users)")
	flag.IntVar(&o.sample, "sample", o.sample, "number of sessions logged out, one at a time")
	flag.IntVar(&o.loginConc, "login-conc", o.loginConc, "concurrent logins")
	flag.IntVar(&o.dialConc, "dial-conc", o.dialConc, "concurrent dials in the client process")
	flag.DurationVar(&o.settle, "settle", o.settle, "wait after the sockets open, before measuring memory")
	flag.DurationVar(&o.hold, "hold", o.hold, "then keep every socket open and idle this long before the logouts (the server's read timeout is 60s, its pings every 25s)")
	flag.DurationVar(&o.spacing, "spacing", o.spacing, "start a logout at most this often, so that they sample the server's ping cycle")
	flag.IntVar(&o.writes, "writes", o.writes, "increments per second through A on the other sessions during the logouts (0: none)")
	flag.StringVar(&o.redisAddr, "redis", redisAddr(), "Redis address")
	flag.IntVar(&o.sock.readBuffer, "ws-read-buffer", o.sock.readBuffer, "B's websocket.Config.ReadBufferSize (0: contrib's default, 1024)")
	flag.IntVar(&o.sock.writeBuffer, "ws-write-buffer", o.sock.writeBuffer, "B's websocket.Config.WriteBufferSize (0: contrib's default, 1024)")
	flag.BoolVar(&o.sock.writePool, "ws-write-pool", o.sock.writePool, "give B's websocket.Config a WriteBufferPool (a sync.Pool), so that an idle socket holds no write buffer")
	flag.BoolVar(&o.sock.reduceMemory, "reduce-memory", o.sock.reduceMemory, "set B's fiber.Config.ReduceMemoryUsage, so that fasthttp lets go of its read buffer when a socket is upgraded")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the server process (A, B and the load through A) during the logouts to this file")
	memprofile := flag.String("memprofile", "", "write a heap profile of the server process with the sockets open (after a GC) to this file; samples every 1 KiB allocated")
	flag.Parse()
	if fo.instances > 0 {
		os.Exit(fleetMain(fo, o))
	}
	if *memprofile != "" {
		// Finer than the default of 512 KiB, so that the profile tells the few
		// hundred bytes of each socket apart; set before anything is allocated.
		runtime.MemProfileRate = 1024
		f, err := os.Create(*memprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sockets:", err)
			os.Exit(1)
		}
		defer f.Close()
		o.memprofile = f
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sockets:", err)
			os.Exit(1)
		}
		defer f.Close()
		o.profile = f
	}

	// An interrupted run still deletes its Redis keys and stops its client process.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	interrupt := make(chan struct{})
	o.interrupt = interrupt
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "sockets: interrupted, cleaning up")
		close(interrupt)
		<-sig
		os.Exit(130)
	}()
	start := time.Now()
	r, err := run(os.Stdout, os.Stderr, o)
	signal.Stop(sig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sockets:", err)
		os.Exit(1)
	}
	fmt.Printf("\nwhole run %v\n", time.Since(start).Round(100*time.Millisecond))
	if err := r.check(); err != nil {
		fmt.Fprintln(os.Stderr, "sockets:", err)
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

// fleetMain runs the fleet with the common flags of o, prints the report, and returns
// the exit status.
func fleetMain(fo fleetOptions, o options) int {
	fo.n, fo.samples, fo.loginConc, fo.dialConc, fo.settle, fo.redisAddr = o.n, o.sample, o.loginConc, o.dialConc, o.settle, o.redisAddr
	if fo.instances < 2 {
		fmt.Fprintln(os.Stderr, "sockets: -fleet needs 2 instances or more")
		return 2
	}
	start := time.Now()
	r, err := fleetRun(os.Stderr, fo)
	if r != nil {
		r.print(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sockets:", err)
		return 1
	}
	fmt.Printf("\nwhole run %v\n", time.Since(start).Round(100*time.Millisecond))
	if err := r.check(); err != nil {
		fmt.Fprintln(os.Stderr, "sockets:", err)
		return 1
	}
	return 0
}
