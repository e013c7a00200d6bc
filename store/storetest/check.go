package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

func (s *suite) checkTests() []test {
	return []test{
		{"ContextCanceled", s.testContext(context.Canceled)},
		{"ContextDeadline", s.testContext(context.DeadlineExceeded)},
		{"EmptyID", s.testEmptyID},
		{"ReservedField", s.testReservedField},
		{"EmptyFieldName", s.testEmptyFieldName},
		{"TooLargeCreate", s.testTooLargeCreate},
		{"TooLargeSave", s.testTooLargeSave},
		{"TooLargeGrowth", s.testTooLargeGrowth},
		{"TooLargeIncr", s.testTooLargeIncr},
	}
}

// calls returns a call of every method that takes a context, each of which would succeed
// with a live context.
func calls(t *testing.T, st store.Store) []struct {
	name string
	fn   func(ctx context.Context) error
} {
	id, owner, ticket := newID("id"), newID("owner"), newID("ticket")
	create(t, st, id, store.Record{Fields: map[string]string{"a": "1"}, Owner: owner}, hour)
	if err := st.PutTicket(t.Context(), ticket, "v", hour); err != nil {
		t.Fatalf("PutTicket: want nil error; got %v", err)
	}
	return []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"Create", func(ctx context.Context) error { return st.Create(ctx, newID("id"), store.Record{}, hour) }},
		{"Load", func(ctx context.Context) error { _, err := st.Load(ctx, id, 0); return err }},
		{"Load with touch", func(ctx context.Context) error { _, err := st.Load(ctx, id, hour); return err }},
		{"Save", func(ctx context.Context) error {
			return st.Save(ctx, id, store.Change{Set: map[string]string{"a": "2"}}, hour)
		}},
		{"Incr", func(ctx context.Context) error { _, err := st.Incr(ctx, id, "n", 1); return err }},
		{"Touch", func(ctx context.Context) error { return st.Touch(ctx, id, hour) }},
		{"Sessions", func(ctx context.Context) error { _, err := st.Sessions(ctx, owner); return err }},
		{"DeleteOwner", func(ctx context.Context) error { _, err := st.DeleteOwner(ctx, owner, id); return err }},
		{"PutTicket", func(ctx context.Context) error { return st.PutTicket(ctx, newID("ticket"), "v", hour) }},
		{"TakeTicket", func(ctx context.Context) error { _, err := st.TakeTicket(ctx, ticket); return err }},
		{"Delete", func(ctx context.Context) error { return st.Delete(ctx, id) }},
	}
}

// testContext checks that every method honours a context that is already done.
func (s *suite) testContext(want error) func(t *testing.T) {
	return func(t *testing.T) {
		st := s.newStore(t)
		var ctx context.Context
		var cancel context.CancelFunc
		if want == context.Canceled {
			ctx, cancel = context.WithCancel(context.Background())
			cancel()
		} else {
			ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel()
		}
		for _, c := range calls(t, st) {
			wantErr(t, c.name+" with a done context", want, c.fn(ctx))
		}
	}
}

func (s *suite) testEmptyID(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	set := store.Change{Set: map[string]string{"a": "1"}}
	checks := []struct {
		name string
		err  error
	}{
		{"Create", st.Create(ctx, "", store.Record{}, hour)},
		{"Load", func() error { _, err := st.Load(ctx, "", 0); return err }()},
		{"Save", st.Save(ctx, "", set, hour)},
		{"Incr", func() error { _, err := st.Incr(ctx, "", "n", 1); return err }()},
		{"Touch", st.Touch(ctx, "", hour)},
		{"Delete", st.Delete(ctx, "")},
		{"Sessions", func() error { _, err := st.Sessions(ctx, ""); return err }()},
		{"DeleteOwner", func() error { _, err := st.DeleteOwner(ctx, ""); return err }()},
		{"PutTicket", st.PutTicket(ctx, "", "v", hour)},
		{"TakeTicket", func() error { _, err := st.TakeTicket(ctx, ""); return err }()},
	}
	for _, c := range checks {
		wantErr(t, c.name+` with ""`, store.ErrEmptyID, c.err)
	}
}

