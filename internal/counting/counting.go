// Package counting keeps the counts behind package metrics: fibermp and wsauth count
// into them, and metrics reads them out. Applications reach them only through
// metrics.Metrics.Each.
package counting

import (
	"math"
	"sync/atomic"
	"time"
)

// Of returns the Counts behind a *metrics.Metrics (nil for a nil one). Package metrics
// sets it, so that fibermp and wsauth count into what an application created without
// the counting methods being part of the metrics API.
var Of = func(m any) *Counts { return nil }

// Outcomes of a login.
const (
	LoginOK          = "ok"          // a session was created
	LoginRejected    = "rejected"    // bad request, bad user data, or OnLogin refused it
	LoginWeChatError = "wechat"      // jscode2session failed (bad code, rate limit, WeChat down)
	LoginUnavailable = "unavailable" // the store failed
)

// Results of a session lookup in the cache (fibermp.Config.Cache).
const (
	CacheHit    = "hit"    // served from memory
	CacheMiss   = "miss"   // loaded from the store, and cached
	CacheBypass = "bypass" // loaded from the store while its events were not live
)

// What happened to the application messages of wsauth's Hub.
const (
	MessageSent      = "sent"      // sent through the hub (ToUser, ToSession, ToRoom)
	MessageReceived  = "received"  // received from the store: the process holds a member of its topic
	MessageDelivered = "delivered" // queued to a socket or a subscription, one per recipient
)

// Why a request or an upgrade was refused.
const (
	RefusedInvalid     = "invalid"     // unknown, expired or malformed credentials
	RefusedUnavailable = "unavailable" // the store failed
	RefusedOrigin      = "origin"      // a browser socket from an origin not allowed
	RefusedTooMany     = "too_many"    // a socket past its session's or user's cap
)

var (
	loginOutcomes  = []string{LoginOK, LoginRejected, LoginWeChatError, LoginUnavailable}
	refusalReasons = []string{RefusedInvalid, RefusedUnavailable, RefusedOrigin, RefusedTooMany}
	eventKinds     = []string{"changed", "deleted", "revoked", "expired", "resync"}
	messageKinds   = []string{MessageSent, MessageReceived, MessageDelivered}
	cacheResults   = []string{CacheHit, CacheMiss, CacheBypass}
	// Store call latency, seconds: from a local Redis (0.2 ms) to the timeout (1 s).
	latencyBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
	// Event lag, seconds.
	lagBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
)

// Counts holds the counts. Its methods are safe for concurrent use, and do nothing on
// a nil *Counts, so code that counts needs no check.
type Counts struct {
	logins          [4]atomic.Uint64
	requestRefusals [4]atomic.Uint64
	upgradeRefusals [4]atomic.Uint64
	storeCalls      atomic.Uint64
	storeErrors     atomic.Uint64
	storeLatency    histogram
	sockets         atomic.Int64
	handles         atomic.Int64
	events          [5]atomic.Uint64
	eventLag        histogram
	cacheLookups    [3]atomic.Uint64
	msgs            [3]atomic.Uint64
	slowSockets     atomic.Uint64
}

// New returns Counts with every count at zero.
func New() *Counts {
	return &Counts{storeLatency: newHistogram(latencyBounds), eventLag: newHistogram(lagBounds)}
}

// Login counts a login with one of the Login outcomes.
func (m *Counts) Login(outcome string) {
	if m != nil {
		count(m.logins[:], loginOutcomes, outcome)
	}
}

// RequestRefused counts an HTTP request refused for one of the Refused reasons.
func (m *Counts) RequestRefused(reason string) {
	if m != nil {
		count(m.requestRefusals[:], refusalReasons, reason)
	}
}

// UpgradeRefused counts a WebSocket upgrade refused for one of the Refused reasons.
func (m *Counts) UpgradeRefused(reason string) {
	if m != nil {
		count(m.upgradeRefusals[:], refusalReasons, reason)
	}
}

// StoreCall counts a call to the store that took d; outage is true when it failed
// for want of the store (not for an answer such as "not found").
func (m *Counts) StoreCall(d time.Duration, outage bool) {
	if m == nil {
		return
	}
	m.storeCalls.Add(1)
	if outage {
		m.storeErrors.Add(1)
	}
	m.storeLatency.observe(d.Seconds())
}

// Sockets adds delta to the open sockets; Handles to the live session handles.
func (m *Counts) Sockets(delta int) {
	if m != nil {
		m.sockets.Add(int64(delta))
	}
}

// Handles adds delta to the live session handles.
func (m *Counts) Handles(delta int) {
	if m != nil {
		m.handles.Add(int64(delta))
	}
}

