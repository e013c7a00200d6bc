package fiberstore

import (
	"context"
	"fmt"
	"time"
)

// Storage is the method set of fiber.Storage in Fiber v2, so every gofiber/storage driver
// (and fiber.Storage itself) satisfies it without this package importing Fiber.
//
// Get returns nil, nil for a missing key. Set ignores an empty value, and an exp of 0 means
// no expiry. The store calls only Get, Set and Delete: never Reset, which deletes every key
// of the backend, and never Close, which belongs to the caller.
type Storage interface {
	Get(key string) ([]byte, error)
	Set(key string, val []byte, exp time.Duration) error
	Delete(key string) error
	Reset() error
	Close() error
}

// contextStorage is the context-aware half of Fiber v3's storage interface. Drivers that
// have it (memory/v2 and mysql/v2, for example; postgres/v3 v3.1.0 does not) get ctx, so a
// call in flight ends when ctx does. Without it, a call in flight cannot be interrupted.
type contextStorage interface {
	GetWithContext(ctx context.Context, key string) ([]byte, error)
	SetWithContext(ctx context.Context, key string, val []byte, exp time.Duration) error
	DeleteWithContext(ctx context.Context, key string) error
}

// backend checks ctx around every call to the caller's Storage.
type backend struct {
	plain Storage
	ctx   contextStorage // nil when the driver has no context methods
}

func newBackend(s Storage) backend {
	cs, _ := s.(contextStorage)
	return backend{plain: s, ctx: cs}
}

// get returns nil, nil for a missing key. It checks ctx before and after the call, since a
// read whose caller has gone is not worth acting on.
func (b backend) get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		v   []byte
		err error
	)
	if b.ctx != nil {
		v, err = b.ctx.GetWithContext(ctx, key)
	} else {
		v, err = b.plain.Get(key)
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, joinCtx(cerr, err)
	}
	return v, err
}

// set checks ctx before the call. A write the backend confirmed is reported as done even
// when ctx ended meanwhile: the caller must not retry (an Incr, say) that took effect.
func (b backend) set(ctx context.Context, key string, val []byte, exp time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	if b.ctx != nil {
		err = b.ctx.SetWithContext(ctx, key, val, exp)
	} else {
		err = b.plain.Set(key, val, exp)
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return joinCtx(cerr, err)
		}
	}
	return err
}

// del is like set.
func (b backend) del(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	if b.ctx != nil {
		err = b.ctx.DeleteWithContext(ctx, key)
	} else {
		err = b.plain.Delete(key)
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return joinCtx(cerr, err)
		}
	}
	return err
}

// joinCtx makes errors.Is(err, context.Canceled) hold whatever the driver made of the
// cancellation.
func joinCtx(cerr, err error) error {
	if err == nil || err == cerr {
		return cerr
	}
	return fmt.Errorf("%w: %w", cerr, err)
}

// stripes serialises read-modify-write cycles on keys that share a stripe. A stripe is a
// one-slot channel rather than a mutex so that a caller waiting behind a slow backend call
// gives up when its ctx ends.
type stripes [256]chan struct{}

func (s *stripes) init() {
	for i := range s {
		s[i] = make(chan struct{}, 1)
	}
}

func (s *stripes) lock(ctx context.Context, i byte) error {
	select {
	case s[i] <- struct{}{}:
		return nil
	default:
	}
	select {
	case s[i] <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *stripes) unlock(i byte) { <-s[i] }
