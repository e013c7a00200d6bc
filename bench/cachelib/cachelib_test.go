package cachelib

import (
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// lruGoroutine is the expiry goroutine of every expirable LRU, which v2.0.7 cannot stop.
const lruGoroutine = "github.com/hashicorp/golang-lru/v2/expirable.NewLRU"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(lruGoroutine+"[...].func1"))
}

// The session cache's bound and maximum age, as a large deployment would set them.
const (
	entries = 100_000
	maxAge  = time.Hour
)

// keys are session keys: 64 hex digits, as a SHA-256 of a session id.
var keys = func() []string {
	r := rand.New(rand.NewPCG(1, 2))
	ks := make([]string, entries)
	var b [32]byte
	for i := range ks {
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		ks[i] = hex.EncodeToString(b[:])
	}
	return ks
}()

// A pattern is the sequence of keys (as indexes into keys) the goroutines of a
// benchmark walk, each from its own starting point: precomputed, so that the random
// numbers cost nothing in the measured loop.
type pattern struct {
	name string
	idx  []int32
}

const patternLen = 1 << 20

var patterns = []pattern{
	{"uniform", func() []int32 {
		r := rand.New(rand.NewPCG(3, 4))
		idx := make([]int32, patternLen)
		for i := range idx {
			idx[i] = int32(r.IntN(entries))
		}
		return idx
	}()},
	// Zipf with s = 1.1: a few sessions take most requests (the top 1% of keys take
	// about 70% of them), the case where a lock on a hot entry would show.
	{"zipf", func() []int32 {
		z := rand.NewZipf(rand.New(rand.NewPCG(5, 6)), 1.1, 1, entries-1)
		idx := make([]int32, patternLen)
		for i := range idx {
			idx[i] = int32(z.Uint64())
		}
		return idx
	}()},
}

// A workload is what each operation of a benchmark does, by its percentile
// (0..99): below invalidate it invalidates the key, below set it sets it, and
// otherwise it gets it (and sets it on a miss, as the session cache loads a missing
// record from the store).
type workload struct {
	name            string
	invalidate, set int
}

var workloads = []workload{
	{"read", 0, 0},
	{"mix-5set-1inval", 1, 6},
}

// newRecords returns one record per key, expiring with the cache's maximum age, so
// that the benchmarks allocate no value: allocs/op is the library's.
func newRecords() []*record {
	expires := time.Now().Add(2 * maxAge).UnixNano()
	rs := make([]*record, entries)
	for i := range rs {
		rs[i] = &record{fields: map[string][]byte{"k": []byte(`"teal"`)}, expires: expires}
	}
	return rs
}

// BenchmarkCache measures each library on each workload and key pattern, with
// b.RunParallel (GOMAXPROCS goroutines; 2 on the bench machine) on a cache full of
// 100,000 entries bounded at 100,000. miss% is the Gets that found nothing: in the read
// workload, the entries the library evicted before it was full.
func BenchmarkCache(b *testing.B) {
	records := newRecords()
	for _, lib := range libraries {
		// One cache per library, filled again before each workload: b.Run calls its
		// function several times as it finds b.N, and a full cache takes a while to fill.
		c := lib.new(entries, maxAge)
		for _, w := range workloads {
			for _, p := range patterns {
				for i, k := range keys {
					c.Set(k, records[i])
				}
				b.Run(lib.name+"/"+w.name+"/"+p.name, func(b *testing.B) {
					benchWorkload(b, c, records, w, p)
				})
			}
		}
		c.Close()
	}
}

func benchWorkload(b *testing.B, c cache, records []*record, w workload, p pattern) {
	var (
		start        atomic.Int64
		gets, misses atomic.Int64
	)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Goroutines start far apart in the pattern, and the percentile walks a cycle
		// of 100 that is co-prime with nothing in the pattern's order.
		g0 := start.Add(1)
		i := int(g0*7919*131) % patternLen
		op := int(g0*37) % 100
		var g, m int64
		for pb.Next() {
			k := int(p.idx[i])
			i = (i + 1) & (patternLen - 1)
			op = (op + 1) % 100
			switch {
			case op < w.invalidate:
				c.Invalidate(keys[k])
			case op < w.set:
				c.Set(keys[k], records[k])
			default:
				g++
				if v, ok := c.Get(keys[k]); !ok {
					m++
					c.Set(keys[k], records[k])
				} else if v != records[k] {
					b.Errorf("Get(%s) returned the record of another key", keys[k])
					return
				}
			}
		}
		gets.Add(g)
		misses.Add(m)
	})
	b.StopTimer()
	if n := gets.Load(); n > 0 {
		b.ReportMetric(100*float64(misses.Load())/float64(n), "miss%")
	}
}

