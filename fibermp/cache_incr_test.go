package fibermp_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

// Concurrent requests of one client to one process (a mini program may have up to 10
// requests in flight) increment a counter: afterwards the process serves the counter
// Redis holds.
func TestCacheConcurrentIncrs(t *testing.T) {
	t.Parallel()
	addr, prefix := sharedRedis(t)
	a := newProcess(t, addr, prefix)
	for trial := 0; trial < 20; trial++ {
		hdr := loginWafer(t, a.harness, fmt.Sprintf("o-cache-test-%d", trial))
		a.do(t, "GET", "/get/n", hdr, "") // cached
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					if r := a.do(t, "POST", "/incr", hdr, ""); r.status != 200 {
						t.Errorf("incr: %d %s", r.status, r.body)
					}
				}
			}()
		}
		wg.Wait()
		// Every event has reached the process (and its cache first): the cache skips
		// them as its own, so they must change nothing.
		for range 8 * 10 {
			a.await(t, store.EventChanged, hdr["X-WX-Id"])
		}
		rec, err := a.rs.Load(t.Context(), hdr["X-WX-Id"], 0)
		if err != nil {
			t.Fatal(err)
		}
		got := string(a.do(t, "GET", "/get/n", hdr, "").body)
		if want := rec.Fields["n"]; got != want {
			time.Sleep(time.Second)
			again := string(a.do(t, "GET", "/get/n", hdr, "").body)
			t.Fatalf("trial %d: Redis holds n=%s; the process serves n=%s (and %s a second later)", trial, want, got, again)
		}
	}
}
