package fiberstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

const hour = time.Hour

func newID(what string) string { return "fiberstore-test-" + what + "-" + rand.Text() }

func mustCreate(t testing.TB, s *Store, id string, rec store.Record, idle time.Duration) {
	t.Helper()
	if err := s.Create(context.Background(), id, rec, idle); err != nil {
		t.Fatalf("Create: want nil error; got %v", err)
	}
}

func sessionKey(s *Store, id string) string {
	h := sha256.Sum256([]byte(id))
	return s.key('s', &h)
}

func ownerKey(s *Store, owner string) string {
	h := sha256.Sum256([]byte(owner))
	return s.key('o', &h)
}

func ticketKey(s *Store, ticket string) string {
	h := sha256.Sum256([]byte(ticket))
	return s.key('t', &h)
}

// recorder collects what a store publishes.
type recorder struct {
	mu  sync.Mutex
	got []store.Event
}

func subscribe(t testing.TB, s *Store) *recorder {
	e := &recorder{}
	unsub, err := s.Subscribe(func(ev store.Event) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.got = append(e.got, ev)
	})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(unsub)
	return e
}

// wait returns the events received once n have arrived, or fails after 5 s.
func (e *recorder) wait(t testing.TB, n int) []store.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		got := slices.Clone(e.got)
		e.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d events; got %d: %+v", n, len(got), got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBackends runs the checks specific to this adapter against every backend: what lands
// in the backend, corrupt blobs, expiry kept inside the blob, and in-process exactness.
// (Exact increments, 50 goroutines × 200, are the suite's Session/IncrConcurrent, which
// TestConformance runs on every backend.)
func TestBackends(t *testing.T) {
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			storage, dump := bc.open(t)
			t.Run("NoIDInBackend", func(t *testing.T) { testNoIDInBackend(t, storage, dump) })
			t.Run("CorruptBlob", func(t *testing.T) { testCorruptBlob(t, storage) })
			t.Run("ExpiredBlob", func(t *testing.T) { testExpiredBlob(t, storage, dump) })
			t.Run("SecondInstance", func(t *testing.T) { testSecondInstance(t, storage) })
			t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, storage) })
		})
	}
}

func newStore(t testing.TB, storage Storage, config ...Config) *Store {
	s := New(storage, config...)
	t.Cleanup(func() { s.Close() })
	return s
}

func testNoIDInBackend(t *testing.T, storage Storage, dump func() map[string][]byte) {
	prefix := "nid" + rand.Text()[:6] + ":"
	s := newStore(t, storage, Config{Prefix: prefix})
	ctx := context.Background()
	id, owner, ticket := newID("secret-id"), newID("owner"), newID("secret-ticket")
	mustCreate(t, s, id, store.Record{Fields: map[string]string{"a": "1"}, Owner: owner}, hour)
	if err := s.Save(ctx, id, store.Change{Set: map[string]string{"b": "2"}}, hour); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTicket(ctx, ticket, "ticket value", time.Minute); err != nil {
		t.Fatal(err)
	}

	mine := map[string][]byte{}
	for k, v := range dump() {
		if strings.HasPrefix(k, prefix) {
			mine[k] = v
		}
	}
	if len(mine) != 3 {
		t.Fatalf("want 3 keys (session, owner index, ticket); got %d: %q", len(mine), slices.Collect(mapsKeys(mine)))
	}
	for k, v := range mine {
		if len(k) > 64 {
			t.Errorf("key %q: %d bytes; the SQL drivers hold 64", k, len(k))
		}
		for _, secret := range []string{id, ticket, store.Hash(id), store.Hash(ticket)} {
			if strings.Contains(k, secret) || bytes.Contains(v, []byte(secret)) {
				t.Errorf("key %q or its value holds %q", k, secret)
			}
		}
	}
	r, err := decodeRecord(mine[sessionKey(s, id)])
	if err != nil {
		t.Fatalf("session blob: %v", err)
	}
	if r.owner != owner || r.fields["a"] != "1" || r.fields["b"] != "2" {
		t.Errorf("session blob: want owner %q and fields a=1 b=2; got %+v", owner, r)
	}
}

func mapsKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func testCorruptBlob(t *testing.T, storage Storage) {
	s := newStore(t, storage)
	ctx := context.Background()
	blobs := map[string][]byte{
		"json":             []byte(`{"fields":{}}`),
		"truncated":        encodeRecord(&record{expires: time.Now().Add(hour).UnixMilli(), fields: map[string]string{"a": "b"}})[:6],
		"future version":   {kindSession, 9, 2, 0, 0, 0, 0},
		"owner index blob": encodeIndex(nil),
		"huge field count": {kindSession, version1, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, blob := range blobs {
		t.Run(name, func(t *testing.T) {
			id := newID("corrupt")
			if err := storage.Set(sessionKey(s, id), blob, time.Minute); err != nil {
				t.Fatal(err)
			}
			checks := map[string]error{}
			_, checks["Load"] = s.Load(ctx, id, 0)
			_, checks["Load with touch"] = s.Load(ctx, id, hour)
			checks["Save"] = s.Save(ctx, id, store.Change{Set: map[string]string{"a": "1"}}, hour)
			_, checks["Incr"] = s.Incr(ctx, id, "n", 1)
			checks["Touch"] = s.Touch(ctx, id, hour)
			checks["Create"] = s.Create(ctx, id, store.Record{}, hour)
			for op, err := range checks {
				if !errors.Is(err, ErrCorrupt) || errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s of a corrupt blob: want an error wrapping ErrCorrupt; got %v", op, err)
				}
			}
			if err := s.Delete(ctx, id); err != nil {
				t.Errorf("Delete of a corrupt blob: want nil error; got %v", err)
			}
			if _, err := s.Load(ctx, id, 0); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Load after Delete of a corrupt blob: want %v; got %v", store.ErrNotFound, err)
			}
		})
	}

	t.Run("owner index", func(t *testing.T) {
		owner := newID("owner")
		if err := storage.Set(ownerKey(s, owner), []byte("garbage"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sessions(ctx, owner); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Sessions: want an error wrapping ErrCorrupt; got %v", err)
		}
		if _, err := s.DeleteOwner(ctx, owner); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DeleteOwner: want an error wrapping ErrCorrupt; got %v", err)
		}
		err := s.Create(ctx, newID("id"), store.Record{Owner: owner}, hour)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("Create for the owner: want an error wrapping ErrCorrupt; got %v", err)
		}
	})

	t.Run("session listed by its owner", func(t *testing.T) {
		owner, id, bad := newID("owner"), newID("id"), newID("bad")
		mustCreate(t, s, id, store.Record{Owner: owner}, hour)
		mustCreate(t, s, bad, store.Record{Owner: owner}, hour)
		if err := storage.Set(sessionKey(s, bad), []byte("garbage"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sessions(ctx, owner); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Sessions: want an error wrapping ErrCorrupt; got %v", err)
		}
		// Logging out everywhere must not stop at a damaged session.
		n, err := s.DeleteOwner(ctx, owner)
		if err != nil || n != 2 {
			t.Errorf("DeleteOwner: want 2 and nil error; got %d and %v", n, err)
		}
		got, err := s.Sessions(ctx, owner)
		if err != nil || len(got) != 0 {
			t.Errorf("Sessions after DeleteOwner: want [] and nil error; got %q and %v", got, err)
		}
	})

	t.Run("ticket", func(t *testing.T) {
		ticket := newID("ticket")
		if err := storage.Set(ticketKey(s, ticket), []byte("T"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TakeTicket(ctx, ticket); !errors.Is(err, ErrCorrupt) {
			t.Errorf("TakeTicket: want an error wrapping ErrCorrupt; got %v", err)
		}
		if _, err := s.TakeTicket(ctx, ticket); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TakeTicket again: want %v; got %v", store.ErrNotFound, err)
		}
	})
}

// testExpiredBlob checks that the expiry inside the blob decides, not the backend's TTL
// in whole seconds, and that the Load that finds it sends EventExpired once.
func testExpiredBlob(t *testing.T, storage Storage, dump func() map[string][]byte) {
	s := newStore(t, storage)
	ev := subscribe(t, s)
	ctx := context.Background()
	id, owner, ticket := newID("id"), newID("owner"), newID("ticket")
	const idle = 300 * time.Millisecond
	mustCreate(t, s, id, store.Record{Owner: owner}, idle)
	if err := s.PutTicket(ctx, ticket, "v", idle); err != nil {
		t.Fatal(err)
	}
	// The blob's expiry passing is what is tested, on the real clock: the backend keeps
	// its own, for its TTL.
	time.Sleep(idle + 100*time.Millisecond)

	if _, ok := dump()[sessionKey(s, id)]; !ok {
		t.Fatal("the backend dropped the blob before its TTL: the test proves nothing")
	}
	if _, err := s.Load(ctx, id, hour); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load of an expired session: want %v; got %v", store.ErrNotFound, err)
	}
	if err := s.Touch(ctx, id, hour); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Touch of an expired session: want %v; got %v", store.ErrNotFound, err)
	}
	if got := ev.wait(t, 1); got[0].Kind != store.EventExpired || got[0].Hash != store.Hash(id) {
		t.Errorf("want one EventExpired for the session; got %+v", got)
	}
	if _, ok := dump()[sessionKey(s, id)]; ok {
		t.Error("the blob of the expired session is still in the backend after Load found it expired")
	}
	if got, err := s.Sessions(ctx, owner); err != nil || len(got) != 0 {
		t.Errorf("Sessions: want [] and nil error; got %q and %v", got, err)
	}
	if _, err := s.TakeTicket(ctx, ticket); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeTicket of an expired ticket: want %v; got %v", store.ErrNotFound, err)
	}
	// Events come in order: one more, sent after the calls above, comes after any they
	// sent.
	last := newID("id")
	mustCreate(t, s, last, store.Record{}, hour)
	if err := s.Delete(ctx, last); err != nil {
		t.Fatal(err)
	}
	if got := ev.wait(t, 2); len(got) != 2 || got[1].Kind != store.EventDeleted || got[1].Hash != store.Hash(last) {
		t.Errorf("want exactly one event, then the EventDeleted of another session; got %+v", got)
	}
}

