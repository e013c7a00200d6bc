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
	_, local := st.(*store.Memory)
	if local && m == nil {
		return st
	}
	if local {
		timeout = 0
	}
	return &bounded{Store: st, timeout: timeout, m: m}
}

type bounded struct {
	store.Store // Subscribe and Close, which need no bound
	timeout     time.Duration
	m           *counting.Counts
}

// call returns the context of one store call and the function that ends it, which
// counts the call.
func (b *bounded) call(ctx context.Context) (context.Context, func(error)) {
	start := time.Now()
	cancel := context.CancelFunc(func() {})
	if b.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
	}
	return ctx, func(err error) {
		cancel()
		// The caller's own cancellation (a socket that closed) is no store failure.
		b.m.StoreCall(time.Since(start), Outage(err) && !errors.Is(err, context.Canceled))
	}
}

func (b *bounded) Create(ctx context.Context, id string, rec store.Record, idle time.Duration) error {
	ctx, done := b.call(ctx)
	err := b.Store.Create(ctx, id, rec, idle)
	done(err)
	return err
}

func (b *bounded) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	ctx, done := b.call(ctx)
	rec, err := b.Store.Load(ctx, id, touch)
	done(err)
	return rec, err
}

func (b *bounded) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	ctx, done := b.call(ctx)
	err := b.Store.Save(ctx, id, ch, idle)
	done(err)
	return err
}

func (b *bounded) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	ctx, done := b.call(ctx)
	n, err := b.Store.Incr(ctx, id, field, delta)
	done(err)
	return n, err
}

func (b *bounded) Touch(ctx context.Context, id string, idle time.Duration) error {
	ctx, done := b.call(ctx)
	err := b.Store.Touch(ctx, id, idle)
	done(err)
	return err
}

func (b *bounded) Delete(ctx context.Context, id string) error {
	ctx, done := b.call(ctx)
	err := b.Store.Delete(ctx, id)
	done(err)
	return err
}

func (b *bounded) Sessions(ctx context.Context, owner string) ([]string, error) {
	ctx, done := b.call(ctx)
	hashes, err := b.Store.Sessions(ctx, owner)
	done(err)
	return hashes, err
}

func (b *bounded) DeleteOwner(ctx context.Context, owner string, keep ...string) (int, error) {
	ctx, done := b.call(ctx)
	n, err := b.Store.DeleteOwner(ctx, owner, keep...)
	done(err)
	return n, err
}

func (b *bounded) PutTicket(ctx context.Context, ticket, value string, ttl time.Duration) error {
	ctx, done := b.call(ctx)
	err := b.Store.PutTicket(ctx, ticket, value, ttl)
	done(err)
	return err
}

func (b *bounded) TakeTicket(ctx context.Context, ticket string) (string, error) {
	ctx, done := b.call(ctx)
	v, err := b.Store.TakeTicket(ctx, ticket)
	done(err)
	return v, err
}

func (b *bounded) TouchMany(ctx context.Context, ids []string, idle time.Duration) []error {
	ctx, done := b.call(ctx)
	errs := store.TouchMany(ctx, b.Store, ids, idle)
	done(errors.Join(errs...))
	return errs
}
