package fiberstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

// ttlMargin is added to every TTL given to the backend. Backends count TTLs in whole
// seconds, and gofiber's memory driver reads a clock that lags by up to a second, so a
// blob must outlive the expiry written inside it by this much to be safe.
const ttlMargin = 2 * time.Second

// Store is a store.Store over a fiber.Storage backend. See the package doc for what it
// guarantees within one process and across processes.
type Store struct {
	b      backend
	prefix string
	max    int

	sessions stripes // session and ticket keys
	owners   stripes // owner index keys; taken after a session stripe, never before

	events *dispatcher
	closed atomic.Bool
}

// New returns a store that keeps its records in storage, which may be any gofiber/storage
// driver. The store does not own storage: Close leaves it open, and nothing calls its
// Reset.
func New(storage Storage, config ...Config) *Store {
	if storage == nil {
		panic("fiberstore: nil Storage")
	}
	cfg := configDefault(config...)
	s := &Store{
		b:      newBackend(storage),
		prefix: cfg.Prefix,
		max:    cfg.MaxRecordBytes,
		events: newDispatcher(),
	}
	s.sessions.init()
	s.owners.init()
	return s
}

// Close stops the store's event goroutine. It does not close the Storage passed to New.
// Methods called after Close return an error. Close must not be called from a subscriber.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.events.close()
	return nil
}

// Subscribe registers fn for events about sessions changed through this Store (and its
// views, see store.Events.From). Events stay in this process: the backend cannot carry
// them to others. It implements store.Events.Subscribe for Capabilities().Events.
func (s *Store) Subscribe(fn func(store.Event)) (func(), error) {
	return s.events.subscribe(fn)
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, id string, rec store.Record, idle time.Duration) error {
	const op = "create"
	if err := s.check(op, id); err != nil {
		return err
	}
	if idle <= 0 {
		return fmt.Errorf("fiberstore: %s: idle %v is not positive", op, idle)
	}
	for k := range rec.Fields {
		if err := storekit.CheckField(k); err != nil {
			return err
		}
	}
	if n := storekit.Size(rec.Fields); n > s.max {
		return storekit.TooLarge(n, s.max)
	}
	h := sha256.Sum256([]byte(id))
	key := s.key('s', &h)
	if err := s.sessions.lock(ctx, h[0]); err != nil {
		return wrap(op, err)
	}
	defer s.sessions.unlock(h[0])
	old, err := s.getRecord(ctx, op, key)
	if err != nil {
		return err
	}
	now := time.Now()
	if old != nil {
		if !old.expired(now.UnixMilli()) {
			return store.ErrExists
		}
		// The expired session is overwritten below; its owner's entry goes now.
		if old.owner != "" && old.owner != rec.Owner {
			if err := s.unindex(ctx, op, old.owner, h); err != nil {
				return err
			}
		}
		s.events.emit(store.Event{Kind: store.EventExpired, Hash: hex.EncodeToString(h[:])})
	}
	r := &record{
		deadline: unixMilli(rec.Deadline),
		owner:    rec.Owner,
		fields:   make(map[string]string, len(rec.Fields)),
	}
	for k, v := range rec.Fields {
		r.fields[k] = v
	}
	r.expires = expiresAt(now, idle, r.deadline)
	return s.put(ctx, op, key, &h, r, now.UnixMilli(), idle)
}