// testSecondInstance checks what two Stores over one backend, like two processes, do
// keep: each sees the other's writes once they are done.
func testSecondInstance(t *testing.T, storage Storage) {
	a, b := newStore(t, storage), newStore(t, storage)
	ctx := context.Background()
	id, owner, ticket := newID("id"), newID("owner"), newID("ticket")
	mustCreate(t, a, id, store.Record{Fields: map[string]string{"x": "1"}, Owner: owner}, hour)
	if err := b.Create(ctx, id, store.Record{}, hour); !errors.Is(err, store.ErrExists) {
		t.Errorf("Create on the second store: want %v; got %v", store.ErrExists, err)
	}
	if n, err := b.Incr(ctx, id, "n", 2); err != nil || n != 2 {
		t.Errorf("Incr on the second store: want 2 and nil error; got %d and %v", n, err)
	}
	rec, err := a.Load(ctx, id, 0)
	if err != nil || rec.Fields["n"] != "2" || rec.Fields["x"] != "1" {
		t.Errorf("Load on the first store: want x=1 n=2; got %+v and %v", rec, err)
	}
	if got, err := b.Sessions(ctx, owner); err != nil || !slices.Equal(got, []string{store.Hash(id)}) {
		t.Errorf("Sessions on the second store: want [%s]; got %q and %v", store.Hash(id), got, err)
	}
	if err := a.PutTicket(ctx, ticket, "v", time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := b.TakeTicket(ctx, ticket); err != nil || v != "v" {
		t.Errorf("TakeTicket on the second store: want %q; got %q and %v", "v", v, err)
	}
	if _, err := a.TakeTicket(ctx, ticket); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeTicket again on the first store: want %v; got %v", store.ErrNotFound, err)
	}
	if n, err := b.DeleteOwner(ctx, owner); err != nil || n != 1 {
		t.Errorf("DeleteOwner on the second store: want 1; got %d and %v", n, err)
	}
	if _, err := a.Load(ctx, id, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load on the first store after DeleteOwner: want %v; got %v", store.ErrNotFound, err)
	}
}

