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

// memoryHistory holds a Store's kept messages, by topic.
type memoryHistory struct {
	mu     sync.Mutex // held while a message is kept and handed to the listeners, so they get the offsets in order
	topics map[string]*memoryTopicHistory
	swept  time.Time // when topics whose epoch ended were last dropped
}

type memoryTopicHistory struct {
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

// PublishKept implements store.History in-process: it keeps msg, then calls the
// topic's listeners with it on the caller's goroutine before it returns. Calls are
// serialized (on all topics: one lock), so that listeners get the offsets in order.
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
	h := &m.history
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	h.sweep(now)
	t := h.topics[topic]
	if t == nil {
		t = &memoryTopicHistory{epoch: fmt.Sprintf("%016x", rand.Uint64())}
		h.topics[topic] = t
	}
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

// sweep drops, at most once a minute, the topics whose epoch ended. h.mu is held.
func (h *memoryHistory) sweep(now time.Time) {
	if h.topics == nil {
		h.topics = map[string]*memoryTopicHistory{}
	}
	if now.Sub(h.swept) < time.Minute {
		return
	}
	h.swept = now
	for topic, t := range h.topics {
		if now.Sub(t.at) > epochLife {
			delete(h.topics, topic)
		} else {
			t.trim(now) // a quiet topic holds nothing older than its age
		}
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
	h := &m.history
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	h.sweep(now)
	t := h.topics[topic]
	if t != nil && now.Sub(t.at) > epochLife {
		t = nil
	}
	if t == nil {
		if !after.IsZero() {
			return nil, store.Position{}, false, nil
		}
		t = &memoryTopicHistory{epoch: fmt.Sprintf("%016x", rand.Uint64()), at: now}
		h.topics[topic] = t
	}
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
