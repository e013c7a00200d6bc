package memstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

var _ store.Broker = (*Store)(nil)

var errMemoryNilListener = errors.New("store: memory: listen: nil func")

// memoryBroker holds a Store's topics. Each topic's listeners are a slice replaced,
// never changed in place, so Publish reads it without holding the lock while it calls.
type memoryBroker struct {
	mu     sync.Mutex
	topics map[string][]*memoryListener
}

type memoryListener struct {
	fn     func(msg []byte)
	active atomic.Bool
}

// Publish implements store.Broker in-process: it calls the topic's listeners on the caller's
// goroutine, one after another, before it returns, so the messages of one caller reach
// each listener in order.
func (m *Store) Publish(ctx context.Context, topic string, msg []byte) error {
	if err := storekit.CheckTopic(topic); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.isClosed() {
		return errMemoryClosed
	}
	b := &m.broker
	b.mu.Lock()
	ls := b.topics[topic]
	b.mu.Unlock()
	if len(ls) == 0 {
		return nil
	}
	msg = slices.Clone(msg) // listeners may keep it; the caller may reuse its buffer
	if msg == nil {
		msg = []byte{}
	}
	for _, l := range ls {
		if l.active.Load() {
			l.fn(msg)
		}
	}
	return nil
}

// Listen implements store.Broker. The listener is live when it is added, so Listen returns
// at once.
func (m *Store) Listen(topic string, fn func(msg []byte)) (stop func(), err error) {
	if err := storekit.CheckTopic(topic); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errMemoryNilListener
	}
	if m.isClosed() {
		return nil, errMemoryClosed
	}
	l := &memoryListener{fn: fn}
	l.active.Store(true)
	b := &m.broker
	b.mu.Lock()
	if b.topics == nil {
		b.topics = map[string][]*memoryListener{}
	}
	ls := b.topics[topic]
	b.topics[topic] = append(ls[:len(ls):len(ls)], l)
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.active.Store(false)
			b.mu.Lock()
			defer b.mu.Unlock()
			ls := b.topics[topic]
			i := slices.Index(ls, l)
			if i < 0 {
				return
			}
			if len(ls) == 1 {
				delete(b.topics, topic)
				return
			}
			b.topics[topic] = slices.Delete(slices.Clone(ls), i, i+1)
		})
	}, nil
}

// isClosed reports whether Close was called.
func (m *Store) isClosed() bool {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	return m.closed
}

// listeningTopics returns how many topics have listeners, for tests.
func (m *Store) listeningTopics() int {
	m.broker.mu.Lock()
	defer m.broker.mu.Unlock()
	return len(m.broker.topics)
}