// testConcurrent runs every kind of operation at once on one owner's sessions, to find
// lock-order deadlocks and races, and then checks that the owner index matches the
// sessions that are left.
func testConcurrent(t *testing.T, storage Storage) {
	s := newStore(t, storage)
	ctx := context.Background()
	owner := newID("owner")
	ids := make([]string, 24)
	for i := range ids {
		ids[i] = newID(fmt.Sprint(i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	report := func(err error) {
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrExists) {
			errs <- err
		}
	}
	for w := range 8 {
		wg.Go(func() {
			for i := range 30 {
				id := ids[(w*7+i)%len(ids)]
				switch (w + i) % 6 {
				case 0, 1:
					report(s.Create(ctx, id, store.Record{Owner: owner}, hour))
				case 2:
					report(s.Save(ctx, id, store.Change{Set: map[string]string{"w": fmt.Sprint(w)}}, hour))
				case 3:
					_, err := s.Incr(ctx, id, "n", 1)
					report(err)
				case 4:
					report(s.Delete(ctx, id))
				case 5:
					_, err := s.Sessions(ctx, owner)
					report(err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			_, err := s.DeleteOwner(ctx, owner, ids[0])
			report(err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent operation: %v", err)
	}

	var want []string
	for _, id := range ids {
		if _, err := s.Load(ctx, id, 0); err == nil {
			want = append(want, store.Hash(id))
		}
	}
	got, err := s.Sessions(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Errorf("Sessions after concurrent operations: want %q; got %q", want, got)
	}
}

// TestLoadTouch checks that Load rewrites the blob only when the expiry moves by at least
// a quarter of touch, and what it then promises.
func TestLoadTouch(t *testing.T) {
	f := newFake()
	s := newStore(t, f)
	ctx := context.Background()
	id := newID("id")
	mustCreate(t, s, id, store.Record{}, hour)

	f.resetLog()
	before := time.Now()
	rec, err := s.Load(ctx, id, hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.log(); !slices.Equal(got, []string{"Get"}) {
		t.Errorf("Load with touch right after Create: want one Get; got %q", got)
	}
	if lo := before.Add(hour * 3 / 4); rec.ExpiresAt.Before(lo) {
		t.Errorf("ExpiresAt: want after %v; got %v", lo, rec.ExpiresAt)
	}

	// Touching by 2h moves the expiry by 1h, more than 2h/4: one rewrite.
	f.resetLog()
	before = time.Now()
	rec, err = s.Load(ctx, id, 2*hour)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if got := f.log(); !slices.Equal(got, []string{"Get", "Get", "Set"}) {
		t.Errorf("Load with a longer touch: want Get, Get under the lock, Set; got %q", got)
	}
	if rec.ExpiresAt.Before(before.Add(2*hour).Truncate(time.Millisecond)) || rec.ExpiresAt.After(after.Add(2*hour)) {
		t.Errorf("ExpiresAt: want now+2h; got %v", rec.ExpiresAt)
	}
	if again, err := s.Load(ctx, id, 0); err != nil || !again.ExpiresAt.Equal(rec.ExpiresAt) {
		t.Errorf("Load after the rewrite: want ExpiresAt %v; got %v and %v", rec.ExpiresAt, again, err)
	}

	// A shorter touch never shortens the expiry.
	rec2, err := s.Load(ctx, id, time.Minute)
	if err != nil || !rec2.ExpiresAt.Equal(rec.ExpiresAt) {
		t.Errorf("Load with a shorter touch: want ExpiresAt %v; got %v and %v", rec.ExpiresAt, rec2, err)
	}

	// The deadline caps the extension, and once there the blob is not rewritten.
	id2 := newID("id")
	deadline := time.Now().Add(90 * time.Minute).Truncate(time.Millisecond)
	mustCreate(t, s, id2, store.Record{Deadline: deadline}, hour)
	rec, err = s.Load(ctx, id2, 2*hour)
	if err != nil || !rec.ExpiresAt.Equal(deadline) {
		t.Errorf("Load with touch past the deadline: want ExpiresAt %v; got %+v and %v", deadline, rec, err)
	}
	f.resetLog()
	if _, err := s.Load(ctx, id2, 2*hour); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); !slices.Equal(got, []string{"Get"}) {
		t.Errorf("Load with touch at the deadline: want one Get; got %q", got)
	}
}

// TestBackendTTL checks that the backend gets whole seconds, rounded up, with margin.
func TestBackendTTL(t *testing.T) {
	f := newFake()
	s := newStore(t, f)
	ctx := context.Background()
	id, owner, ticket := newID("id"), newID("owner"), newID("ticket")
	mustCreate(t, s, id, store.Record{Owner: owner}, 1500*time.Millisecond)
	if err := s.PutTicket(ctx, ticket, "", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		key  string
		want time.Duration
	}{
		{sessionKey(s, id), 2*time.Second + ttlMargin},
		// The owner entry's bound is expiry + idle: 3 s.
		{ownerKey(s, owner), 3*time.Second + ttlMargin},
		{ticketKey(s, ticket), time.Second + ttlMargin},
	}
	for _, c := range cases {
		blob, ttl := f.raw(c.key)
		if blob == nil || ttl != c.want {
			t.Errorf("key %s: want a blob with TTL %v; got %d bytes with TTL %v", c.key, c.want, len(blob), ttl)
		}
	}
	// An empty ticket value is stored, although the backend ignores empty values.
	if v, err := s.TakeTicket(ctx, ticket); err != nil || v != "" {
		t.Errorf("TakeTicket of an empty value: want \"\" and nil error; got %q and %v", v, err)
	}
}

// TestOwnerIndexHeals checks the package doc's claim that an index entry lost to a race
// between processes comes back when the session is extended past its bound.
func TestOwnerIndexHeals(t *testing.T) {
	f := newFake()
	s := newStore(t, f)
	ctx := context.Background()
	id, owner := newID("id"), newID("owner")
	const idle = 200 * time.Millisecond
	mustCreate(t, s, id, store.Record{Owner: owner}, idle)
	if err := f.Delete(ownerKey(s, owner)); err != nil { // what a lost race leaves
		t.Fatal(err)
	}
	if got, _ := s.Sessions(ctx, owner); len(got) != 0 {
		t.Fatalf("Sessions after losing the index: want []; got %q", got)
	}
	// Extend the session past the bound its entry had (expiry + idle).
	if err := s.Touch(ctx, id, 3*idle); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Sessions(ctx, owner); err != nil || !slices.Equal(got, []string{store.Hash(id)}) {
		t.Errorf("Sessions after Touch: want [%s]; got %q and %v", store.Hash(id), got, err)
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	t.Run("cancelled before", func(t *testing.T) {
		f := newFake()
		s := newStore(t, f)
		id, owner := newID("id"), newID("owner")
		mustCreate(t, s, id, store.Record{Owner: owner}, hour)
		f.resetLog()
		checks := map[string]error{}
		checks["Create"] = s.Create(cancelled, newID("id"), store.Record{}, hour)
		_, checks["Load"] = s.Load(cancelled, id, 0)
		checks["Save"] = s.Save(cancelled, id, store.Change{Set: map[string]string{"a": "1"}}, hour)
		_, checks["Incr"] = s.Incr(cancelled, id, "n", 1)
		checks["Touch"] = s.Touch(cancelled, id, hour)
		checks["Delete"] = s.Delete(cancelled, id)
		_, checks["Sessions"] = s.Sessions(cancelled, owner)
		_, checks["DeleteOwner"] = s.DeleteOwner(cancelled, owner)
		checks["PutTicket"] = s.PutTicket(cancelled, "t", "v", hour)
		_, checks["TakeTicket"] = s.TakeTicket(cancelled, "t")
		for op, err := range checks {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: want an error wrapping %v; got %v", op, context.Canceled, err)
			}
		}
		if got := f.log(); len(got) != 0 {
			t.Errorf("want no backend call with a cancelled context; got %q", got)
		}
	})

	t.Run("context methods", func(t *testing.T) {
		f := newFake()
		s := newStore(t, ctxFake{f})
		id := newID("id")
		mustCreate(t, s, id, store.Record{}, hour)
		if err := s.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		want := []string{"GetWithContext", "SetWithContext", "GetWithContext", "DeleteWithContext"}
		if got := f.log(); !slices.Equal(got, want) {
			t.Errorf("want the driver's context methods %q; got %q", want, got)
		}

		// A call in flight ends with ctx.
		f.gate = make(chan struct{})
		defer close(f.gate)
		tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := s.Load(tctx, id, 0)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Errorf("Load with a blocked context-aware driver: want %v promptly; got %v after %v",
				context.DeadlineExceeded, err, time.Since(start))
		}
	})

	t.Run("plain driver", func(t *testing.T) {
		// Without context methods, a call in flight runs to its end, and then the
		// store sees that ctx has ended.
		f := newFake()
		s := newStore(t, f)
		id := newID("id")
		mustCreate(t, s, id, store.Record{}, hour)
		f.gate, f.inCall = make(chan struct{}), make(chan struct{})
		tctx, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() {
			_, err := s.Load(tctx, id, 0)
			done <- err
		}()
		<-f.inCall
		cancel()
		select {
		case err := <-done:
			t.Fatalf("Load returned %v while the driver call was in flight", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(f.gate)
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Load: want an error wrapping %v; got %v", context.Canceled, err)
		}
	})

	t.Run("waiting for the lock", func(t *testing.T) {
		// A caller queued behind a slow call on the same session gives up with its ctx.
		f := newFake()
		s := newStore(t, f)
		id := newID("id")
		mustCreate(t, s, id, store.Record{}, hour)
		f.gate, f.inCall = make(chan struct{}), make(chan struct{}, 8)
		first := make(chan error)
		go func() { first <- s.Touch(ctx, id, hour) }()
		<-f.inCall
		tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err := s.Save(tctx, id, store.Change{Set: map[string]string{"a": "1"}}, hour)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Save behind a blocked Touch: want an error wrapping %v; got %v", context.DeadlineExceeded, err)
		}
		close(f.gate)
		if err := <-first; err != nil {
			t.Errorf("Touch: %v", err)
		}
	})
}

func TestBackendError(t *testing.T) {
	f := newFake()
	s := newStore(t, f)
	ctx := context.Background()
	id, owner := newID("id"), newID("owner")
	mustCreate(t, s, id, store.Record{Owner: owner}, hour)
	boom := errors.New("connection refused")
	f.setErr(boom)
	checks := map[string]error{}
	checks["create"] = s.Create(ctx, newID("id"), store.Record{}, hour)
	_, checks["load"] = s.Load(ctx, id, 0)
	checks["save"] = s.Save(ctx, id, store.Change{Set: map[string]string{"a": "1"}}, hour)
	_, checks["incr"] = s.Incr(ctx, id, "n", 1)
	checks["touch"] = s.Touch(ctx, id, hour)
	checks["delete"] = s.Delete(ctx, id)
	_, checks["sessions"] = s.Sessions(ctx, owner)
	_, checks["deleteowner"] = s.DeleteOwner(ctx, owner)
	checks["putticket"] = s.PutTicket(ctx, "t", "v", hour)
	_, checks["taketicket"] = s.TakeTicket(ctx, "t")
	for op, err := range checks {
		want := "fiberstore: " + op + ": connection refused"
		if !errors.Is(err, boom) || errors.Is(err, store.ErrNotFound) || err.Error() != want {
			t.Errorf("%s: want %q wrapping the backend's error; got %v", op, want, err)
		}
	}
}

func TestClose(t *testing.T) {
	f := newFake()
	s := New(f)
	ctx := context.Background()
	id := newID("id")
	mustCreate(t, s, id, store.Record{}, hour)
	if _, err := s.Subscribe(func(store.Event) {}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close: want nil error; got %v", err)
		}
	}
	for _, call := range f.log() {
		if call == "Close" || call == "Reset" {
			t.Errorf("Close called the storage's %s", call)
		}
	}
	if _, err := s.Load(ctx, id, 0); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load after Close: want an error saying the store is closed; got %v", err)
	}
	if _, err := s.Subscribe(func(store.Event) {}); err == nil {
		t.Error("Subscribe after Close: want an error; got nil")
	}
	// The storage is still the caller's to use.
	if v, err := f.Get(sessionKey(s, id)); err != nil || v == nil {
		t.Errorf("storage after Close: want the session's blob; got %v, %v", v, err)
	}
}

// TestEventOrder checks that events arrive in the order the operations finished, and
// stop after unsubscribe.
func TestEventOrder(t *testing.T) {
	s := newStore(t, newFake())
	ctx := context.Background()
	ev := subscribe(t, s)
	id, owner := newID("id"), newID("owner")
	mustCreate(t, s, id, store.Record{Owner: owner}, hour)
	const n = 200
	for i := range n {
		if _, err := s.Incr(ctx, id, fmt.Sprint("f", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(ctx, id, store.Change{Set: map[string]string{"b": "1", "a": "1"}, Delete: []string{"c", "a"}}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteOwner(ctx, owner); err != nil {
		t.Fatal(err)
	}
	got := ev.wait(t, n+2)
	for i := range n {
		if e := got[i]; e.Kind != store.EventChanged || !slices.Equal(e.Fields, []string{fmt.Sprint("f", i)}) {
			t.Fatalf("event %d: want changed [f%d]; got %+v", i, i, e)
		}
	}
	if e := got[n]; e.Kind != store.EventChanged || !slices.Equal(e.Fields, []string{"a", "b", "c"}) {
		t.Errorf("Save event: want changed [a b c]; got %+v", e)
	}
	if e := got[n+1]; e.Kind != store.EventRevoked || e.Hash != store.Hash(id) {
		t.Errorf("DeleteOwner event: want revoked %s; got %+v", store.Hash(id), e)
	}
}

// TestCapabilities checks what the store declares: events that stay in the process, no
// Broker, not in-process, and views whose Close leaves the store open.
func TestCapabilities(t *testing.T) {
	s := newStore(t, newFake())
	c := s.Capabilities()
	if c.InProcess || c.Broker != nil || c.Events == nil {
		t.Fatalf("Capabilities: want Events only; got %+v", c)
	}
	if c.Events.Shared() || c.Events.EventsLive() {
		t.Errorf("Shared, EventsLive: want false, false; got %v, %v", c.Events.Shared(), c.Events.EventsLive())
	}
	ev := subscribe(t, s)
	ctx := context.Background()
	id := newID("id")
	mustCreate(t, s, id, store.Record{}, hour)
	v := c.Events.From("me")
	if err := v.Close(); err != nil {
		t.Errorf("view Close: want nil error; got %v", err)
	}
	if _, err := v.Incr(ctx, id, "n", 1); err != nil {
		t.Fatalf("Incr through a closed view: want nil error; got %v", err)
	}
	if _, err := s.Incr(ctx, id, "n", 1); err != nil {
		t.Fatal(err)
	}
	got := ev.wait(t, 2)
	if got[0].Origin != "me" || got[1].Origin != "" {
		t.Errorf("origins: want \"me\", \"\"; got %q, %q", got[0].Origin, got[1].Origin)
	}
}
