package storetest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

func (s *suite) sessionTests() []test {
	return []test{
		{"CreateLoad", s.testCreateLoad},
		{"CreateEmpty", s.testCreateEmpty},
		{"CreateExists", s.testCreateExists},
		{"NotFound", s.testNotFound},
		{"Values", s.testValues},
		{"Save", s.testSave},
		{"SaveSetAndDelete", s.testSaveSetAndDelete},
		{"SaveDeleted", s.testSaveDeleted},
		{"SaveConcurrent", s.testSaveConcurrent},
		{"SaveAtomic", s.testSaveAtomic},
		{"Incr", s.testIncr},
		{"IncrNotInteger", s.testIncrNotInteger},
		{"IncrOverflow", s.testIncrOverflow},
		{"IncrConcurrent", s.testIncrConcurrent},
		{"Delete", s.testDelete},
		{"CrossProcess", s.testSessionCrossProcess},
	}
}

// testCreateLoad checks that a record round-trips, and that neither the caller's map
// nor the loaded one is shared with the store.
func (s *suite) testCreateLoad(t *testing.T) {
	st := s.newStore(t)
	id, owner := newID("id"), newID("owner")
	fields := map[string]string{"name": `"Ann"`, "score": "7", "empty": ""}
	want := map[string]string{"name": `"Ann"`, "score": "7", "empty": ""}
	// Stores keep time to the millisecond at best.
	deadline := time.Now().Add(2 * hour).Truncate(time.Millisecond)

	before := time.Now()
	create(t, st, id, store.Record{Fields: fields, Owner: owner, Deadline: deadline}, hour)
	after := time.Now()
	fields["name"] = "changed after Create"

	rec := load(t, st, id)
	wantFields(t, "Load", want, rec.Fields)
	if rec.Owner != owner {
		t.Errorf("Owner: want %q; got %q", owner, rec.Owner)
	}
	if d := rec.Deadline.Sub(deadline).Abs(); d > time.Millisecond {
		t.Errorf("Deadline: want %v; got %v", deadline, rec.Deadline)
	}
	// ExpiresAt is now+idle; allow for clocks read in another process.
	lo, hi := before.Add(hour-time.Second), after.Add(hour+time.Second)
	if rec.ExpiresAt.Before(lo) || rec.ExpiresAt.After(hi) {
		t.Errorf("ExpiresAt: want between %v and %v; got %v", lo, hi, rec.ExpiresAt)
	}

	rec.Fields["name"] = "changed after Load"
	delete(rec.Fields, "score")
	wantFields(t, "Load after changing the loaded map", want, load(t, st, id).Fields)
}

// testCreateEmpty checks a session with no fields, no owner and no deadline, and that a
// session outlives the deletion of its last field.
func (s *suite) testCreateEmpty(t *testing.T) {
	st := s.newStore(t)
	id := newID("id")
	before := time.Now()
	create(t, st, id, store.Record{}, hour)

	rec := load(t, st, id)
	wantFields(t, "Load", map[string]string{}, rec.Fields)
	if rec.Owner != "" {
		t.Errorf("Owner: want %q; got %q", "", rec.Owner)
	}
	if !rec.Deadline.IsZero() {
		t.Errorf("Deadline: want zero; got %v", rec.Deadline)
	}
	if lo := before.Add(hour - time.Second); rec.ExpiresAt.Before(lo) {
		t.Errorf("ExpiresAt: want after %v; got %v", lo, rec.ExpiresAt)
	}

	save(t, st, id, store.Change{Set: map[string]string{"a": "1"}})
	save(t, st, id, store.Change{Delete: []string{"a"}})
	wantFields(t, "Load after deleting the last field", map[string]string{}, load(t, st, id).Fields)
}

func (s *suite) testCreateExists(t *testing.T) {
	st := s.newStore(t)
	id, owner1, owner2 := newID("id"), newID("owner"), newID("owner")
	create(t, st, id, store.Record{Fields: map[string]string{"v": "1"}, Owner: owner1}, hour)

	err := st.Create(t.Context(), id, store.Record{Fields: map[string]string{"v": "2", "w": "2"}, Owner: owner2}, hour)
	wantErr(t, "Create on an existing id", store.ErrExists, err)

	rec := load(t, st, id)
	wantFields(t, "Load after the second Create", map[string]string{"v": "1"}, rec.Fields)
	if rec.Owner != owner1 {
		t.Errorf("Owner after the second Create: want %q; got %q", owner1, rec.Owner)
	}
	got, err := st.Sessions(t.Context(), owner2)
	if err != nil || len(got) != 0 {
		t.Errorf("Sessions of the second Create's owner: want [] and nil error; got %q and %v", got, err)
	}
}

