package session

import (
	"context"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
)

// slowIncr returns the store's answer only when released: the socket goroutine that
// made the call is descheduled between the store call and the local apply.
type slowIncr struct {
	store.Store
	stored  chan struct{} // closed once the store has done the (one) Incr
	release chan struct{}
}

func (s *slowIncr) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	n, err := s.Store.Incr(ctx, id, field, delta)
	close(s.stored)
	<-s.release
	return n, err
}

// TestLateWriteDoesNotOverwriteReload: a live write whose answer comes back after a
// reload saw a newer value does not put its older result over it.
func TestLateWriteDoesNotOverwriteReload(t *testing.T) {
	mem := memstore.New()
	defer mem.Close()
	ctx := context.Background()
	id := NewCredentials(Token).ID
	if err := mem.Create(ctx, id, store.Record{Fields: map[string]string{}, Owner: "o", Deadline: time.Now().Add(time.Hour)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	slow := &slowIncr{Store: mem, stored: make(chan struct{}), release: make(chan struct{})}
	eng := &Engine{Store: slow, Idle: time.Hour, Protocol: Token}
	rec, _ := mem.Load(ctx, id, 0)
	st := eng.NewState(ctx, Credentials{ID: id}, rec)
	st.GoLive(ctx, nil)

	done := make(chan int64)
	go func() { n, _ := st.Incr("n", 1); done <- n }() // store: n=1, apply delayed
	<-slow.stored
	if _, err := mem.Incr(ctx, id, "n", 1); err != nil { // an HTTP request: n=2
		t.Fatal(err)
	}
	st.MarkStale() // the events of both writes arrive
	if v, _ := st.Raw("n"); v != "2" {
		t.Fatalf("after reload: want 2; got %s", v)
	}
	close(slow.release)
	<-done
	stored, _ := mem.Load(ctx, id, 0)
	if v, _ := st.Raw("n"); v != stored.Fields["n"] {
		t.Errorf("live state reads n=%s; the store holds n=%s, and no event will come to fix it", v, stored.Fields["n"])
	}
}
