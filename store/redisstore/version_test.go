package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

// versioned is what the session cache (internal/cache.Versioned) asks of the store and
// of the views its events' From return.
type versioned interface {
	LoadVersion(ctx context.Context, id string, touch time.Duration) (*store.Record, uint64, error)
	SaveVersion(ctx context.Context, id string, ch store.Change, idle time.Duration) (uint64, error)
	IncrVersion(ctx context.Context, id, field string, delta int64) (int64, uint64, error)
}

var (
	_ versioned = (*Store)(nil)
	_ versioned = originView{}
)

// loadVersion loads id and returns its version, failing t on an error.
func loadVersion(t *testing.T, s versioned, id string) (*store.Record, uint64) {
	t.Helper()
	rec, v, err := s.LoadVersion(context.Background(), id, 0)
	if err != nil {
		t.Fatalf("LoadVersion: %v", err)
	}
	return rec, v
}

// TestVersions checks the session's version: each write of its fields (Save with a
// change, Incr, plain or versioned, own or through a view) adds one, and returns it;
// what writes no field, or fails, leaves it; a record without the field reads 0.
func TestVersions(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			client := b.client(t)
			s := newStore(t, client, Config{MaxRecordBytes: 256})
			ctx := context.Background()
			id := "version-" + strconv.FormatInt(time.Now().UnixNano(), 10)
			if err := s.Create(ctx, id, store.Record{Fields: map[string]string{"n": "0", "s": "x"}}, time.Hour); err != nil {
				t.Fatal(err)
			}
			want := uint64(0)
			check := func(what string, got uint64, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if got != want {
					t.Fatalf("%s: version %d; want %d", what, got, want)
				}
				rec, v := loadVersion(t, s, id)
				if v != want {
					t.Fatalf("after %s: LoadVersion says %d; want %d", what, v, want)
				}
				for k := range rec.Fields {
					if strings.HasPrefix(k, store.ReservedPrefix) {
						t.Fatalf("after %s: reserved field %q handed out", what, k)
					}
				}
			}
			_, v := loadVersion(t, s, id)
			check("Create", v, nil)

			want++
			v, err := s.SaveVersion(ctx, id, store.Change{Set: map[string]string{"a": "1"}}, time.Hour)
			check("SaveVersion set", v, err)

			want++
			n, v, err := s.IncrVersion(ctx, id, "n", 5)
			check("IncrVersion", v, err)
			if n != 5 {
				t.Fatalf("IncrVersion: n=%d; want 5", n)
			}

			// Nothing written: the version stays, with or without an extension.
			v, err = s.SaveVersion(ctx, id, store.Change{}, time.Hour)
			check("SaveVersion empty, idle", v, err)
			v, err = s.SaveVersion(ctx, id, store.Change{}, 0)
			check("SaveVersion empty", v, err)
			check("Touch", want, s.Touch(ctx, id, time.Hour))

			want++
			v, err = s.SaveVersion(ctx, id, store.Change{Delete: []string{"a"}}, 0)
			check("SaveVersion delete", v, err)

			// The plain writes count too: a process that does not read versions
			// still orders its writes for one that does.
			want++
			check("Save", want, s.Save(ctx, id, store.Change{Set: map[string]string{"b": "2"}}, 0))
			want++
			_, err = s.Incr(ctx, id, "n", 1)
			check("Incr", want, err)

			// Writes through a view of From, with its origin.
			view, ok := s.Capabilities().Events.From("someone").(versioned)
			if !ok {
				t.Fatal("the view of From has no versioned methods")
			}
			want++
			v, err = view.SaveVersion(ctx, id, store.Change{Set: map[string]string{"c": "3"}}, 0)
			check("view SaveVersion", v, err)
			want++
			_, v, err = view.IncrVersion(ctx, id, "n", 1)
			check("view IncrVersion", v, err)
			if _, v, err = view.LoadVersion(ctx, id, 0); err != nil || v != want {
				t.Fatalf("view LoadVersion: %d, %v; want %d", v, err, want)
			}

			// Failed writes leave it.
			_, err = s.SaveVersion(ctx, id, store.Change{Set: map[string]string{"big": strings.Repeat("x", 300)}}, 0)
			if !errors.Is(err, store.ErrTooLarge) {
				t.Fatalf("SaveVersion too large: %v", err)
			}
			check("SaveVersion too large", want, nil)
			_, _, err = s.IncrVersion(ctx, id, "s", 1)
			if !errors.Is(err, store.ErrNotInteger) {
				t.Fatalf("IncrVersion of a string: %v", err)
			}
			check("IncrVersion not an integer", want, nil)

			// A session that does not exist has none.
			if _, err := s.SaveVersion(ctx, id+"-none", store.Change{Set: map[string]string{"a": "1"}}, 0); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("SaveVersion of no session: %v", err)
			}
			if _, _, err := s.IncrVersion(ctx, id+"-none", "n", 1); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("IncrVersion of no session: %v", err)
			}
			if _, _, err := s.LoadVersion(ctx, id+"-none", 0); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("LoadVersion of no session: %v", err)
			}

			// A record written before versions existed reads 0, and counts from there.
			if err := client.HDel(ctx, s.sessionKey(store.Hash(id)), fieldVersion).Err(); err != nil {
				t.Fatal(err)
			}
			want = 0
			check("a record without the field", 0, nil)
			want = 1
			_, v, err = s.IncrVersion(ctx, id, "n", 1)
			check("IncrVersion of a record without the field", v, err)

			// A session created again starts again at 0.
			if err := s.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			if err := s.Create(ctx, id, store.Record{Fields: map[string]string{"n": "0"}}, time.Hour); err != nil {
				t.Fatal(err)
			}
			want = 0
			check("created again", 0, nil)
		})
	}
}

// TestConcurrentIncrVersion: concurrent increments of one session each get a version
// of their own, one more per write in the order Redis ran them: the value an increment
// returns and its version go together.
func TestConcurrentIncrVersion(t *testing.T) {
	t.Parallel()
	s := newStore(t, newClient(t), Config{})
	ctx := context.Background()
	id := "version-concurrent-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := s.Create(ctx, id, store.Record{Fields: map[string]string{"n": "0"}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 16, 25
	var (
		mu   sync.Mutex
		seen = map[uint64]int64{}
		wg   sync.WaitGroup
	)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				n, v, err := s.IncrVersion(ctx, id, "n", 1)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if old, dup := seen[v]; dup {
					t.Errorf("version %d returned twice (n=%d and n=%d)", v, old, n)
				}
				seen[v] = n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for v := uint64(1); v <= goroutines*each; v++ {
		if n, ok := seen[v]; !ok || n != int64(v) {
			t.Fatalf("version %d: n=%d (returned: %v); want n=%d", v, n, ok, v)
		}
	}
	if rec, v := loadVersion(t, s, id); v != goroutines*each || rec.Fields["n"] != strconv.Itoa(goroutines*each) {
		t.Fatalf("LoadVersion: n=%s at version %d; want %d at %d", rec.Fields["n"], v, goroutines*each, goroutines*each)
	}
}