// testReservedField checks that no method lets a caller write a reserved field, and
// that the store's own fields never show in a loaded record.
func (s *suite) testReservedField(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	reserved := store.ReservedPrefix + "owner"

	id := newID("id")
	err := st.Create(ctx, id, store.Record{Fields: map[string]string{"a": "1", reserved: "x"}}, hour)
	wantErr(t, "Create with a reserved field", store.ErrReservedField, err)
	wantGone(t, st, id, "after Create with a reserved field")

	owner := newID("owner")
	create(t, st, id, store.Record{Fields: map[string]string{"a": "1"}, Owner: owner, Deadline: time.Now().Add(hour)}, hour)
	want := map[string]string{"a": "1"}
	changes := []store.Change{
		{Set: map[string]string{"b": "2", reserved: "x"}},
		{Set: map[string]string{"b": "2"}, Delete: []string{reserved}},
		{Set: map[string]string{store.ReservedPrefix: "x"}},
	}
	for _, ch := range changes {
		wantErr(t, fmt.Sprintf("Save of %q", ch), store.ErrReservedField, st.Save(ctx, id, ch, hour))
		wantFields(t, "Load after Save of a reserved field", want, load(t, st, id).Fields)
	}
	_, err = st.Incr(ctx, id, reserved, 1)
	wantErr(t, "Incr of a reserved field", store.ErrReservedField, err)
	rec := load(t, st, id)
	wantFields(t, "Load after Incr of a reserved field", want, rec.Fields)
	if rec.Owner != owner {
		t.Errorf("Owner after writes of reserved fields: want %q; got %q", owner, rec.Owner)
	}
}

// testEmptyFieldName checks that an empty field name is refused with ErrEmptyField
// (storekit.CheckField) and that nothing is written.
func (s *suite) testEmptyFieldName(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	id := newID("id")
	err := st.Create(ctx, id, store.Record{Fields: map[string]string{"": "x"}}, hour)
	wantErr(t, "Create with an empty field name", store.ErrEmptyField, err)
	wantGone(t, st, id, "after Create with an empty field name")

	create(t, st, id, store.Record{Fields: map[string]string{"a": "1"}}, hour)
	want := map[string]string{"a": "1"}
	for _, ch := range []store.Change{
		{Set: map[string]string{"b": "2", "": "x"}},
		{Set: map[string]string{"b": "2"}, Delete: []string{""}},
	} {
		wantErr(t, fmt.Sprintf("Save of %q", ch), store.ErrEmptyField, st.Save(ctx, id, ch, hour))
	}
	_, err = st.Incr(ctx, id, "", 1)
	wantErr(t, "Incr with an empty field name", store.ErrEmptyField, err)
	wantFields(t, "Load after writes with an empty field name", want, load(t, st, id).Fields)
}

// A record's size is storekit.Size: the lengths of its field names and values.
const smallLimit = 1024

func (s *suite) testTooLargeCreate(t *testing.T) {
	st := s.newStoreLimit(t, smallLimit)
	ctx := t.Context()
	owner := newID("owner")

	id := newID("id")
	over := map[string]string{"a": strings.Repeat("x", smallLimit-1), "b": ""}
	err := st.Create(ctx, id, store.Record{Fields: over, Owner: owner}, hour)
	wantErr(t, fmt.Sprintf("Create of %d bytes", storekit.Size(over)), store.ErrTooLarge, err)
	wantGone(t, st, id, "after Create of a record too large")
	got, err := st.Sessions(ctx, owner)
	if err != nil || len(got) != 0 {
		t.Errorf("Sessions after Create of a record too large: want [] and nil error; got %q and %v", got, err)
	}

	exact := map[string]string{"a": strings.Repeat("x", smallLimit-1)}
	create(t, st, id, store.Record{Fields: exact}, hour)
	wantFields(t, "Load of a record of exactly the limit", exact, load(t, st, id).Fields)
}

