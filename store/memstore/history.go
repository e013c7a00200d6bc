package memstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

var _ store.History = (*Store)(nil)

// epochLife is how long a topic's epoch and last offset outlive its last message.
const epochLife = 24 * time.Hour

// memoryHistory holds a Store's kept messages, by topic. Each topic has a lock of its
// own: messages to different topics are kept and handed to their listeners at once.
type memoryHistory struct {
	mu     sync.Mutex // guards topics and swept, never held while waiting for a topic's lock
	topics map[string]*memoryTopicHistory
	swept  time.Time // when topics whose epoch ended were last dropped
}

type memoryTopicHistory struct {
	mu    sync.Mutex // held while a message is kept and handed to the listeners, so they get the offsets in order
	dead  bool       // dropped from topics (its epoch ended): look the topic up again
	epoch string
	last  uint64    // the offset of the newest message
	at    time.Time // when the newest message was kept
	keep  store.Retention
	kept  []keptAt // oldest first
}

type keptAt struct {
	store.Kept
	at time.Time
}

// trim drops the messages beyond t.keep as of now.
func (t *memoryTopicHistory) trim(now time.Time) {
	drop := max(len(t.kept)-t.keep.Size, 0)
	for drop < len(t.kept) && now.Sub(t.kept[drop].at) > t.keep.Age {
		drop++
	}
	if drop > 0 {
		clear(t.kept[:drop])
		t.kept = t.kept[drop:]
	}
}

// lock returns the topic's history locked, a new one (a new epoch) when it has none
// or its epoch ended; with create false, nil instead of a new one.
func (h *memoryHistory) lock(topic string, now time.Time, create bool) *memoryTopicHistory {
	for {
		h.mu.Lock()
		h.sweep(now)
		t := h.topics[topic]
		if t == nil {
			if !create {
				h.mu.Unlock()
				return nil
			}
			t = &memoryTopicHistory{epoch: fmt.Sprintf("%016x", rand.Uint64()), at: now}
			h.topics[topic] = t
		}
		h.mu.Unlock()
		t.mu.Lock()
		switch {
		case t.dead: // swept meanwhile
		case now.Sub(t.at) > epochLife:
			h.mu.Lock()
			t.dead = true
			if h.topics[topic] == t {
				delete(h.topics, topic)
			}
			h.mu.Unlock()
		default:
			return t
		}
		t.mu.Unlock()
	}
}

// PublishKept implements store.History in-process: it keeps msg, then calls the
// topic's listeners with it on the caller's goroutine before it returns. Calls on a
// topic are serialized, so that its listeners get the offsets in order.
func (m *Store) PublishKept(ctx context.Context, topic string, msg []byte, keep store.Retention) (store.Position, error) {
	if err := storekit.CheckTopic(topic); err != nil {
		return store.Position{}, err
	}
	if err := keep.Check(); err != nil {
		return store.Position{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Position{}, err
	}
	if m.isClosed() {
		return store.Position{}, errMemoryClosed
	}
	now := time.Now()
	t := m.history.lock(topic, now, true)
	defer t.mu.Unlock()
	t.last++
	t.at = now
	t.keep = keep
	pos := store.Position{Epoch: t.epoch, Offset: t.last}
	t.kept = append(t.kept, keptAt{store.Kept{Pos: pos, Msg: slices.Clone(msg)}, now})
	t.trim(now)

	b := &m.broker
	b.mu.Lock()
	ls := b.topics[topic]
	b.mu.Unlock()
	if len(ls) > 0 {
		payload := store.KeptMessage(pos, msg)
		for _, l := range ls {
			if l.active.Load() {
				l.fn(payload)
			}
		}
	}
	return pos, nil
}

// sweep drops, at most once a minute, the topics whose epoch ended. h.mu is held; a
// topic whose lock is taken is in use, and left for the next sweep.
func (h *memoryHistory) sweep(now time.Time) {
	if h.topics == nil {
		h.topics = map[string]*memoryTopicHistory{}
	}
	if now.Sub(h.swept) < time.Minute {
		return
	}
	h.swept = now
	for topic, t := range h.topics {
		if !t.mu.TryLock() {
			continue
		}
		if now.Sub(t.at) > epochLife {
			t.dead = true
			delete(h.topics, topic)
		} else {
			t.trim(now) // a quiet topic holds nothing older than its age
		}
		t.mu.Unlock()
	}
}

// Since implements store.History.
func (m *Store) Since(ctx context.Context, topic string, after store.Position, limit int) ([]store.Kept, store.Position, bool, error) {
	if err := storekit.CheckTopic(topic); err != nil {
		return nil, store.Position{}, false, err
	}
	if limit <= 0 {
		return nil, store.Position{}, false, fmt.Errorf("store: memory: since: limit %d", limit)
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Position{}, false, err
	}
	if m.isClosed() {
		return nil, store.Position{}, false, errMemoryClosed
	}
	now := time.Now()
	t := m.history.lock(topic, now, after.IsZero())
	if t == nil {
		return nil, store.Position{}, false, nil
	}
	defer t.mu.Unlock()
	last := store.Position{Epoch: t.epoch, Offset: t.last}
	switch {
	case after.IsZero():
		return nil, last, true, nil
	case after.Epoch != t.epoch || after.Offset > t.last:
		return nil, last, false, nil
	case after.Offset == t.last:
		return nil, last, true, nil
	}
	t.trim(now)
	if len(t.kept) == 0 || t.kept[0].Pos.Offset > after.Offset+1 {
		return nil, last, false, nil
	}
	i := int(after.Offset + 1 - t.kept[0].Pos.Offset)
	n := min(len(t.kept)-i, limit)
	msgs := make([]store.Kept, n)
	for j := range msgs {
		k := t.kept[i+j].Kept
		msgs[j] = store.Kept{Pos: k.Pos, Msg: slices.Clone(k.Msg)}
	}
	return msgs, last, true, nil
}