// testNotFound checks that every method on an unknown id reports ErrNotFound, not a
// backend error and not success.
func (s *suite) testNotFound(t *testing.T) {
	st := s.newStore(t)
	id := newID("unknown")
	ctx := t.Context()

	wantGone(t, st, id, "of an unknown id")
	_, err := st.Load(ctx, id, hour)
	wantErr(t, "Load with touch of an unknown id", store.ErrNotFound, err)
	err = st.Save(ctx, id, store.Change{Set: map[string]string{"a": "1"}}, hour)
	wantErr(t, "Save of an unknown id", store.ErrNotFound, err)
	_, err = st.Incr(ctx, id, "n", 1)
	wantErr(t, "Incr of an unknown id", store.ErrNotFound, err)
	err = st.Touch(ctx, id, hour)
	wantErr(t, "Touch of an unknown id", store.ErrNotFound, err)
	// None of them may have created it.
	wantGone(t, st, id, "after writes to an unknown id")
}

// testValues checks that values (and field names) are opaque strings.
func (s *suite) testValues(t *testing.T) {
	st := s.newStore(t)
	var all strings.Builder
	for i := range 256 {
		all.WriteByte(byte(i))
	}
	fields := map[string]string{
		"binary":           all.String(),
		"nul":              "\x00",
		"invalid utf-8":    "\xff\xfe\xc3(",
		"unicode":          "你好，世界 🌏",
		"empty":            "",
		"long":             strings.Repeat("0123456789", 1000),
		"json":             `{"a":[1,"two",null],"b":"\"quoted\""}`,
		"looks:like key*?": "  spaces  ",
		"名字":               "値",
		"newline\nname":    "line1\r\nline2",
	}
	id := newID("id")
	create(t, st, id, store.Record{Fields: fields}, hour)
	wantFields(t, "Load after Create", fields, load(t, st, id).Fields)

	id2 := newID("id")
	create(t, st, id2, store.Record{}, hour)
	save(t, st, id2, store.Change{Set: fields})
	wantFields(t, "Load after Save", fields, load(t, st, id2).Fields)
}

func (s *suite) testSave(t *testing.T) {
	st := s.newStore(t)
	id := newID("id")
	create(t, st, id, store.Record{Fields: map[string]string{"a": "1", "b": "2", "c": "3"}}, hour)

	set := map[string]string{"a": "10", "d": "4", "e": ""}
	save(t, st, id, store.Change{Set: set, Delete: []string{"b", "missing"}})
	set["a"] = "changed after Save"
	want := map[string]string{"a": "10", "c": "3", "d": "4", "e": ""}
	wantFields(t, "Load after Save", want, load(t, st, id).Fields)

	save(t, st, id, store.Change{})
	wantFields(t, "Load after an empty Save", want, load(t, st, id).Fields)
}

// testSaveSetAndDelete checks that a field both set and deleted by one Change is
// deleted (see store.Change), whether the session held it before or not, and that the
// event names every field the Change names.
func (s *suite) testSaveSetAndDelete(t *testing.T) {
	st := s.newStore(t)
	id := newID("id")
	create(t, st, id, store.Record{Fields: map[string]string{"a": "1", "b": "2"}}, hour)
	r := subscribe(t, st)

	save(t, st, id, store.Change{
		Set:    map[string]string{"a": "10", "c": "3", "new": "4"},
		Delete: []string{"a", "new"},
	})
	want := map[string]string{"b": "2", "c": "3"}
	wantFields(t, "Load after a Save that sets and deletes a and new", want, load(t, st, id).Fields)
	r.expect(t, "event of the Save", changed(id, "a", "c", "new"), id)
}

// testSaveDeleted checks that Save never recreates a deleted session.
func (s *suite) testSaveDeleted(t *testing.T) {
	st := s.newStore(t)
	id, owner := newID("id"), newID("owner")
	create(t, st, id, store.Record{Fields: map[string]string{"a": "1"}, Owner: owner}, hour)
	if err := st.Delete(t.Context(), id); err != nil {
		t.Fatalf("Delete: want nil error; got %v", err)
	}
	err := st.Save(t.Context(), id, store.Change{Set: map[string]string{"a": "2"}}, hour)
	wantErr(t, "Save after Delete", store.ErrNotFound, err)
	wantGone(t, st, id, "after Save of a deleted session")
	_, err = st.Incr(t.Context(), id, "n", 1)
	wantErr(t, "Incr after Delete", store.ErrNotFound, err)
	wantGone(t, st, id, "after Incr of a deleted session")
	got, err := st.Sessions(t.Context(), owner)
	if err != nil || len(got) != 0 {
		t.Errorf("Sessions after Save of a deleted session: want [] and nil error; got %q and %v", got, err)
	}
}

