package memstore

import (
	"context"
	"maps"
	"sync"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

var _ store.Presence = (*Store)(nil)

// memoryPresence is who is in each room of a Store's process.
type memoryPresence struct {
	mu    sync.Mutex
	rooms map[string]map[string]string // room -> member -> value
}

// PresenceAdd implements store.Presence.
func (m *Store) PresenceAdd(ctx context.Context, room, member, value string) error {
	if err := checkPresence(ctx, room, member); err != nil {
		return err
	}
	if m.isClosed() {
		return errMemoryClosed
	}
	p := &m.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rooms == nil {
		p.rooms = map[string]map[string]string{}
	}
	if p.rooms[room] == nil {
		p.rooms[room] = map[string]string{}
	}
	p.rooms[room][member] = value
	return nil
}

// PresenceRemove implements store.Presence.
func (m *Store) PresenceRemove(ctx context.Context, room, member string) error {
	if err := checkPresence(ctx, room, member); err != nil {
		return err
	}
	p := &m.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.rooms[room], member)
	if len(p.rooms[room]) == 0 {
		delete(p.rooms, room)
	}
	return nil
}

// PresenceList implements store.Presence.
func (m *Store) PresenceList(ctx context.Context, room string) (map[string]string, error) {
	if err := checkPresence(ctx, room, "-"); err != nil {
		return nil, err
	}
	if m.isClosed() {
		return nil, errMemoryClosed
	}
	p := &m.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.rooms[room]), nil
}

func checkPresence(ctx context.Context, room, member string) error {
	if err := storekit.CheckTopic(room); err != nil {
		return err
	}
	if member == "" {
		return store.ErrTopic
	}
	return ctx.Err()
}