// Event counts a store event of kind ("changed", "deleted", "revoked", "expired",
// "resync") made at at (zero when unknown), received now.
func (m *Counts) Event(kind string, at time.Time) {
	if m == nil {
		return
	}
	count(m.events[:], eventKinds, kind)
	if !at.IsZero() {
		m.eventLag.observe(max(time.Since(at).Seconds(), 0))
	}
}

// CacheLookup counts a session lookup in the cache with one of the Cache results.
func (m *Counts) CacheLookup(result string) {
	if m != nil {
		count(m.cacheLookups[:], cacheResults, result)
	}
}

func count(counts []atomic.Uint64, names []string, name string) {
	for i, n := range names {
		if n == name {
			counts[i].Add(1)
			return
		}
	}
}

// Messages counts n application messages of one of the Message kinds.
func (m *Counts) Messages(kind string, n int) {
	if m == nil {
		return
	}
	for i, k := range messageKinds {
		if k == kind {
			m.msgs[i].Add(uint64(n))
			return
		}
	}
}

// TooSlow counts a socket closed because its queue of messages overflowed.
func (m *Counts) TooSlow() {
	if m != nil {
		m.slowSockets.Add(1)
	}
}

// Each calls fn with every sample, in a fixed order. m must not be nil.
func (m *Counts) Each(fn func(Sample)) {
	labelled := func(name, help, label string, values []string, counts []atomic.Uint64) {
		for i, v := range values {
			fn(Sample{Name: name, Help: help, Kind: Counter, Labels: map[string]string{label: v}, Value: float64(counts[i].Load())})
		}
	}
	labelled("mpsession_logins_total", "Logins, by outcome.", "outcome", loginOutcomes, m.logins[:])
	labelled("mpsession_requests_refused_total", "HTTP requests refused for their session, by reason.", "reason", refusalReasons, m.requestRefusals[:])
	labelled("mpsession_upgrades_refused_total", "WebSocket upgrades refused, by reason.", "reason", refusalReasons, m.upgradeRefusals[:])
	fn(Sample{Name: "mpsession_store_calls_total", Help: "Calls to the session store.", Kind: Counter, Value: float64(m.storeCalls.Load())})
	fn(Sample{Name: "mpsession_store_errors_total", Help: "Calls to the session store that failed for want of the store (unreachable, timed out).", Kind: Counter, Value: float64(m.storeErrors.Load())})
	fn(m.storeLatency.sample("mpsession_store_call_seconds", "How long calls to the session store took."))
	fn(Sample{Name: "mpsession_sockets", Help: "Open WebSockets served by wsauth.", Kind: Gauge, Value: float64(m.sockets.Load())})
	fn(Sample{Name: "mpsession_handles", Help: "Live session handles of open WebSockets.", Kind: Gauge, Value: float64(m.handles.Load())})
	labelled("mpsession_events_total", "Session events received from the store, by kind.", "kind", eventKinds, m.events[:])
	fn(m.eventLag.sample("mpsession_event_lag_seconds", "How late session events arrive after the change, for stores that say when it was made."))
	labelled("mpsession_cache_lookups_total", "Session lookups in the per-process cache, by result: hit (memory), miss (loaded and cached), bypass (loaded while the store's events were not live).", "result", cacheResults, m.cacheLookups[:])
	labelled("mpsession_messages_total", "Application messages of wsauth's Hub: sent, received from the store, delivered to sockets and subscriptions.", "kind", messageKinds, m.msgs[:])
	fn(Sample{Name: "mpsession_sockets_too_slow_total", Help: "Sockets closed because their queue of messages overflowed.", Kind: Counter, Value: float64(m.slowSockets.Load())})
}

// Kinds of samples, as metrics.Kind numbers them.
const (
	Counter = iota
	Gauge
	Histogram
)

// Sample is metrics.Sample, field for field.
type Sample struct {
	Name   string
	Help   string
	Kind   int
	Labels map[string]string
	Value  float64
	Count  uint64
	Sum    float64
	Bounds []float64
	Counts []uint64
}

// histogram counts observations into fixed buckets.
type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // float64 bits
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (h *histogram) sample(name, help string) Sample {
	s := Sample{Name: name, Help: help, Kind: Histogram, Bounds: h.bounds, Counts: make([]uint64, len(h.bounds))}
	var cum uint64
	for i := range h.bounds {
		cum += h.counts[i].Load()
		s.Counts[i] = cum
	}
	s.Count = cum + h.counts[len(h.bounds)].Load()
	s.Sum = math.Float64frombits(h.sum.Load())
	return s
}
