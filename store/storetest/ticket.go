package storetest

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/mpsession/mpsession/store"
)

func (s *suite) ticketTests() []test {
	return []test{
		{"PutTake", s.testTicket},
		{"Race", s.testTicketRace},
		{"CrossProcess", s.testTicketCrossProcess},
	}
}

func putTicket(t *testing.T, st store.Store, ticket, value string) {
	t.Helper()
	if err := st.PutTicket(t.Context(), ticket, value, hour); err != nil {
		t.Fatalf("PutTicket: want nil error; got %v", err)
	}
}

func (s *suite) testTicket(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	var all strings.Builder
	for i := range 256 {
		all.WriteByte(byte(i))
	}
	for _, value := range []string{"session-id", "", all.String(), "你好 🌏"} {
		ticket := newID("ticket")
		putTicket(t, st, ticket, value)
		got, err := st.TakeTicket(ctx, ticket)
		if err != nil || got != value {
			t.Errorf("TakeTicket: want %q and nil error; got %q and %v", value, got, err)
		}
		_, err = st.TakeTicket(ctx, ticket)
		wantErr(t, "TakeTicket a second time", store.ErrNotFound, err)
	}
	_, err := st.TakeTicket(ctx, newID("unknown"))
	wantErr(t, "TakeTicket of an unknown ticket", store.ErrNotFound, err)

	// A ticket is not a session, nor a session a ticket.
	id := newID("id")
	putTicket(t, st, id, "v")
	wantGone(t, st, id, "of a ticket")
	create(t, st, id, store.Record{}, hour)
	if got, err := st.TakeTicket(ctx, id); err != nil || got != "v" {
		t.Errorf("TakeTicket of a ticket with a session's id: want %q and nil error; got %q and %v", "v", got, err)
	}
	load(t, st, id)
}

// race takes ticket from n goroutines on each store at once and checks that exactly one
// of them gets value.
func race(t *testing.T, ticket, value string, n int, stores ...store.Store) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		wins  int
		errs  []error
	)
	for _, st := range stores {
		for range n {
			wg.Go(func() {
				<-start
				got, err := st.TakeTicket(t.Context(), ticket)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && got == value:
					wins++
				case errors.Is(err, store.ErrNotFound):
				default:
					errs = append(errs, err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if wins != 1 {
		t.Errorf("racing TakeTicket: want 1 winner; got %d", wins)
	}
	for _, err := range errs {
		t.Errorf("racing TakeTicket: want the value or %v; got %v", store.ErrNotFound, err)
	}
}

func (s *suite) testTicketRace(t *testing.T) {
	st := s.newStore(t)
	for range 10 {
		ticket := newID("ticket")
		putTicket(t, st, ticket, "v")
		race(t, ticket, "v", 32, st)
	}
}

func (s *suite) testTicketCrossProcess(t *testing.T) {
	st := s.newStore(t)
	st2 := s.second(t, st)
	ctx := t.Context()

	ticket := newID("ticket")
	putTicket(t, st, ticket, "v")
	if got, err := st2.TakeTicket(ctx, ticket); err != nil || got != "v" {
		t.Errorf("TakeTicket on the second instance: want %q and nil error; got %q and %v", "v", got, err)
	}
	_, err := st.TakeTicket(ctx, ticket)
	wantErr(t, "TakeTicket on the first instance after the second took it", store.ErrNotFound, err)

	for range 5 {
		ticket := newID("ticket")
		putTicket(t, st2, ticket, "v")
		race(t, ticket, "v", 16, st, st2)
	}
}
