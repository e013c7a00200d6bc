package session

import (
	"context"
	"time"

	"github.com/mpsession/mpsession/store"
)

// Bounded returns st with every call that reaches the backend bounded by timeout, so
// that a store that hangs (a stopped Redis) fails requests and sockets within it
// instead of holding them. The in-memory store cannot hang and is returned as it is.
func Bounded(st store.Store, timeout time.Duration) store.Store {
	if _, ok := st.(*store.Memory); ok || timeout <= 0 {
		return st
	}
	return &bounded{Store: st, timeout: timeout}
}

type bounded struct {
	store.Store // Subscribe and Close, which need no bound
	timeout     time.Duration
}

func (b *bounded) Create(ctx context.Context, id string, rec store.Record, idle time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Create(ctx, id, rec, idle)
}

func (b *bounded) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Load(ctx, id, touch)
}

func (b *bounded) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Save(ctx, id, ch, idle)
}

func (b *bounded) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Incr(ctx, id, field, delta)
}

func (b *bounded) Touch(ctx context.Context, id string, idle time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Touch(ctx, id, idle)
}

func (b *bounded) Delete(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Delete(ctx, id)
}

func (b *bounded) Sessions(ctx context.Context, owner string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.Sessions(ctx, owner)
}

func (b *bounded) DeleteOwner(ctx context.Context, owner string, keep ...string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.DeleteOwner(ctx, owner, keep...)
}

func (b *bounded) PutTicket(ctx context.Context, ticket, value string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.PutTicket(ctx, ticket, value, ttl)
}

func (b *bounded) TakeTicket(ctx context.Context, ticket string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.TakeTicket(ctx, ticket)
}

func (b *bounded) TouchMany(ctx context.Context, ids []string, idle time.Duration) []error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return store.TouchMany(ctx, b.Store, ids, idle)
}
