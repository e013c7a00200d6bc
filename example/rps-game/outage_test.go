package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
)

// A bots run on two instances through a Redis outage: Redis hangs (SIGSTOP) for 2 s,
// then dies and comes back empty, every session, queue ticket and kept message gone.
// Every match result is in the database once (bots' too), and the run's own check
// holds: the results the bots' records gained are the bot seats of the matches run.
// The bots log in again, and their new sessions have their records.
func TestResultsSurviveRedisOutage(t *testing.T) {
	srv := testenv.StartRedis(t)
	cfg := config{Redis: srv.Addr, RedisPrefix: "outage:", DB: filepath.Join(t.TempDir(), "rps.db"), Bots: 6,
		BotThink: 10 * time.Millisecond, MoveTimeout: 2 * time.Second, Grace: 2 * time.Second, QueueLease: 2 * time.Second}
	a, b := startServer(t, cfg), startServer(t, cfg)
	key := "outage:rps:bots"
	var wg sync.WaitGroup
	var outs [2]bytes.Buffer
	var errs [2]error
	for i, s := range []*server{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = runBots(context.Background(), s, 8*time.Second, 2, s.rdb, key, &outs[i])
		}()
	}
	eventually(t, 5*time.Second, "matches before the outage", func() bool { return a.hosted.matches.Load()+b.hosted.matches.Load() > 5 })
	before := a.hosted.matches.Load() + b.hosted.matches.Load()
	srv.Pause(t)
	time.Sleep(2 * time.Second) // the outage being tested: Redis hangs this long
	srv.Stop()
	srv.StartEmpty(t)
	wg.Wait()
	for i := range outs {
		t.Logf("instance %d:\n%s", i+1, outs[i].String())
		if errs[i] != nil {
			t.Errorf("instance %d: %v", i+1, errs[i])
		}
		if !strings.Contains(outs[i].String(), "2 instances: ") {
			t.Errorf("instance %d: want the fleet's report", i+1)
		}
	}
	if after := a.hosted.matches.Load() + b.hosted.matches.Load(); after <= before {
		t.Errorf("want matches played after the outage; got %d before and %d in all", before, after)
	}
}
