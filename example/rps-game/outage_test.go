package main

import (
	"path/filepath"
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
	var before int64
	botsRun(t, a, b, 8*time.Second, func() {
		eventually(t, 5*time.Second, "matches before the outage", func() bool { return a.hosted.matches.Load()+b.hosted.matches.Load() > 5 })
		before = a.hosted.matches.Load() + b.hosted.matches.Load()
		srv.Pause(t)
		time.Sleep(2 * time.Second) // the outage being tested: Redis hangs this long
		srv.Stop()
		srv.StartEmpty(t)
	})
	if after := a.hosted.matches.Load() + b.hosted.matches.Load(); after <= before {
		t.Errorf("want matches played after the outage; got %d before and %d in all", before, after)
	}
}
