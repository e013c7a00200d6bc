package fiberstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mpsession/mpsession/store"
)

// An owner's index is one blob listing the hashes of the owner's sessions, each with an
// upper bound on its expiry. An entry past its bound is dropped without reading the
// session; the others are confirmed by reading the session, since a session may have been
// deleted by another process or expire before its bound.

// Sessions implements store.Store. It costs one backend read for the owner's index plus
// one per session the index does not already know to be expired.
func (s *Store) Sessions(ctx context.Context, owner string) ([]string, error) {
	const op = "sessions"
	if err := s.check(op, owner); err != nil {
		return nil, err
	}
	oh := sha256.Sum256([]byte(owner))
	key := s.key('o', &oh)
	if err := s.owners.lock(ctx, oh[0]); err != nil {
		return nil, wrap(op, err)
	}
	defer s.owners.unlock(oh[0])
	idx, err := s.getIndex(ctx, op, key)
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	live := make([]string, 0, len(idx))
	kept := make([]entry, 0, len(idx))
	for _, e := range idx {
		if e.until <= now {
			continue
		}
		r, err := s.getRecord(ctx, op, s.key('s', &e.hash))
		if err != nil {
			return nil, err
		}
		if r == nil || r.expired(now) || r.owner != owner {
			continue
		}
		kept = append(kept, e)
		live = append(live, hex.EncodeToString(e.hash[:]))
	}
	if len(kept) != len(idx) {
		if err := s.putIndex(ctx, op, key, kept, now); err != nil {
			return nil, err
		}
	}
	return live, nil
}

// DeleteOwner implements store.Store. A session whose blob is corrupt is deleted and
// counted, so that "log out everywhere" never leaves one behind.
func (s *Store) DeleteOwner(ctx context.Context, owner string, keep ...string) (int, error) {
	return s.deleteOwner(ctx, owner, keep, "")
}

// deleteOwner is DeleteOwner; its events carry origin.
func (s *Store) deleteOwner(ctx context.Context, owner string, keep []string, origin string) (int, error) {
	const op = "deleteowner"
	if err := s.check(op, owner); err != nil {
		return 0, err
	}
	oh := sha256.Sum256([]byte(owner))
	okey := s.key('o', &oh)
	if err := s.owners.lock(ctx, oh[0]); err != nil {
		return 0, wrap(op, err)
	}
	idx, err := s.getIndex(ctx, op, okey)
	s.owners.unlock(oh[0])
	if err != nil {
		return 0, err
	}
	kept := make([][32]byte, len(keep))
	for i, id := range keep {
		kept[i] = sha256.Sum256([]byte(id))
	}

	// The owner stripe is not held here: a session stripe is never taken after an owner
	// stripe. A session created meanwhile survives, as if created after DeleteOwner.
	now := time.Now().UnixMilli()
	n, pruned := 0, false
	for _, e := range idx {
		if e.until <= now {
			pruned = true
			continue
		}
		if slices.Contains(kept, e.hash) {
			continue
		}
		removed, err := s.revoke(ctx, op, owner, &e.hash, origin)
		if err != nil {
			return n, err
		}
		if removed {
			n++
		}
	}
	if !pruned {
		return n, nil
	}
	if err := s.owners.lock(ctx, oh[0]); err != nil {
		return n, wrap(op, err)
	}
	defer s.owners.unlock(oh[0])
	return n, s.indexRemove(ctx, op, okey, func(entry) bool { return false })
}

// revoke deletes the session h if it is live and belongs to owner, takes it out of the
// owner's index, and reports whether it deleted it; its EventRevoked carries origin. Both happen under the session's
// stripe, so that a session created again with the same id keeps its entry.
func (s *Store) revoke(ctx context.Context, op, owner string, h *[32]byte, origin string) (bool, error) {
	key := s.key('s', h)
	if err := s.sessions.lock(ctx, h[0]); err != nil {
		return false, wrap(op, err)
	}
	defer s.sessions.unlock(h[0])
	r, err := s.getRecord(ctx, op, key)
	broken := errors.Is(err, ErrCorrupt)
	switch {
	case err != nil && !broken:
		return false, err
	case (r == nil && !broken) || (r != nil && r.owner != owner):
		// Gone, or the id was reused by another owner after this one's expired.
		return false, s.unindex(ctx, op, owner, *h)
	}
	if err := s.b.del(ctx, key); err != nil {
		return false, wrap(op, err)
	}
	if err := s.unindex(ctx, op, owner, *h); err != nil {
		return false, err
	}
	if r != nil && r.expired(time.Now().UnixMilli()) {
		s.events.emit(store.Event{Kind: store.EventExpired, Hash: hex.EncodeToString(h[:])})
		return false, nil
	}
	s.events.emit(store.Event{Kind: store.EventRevoked, Hash: hex.EncodeToString(h[:]), Origin: origin})
	return true, nil
}

// unindex takes session h out of owner's index. The caller holds h's session stripe.
func (s *Store) unindex(ctx context.Context, op, owner string, h [32]byte) error {
	oh := sha256.Sum256([]byte(owner))
	if err := s.owners.lock(ctx, oh[0]); err != nil {
		return wrap(op, err)
	}
	defer s.owners.unlock(oh[0])
	return s.indexRemove(ctx, op, s.key('o', &oh), func(e entry) bool { return e.hash == h })
}

// indexUpsert adds e to the index of owner oh, or raises its bound. The caller holds the
// owner's stripe.
func (s *Store) indexUpsert(ctx context.Context, op string, oh *[32]byte, e entry, now int64) error {
	key := s.key('o', oh)
	idx, err := s.getIndex(ctx, op, key)
	if err != nil {
		return err
	}
	out := idx[:0]
	for _, x := range idx {
		if x.hash == e.hash {
			e.until = max(e.until, x.until)
			continue
		}
		if x.until > now {
			out = append(out, x)
		}
	}
	return s.putIndex(ctx, op, key, append(out, e), now)
}

// indexRemove drops the entries drop selects, and those past their bound. The caller holds
// the owner's stripe.
func (s *Store) indexRemove(ctx context.Context, op, key string, drop func(entry) bool) error {
	idx, err := s.getIndex(ctx, op, key)
	if err != nil || len(idx) == 0 {
		return err
	}
	now := time.Now().UnixMilli()
	out := make([]entry, 0, len(idx))
	for _, e := range idx {
		if e.until > now && !drop(e) {
			out = append(out, e)
		}
	}
	if len(out) == len(idx) {
		return nil
	}
	return s.putIndex(ctx, op, key, out, now)
}

func (s *Store) getIndex(ctx context.Context, op, key string) ([]entry, error) {
	b, err := s.b.get(ctx, key)
	if err != nil {
		return nil, wrap(op, err)
	}
	if b == nil {
		return nil, nil
	}
	idx, err := decodeIndex(b)
	if err != nil {
		return nil, fmt.Errorf("fiberstore: %s: key %s: %w", op, key, err)
	}
	return idx, nil
}

// putIndex writes idx, or deletes the key when idx is empty. The blob lives as long as its
// longest bound.
func (s *Store) putIndex(ctx context.Context, op, key string, idx []entry, now int64) error {
	if len(idx) == 0 {
		if err := s.b.del(ctx, key); err != nil {
			return wrap(op, err)
		}
		return nil
	}
	var until int64
	for _, e := range idx {
		until = max(until, e.until)
	}
	if err := s.b.set(ctx, key, encodeIndex(idx), ttl(now, until)); err != nil {
		return wrap(op, err)
	}
	return nil
}