// Load implements store.Store.
//
// A Load with touch rewrites the blob only when that moves the expiry by at least touch/4,
// so most reads cost one backend call. After Load returns, the session expires no earlier
// than min(now + 3/4·touch, Deadline); Record.ExpiresAt is the expiry actually stored,
// which may be up to touch/4 earlier than now+touch. Load never shortens an expiry.
func (s *Store) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	const op = "load"
	if err := s.check(op, id); err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(id))
	key := s.key('s', &h)
	r, err := s.getRecord(ctx, op, key)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, store.ErrNotFound
	}
	now := time.Now()
	if r.expired(now.UnixMilli()) {
		if err := s.noticeExpired(ctx, op, key, &h); err != nil {
			return nil, err
		}
		return nil, store.ErrNotFound
	}
	if touch <= 0 || !needsTouch(r, now, touch) {
		return r.public(), nil
	}

	// Read again under the stripe: the blob may have changed since the unlocked read.
	if err := s.sessions.lock(ctx, h[0]); err != nil {
		return nil, wrap(op, err)
	}
	defer s.sessions.unlock(h[0])
	r, err = s.live(ctx, op, key, &h)
	if err != nil {
		return nil, err
	}
	now = time.Now()
	if needsTouch(r, now, touch) {
		r.expires = expiresAt(now, touch, r.deadline)
		if err := s.put(ctx, op, key, &h, r, now.UnixMilli(), touch); err != nil {
			return nil, err
		}
	}
	return r.public(), nil
}

// needsTouch reports whether extending r by touch moves its expiry by at least touch/4.
func needsTouch(r *record, now time.Time, touch time.Duration) bool {
	return expiresAt(now, touch, r.deadline)-r.expires >= max(touch.Milliseconds()/4, 1)
}

// Save implements store.Store.
func (s *Store) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	return s.save(ctx, id, ch, idle, "")
}

// save is Save; its event carries origin.
func (s *Store) save(ctx context.Context, id string, ch store.Change, idle time.Duration, origin string) error {
	const op = "save"
	if err := s.check(op, id); err != nil {
		return err
	}
	if err := storekit.CheckChange(ch); err != nil {
		return err
	}
	h := sha256.Sum256([]byte(id))
	key := s.key('s', &h)
	if err := s.sessions.lock(ctx, h[0]); err != nil {
		return wrap(op, err)
	}
	defer s.sessions.unlock(h[0])
	r, err := s.live(ctx, op, key, &h)
	if err != nil {
		return err
	}
	if ch.Empty() && idle <= 0 {
		return nil
	}
	storekit.Apply(ch, r.fields)
	if n := storekit.Size(r.fields); n > s.max {
		return storekit.TooLarge(n, s.max)
	}
	now := time.Now()
	if idle > 0 {
		r.expires = expiresAt(now, idle, r.deadline)
	}
	if err := s.put(ctx, op, key, &h, r, now.UnixMilli(), idle); err != nil {
		return err
	}
	if !ch.Empty() {
		s.events.emit(store.Event{Kind: store.EventChanged, Hash: hex.EncodeToString(h[:]), Fields: changed(ch), Origin: origin})
	}
	return nil
}

// changed lists the fields ch names, sorted, once each.
func changed(ch store.Change) []string {
	fields := make([]string, 0, len(ch.Set)+len(ch.Delete))
	for k := range ch.Set {
		fields = append(fields, k)
	}
	for _, k := range ch.Delete {
		if _, set := ch.Set[k]; !set {
			fields = append(fields, k)
		}
	}
	sort.Strings(fields)
	out := fields[:0]
	for i, k := range fields {
		if i == 0 || k != fields[i-1] {
			out = append(out, k)
		}
	}
	return out
}

// Incr implements store.Store. It is exact among the callers of one Store; see the
// package doc for several processes.
func (s *Store) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	return s.incr(ctx, id, field, delta, "")
}

// incr is Incr; its event carries origin.
func (s *Store) incr(ctx context.Context, id, field string, delta int64, origin string) (int64, error) {
	const op = "incr"
	if err := s.check(op, id); err != nil {
		return 0, err
	}
	if err := storekit.CheckField(field); err != nil {
		return 0, err
	}
	h := sha256.Sum256([]byte(id))
	key := s.key('s', &h)
	if err := s.sessions.lock(ctx, h[0]); err != nil {
		return 0, wrap(op, err)
	}
	defer s.sessions.unlock(h[0])
	r, err := s.live(ctx, op, key, &h)
	if err != nil {
		return 0, err
	}
	var n int64
	if v, ok := r.fields[field]; ok {
		if n, ok = storekit.ParseInteger(v); !ok {
			return 0, fmt.Errorf("%w: %q", store.ErrNotInteger, field)
		}
	}
	if (delta > 0 && n > math.MaxInt64-delta) || (delta < 0 && n < math.MinInt64-delta) {
		return 0, fmt.Errorf("fiberstore: %s: %w: %q: increment would overflow", op, store.ErrNotInteger, field)
	}
	n += delta
	r.fields[field] = strconv.FormatInt(n, 10)
	if size := storekit.Size(r.fields); size > s.max {
		return 0, storekit.TooLarge(size, s.max)
	}
	if err := s.put(ctx, op, key, &h, r, time.Now().UnixMilli(), 0); err != nil {
		return 0, err
	}
	s.events.emit(store.Event{Kind: store.EventChanged, Hash: hex.EncodeToString(h[:]), Fields: []string{field}, Origin: origin})
	return n, nil
}

