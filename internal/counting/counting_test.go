package counting_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/counting"
)

func TestHistograms(t *testing.T) {
	m := counting.New()
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.StoreCall(time.Duration(i+1)*time.Millisecond, i%10 == 0) // 1..100 ms
		}()
	}
	wg.Wait()
	m.Event("changed", time.Now().Add(-30*time.Millisecond))
	m.Event("resync", time.Time{}) // no time: counted, not timed
	got := map[string]counting.Sample{}
	m.Each(func(s counting.Sample) { got[s.Name+fmt.Sprint(s.Labels)] = s })

	lat := got["mpsession_store_call_seconds"+fmt.Sprint(map[string]string(nil))]
	if lat.Count != 100 || lat.Sum < 5.04 || lat.Sum > 5.06 {
		t.Errorf("latency: want 100 observations summing to 5.05 s; got %d, %v", lat.Count, lat.Sum)
	}
	for i, b := range lat.Bounds {
		want := uint64(min(max(b*1000, 0), 100)) // observations of at most b seconds
		if lat.Counts[i] != want {
			t.Errorf("latency bucket <= %v: want %d; got %d", b, want, lat.Counts[i])
		}
	}
	if e := got["mpsession_store_errors_total"+fmt.Sprint(map[string]string(nil))]; e.Value != 10 {
		t.Errorf("store errors: want 10; got %v", e.Value)
	}
	lag := got["mpsession_event_lag_seconds"+fmt.Sprint(map[string]string(nil))]
	if lag.Count != 1 || lag.Sum < 0.03 || lag.Sum > 1 {
		t.Errorf("event lag: want one observation of about 30 ms; got %d, %v", lag.Count, lag.Sum)
	}
	if r := got["mpsession_events_total"+fmt.Sprint(map[string]string{"kind": "resync"})]; r.Value != 1 {
		t.Errorf("resync events: want 1; got %v", r.Value)
	}
}

// A nil *Counts counts nothing and does not panic, so code that counts needs no check.
func TestNil(t *testing.T) {
	var m *counting.Counts
	m.Login(counting.LoginOK)
	m.StoreCall(time.Millisecond, true)
	m.Event("changed", time.Now())
	m.Sockets(1)
	m.Handles(1)
	m.RequestRefused(counting.RefusedInvalid)
	m.UpgradeRefused(counting.RefusedOrigin)
}
