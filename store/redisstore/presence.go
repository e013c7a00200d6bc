package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

// Presence (store.Presence) keeps each room in one hash, "<prefix>p:{<room>}": a field
// "m:<process>:<member>" per member, with its value, and a field "a:<process>" per
// process with members there, holding until when (Unix ms, by the process's clock) the
// process vouches for them. Each Store is a process with a random id. While it has
// members, one goroutine renews, every Config.PresenceTTL/3, each of its rooms: the
// "a:" field and the hash's expiry (three PresenceTTLs, so that a room whose processes
// all died goes away). A room whose "a:" field had gone (a Redis that restarted, or
// lost the key) gets all the process's members written again, and so do rooms where an
// add failed; removals that failed are tried again. PresenceList reads the hash (one
// HGETALL), keeps the members of processes still vouched for, and deletes the others.
// Clocks of the processes must agree to well within PresenceTTL.

var _ store.Presence = (*Store)(nil)

type presence struct {
	instance string
	ttl      time.Duration

	mu      sync.Mutex
	members map[string]map[string]string // room -> member -> value, added by this process
	dirty   map[string]bool              // rooms to write again in full at the next renewal
	removed map[string]map[string]bool   // room -> members whose removal failed, to try again
	stop    chan struct{}                // closed to stop the renewing goroutine; nil when none runs
	done    chan struct{}                // closed when it returned
	closed  bool
}

func (s *Store) presenceKey(room string) string { return s.prefix + "p:{" + room + "}" }

func (p *presence) memberField(member string) string { return "m:" + p.instance + ":" + member }
func (p *presence) aliveField() string               { return "a:" + p.instance }

var errPresenceClosed = errors.New("redisstore: presence: store closed")

// PresenceAdd implements store.Presence: one HSET of the member and of the process's
// "a:" field, with a PEXPIRE, in one pipeline on the room's key.
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
		p.members, p.dirty, p.removed = map[string]map[string]string{}, map[string]bool{}, map[string]map[string]bool{}
	}
	if p.members[room] == nil {
		p.members[room] = map[string]string{}
	}
	p.members[room][member] = value
	delete(p.removed[room], member)
	if p.stop == nil {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go s.renewPresence(p.stop, p.done)
	}
	p.mu.Unlock()
	if _, err := s.renewRoom(ctx, room, map[string]string{member: value}); err != nil {
		p.mu.Lock()
		p.dirty[room] = true // the renewal writes it
		p.mu.Unlock()
		return s.fail(ctx, "presence add", err)
	}
	return nil
}

// renewRoom writes members of this process (none: only its vouching) into room's hash,
// with the process's "a:" field and the hash's expiry, in one pipeline. lost reports
// that the "a:" field was new: the room had lost this process's members.
func (s *Store) renewRoom(ctx context.Context, room string, members map[string]string) (lost bool, err error) {
	p := &s.presence
	key := s.presenceKey(room)
	until := strconv.FormatInt(time.Now().Add(p.ttl).UnixMilli(), 10)
	var alive *redis.IntCmd
	_, err = s.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		alive = pipe.HSet(ctx, key, p.aliveField(), until)
		if len(members) > 0 {
			args := make([]any, 0, 2*len(members))
			for m, v := range members {
				args = append(args, p.memberField(m), v)
			}
			pipe.HSet(ctx, key, args...)
		}
		pipe.PExpire(ctx, key, 3*p.ttl)
		return nil
	})
	if err != nil {
		return false, err
	}
	return alive.Val() == 1, nil
}

// PresenceRemove implements store.Presence: one HDEL. A removal that fails is tried
// again at each renewal, so that the member does not stay listed.
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
	if err := s.client.HDel(ctx, s.presenceKey(room), p.memberField(member)).Err(); err != nil {
		p.mu.Lock()
		if p.removed != nil {
			if p.removed[room] == nil {
				p.removed[room] = map[string]bool{}
			}
			p.removed[room][member] = true
		}
		p.mu.Unlock()
		return s.fail(ctx, "presence remove", err)
	}
	return nil
}

// PresenceList implements store.Presence: one HGETALL, and an HDEL of the members of
// processes no longer vouched for.
func (s *Store) PresenceList(ctx context.Context, room string) (map[string]string, error) {
	if err := checkMember(room, "-"); err != nil {
		return nil, err
	}
	key := s.presenceKey(room)
	all, err := s.client.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, s.fail(ctx, "presence list", err)
	}
	now := time.Now().UnixMilli()
	alive := map[string]bool{}
	for field, v := range all {
		if instance, ok := strings.CutPrefix(field, "a:"); ok {
			until, _ := strconv.ParseInt(v, 10, 64)
			alive[instance] = until > now
		}
	}
	members := map[string]string{}
	var dead []string
	for field, v := range all {
		rest, ok := strings.CutPrefix(field, "m:")
		if !ok {
			if instance, isAlive := strings.CutPrefix(field, "a:"); isAlive && !alive[instance] {
				dead = append(dead, field)
			}
			continue
		}
		instance, member, _ := strings.Cut(rest, ":")
		if alive[instance] {
			members[member] = v
		} else {
			dead = append(dead, field)
		}
	}
	if len(dead) > 0 {
		_ = s.client.HDel(ctx, key, dead...).Err() // best effort: the next list tries again
	}
	return members, nil
}

// renewPresence vouches for this process's members while it has any.
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
		}
		p.mu.Lock()
		if len(p.members) == 0 && len(p.removed) == 0 {
			p.stop, p.done = nil, nil
			p.mu.Unlock()
			return
		}
		rooms := make(map[string]map[string]string, len(p.members))
		for room, ms := range p.members {
			if p.dirty[room] {
				rooms[room] = copyMembers(ms)
			} else {
				rooms[room] = nil
			}
		}
		clear(p.dirty)
		removed := p.removed
		p.removed = map[string]map[string]bool{}
		p.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), p.ttl/3)
		for room, ms := range rooms {
			lost, err := s.renewRoom(ctx, room, ms)
			if err == nil && lost && ms == nil {
				// The room had lost this process (Redis restarted, or the hash expired):
				// write its members again.
				p.mu.Lock()
				ms = copyMembers(p.members[room])
				p.mu.Unlock()
				_, err = s.renewRoom(ctx, room, ms)
			}
			if err != nil {
				p.mu.Lock()
				p.dirty[room] = true
				p.mu.Unlock()
			}
		}
		for room, ms := range removed {
			for member := range ms {
				if s.client.HDel(ctx, s.presenceKey(room), p.memberField(member)).Err() != nil {
					p.mu.Lock()
					if p.removed[room] == nil {
						p.removed[room] = map[string]bool{}
					}
					p.removed[room][member] = true
					p.mu.Unlock()
				}
			}
		}
		cancel()
	}
}

func copyMembers(ms map[string]string) map[string]string {
	out := make(map[string]string, len(ms))
	for m, v := range ms {
		out[m] = v
	}
	return out
}

// stopPresence stops vouching, at Close: this process's members stop being listed
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
