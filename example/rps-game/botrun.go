package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A bots run (-bots N -bots-for D): the persistent bots play for D, then finish their
// matches and stop, and the instance reports. With -redis, every instance of the run
// puts its tally in Redis, and the reports add them up: the matches per second of the
// fleet, the time from a move to its result, and the check that the bots' session
// records hold exactly two results per match played.

// hostedCount counts what this instance's rooms ran to a result (a forfeit is one),
// for the report.
type hostedCount struct {
	matches atomic.Int64 // between two bots
	seats   atomic.Int64 // bot seats of every match, so a bot's match with a person counts once
	across  atomic.Int64 // bot-against-bot matches between players on different instances
}

func (h *hostedCount) add(bots int, across bool) {
	if bots == 2 {
		h.matches.Add(1)
		if across {
			h.across.Add(1)
		}
	}
	h.seats.Add(int64(bots))
}

// tally is one instance's share of a run.
type tally struct {
	Instance string  `json:"instance"`
	Seconds  float64 `json:"seconds"` // how long the bots played
	Ended    int64   `json:"ended"`   // Unix ms: when the run ended, so that an earlier run's tally is told apart
	Matches  int64   `json:"matches"` // bot-against-bot matches this instance ran to a result
	Across   int64   `json:"across"`  // of which between bots on different instances
	Seats    int64   `json:"seats"`   // bot seats in the matches this instance ran to a result
	Records  int64   `json:"records"` // results this instance's bots' records in the database gained
	Micros   []int64 `json:"micros"`  // move-to-result samples, µs
}

// runBots plays the bots for d, finishes the run and writes the report to w: this
// instance's, and the fleet's once the tallies of instances instances are in Redis (rdb
// nil: this instance alone). It returns an error when the check fails.
func runBots(ctx context.Context, s *server, d time.Duration, instances int, rdb redis.UniversalClient, key string, w io.Writer) error {
	started := time.Now()
	if rdb != nil {
		if err := rdb.HDel(ctx, key, s.url).Err(); err != nil {
			return fmt.Errorf("bots run: %w", err)
		}
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	played := time.Since(started)
	fctx, cancel := context.WithTimeout(context.Background(), 3*s.lobby.moveTimeout+s.lobby.grace+30*time.Second)
	defer cancel()
	if err := s.bots.finish(fctx); err != nil {
		return err
	}
	s.bots.mu.Lock()
	mine := tally{Instance: s.url, Seconds: played.Seconds(), Ended: time.Now().UnixMilli(), Matches: s.hosted.matches.Load(), Across: s.hosted.across.Load(), Seats: s.hosted.seats.Load(), Records: s.bots.records}
	for _, d := range s.bots.samples {
		mine.Micros = append(mine.Micros, d.Microseconds())
	}
	s.bots.mu.Unlock()
	report(w, "this instance", []tally{mine})
	if rdb == nil || instances <= 1 {
		return check([]tally{mine})
	}

	raw, _ := json.Marshal(mine)
	if err := rdb.HSet(fctx, key, s.url, raw).Err(); err != nil {
		return fmt.Errorf("bots run: %w", err)
	}
	rdb.Expire(fctx, key, time.Hour)
	fmt.Fprintf(w, "waiting for the tallies of %d instances in Redis (%s)\n", instances, key)
	for {
		all, err := rdb.HGetAll(fctx, key).Result()
		if err != nil {
			return fmt.Errorf("bots run: %w", err)
		}
		// Tallies of an earlier run (other addresses; the key lives an hour) ended before
		// this one started, and are left out.
		var ts []tally
		for _, v := range all {
			var t tally
			if err := json.Unmarshal([]byte(v), &t); err != nil {
				return fmt.Errorf("bots run: a malformed tally: %w", err)
			}
			if t.Ended >= started.UnixMilli() {
				ts = append(ts, t)
			}
		}
		if len(ts) >= instances {
			report(w, fmt.Sprintf("%d instances", len(ts)), ts)
			return check(ts)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-fctx.Done():
			return fmt.Errorf("bots run: %d of %d tallies in Redis: %w", len(ts), instances, fctx.Err())
		}
	}
}

// report writes the figures of a run.
func report(w io.Writer, what string, ts []tally) {
	var matches, across, seats, records int64
	var secs float64
	var micros []int64
	for _, t := range ts {
		matches, across, seats, records = matches+t.Matches, across+t.Across, seats+t.Seats, records+t.Records
		secs = max(secs, t.Seconds)
		micros = append(micros, t.Micros...)
	}
	slices.Sort(micros)
	q := func(p float64) time.Duration {
		if len(micros) == 0 {
			return 0
		}
		return time.Duration(micros[min(len(micros)-1, int(p*float64(len(micros))))]) * time.Microsecond
	}
	fmt.Fprintf(w, "%s: %d matches between bots (%d across instances) in %.1f s: %.1f matches/s; move to result p50 %v, p99 %v (%d rounds); records %d, bot seats %d\n",
		what, matches, across, secs, float64(matches)/secs, q(0.50).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), len(micros), records, seats)
}

// check compares the bots' records with the matches run: every bot seat of a match run
// to a result is one result in the database.
func check(ts []tally) error {
	var seats, records int64
	for _, t := range ts {
		seats, records = seats+t.Seats, records+t.Records
	}
	if seats != records {
		return fmt.Errorf("bots run: the bots' records hold %d results; the matches had %d bot seats", records, seats)
	}
	return nil
}