// TestLibraries checks that every library does what the session cache asks of it, so
// that the benchmarks compare caches that work.
func TestLibraries(t *testing.T) {
	for _, lib := range libraries {
		t.Run(lib.name, func(t *testing.T) {
			const n = 1000
			c := lib.new(n, maxAge)
			defer c.Close()
			records := newRecords()[:2*n]

			for i := range n {
				c.Set(keys[i], records[i])
			}
			for i := range n {
				if v, ok := c.Get(keys[i]); ok && v != records[i] {
					t.Fatalf("Get(key %d): want its record; got another", i)
				}
			}
			if v, ok := c.Get(keys[0]); !ok || v != records[0] {
				t.Errorf("Get(key 0) after Set: want its record; got %v, %v", v, ok)
			}
			c.Invalidate(keys[0])
			if _, ok := c.Get(keys[0]); ok {
				t.Error("Get(key 0) after Invalidate: want none; got one")
			}
			c.InvalidateAll()
			for i := range n {
				if _, ok := c.Get(keys[i]); ok {
					t.Fatalf("Get(key %d) after InvalidateAll: want none; got one", i)
				}
			}

			// The bound: twice as many keys as entries.
			for i := range 2 * n {
				c.Set(keys[i], records[i])
			}
			if oc, ok := c.(otterCache); ok {
				oc.c.CleanUp() // otter evicts after the write, on its executor
			}
			held := 0
			for i := range 2 * n {
				if _, ok := c.Get(keys[i]); ok {
					held++
				}
			}
			t.Logf("%d of %d keys held with a bound of %d", held, 2*n, n)
			if bounded := lib.name != "map-rwmutex-unbounded"; bounded && held > n {
				t.Errorf("want at most %d keys held; got %d", n, held)
			}
		})
	}
}

// TestExpiry checks that a record is not served past its own expiry, before the
// cache's maximum age.
func TestExpiry(t *testing.T) {
	const ttl = 100 * time.Millisecond
	for _, lib := range libraries {
		t.Run(lib.name, func(t *testing.T) {
			c := lib.new(10, maxAge)
			defer c.Close()
			r := &record{expires: time.Now().Add(ttl).UnixNano()}
			c.Set(keys[0], r)
			_, ok := c.Get(keys[0])
			// Only a machine stalled for the whole ttl misses here.
			if !ok && time.Now().UnixNano() < r.expires-int64(ttl/2) {
				t.Error("Get before the expiry: want the record; got none")
			}
			// Waiting for the clock is the point; the coarse clock may lag by its
			// resolution (1 ms), or more on a loaded machine: 50 ms is generous.
			time.Sleep(time.Until(time.Unix(0, r.expires)) + 50*time.Millisecond)
			if _, ok := c.Get(keys[0]); ok {
				t.Error("Get 50 ms after the expiry: want none; got the record")
			}
		})
	}
}

// TestGoroutines records which libraries can stop their goroutines: otter can
// (StopAllGoroutines), the expirable LRU of golang-lru v2.0.7 cannot, so a session
// cache built on it would leave one goroutine behind per cache, and goleak in every
// TestMain would have to ignore it.
func TestGoroutines(t *testing.T) {
	for _, lib := range libraries {
		t.Run(lib.name, func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			c := lib.new(10, maxAge)
			c.Set(keys[0], newRecords()[0])
			c.Close()
			err := goleak.Find(before)
			t.Logf("after Close: %v", err)
			leaked := err != nil && strings.Contains(err.Error(), lruGoroutine)
			if want := lib.name == "golang-lru-expirable"; leaked != want {
				t.Errorf("expiry goroutine left after Close: want %v; got %v", want, leaked)
			}
			if err != nil && !leaked {
				t.Errorf("goroutines left after Close: %v", err)
			}
		})
	}
}
