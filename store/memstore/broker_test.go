package memstore

import (
	"context"
	"testing"
)

// TestMemoryBrokerForgets: a topic whose listeners all stopped holds nothing, and a
// closed store refuses to publish and listen.
func TestMemoryBrokerForgets(t *testing.T) {
	m := New()
	var got []string
	stops := []func(){}
	for range 3 {
		stop, err := m.Listen("t", func(msg []byte) { got = append(got, string(msg)) })
		if err != nil {
			t.Fatal(err)
		}
		stops = append(stops, stop)
	}
	if n := m.listeningTopics(); n != 1 {
		t.Errorf("want 1 topic; got %d", n)
	}
	if err := m.Publish(context.Background(), "t", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("want 3 deliveries; got %d", len(got))
	}
	for _, stop := range stops {
		stop()
	}
	if n := m.listeningTopics(); n != 0 {
		t.Errorf("after the last stop: want no topic; got %d", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Publish(ctx, "t", nil); err == nil {
		t.Error("Publish with a done context: want an error")
	}
	_ = m.Close()
	if err := m.Publish(context.Background(), "t", nil); err == nil {
		t.Error("Publish after Close: want an error")
	}
	if _, err := m.Listen("t", func([]byte) {}); err == nil {
		t.Error("Listen after Close: want an error")
	}
}
