package cache

import (
	"context"
	"errors"
	"time"

	"github.com/mpsession/mpsession/store"
)

// Versioned is implemented by a store that counts the writes of each session's fields
// (redisstore.Store, and the views its events' From return; session.Bounded keeps
// them): a record at version v holds every write up to v and none after it, and each
// Save with a change and each Incr returns the version it made. The cache then applies
// the concurrent writes of its process in the store's order, whatever order their
// replies come back in, instead of dropping the entry; over a store without it, it
// falls back to the shard sequences (see update). The cache uses it only when both the
// store and its view for the cache's origin implement it.
type Versioned interface {
	// LoadVersion is Load that also returns the session's version (0 for a record
	// written before the store counted them).
	LoadVersion(ctx context.Context, id string, touch time.Duration) (*store.Record, uint64, error)
	// SaveVersion is Save that also returns the version after the write; a change that
	// writes nothing leaves it as it was.
	SaveVersion(ctx context.Context, id string, ch store.Change, idle time.Duration) (uint64, error)
	// IncrVersion is Incr that also returns the version after the write.
	IncrVersion(ctx context.Context, id, field string, delta int64) (int64, uint64, error)
}

// writes is what the cache knows of one session's versioned writes and loads under
// way in this process. It lives in Store.writes while one is under way, under c.mu.
//
// The rules, each under c.mu, with e the entry of the session:
//   - A write that returned version v applies its change to e when e is at v-1, and
//     then the changes waiting for the versions after it, in order; v <= e's version
//     is already in e. Otherwise it waits (in waiting) for the writes before it, so
//     that e always holds a state the store had, and every write that returned to its
//     caller is in e: a process's own writes are seen by its next read.
//   - A gap that no write of this process under way can fill (sent is 0) is another
//     process's write, or one of ours that failed: e is dropped, and the waiting
//     writes return. So is e on any event that drops it, and on a failed write. A write
//     never waits longer than the writes of its session that were under way with it.
//   - A load at version l fills the cache only if no drop of the shard (events, and
//     writes without versions) happened meanwhile, l is at least every version a write
//     of this process returned (acked), and l is newer than e.
type writes struct {
	sent    int    // versioned writes sent whose reply is not handled yet
	loads   int    // loads under way
	acked   uint64 // the newest version a write returned to its caller
	waiting map[uint64]*pendingWrite
}

// pendingWrite is a write's change waiting for the versions before its own.
type pendingWrite struct {
	change func(*entry)
	done   chan struct{} // closed when it leaves waiting; nil until its writer waits
}

// release removes the change of version v from waiting and lets its writer return.
// The write counts as acknowledged from now on (acked), not only once its writer runs
// again: meanwhile the entry may go (evicted, expired) and a load that read the store
// before the write must not fill it.
func (w *writes) release(v uint64) {
	p := w.waiting[v]
	delete(w.waiting, v)
	if p == nil {
		return
	}
	w.acked = max(w.acked, v)
	if p.done != nil {
		close(p.done)
	}
}

// track returns the record of hash, counting one more write or load under way.
func (c *Store) track(hash string, write bool) *writes {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.writes[hash]
	if w == nil {
		w = &writes{}
		c.writes[hash] = w
	}
	if write {
		w.sent++
	} else {
		w.loads++
	}
	return w
}

// settle forgets the record of hash once nothing is under way; c.mu held.
func (c *Store) settle(hash string, w *writes) {
	if w.sent == 0 && w.loads == 0 && len(w.waiting) == 0 && c.writes[hash] == w {
		delete(c.writes, hash)
	}
}

// writeVersion runs a versioned write of the session hash and applies change to its
// entry in the store's order (see writes).
func (c *Store) writeVersion(hash string, write func() (uint64, error), change func(*entry)) error {
	w := c.track(hash, true)
	v, err := write()
	c.mu.Lock()
	defer c.mu.Unlock()
	w.sent--
	if err != nil {
		c.dropLocked(hash)
		c.applyWaiting(hash, w) // the others' gaps may be for good now
		c.settle(hash, w)
		return err
	}
	p := &pendingWrite{change: change}
	if w.waiting == nil {
		w.waiting = map[uint64]*pendingWrite{}
	}
	if old := w.waiting[v]; old != nil {
		// Two writes with one version: the session was deleted and created again
		// meanwhile. Its events drop the entry; meanwhile no order is known.
		c.dropLocked(hash)
	}
	w.waiting[v] = p
	c.applyWaiting(hash, w)
	for w.waiting[v] == p {
		p.done = make(chan struct{})
		c.mu.Unlock()
		<-p.done
		c.mu.Lock()
	}
	w.acked = max(w.acked, v)
	c.settle(hash, w)
	return nil
}

// applyWaiting applies to the entry of hash the waiting changes that follow its version,
// in order, releases those it holds already, and drops the entry when a gap remains
// that no write under way can fill. Without an entry every waiting write returns.
// c.mu held.
func (c *Store) applyWaiting(hash string, w *writes) {
	if len(w.waiting) == 0 {
		return
	}
	e, ok := c.entries.Peek(hash)
	if !ok {
		for v := range w.waiting {
			w.release(v)
		}
		return
	}
	for v := range w.waiting {
		if v <= e.version {
			w.release(v)
		}
	}
	next := e
	for {
		p, ok := w.waiting[next.version+1]
		if !ok {
			break
		}
		if next == e {
			next = e.clone()
		}
		p.change(next)
		next.version++
		w.release(next.version)
	}
	if next != e {
		c.entries.Add(hash, next)
	}
	if len(w.waiting) > 0 && w.sent == 0 {
		c.dropLocked(hash)
	}
}

// loadVersion is Load's miss over a Versioned store: it fills the cache by the rules
// of writes.
func (c *Store) loadVersion(ctx context.Context, hash, id string, touch time.Duration, now time.Time, seq, epoch uint64) (*store.Record, error) {
	w := c.track(hash, false)
	rec, version, err := c.versions.LoadVersion(ctx, id, touch)
	c.mu.Lock()
	defer c.mu.Unlock()
	w.loads--
	defer c.settle(hash, w)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.entries.Remove(hash)
		}
		return nil, err
	}
	if !c.health.EventsLive() || c.shard(hash).Load() != seq || c.epoch.Load() != epoch || version < w.acked || !c.watching(hash) {
		return rec, nil
	}
	if old, ok := c.entries.Peek(hash); ok && old.version >= version {
		return rec, nil
	}
	touched := rec.ExpiresAt.Add(-c.idle) // as in Load
	if touch > 0 {
		touched = now
	}
	c.entries.Add(hash, &entry{fields: cloneFields(rec.Fields), owner: rec.Owner, deadline: rec.Deadline,
		expires: rec.ExpiresAt, touched: touched, loaded: now, version: version})
	c.applyWaiting(hash, w)
	return rec, nil
}
