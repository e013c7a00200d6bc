// Package metrics counts what fibermp and wsauth do, for the people who run them:
// logins by outcome, requests and socket upgrades refused and why, store calls with
// their errors and latency, live sockets and session handles, and the store's events
// with how late they arrive.
//
// It depends on nothing: Each hands out every value, and a few lines turn them into
// Prometheus, expvar or OpenTelemetry metrics (example/rps-game serves them with
// prometheus/client_golang at /metrics). Pass one Metrics to fibermp.Config.Metrics;
// wsauth counts into the same one.
//
//	m := metrics.New()
//	mp, err := fibermp.NewManager(fibermp.Config{..., Metrics: m})
//	m.Each(func(s metrics.Sample) { fmt.Println(s.Name, s.Labels, s.Value) })
package metrics

import "github.com/mpsession/mpsession/internal/counting"

// Kind is the kind of a Sample, as Prometheus names them.
type Kind int

const (
	Counter Kind = iota
	Gauge
	Histogram
)

// Sample is one value of one metric.
type Sample struct {
	Name   string
	Help   string
	Kind   Kind
	Labels map[string]string // nil when the metric has none

	// Value is a counter's or a gauge's value.
	Value float64

	// A histogram's observations: how many, their sum, and for each upper bound in
	// Bounds, how many were at most that (cumulative, as Prometheus counts them).
	Count  uint64
	Sum    float64
	Bounds []float64
	Counts []uint64
}

// Metrics holds the counts of one application. Its methods are safe for concurrent use.
type Metrics struct{ c *counting.Counts }

func init() {
	counting.Of = func(m any) *counting.Counts {
		if m, ok := m.(*Metrics); ok && m != nil {
			return m.c
		}
		return nil
	}
}

// New returns Metrics with every count at zero.
func New() *Metrics { return &Metrics{c: counting.New()} }

// Each calls fn with every sample, in a fixed order:
//
//	mpsession_logins_total{outcome}            counter: ok, rejected, wechat, unavailable
//	mpsession_requests_refused_total{reason}   counter: invalid, unavailable
//	mpsession_upgrades_refused_total{reason}   counter: invalid, unavailable, origin, too_many
//	mpsession_store_calls_total                counter
//	mpsession_store_errors_total               counter: calls that failed for want of the store
//	mpsession_store_call_seconds               histogram
//	mpsession_sockets, mpsession_handles       gauges: open sockets, live session handles
//	mpsession_events_total{kind}               counter: changed, deleted, revoked, expired, resync
//	mpsession_event_lag_seconds                histogram: how late events arrive
//	mpsession_messages_total{kind}             counter: sent, received, delivered (wsauth.Hub)
//	mpsession_sockets_too_slow_total           counter: sockets closed with wsauth.CloseTooSlow
func (m *Metrics) Each(fn func(Sample)) {
	m.c.Each(func(s counting.Sample) {
		fn(Sample{Name: s.Name, Help: s.Help, Kind: Kind(s.Kind), Labels: s.Labels, Value: s.Value,
			Count: s.Count, Sum: s.Sum, Bounds: s.Bounds, Counts: s.Counts})
	})
}
