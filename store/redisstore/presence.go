package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

// Presence (store.Presence) keeps each room's members in a hash, "<prefix>p:{<room>}",
// whose fields are "<process>:<member>" and values the members' values. Each Store is a
// process with a random id, alive while its key "<prefix>pi:<process>" exists: the
// Store sets it for Config.PresenceTTL and renews it every third of that while it has
// members, from one goroutine. PresenceList lists the fields of live processes, and
// deletes those of processes whose key expired.

var _ store.Presence = (*Store)(nil)

type presence struct {
	instance string
	ttl      time.Duration

	mu      sync.Mutex
	members map[string]map[string]struct{} // room -> member, added by this process
	stop    chan struct{}                  // closed to stop the renewing goroutine; nil when none runs
	done    chan struct{}                  // closed when it returned
	closed  bool
}

func (s *Store) presenceKey(room string) string  { return s.prefix + "p:{" + room + "}" }
func (s *Store) aliveKey(instance string) string { return s.prefix + "pi:" + instance }

var errPresenceClosed = errors.New("redisstore: presence: store closed")

// PresenceAdd implements store.Presence: one pipeline (HSET of the member, SET of the
// process's key).
func (s *Store) PresenceAdd(ctx context.Context, room, member, value string) error {
	if err := checkMember(room, member); err != nil {
		return err
	}
	p := &s.presence
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errPresenceClosed
	}
	if p.members == nil {
		p.members = map[string]map[string]struct{}{}
	}
	if p.members[room] == nil {
		p.members[room] = map[string]struct{}{}
	}
	p.members[room][member] = struct{}{}
	if p.stop == nil {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go s.renewPresence(p.stop, p.done)
	}
	p.mu.Unlock()
	_, err := s.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HSet(ctx, s.presenceKey(room), p.instance+":"+member, value)
		pipe.Set(ctx, s.aliveKey(p.instance), "1", p.ttl)
		return nil
	})
	if err != nil {
		return s.fail(ctx, "presence add", err)
	}
	return nil
}

// PresenceRemove implements store.Presence: one HDEL.
func (s *Store) PresenceRemove(ctx context.Context, room, member string) error {
	if err := checkMember(room, member); err != nil {
		return err
	}
	p := &s.presence
	p.mu.Lock()
	delete(p.members[room], member)
	if len(p.members[room]) == 0 {
		delete(p.members, room)
	}
	p.mu.Unlock()
	if err := s.client.HDel(ctx, s.presenceKey(room), p.instance+":"+member).Err(); err != nil {
		return s.fail(ctx, "presence remove", err)
	}
	return nil
}

// PresenceList implements store.Presence: HGETALL, then EXISTS of each process's key
// in one pipeline, and HDEL of the members of the processes that stopped.
func (s *Store) PresenceList(ctx context.Context, room string) (map[string]string, error) {
	if err := checkMember(room, "-"); err != nil {
		return nil, err
	}
	all, err := s.client.HGetAll(ctx, s.presenceKey(room)).Result()
	if err != nil {
		return nil, s.fail(ctx, "presence list", err)
	}
	alive := map[string]*redis.IntCmd{}
	for field := range all {
		instance, _, _ := strings.Cut(field, ":")
		alive[instance] = nil
	}
	if len(alive) == 0 {
		return map[string]string{}, nil
	}
	if _, err := s.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for instance := range alive {
			alive[instance] = pipe.Exists(ctx, s.aliveKey(instance))
		}
		return nil
	}); err != nil {
		return nil, s.fail(ctx, "presence list", err)
	}
	members := make(map[string]string, len(all))
	var dead []string
	for field, value := range all {
		instance, member, _ := strings.Cut(field, ":")
		if alive[instance].Val() == 1 {
			members[member] = value
		} else {
			dead = append(dead, field)
		}
	}
	if len(dead) > 0 {
		_ = s.client.HDel(ctx, s.presenceKey(room), dead...).Err() // best effort: the next list tries again
	}
	return members, nil
}

// renewPresence keeps this process's key alive while it has members.
func (s *Store) renewPresence(stop, done chan struct{}) {
	defer close(done)
	p := &s.presence
	tick := time.NewTicker(p.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			p.mu.Lock()
			empty := len(p.members) == 0
			if empty {
				p.stop, p.done = nil, nil
			}
			p.mu.Unlock()
			if empty {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), p.ttl/3)
			_ = s.client.Set(ctx, s.aliveKey(p.instance), "1", p.ttl).Err()
			cancel()
		}
	}
}

// stopPresence stops renewing, at Close: this process's members stop being listed
// within PresenceTTL.
func (s *Store) stopPresence() {
	p := &s.presence
	p.mu.Lock()
	p.closed = true
	stop, done := p.stop, p.done
	p.stop, p.done = nil, nil
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

func checkMember(room, member string) error {
	if err := storekit.CheckTopic(room); err != nil {
		return err
	}
	if member == "" {
		return store.ErrTopic
	}
	return nil
}
