package memstore

import (
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

// TestMemoryResyncAfterIdleDrop covers the drop that the dispatcher learns of only after
// it has emptied the queue and gone idle (a writer's send failed on the full queue, then
// the dispatcher drained it before the writer recorded the drop): no later event may
// come to carry the store.EventResync, so the dispatcher must be woken for it.
func TestMemoryResyncAfterIdleDrop(t *testing.T) {
	m := New()
	defer m.Close()
	events := make(chan store.Event, 4)
	if _, err := m.Subscribe(func(e store.Event) { events <- e }); err != nil {
		t.Fatalf("Subscribe: want nil error; got %v", err)
	}
	m.drop()
	select {
	case e := <-events:
		if e.Kind != store.EventResync || e.Hash != "" {
			t.Errorf("want %v with no hash; got %+v", store.EventResync, e)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("want an %v after the drop; got none", store.EventResync)
	}
	select {
	case e := <-events:
		t.Errorf("want one event; got another: %+v", e)
	case <-time.After(20 * time.Millisecond):
	}
}
