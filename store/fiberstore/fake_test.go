package fiberstore

import (
	"context"
	"sync"
	"time"
)

// fakeStorage is a map with a log of calls, a switchable error and an optional gate that
// holds every call until it is closed. It has only the fiber.Storage v2 methods.
type fakeStorage struct {
	mu     sync.Mutex
	m      map[string][]byte
	ttls   map[string]time.Duration
	calls  []string
	err    error
	gate   chan struct{} // when non-nil, calls wait for it to close
	inCall chan struct{} // when non-nil, receives a value as each call starts waiting
}

func newFake() *fakeStorage {
	return &fakeStorage{m: map[string][]byte{}, ttls: map[string]time.Duration{}}
}

func (f *fakeStorage) enter(call string) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	gate, inCall, err := f.gate, f.inCall, f.err
	f.mu.Unlock()
	if gate != nil {
		if inCall != nil {
			inCall <- struct{}{}
		}
		<-gate
	}
	return err
}

func (f *fakeStorage) Get(key string) ([]byte, error) {
	if err := f.enter("Get"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[key]
	if !ok {
		return nil, nil
	}
	return append([]byte(nil), v...), nil
}

func (f *fakeStorage) Set(key string, val []byte, exp time.Duration) error {
	if err := f.enter("Set"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(key) == 0 || len(val) == 0 {
		return nil
	}
	f.m[key] = append([]byte(nil), val...)
	f.ttls[key] = exp
	return nil
}

func (f *fakeStorage) Delete(key string) error {
	if err := f.enter("Delete"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, key)
	delete(f.ttls, key)
	return nil
}

func (f *fakeStorage) Reset() error {
	f.enter("Reset")
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.m)
	return nil
}

func (f *fakeStorage) Close() error {
	f.enter("Close")
	return nil
}

func (f *fakeStorage) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeStorage) resetLog() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

func (f *fakeStorage) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeStorage) raw(key string) ([]byte, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[key], f.ttls[key]
}

// ctxFake adds Fiber v3's context methods; while gated, they return when ctx ends.
type ctxFake struct{ *fakeStorage }

func (f ctxFake) wait(ctx context.Context, call string) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	gate, inCall := f.gate, f.inCall
	f.mu.Unlock()
	if gate == nil {
		return nil
	}
	if inCall != nil {
		inCall <- struct{}{}
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f ctxFake) GetWithContext(ctx context.Context, key string) ([]byte, error) {
	if err := f.wait(ctx, "GetWithContext"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.m[key]...), nil
}

func (f ctxFake) SetWithContext(ctx context.Context, key string, val []byte, exp time.Duration) error {
	if err := f.wait(ctx, "SetWithContext"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[key] = append([]byte(nil), val...)
	f.ttls[key] = exp
	return nil
}

func (f ctxFake) DeleteWithContext(ctx context.Context, key string) error {
	if err := f.wait(ctx, "DeleteWithContext"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, key)
	return nil
}