// testSaveConcurrent checks that Saves of different fields never overwrite each other.
func (s *suite) testSaveConcurrent(t *testing.T) {
	st := s.newStore(t)
	id := newID("id")
	create(t, st, id, store.Record{Fields: map[string]string{"keep": "1"}}, hour)

	const writers, rounds = 32, 10
	want := map[string]string{"keep": "1"}
	for w := range writers {
		for r := range rounds {
			want[fmt.Sprintf("w%d-%d", w, r)] = strconv.Itoa(w * r)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				// Each Save also deletes a field no other writer uses.
				ch := store.Change{
					Set:    map[string]string{fmt.Sprintf("w%d-%d", w, r): strconv.Itoa(w * r)},
					Delete: []string{fmt.Sprintf("none%d", w)},
				}
				if err := st.Save(t.Context(), id, ch, hour); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Save: want nil error; got %v", err)
	}
	wantFields(t, "Load after concurrent Saves", want, load(t, st, id).Fields)
}

// testSaveAtomic checks that readers see a multi-field Save whole or not at all: a
// writer keeps x and y equal, setting both and now and then deleting both, while readers
// Load in a loop, with and without touch, on this instance and on a second one if the
// store has one. A reader must never see x and y differ.
func (s *suite) testSaveAtomic(t *testing.T) {
	st := s.newStore(t)
	readersOn := []store.Store{st}
	if s.cfg.CrossProcess != nil {
		readersOn = append(readersOn, s.second(t, st))
	}
	id := newID("id")
	create(t, st, id, store.Record{Fields: map[string]string{"x": "0", "y": "0"}}, hour)

	const rounds, readersPer = 200, 2
	done := make(chan struct{})
	var wg, started sync.WaitGroup
	var mu sync.Mutex
	loads, torn := 0, 0
	started.Add(len(readersOn) * readersPer)
	for r, rs := range readersOn {
		for i := range readersPer {
			touch := time.Duration(0)
			if i%2 == 1 {
				touch = hour // the path that extends the expiry in the same round trip
			}
			wg.Go(func() {
				n := 0
				for {
					select {
					case <-done:
						mu.Lock()
						loads += n
						mu.Unlock()
						return
					default:
					}
					rec, err := rs.Load(t.Context(), id, touch)
					if n == 0 {
						started.Done()
					}
					n++
					if err != nil {
						t.Errorf("Load on instance %d: want nil error; got %v", r+1, err)
						<-done
						return
					}
					x, xok := rec.Fields["x"]
					y, yok := rec.Fields["y"]
					if x != y || xok != yok {
						mu.Lock()
						torn++
						if torn <= 3 {
							t.Errorf("Load on instance %d during Saves of {x, y}: want x = y; got fields %q", r+1, rec.Fields)
						}
						mu.Unlock()
					}
				}
			})
		}
	}
	started.Wait()
	for i := 1; i <= rounds && !t.Failed(); i++ {
		ch := store.Change{Set: map[string]string{"x": strconv.Itoa(i), "y": strconv.Itoa(i)}}
		if i%10 == 0 {
			ch = store.Change{Delete: []string{"x", "y"}}
		}
		if err := st.Save(t.Context(), id, ch, hour); err != nil {
			t.Errorf("Save %d: want nil error; got %v", i, err)
			break
		}
	}
	close(done)
	wg.Wait()
	if torn > 3 {
		t.Errorf("%d of %d Loads saw x and y differ", torn, loads)
	}
}

func (s *suite) testIncr(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	id := newID("id")
	create(t, st, id, store.Record{Fields: map[string]string{"ten": "10", "neg": "-7", "zero": "0", "min": "-9223372036854775808"}}, hour)

	steps := []struct {
		field string
		delta int64
		want  int64
	}{
		{"n", 5, 5},
		{"n", -7, -2},
		{"n", 0, -2},
		{"ten", 1, 11},
		{"neg", 3, -4},
		{"big", 1 << 40, 1 << 40},
		{"zero", -1, -1},
		{"min", 1, math.MinInt64 + 1},
	}
	for _, step := range steps {
		got, err := st.Incr(ctx, id, step.field, step.delta)
		if err != nil || got != step.want {
			t.Errorf("Incr(%q, %d): want %d and nil error; got %d and %v", step.field, step.delta, step.want, got, err)
		}
	}
	want := map[string]string{"n": "-2", "ten": "11", "neg": "-4", "big": "1099511627776", "zero": "-1", "min": "-9223372036854775807"}
	wantFields(t, "Load after Incr", want, load(t, st, id).Fields)
}

// testIncrNotInteger checks that Incr reads integers as strictly as Redis's HINCRBY:
// an optional '-', then digits without a leading zero, within int64.
func (s *suite) testIncrNotInteger(t *testing.T) {
	st := s.newStore(t)
	id := newID("id")
	create(t, st, id, store.Record{}, hour)
	for _, v := range []string{
		"", "abc", "1.5", " 1", "1 ", " 5", "5\n", "0x10", `"1"`, "1e3", "1_000", "１", "٣",
		"+5", "+0", "-", "-0", "--1", "-+1", "00", "007", "-007", "00000000000000000001",
		"9223372036854775808", "-9223372036854775809", "99999999999999999999",
	} {
		save(t, st, id, store.Change{Set: map[string]string{"v": v}})
		_, err := st.Incr(t.Context(), id, "v", 1)
		wantErr(t, fmt.Sprintf("Incr of %q", v), store.ErrNotInteger, err)
		wantFields(t, fmt.Sprintf("Load after Incr of %q", v), map[string]string{"v": v}, load(t, st, id).Fields)
	}
}

// testIncrOverflow checks that an increment past either end of int64 returns
// ErrNotInteger and changes nothing, and that the ends themselves are reached.
func (s *suite) testIncrOverflow(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	id := newID("id")
	maxInt, minInt := strconv.FormatInt(math.MaxInt64, 10), strconv.FormatInt(math.MinInt64, 10)
	create(t, st, id, store.Record{Fields: map[string]string{"hi": "9223372036854775806", "lo": "-9223372036854775807"}}, hour)
	if n, err := st.Incr(ctx, id, "hi", 1); err != nil || n != math.MaxInt64 {
		t.Fatalf("Incr to the int64 maximum: want %d and nil error; got %d and %v", int64(math.MaxInt64), n, err)
	}
	if n, err := st.Incr(ctx, id, "lo", -1); err != nil || n != math.MinInt64 {
		t.Fatalf("Incr to the int64 minimum: want %d and nil error; got %d and %v", int64(math.MinInt64), n, err)
	}
	want := map[string]string{"hi": maxInt, "lo": minInt}
	for _, c := range []struct {
		field string
		delta int64
	}{
		{"hi", 1}, {"hi", math.MaxInt64}, {"lo", -1}, {"lo", math.MinInt64},
	} {
		_, err := st.Incr(ctx, id, c.field, c.delta)
		wantErr(t, fmt.Sprintf("Incr(%q, %d) past the int64 range", c.field, c.delta), store.ErrNotInteger, err)
	}
	wantFields(t, "Load after increments past the int64 range", want, load(t, st, id).Fields)

	// A missing field counts as 0, so one increment reaches either end.
	if n, err := st.Incr(ctx, id, "a", math.MaxInt64); err != nil || n != math.MaxInt64 {
		t.Errorf("Incr of a missing field by the int64 maximum: want %d and nil error; got %d and %v", int64(math.MaxInt64), n, err)
	}
	if n, err := st.Incr(ctx, id, "b", math.MinInt64); err != nil || n != math.MinInt64 {
		t.Errorf("Incr of a missing field by the int64 minimum: want %d and nil error; got %d and %v", int64(math.MinInt64), n, err)
	}
	_, err := st.Incr(ctx, id, "b", -1)
	wantErr(t, "Incr past the int64 minimum", store.ErrNotInteger, err)
	want["a"], want["b"] = maxInt, minInt
	wantFields(t, "Load after increments of missing fields", want, load(t, st, id).Fields)
}

// testIncrConcurrent checks that increments are exact: every Incr returns a distinct
// value and none is lost.
func (s *suite) testIncrConcurrent(t *testing.T) {
	st := s.newStore(t)
	id := newID("id")
	create(t, st, id, store.Record{}, hour)

	const workers, rounds = 50, 200
	seen := make([]bool, workers*rounds+1)
	var (
		mu     sync.Mutex
		bad    []string
		wg     sync.WaitGroup
		record = func(n int64, err error) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				bad = append(bad, err.Error())
			case n < 1 || n >= int64(len(seen)) || seen[n]:
				bad = append(bad, fmt.Sprintf("returned %d twice or out of range", n))
			default:
				seen[n] = true
			}
		}
	)
	for range workers {
		wg.Go(func() {
			for range rounds {
				record(st.Incr(t.Context(), id, "n", 1))
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("concurrent Incr: want distinct values and nil errors; got %d problems, first %q", len(bad), bad[0])
	}
	want := strconv.Itoa(workers * rounds)
	if got := load(t, st, id).Fields["n"]; got != want {
		t.Errorf("after %d concurrent increments: want %s; got %s", workers*rounds, want, got)
	}
}

func (s *suite) testDelete(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	id, other, owner := newID("id"), newID("id"), newID("owner")
	create(t, st, id, store.Record{Fields: map[string]string{"a": "1"}, Owner: owner}, hour)
	create(t, st, other, store.Record{Fields: map[string]string{"b": "2"}, Owner: owner}, hour)

	for i := range 2 {
		if err := st.Delete(ctx, id); err != nil {
			t.Errorf("Delete #%d: want nil error; got %v", i+1, err)
		}
	}
	if err := st.Delete(ctx, newID("never")); err != nil {
		t.Errorf("Delete of an unknown id: want nil error; got %v", err)
	}
	wantGone(t, st, id, "after Delete")
	wantErr(t, "Touch after Delete", store.ErrNotFound, st.Touch(ctx, id, hour))
	wantFields(t, "Load of another session after Delete", map[string]string{"b": "2"}, load(t, st, other).Fields)
	got, err := st.Sessions(ctx, owner)
	if err != nil {
		t.Fatalf("Sessions: want nil error; got %v", err)
	}
	wantSet(t, "Sessions after Delete", hashes(other), got)
}

// testSessionCrossProcess checks that a second instance sees the first one's writes.
func (s *suite) testSessionCrossProcess(t *testing.T) {
	st := s.newStore(t)
	st2 := s.second(t, st)
	id, owner := newID("id"), newID("owner")
	// For a store that reads from a cache (Config.ReadAfterEvent), a write through st2
	// is read on st once its event is in.
	arrived := func(string, store.EventKind) {}
	if s.cfg.ReadAfterEvent {
		events := make(chan store.Event, 16)
		unsubscribe, err := st.Capabilities().Events.Subscribe(func(ev store.Event) {
			if ev.Hash == store.Hash(id) {
				events <- ev
			}
		})
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		t.Cleanup(unsubscribe)
		arrived = func(what string, kind store.EventKind) {
			t.Helper()
			select {
			case ev := <-events:
				if ev.Kind != kind {
					t.Fatalf("%s: want a %s event; got %s", what, kind, ev.Kind)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: no event on the first instance", what)
			}
		}
	}
	create(t, st, id, store.Record{Fields: map[string]string{"a": "1"}, Owner: owner}, hour)

	rec := load(t, st2, id)
	wantFields(t, "Load on the second instance", map[string]string{"a": "1"}, rec.Fields)
	if rec.Owner != owner {
		t.Errorf("Owner on the second instance: want %q; got %q", owner, rec.Owner)
	}
	load(t, st, id) // a cache holds it from here on
	save(t, st2, id, store.Change{Set: map[string]string{"b": "2"}})
	arrived("Save on the second instance", store.EventChanged)
	if _, err := st2.Incr(t.Context(), id, "n", 3); err != nil {
		t.Fatalf("Incr on the second instance: want nil error; got %v", err)
	}
	arrived("Incr on the second instance", store.EventChanged)
	wantFields(t, "Load after writes on the second instance", map[string]string{"a": "1", "b": "2", "n": "3"}, load(t, st, id).Fields)
	if err := st2.Delete(t.Context(), id); err != nil {
		t.Fatalf("Delete on the second instance: want nil error; got %v", err)
	}
	arrived("Delete on the second instance", store.EventDeleted)
	wantGone(t, st, id, "after Delete on the second instance")
	if err := st.Create(t.Context(), id, store.Record{}, hour); err != nil {
		t.Errorf("Create after Delete on the second instance: want nil error; got %v", err)
	}
	err := st2.Create(t.Context(), id, store.Record{}, hour)
	wantErr(t, "Create on the second instance of an id the first created", store.ErrExists, err)
}