func (s *suite) testTooLargeSave(t *testing.T) {
	st := s.newStoreLimit(t, smallLimit)
	ctx := t.Context()
	id := newID("id")
	fields := map[string]string{"a": strings.Repeat("a", 499), "b": strings.Repeat("b", 499)} // 1000 bytes
	create(t, st, id, store.Record{Fields: fields}, hour)

	over := []store.Change{
		{Set: map[string]string{"c": strings.Repeat("c", 24)}},           // 1025
		{Set: map[string]string{"a": strings.Repeat("a", 524)}},          // 1025 by growing a value
		{Set: map[string]string{"a": "", "c": strings.Repeat("c", 523)}}, // 1025 = 1+0 + 500 + 1+523
	}
	for _, ch := range over {
		err := st.Save(ctx, id, ch, hour)
		wantErr(t, "Save past the limit", store.ErrTooLarge, err)
		wantFields(t, "Load after Save past the limit", fields, load(t, st, id).Fields)
	}

	// Changes that end at or under the limit pass, counting replaced and deleted
	// fields.
	fit := []struct {
		ch   store.Change
		want map[string]string
	}{
		{
			store.Change{Set: map[string]string{"c": strings.Repeat("c", 23)}}, // 1024
			map[string]string{"a": fields["a"], "b": fields["b"], "c": strings.Repeat("c", 23)},
		},
		{
			store.Change{Set: map[string]string{"a": strings.Repeat("A", 523)}, Delete: []string{"c"}}, // 1024
			map[string]string{"a": strings.Repeat("A", 523), "b": fields["b"]},
		},
		{
			store.Change{Set: map[string]string{"d": strings.Repeat("d", 1022)}, Delete: []string{"a", "b"}}, // 1023
			map[string]string{"d": strings.Repeat("d", 1022)},
		},
	}
	for _, f := range fit {
		if err := st.Save(ctx, id, f.ch, hour); err != nil {
			t.Fatalf("Save to %d bytes, limit %d: want nil error; got %v", storekit.Size(f.want), smallLimit, err)
		}
		wantFields(t, "Load after Save under the limit", f.want, load(t, st, id).Fields)
	}
}

// testTooLargeGrowth checks that many small Saves of distinct fields cannot grow a
// record past the limit either.
func (s *suite) testTooLargeGrowth(t *testing.T) {
	st := s.newStoreLimit(t, smallLimit)
	ctx := t.Context()
	id := newID("id")
	create(t, st, id, store.Record{}, hour)

	want := map[string]string{}
	value := strings.Repeat("v", 90)
	for i := range 100 {
		name := fmt.Sprintf("f%03d", i) // 94 bytes a field
		err := st.Save(ctx, id, store.Change{Set: map[string]string{name: value}}, hour)
		if storekit.Size(want)+len(name)+len(value) <= smallLimit {
			if err != nil {
				t.Fatalf("Save #%d to %d bytes: want nil error; got %v", i+1, storekit.Size(want)+len(name)+len(value), err)
			}
			want[name] = value
			continue
		}
		wantErr(t, fmt.Sprintf("Save #%d past the limit", i+1), store.ErrTooLarge, err)
		break
	}
	wantFields(t, "Load after growing to the limit", want, load(t, st, id).Fields)
	if _, err := st.Incr(ctx, id, "n", 1); err != nil {
		t.Errorf("Incr of a record with room: want nil error; got %v", err)
	}
}

// testTooLargeIncr checks that Incr does not add a field that would take the record
// past the limit, counting the field's name and its value's digits and sign, and that
// it then writes nothing.
func (s *suite) testTooLargeIncr(t *testing.T) {
	st := s.newStoreLimit(t, smallLimit)
	ctx := t.Context()
	id := newID("id")
	fields := map[string]string{"a": strings.Repeat("x", smallLimit-6)} // 1019 bytes
	create(t, st, id, store.Record{Fields: fields}, hour)

	for _, c := range []struct {
		field string
		delta int64
	}{
		{"nnnn", 10},  // 1019 + 4 + 2
		{"n", -1000},  // 1019 + 1 + 5: the sign counts
		{"nn", -1000}, // 1019 + 2 + 5
	} {
		_, err := st.Incr(ctx, id, c.field, c.delta)
		wantErr(t, fmt.Sprintf("Incr(%q, %d) of a new field past the limit", c.field, c.delta), store.ErrTooLarge, err)
		wantFields(t, "Load after Incr past the limit", fields, load(t, st, id).Fields)
	}

	// 1019 + 1 + 4: exactly the limit.
	if n, err := st.Incr(ctx, id, "n", -100); err != nil || n != -100 {
		t.Fatalf("Incr of a new field to exactly the limit: want -100 and nil error; got %d and %v", n, err)
	}
	want := map[string]string{"a": fields["a"], "n": "-100"}
	wantFields(t, "Load after Incr to the limit", want, load(t, st, id).Fields)
}