// Touch implements store.Store. Unlike Load, it always writes the new expiry, and it may
// shorten one.
func (s *Store) Touch(ctx context.Context, id string, idle time.Duration) error {
	const op = "touch"
	if err := s.check(op, id); err != nil {
		return err
	}
	if idle <= 0 {
		return fmt.Errorf("fiberstore: %s: idle %v is not positive", op, idle)
	}
	h := sha256.Sum256([]byte(id))
	key := s.key('s', &h)
	if err := s.sessions.lock(ctx, h[0]); err != nil {
		return wrap(op, err)
	}
	defer s.sessions.unlock(h[0])
	r, err := s.live(ctx, op, key, &h)
	if err != nil {
		return err
	}
	now := time.Now()
	r.expires = expiresAt(now, idle, r.deadline)
	return s.put(ctx, op, key, &h, r, now.UnixMilli(), idle)
}

// TouchMany implements store.Store, one Touch at a time: a fiber.Storage has no batch
// of writes to do them in fewer round trips.
func (s *Store) TouchMany(ctx context.Context, ids []string, idle time.Duration) []error {
	return storekit.TouchEach(ctx, s, ids, idle)
}

// Delete implements store.Store. It also removes a session whose blob is corrupt.
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.delete(ctx, id, "")
}

// delete is Delete; its event carries origin.
func (s *Store) delete(ctx context.Context, id string, origin string) error {
	const op = "delete"
	if err := s.check(op, id); err != nil {
		return err
	}
	h := sha256.Sum256([]byte(id))
	key := s.key('s', &h)
	if err := s.sessions.lock(ctx, h[0]); err != nil {
		return wrap(op, err)
	}
	defer s.sessions.unlock(h[0])
	r, err := s.getRecord(ctx, op, key)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return err
	}
	if r == nil && err == nil {
		return nil
	}
	if err := s.b.del(ctx, key); err != nil {
		return wrap(op, err)
	}
	if r != nil && r.owner != "" {
		if err := s.unindex(ctx, op, r.owner, h); err != nil {
			return err
		}
	}
	ev := store.Event{Kind: store.EventDeleted, Hash: hex.EncodeToString(h[:]), Origin: origin}
	if r != nil && r.expired(time.Now().UnixMilli()) {
		ev = store.Event{Kind: store.EventExpired, Hash: ev.Hash} // an expiry has no origin
	}
	s.events.emit(ev)
	return nil
}

// live reads a session under its stripe lock. A missing session gives store.ErrNotFound;
// one found expired is removed and reported (EventExpired) first.
func (s *Store) live(ctx context.Context, op, key string, h *[32]byte) (*record, error) {
	r, err := s.getRecord(ctx, op, key)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, store.ErrNotFound
	}
	if r.expired(time.Now().UnixMilli()) {
		if err := s.expire(ctx, op, key, h, r); err != nil {
			return nil, err
		}
		return nil, store.ErrNotFound
	}
	return r, nil
}

// noticeExpired is called without the stripe lock when an unlocked read found the session
// expired; it removes the blob (so the event is sent once) if it is still the expired one.
func (s *Store) noticeExpired(ctx context.Context, op, key string, h *[32]byte) error {
	if err := s.sessions.lock(ctx, h[0]); err != nil {
		return wrap(op, err)
	}
	defer s.sessions.unlock(h[0])
	_, err := s.live(ctx, op, key, h)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		return nil // recreated meanwhile, or already gone
	}
	return err
}

