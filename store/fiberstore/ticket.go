package fiberstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/mpsession/mpsession/store"
)

// PutTicket implements store.Store. The ticket's exact expiry is kept in its blob; the
// backend's TTL, in whole seconds, only collects it.
func (s *Store) PutTicket(ctx context.Context, ticket string, value string, ttlAfter time.Duration) error {
	const op = "putticket"
	if err := s.check(op, ticket); err != nil {
		return err
	}
	if ttlAfter <= 0 {
		return fmt.Errorf("fiberstore: %s: ttl %v is not positive", op, ttlAfter)
	}
	h := sha256.Sum256([]byte(ticket))
	if err := s.sessions.lock(ctx, h[0]); err != nil {
		return wrap(op, err)
	}
	defer s.sessions.unlock(h[0])
	now := time.Now()
	expires := now.Add(ttlAfter).UnixMilli()
	if err := s.b.set(ctx, s.key('t', &h), encodeTicket(expires, value), ttl(now.UnixMilli(), expires)); err != nil {
		return wrap(op, err)
	}
	return nil
}

// TakeTicket implements store.Store. Within one process at most one caller gets the
// value. The backend has no atomic get-and-delete, so two processes taking the same
// ticket at the same instant may both get it; see the package doc.
func (s *Store) TakeTicket(ctx context.Context, ticket string) (string, error) {
	const op = "taketicket"
	if err := s.check(op, ticket); err != nil {
		return "", err
	}
	h := sha256.Sum256([]byte(ticket))
	key := s.key('t', &h)
	if err := s.sessions.lock(ctx, h[0]); err != nil {
		return "", wrap(op, err)
	}
	defer s.sessions.unlock(h[0])
	b, err := s.b.get(ctx, key)
	if err != nil {
		return "", wrap(op, err)
	}
	if b == nil {
		return "", store.ErrNotFound
	}
	if err := s.b.del(ctx, key); err != nil {
		return "", wrap(op, err)
	}
	expires, value, err := decodeTicket(b)
	if err != nil {
		return "", fmt.Errorf("fiberstore: %s: key %s: %w", op, key, err)
	}
	if time.Now().UnixMilli() >= expires {
		return "", store.ErrNotFound
	}
	return value, nil
}
