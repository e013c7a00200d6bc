// Package storekit is for those who write a store: the checks, sizes and arithmetic
// every store must do alike, so that a session behaves the same on each. Applications
// do not need it; store/storetest checks a store against the whole contract.
package storekit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mpsession/mpsession/store"
)

// ExpiresAt returns min(now+idle, deadline), ignoring a zero deadline. Store
// implementations use it so that every store computes expiry the same way.
func ExpiresAt(now time.Time, idle time.Duration, deadline time.Time) time.Time {
	exp := now.Add(idle)
	if !deadline.IsZero() && deadline.Before(exp) {
		return deadline
	}
	return exp
}

// CheckID returns store.ErrEmptyID if id is empty. Store implementations call it first.
func CheckID(id string) error {
	if id == "" {
		return store.ErrEmptyID
	}
	return nil
}

// CheckField returns store.ErrEmptyField or store.ErrReservedField if name is empty or reserved.
func CheckField(name string) error {
	if name == "" {
		return store.ErrEmptyField
	}
	if strings.HasPrefix(name, store.ReservedPrefix) {
		return fmt.Errorf("%w: %q", store.ErrReservedField, name)
	}
	return nil
}

// CheckChange checks every field name in ch (see CheckField).
func CheckChange(ch store.Change) error {
	for k := range ch.Set {
		if err := CheckField(k); err != nil {
			return err
		}
	}
	for _, k := range ch.Delete {
		if err := CheckField(k); err != nil {
			return err
		}
	}
	return nil
}

// Size returns the number of bytes a record's fields take: the sum of the lengths of
// names and values. Stores compare it with their limit.
func Size(fields map[string]string) int {
	n := 0
	for k, v := range fields {
		n += len(k) + len(v)
	}
	return n
}

// TooLarge returns an error wrapping store.ErrTooLarge that says by how much.
func TooLarge(size, limit int) error {
	return fmt.Errorf("%w: %d bytes, limit %d", store.ErrTooLarge, size, limit)
}

// ParseInteger reads s as Redis reads a hash value in HINCRBY (string2ll in its
// util.c): an optional '-', then decimal digits without a leading zero ("0" alone is
// zero), within int64. strconv.ParseInt also takes "+5", "007" and "-0", which Redis
// refuses.
func ParseInteger(s string) (int64, bool) {
	if s == "0" {
		return 0, true
	}
	digits := strings.TrimPrefix(s, "-")
	// 20 bytes hold "-9223372036854775808"; longer is never an int64.
	if len(s) > 20 || digits == "" || digits[0] < '1' || digits[0] > '9' {
		return 0, false
	}
	for i := 1; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64) // now only the range can fail
	return n, err == nil
}

// CheckTopic returns store.ErrTopic unless topic is 1 to store.MaxTopicBytes bytes long.
func CheckTopic(topic string) error {
	if topic == "" || len(topic) > store.MaxTopicBytes {
		return store.ErrTopic
	}
	return nil
}

// Apply writes ch to fields: it sets the fields of ch.Set, then deletes those of
// ch.Delete, so that a field both set and deleted is deleted. It is for stores that
// hold a record as a map, so that they all apply a Change the same way; a store that
// applies it elsewhere (redisstore, in a Lua script) keeps the same order. fields must
// not be nil when ch sets a field.
func Apply(ch store.Change, fields map[string]string) {
	for name, v := range ch.Set {
		fields[name] = v
	}
	for _, name := range ch.Delete {
		delete(fields, name)
	}
}

// TouchEach extends the sessions ids one Touch at a time and returns one error per id:
// the TouchMany of a store that has no cheaper way.
func TouchEach(ctx context.Context, st store.Store, ids []string, idle time.Duration) []error {
	errs := make([]error, len(ids))
	for i, id := range ids {
		errs[i] = st.Touch(ctx, id, idle)
	}
	return errs
}

// Writes are a store's four writes that send events, each taking the origin its event
// carries ("" for none).
type Writes struct {
	Save        func(ctx context.Context, id string, ch store.Change, idle time.Duration, origin string) error
	Incr        func(ctx context.Context, id, field string, delta int64, origin string) (int64, error)
	Delete      func(ctx context.Context, id string, origin string) error
	DeleteOwner func(ctx context.Context, owner string, keep []string, origin string) (int, error)
}

// View returns st whose writes go through w with origin: what a store's
// store.Events.From returns. It panics on an origin for which store.ValidOrigin is
// false. Closing the view closes nothing.
func View(st store.Store, w Writes, origin string) store.Store {
	if !store.ValidOrigin(origin) {
		panic(fmt.Sprintf("storekit: invalid origin %q: 1 to 64 bytes of printable ASCII", origin))
	}
	return &view{Store: st, w: w, origin: origin}
}

type view struct {
	store.Store
	w      Writes
	origin string
}

func (v *view) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	return v.w.Save(ctx, id, ch, idle, v.origin)
}

func (v *view) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	return v.w.Incr(ctx, id, field, delta, v.origin)
}

func (v *view) Delete(ctx context.Context, id string) error { return v.w.Delete(ctx, id, v.origin) }

func (v *view) DeleteOwner(ctx context.Context, owner string, keep ...string) (int, error) {
	return v.w.DeleteOwner(ctx, owner, keep, v.origin)
}

func (v *view) Close() error { return nil }