// expire deletes the expired session r, takes it out of its owner's index and sends
// EventExpired. The caller holds the session's stripe.
func (s *Store) expire(ctx context.Context, op, key string, h *[32]byte, r *record) error {
	if err := s.b.del(ctx, key); err != nil {
		return wrap(op, err)
	}
	if r.owner != "" {
		if err := s.unindex(ctx, op, r.owner, *h); err != nil {
			return err
		}
	}
	s.events.emit(store.Event{Kind: store.EventExpired, Hash: hex.EncodeToString(h[:])})
	return nil
}

// put writes the session r, first raising its owner's index entry when r now expires
// later than the entry says. The entry gets span of headroom, so a session kept alive by
// reads updates its owner's index about once per span, not on every write. The caller
// holds the session's stripe.
func (s *Store) put(ctx context.Context, op, key string, h *[32]byte, r *record, now int64, span time.Duration) error {
	blob := func() error {
		if err := s.b.set(ctx, key, encodeRecord(r), ttl(now, r.expires)); err != nil {
			return wrap(op, err)
		}
		return nil
	}
	if r.owner == "" || r.expires <= r.indexed {
		return blob()
	}
	bound := r.expires + span.Milliseconds()
	if r.deadline != 0 {
		bound = min(bound, r.deadline)
	}
	oh := sha256.Sum256([]byte(r.owner))
	if err := s.owners.lock(ctx, oh[0]); err != nil {
		return wrap(op, err)
	}
	// The owner stripe stays held while the session blob is written, so that Sessions in
	// this process never sees the entry without its session and drops it.
	defer s.owners.unlock(oh[0])
	if err := s.indexUpsert(ctx, op, &oh, entry{hash: *h, until: bound}, now); err != nil {
		return err
	}
	r.indexed = bound
	return blob()
}

// getRecord returns nil, nil when the key holds nothing.
func (s *Store) getRecord(ctx context.Context, op, key string) (*record, error) {
	b, err := s.b.get(ctx, key)
	if err != nil {
		return nil, wrap(op, err)
	}
	if b == nil {
		return nil, nil
	}
	r, err := decodeRecord(b)
	if err != nil {
		return nil, fmt.Errorf("fiberstore: %s: key %s: %w", op, key, err)
	}
	return r, nil
}

func (r *record) public() *store.Record {
	out := &store.Record{
		Fields:    r.fields,
		Owner:     r.owner,
		ExpiresAt: time.UnixMilli(r.expires),
	}
	if r.deadline != 0 {
		out.Deadline = time.UnixMilli(r.deadline)
	}
	return out
}

func (s *Store) check(op, id string) error {
	if s.closed.Load() {
		return wrap(op, errClosed)
	}
	return storekit.CheckID(id)
}

// key returns <prefix><kind>:<base64url of the hash>. Base64 rather than the hex of
// store.Hash keeps the key at len(prefix)+45 bytes, within the VARCHAR(64) key column of
// the SQL drivers.
func (s *Store) key(kind byte, h *[32]byte) string {
	var buf [96]byte // on the stack for any sensible prefix
	b := append(buf[:0], s.prefix...)
	b = append(b, kind, ':')
	b = base64.RawURLEncoding.AppendEncode(b, h[:])
	return string(b)
}

func wrap(op string, err error) error { return fmt.Errorf("fiberstore: %s: %w", op, err) }

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixMilli(), 1)
}

func expiresAt(now time.Time, idle time.Duration, deadline int64) int64 {
	var d time.Time
	if deadline != 0 {
		d = time.UnixMilli(deadline)
	}
	return storekit.ExpiresAt(now, idle, d).UnixMilli()
}

// ttl is what the backend is told: the time left, rounded up to whole seconds, plus
// ttlMargin. It only lets the backend collect garbage; the expiry inside the blob decides.
func ttl(now, until int64) time.Duration {
	left := max(until-now, 0)
	return time.Duration((left+999)/1000)*time.Second + ttlMargin
}
