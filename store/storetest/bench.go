package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

// benchFields is a typical small session: what fibermp and an application keep, as JSON.
var benchFields = map[string]string{
	"user":     `{"id":1042,"nickname":"Ann","avatar":"https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132"}`,
	"cart":     `[{"sku":"A-17","qty":2},{"sku":"B-03","qty":1}]`,
	"theme":    `"dark"`,
	"score":    "1200",
	"lastSeen": `"2025-01-01T08:00:00Z"`,
}

// Bench benchmarks the operations of a request on s, as sub-benchmarks of b, so that
// every store reports the same figures:
//
//   - Load: a read-only request, Load without touch;
//   - LoadTouch: Load that extends the idle timeout;
//   - Save: a request that sets one field;
//   - Incr: a counter;
//   - LoadParallel, SaveParallel: the same from GOMAXPROCS goroutines, each on its own
//     session.
//
// The session holds five fields, about 200 bytes. Bench deletes the sessions it creates.
func Bench(b *testing.B, s store.Store) {
	ctx := context.Background()
	// newSession may run on RunParallel's goroutines, so it reports with b.Error.
	newSession := func(b *testing.B) (string, bool) {
		id := newID("bench")
		if err := s.Create(ctx, id, store.Record{Fields: benchFields, Owner: newID("owner")}, time.Hour); err != nil {
			b.Errorf("Create: %v", err)
			return "", false
		}
		b.Cleanup(func() { s.Delete(ctx, id) })
		return id, true
	}
	set := store.Change{Set: map[string]string{"theme": `"light"`}}

	b.Run("Load", func(b *testing.B) {
		id, ok := newSession(b)
		if !ok {
			return
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Load(ctx, id, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LoadTouch", func(b *testing.B) {
		id, ok := newSession(b)
		if !ok {
			return
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Load(ctx, id, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Save", func(b *testing.B) {
		id, ok := newSession(b)
		if !ok {
			return
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Save(ctx, id, set, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Incr", func(b *testing.B) {
		id, ok := newSession(b)
		if !ok {
			return
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Incr(ctx, id, "hits", 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LoadParallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			id, ok := newSession(b)
			for ok && pb.Next() {
				if _, err := s.Load(ctx, id, 0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("SaveParallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			id, ok := newSession(b)
			for ok && pb.Next() {
				if err := s.Save(ctx, id, set, time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
