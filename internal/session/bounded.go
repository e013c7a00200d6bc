package session

import (
	"context"
	"errors"
	"time"

	"github.com/mpsession/mpsession/internal/counting"
	"github.com/mpsession/mpsession/store"
)

// Bounded returns st with every call that reaches the backend bounded by timeout, so
// that a store that hangs (a stopped Redis) fails requests and sockets within it
// instead of holding them, and counted in m when it is not nil. The in-memory store
// cannot hang: without metrics it is returned as it is.
func Bounded(st store.Store, timeout time.Duration, m *counting.Counts) store.Store {
	local := st.Capabilities().InProcess
	if local && m == nil {
		return st
	}
	if local {
		timeout = 0
	}
	return bound(st, timeout, m)
}

// bound returns st bounded, with the versioned writes of st when it has them.
func bound(st store.Store, timeout time.Duration, m *counting.Counts) store.Store {
	b := &bounded{Store: st, timeout: timeout, m: m}
	if v, ok := st.(versioned); ok {
		return &boundedVersions{b, v}
	}
	return b
}

// versioned is the store with versions that the session cache orders its writes by
// (internal/cache.Versioned, redisstore.Store.LoadVersion).
type versioned interface {
	LoadVersion(ctx context.Context, id string, touch time.Duration) (*store.Record, uint64, error)
	SaveVersion(ctx context.Context, id string, ch store.Change, idle time.Duration) (uint64, error)
	IncrVersion(ctx context.Context, id, field string, delta int64) (int64, uint64, error)
}

// boundedVersions is bounded over a versioned store, and bounds its versioned calls.
type boundedVersions struct {
	*bounded
	v versioned
}

func (b *boundedVersions) LoadVersion(ctx context.Context, id string, touch time.Duration) (*store.Record, uint64, error) {
	ctx, cancel, start := b.begin(ctx)
	rec, version, err := b.v.LoadVersion(ctx, id, touch)
	b.end(cancel, start, err)
	return rec, version, err
}

func (b *boundedVersions) SaveVersion(ctx context.Context, id string, ch store.Change, idle time.Duration) (uint64, error) {
	ctx, cancel, start := b.begin(ctx)
	version, err := b.v.SaveVersion(ctx, id, ch, idle)
	b.end(cancel, start, err)
	return version, err
}

func (b *boundedVersions) IncrVersion(ctx context.Context, id, field string, delta int64) (int64, uint64, error) {
	ctx, cancel, start := b.begin(ctx)
	n, version, err := b.v.IncrVersion(ctx, id, field, delta)
	b.end(cancel, start, err)
	return n, version, err
}

type bounded struct {
	store.Store // Close, which needs no bound
	timeout     time.Duration
	m           *counting.Counts
}

// begin starts one store call: its context, bounded by the timeout, the function that
// releases that context, and when it began, for the metrics.
func (b *bounded) begin(ctx context.Context) (context.Context, context.CancelFunc, time.Time) {
	var start time.Time
	if b.m != nil {
		start = time.Now()
	}
	if b.timeout <= 0 {
		return ctx, func() {}, start
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	return ctx, cancel, start
}

// end ends a store call begun at start, and counts it.
func (b *bounded) end(cancel context.CancelFunc, start time.Time, err error) {
	cancel()
	if b.m != nil {
		// The caller's own cancellation (a socket that closed) is no store failure.
		b.m.StoreCall(time.Since(start), Outage(err) && !errors.Is(err, context.Canceled))
	}
}

func (b *bounded) Create(ctx context.Context, id string, rec store.Record, idle time.Duration) error {
	ctx, cancel, start := b.begin(ctx)
	err := b.Store.Create(ctx, id, rec, idle)
	b.end(cancel, start, err)
	return err
}

func (b *bounded) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	ctx, cancel, start := b.begin(ctx)
	rec, err := b.Store.Load(ctx, id, touch)
	b.end(cancel, start, err)
	return rec, err
}

func (b *bounded) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	ctx, cancel, start := b.begin(ctx)
	err := b.Store.Save(ctx, id, ch, idle)
	b.end(cancel, start, err)
	return err
}

func (b *bounded) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	ctx, cancel, start := b.begin(ctx)
	n, err := b.Store.Incr(ctx, id, field, delta)
	b.end(cancel, start, err)
	return n, err
}

func (b *bounded) Touch(ctx context.Context, id string, idle time.Duration) error {
	ctx, cancel, start := b.begin(ctx)
	err := b.Store.Touch(ctx, id, idle)
	b.end(cancel, start, err)
	return err
}

func (b *bounded) Delete(ctx context.Context, id string) error {
	ctx, cancel, start := b.begin(ctx)
	err := b.Store.Delete(ctx, id)
	b.end(cancel, start, err)
	return err
}

func (b *bounded) Sessions(ctx context.Context, owner string) ([]string, error) {
	ctx, cancel, start := b.begin(ctx)
	hashes, err := b.Store.Sessions(ctx, owner)
	b.end(cancel, start, err)
	return hashes, err
}

func (b *bounded) DeleteOwner(ctx context.Context, owner string, keep ...string) (int, error) {
	ctx, cancel, start := b.begin(ctx)
	n, err := b.Store.DeleteOwner(ctx, owner, keep...)
	b.end(cancel, start, err)
	return n, err
}

func (b *bounded) PutTicket(ctx context.Context, ticket, value string, ttl time.Duration) error {
	ctx, cancel, start := b.begin(ctx)
	err := b.Store.PutTicket(ctx, ticket, value, ttl)
	b.end(cancel, start, err)
	return err
}

func (b *bounded) TakeTicket(ctx context.Context, ticket string) (string, error) {
	ctx, cancel, start := b.begin(ctx)
	v, err := b.Store.TakeTicket(ctx, ticket)
	b.end(cancel, start, err)
	return v, err
}

func (b *bounded) TouchMany(ctx context.Context, ids []string, idle time.Duration) []error {
	ctx, cancel, start := b.begin(ctx)
	errs := b.Store.TouchMany(ctx, ids, idle)
	b.end(cancel, start, errors.Join(errs...))
	return errs
}

// Capabilities are those of the store b bounds, except that the views of its events'
// From are bounded too.
func (b *bounded) Capabilities() store.Capabilities {
	caps := b.Store.Capabilities()
	if caps.Events != nil {
		be := boundedEvents{Events: caps.Events, b: b}
		f, fences := be.Events.(store.Fencer) // the cache bounds its fences itself
		w, watches := be.Events.(store.Watcher)
		switch {
		case fences && watches:
			caps.Events = fencedWatchedEvents{fencedEvents{be, f}, w}
		case fences:
			caps.Events = fencedEvents{be, f}
		case watches:
			caps.Events = watchedEvents{be, w}
		default:
			caps.Events = be
		}
	}
	return caps
}

// fencedEvents are boundedEvents that keep the store's store.Fencer.
type fencedEvents struct {
	boundedEvents
	f store.Fencer
}

func (e fencedEvents) Fence(ctx context.Context, token string) error { return e.f.Fence(ctx, token) }

// watchedEvents are boundedEvents that keep the store's store.Watcher. Watch is bounded
// by the store itself (redisstore: Config.SubscribeTimeout).
type watchedEvents struct {
	boundedEvents
	store.Watcher
}

// fencedWatchedEvents keep both.
type fencedWatchedEvents struct {
	fencedEvents
	store.Watcher
}

type boundedEvents struct {
	store.Events
	b *bounded
}

func (e boundedEvents) From(origin string) store.Store {
	return bound(e.Events.From(origin), e.b.timeout, e.b.m)
}
