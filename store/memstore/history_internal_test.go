package memstore

import (
	"context"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

var keepAll = store.Retention{Size: 10, Age: time.Minute}

// TestHistoryTopicsApart: a message kept on one topic does not wait for another
// topic's listeners. A listener of "a" that waits for a message kept on "b" would
// wait forever were every topic behind one lock.
func TestHistoryTopicsApart(t *testing.T) {
	m := New()
	defer m.Close()
	ctx := context.Background()
	gotB := make(chan struct{})
	stopB, err := m.Listen("b", func([]byte) { close(gotB) })
	if err != nil {
		t.Fatal(err)
	}
	defer stopB()
	waited := make(chan bool, 1)
	waiting := make(chan struct{})
	stopA, err := m.Listen("a", func([]byte) {
		close(waiting)
		select {
		case <-gotB:
			waited <- true
		case <-time.After(5 * time.Second):
			waited <- false
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopA()
	go func() { _, _ = m.PublishKept(ctx, "a", []byte(`1`), keepAll) }()
	<-waiting
	if _, err := m.PublishKept(ctx, "b", []byte(`2`), keepAll); err != nil {
		t.Fatal(err)
	}
	if !<-waited {
		t.Fatal(`a message kept on "b" waited for "a"'s listener`)
	}
}

// TestHistoryEpochEnds: a topic quiet for longer than epochLife starts a new epoch,
// both when it is read from a position and when a message is kept on it, and the sweep
// drops it from memory.
func TestHistoryEpochEnds(t *testing.T) {
	m := New()
	defer m.Close()
	ctx := context.Background()
	old, err := m.PublishKept(ctx, "t", []byte(`1`), keepAll)
	if err != nil {
		t.Fatal(err)
	}
	age := func() {
		m.history.mu.Lock()
		defer m.history.mu.Unlock()
		for _, h := range m.history.topics {
			h.at = h.at.Add(-epochLife - time.Second)
		}
	}
	age()
	if msgs, _, complete, err := m.Since(ctx, "t", store.Position{Epoch: old.Epoch}, 10); err != nil || complete || len(msgs) != 0 {
		t.Errorf("since a position of an ended epoch: want nothing, not complete; got %d, %v, %v", len(msgs), complete, err)
	}
	pos, err := m.PublishKept(ctx, "t", []byte(`2`), keepAll)
	if err != nil || pos.Epoch == old.Epoch || pos.Offset != 1 {
		t.Errorf("after the epoch ended: want a new epoch from offset 1; got %+v, %v", pos, err)
	}
	age()
	m.history.mu.Lock()
	m.history.swept = time.Time{}
	m.history.sweep(time.Now())
	n := len(m.history.topics)
	m.history.mu.Unlock()
	if n != 0 {
		t.Errorf("after a sweep: want no topic kept; got %d", n)
	}
}
