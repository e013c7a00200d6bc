package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ticket is a socket waiting for an opponent: what pairing needs to know of it, and
// where to reach it.
type ticket struct {
	ID       string `json:"id"`       // the queue entry: one per "queue" message
	Addr     string `json:"addr"`     // the socket's address on the bus (player.addr)
	OpenID   string `json:"openid"`   // never paired with the same user
	Nickname string `json:"nickname"` // for the opponent's "matched"
	Bot      bool   `json:"bot"`
	WantBot  bool   `json:"want"` // plays bots only
	Instance string `json:"inst"` // the instance the socket is connected to, for the figures
}

// fits reports whether a would play b.
func (a ticket) fits(b ticket) bool { return !a.WantBot || b.Bot }

// queue pairs players. The in-process queue serves one instance; the Redis queue pairs
// players connected to any instance sharing the Redis.
//
// Pairing is atomic: a ticket is taken out of the queue by one pair call at most, so
// no player is in two matches; whoever takes it offers the match, and the match starts
// only when both sockets accept (room.go), so a ticket whose socket is gone costs its
// partner a requeue, not a match.
type queue interface {
	// pair takes a partner for t out of the queue and returns it, or adds t to the
	// queue and returns nil. The partner is the first waiting ticket that t fits and
	// that fits t, of another user; a bot prefers players who asked for a bot.
	pair(ctx context.Context, t ticket) (*ticket, error)
	// remove takes the ticket out of the queue. It returns false when the ticket is no
	// longer there: a pair call took it (an offer is on its way), or its lease ran out.
	remove(ctx context.Context, id string) (bool, error)
	// renew extends the leases of the tickets this instance holds, and returns those
	// no longer in the queue: taken by a pair call, or expired.
	renew(ctx context.Context, ids []string) (gone []string, err error)
}

// memQueue is the queue of one process.
type memQueue struct {
	mu      sync.Mutex
	waiting []ticket // in the order they queued
}

func (q *memQueue) pair(_ context.Context, t ticket) (*ticket, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	best := -1
	for i, w := range q.waiting {
		if w.OpenID == t.OpenID || !t.fits(w) || !w.fits(t) {
			continue
		}
		if !t.Bot || w.WantBot {
			best = i
			break
		}
		if best < 0 {
			best = i
		}
	}
	if best < 0 {
		q.waiting = append(q.waiting, t)
		return nil, nil
	}
	p := q.waiting[best]
	q.waiting = append(q.waiting[:best:best], q.waiting[best+1:]...)
	return &p, nil
}

func (q *memQueue) remove(_ context.Context, id string) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, w := range q.waiting {
		if w.ID == id {
			q.waiting = append(q.waiting[:i:i], q.waiting[i+1:]...)
			return true, nil
		}
	}
	return false, nil
}

// renew has nothing to do: the tickets live as long as the process, and an offer in
// the process is never lost.
func (*memQueue) renew(context.Context, []string) ([]string, error) { return nil, nil }

// redisQueue is the queue shared by every instance on one Redis: a sorted set of ticket
// ids in the order they queued, and one key per ticket holding it, with a lease (PX)
// that the ticket's instance renews. An instance that dies stops renewing, its tickets
// expire, and pairing skips them (and drops them from the set) from then on.
type redisQueue struct {
	rdb    redis.UniversalClient
	prefix string        // keys: <prefix>queue, <prefix>queue:seq, <prefix>ticket:<id>
	lease  time.Duration // a ticket not renewed for this long is gone
}

// scanLimit bounds the tickets one pair call looks at: a player further down waits for
// the ones before.
const scanLimit = 200

// pairScript pairs ARGV[2] (a ticket as JSON, with id ARGV[1]) atomically: it returns
// the partner's JSON and deletes the partner, or stores the ticket (lease ARGV[3] ms)
// at the end of the queue and returns false. The rules are memQueue.pair's.
var pairScript = redis.NewScript(`
local me = cjson.decode(ARGV[2])
local pick, fallback
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)) do
  local raw = redis.call('GET', KEYS[3] .. id)
  if not raw then
    redis.call('ZREM', KEYS[1], id) -- its lease ran out: its instance is gone
  else
    local w = cjson.decode(raw)
    if w.openid ~= me.openid and (not me.want or w.bot) and (not w.want or me.bot) then
      if not me.bot or w.want then
        pick = {id, raw}
        break
      end
      if not fallback then fallback = {id, raw} end
    end
  end
end
pick = pick or fallback
if pick then
  redis.call('ZREM', KEYS[1], pick[1])
  redis.call('DEL', KEYS[3] .. pick[1])
  return pick[2]
end
redis.call('SET', KEYS[3] .. ARGV[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), ARGV[1])
return false
`)

// removeScript takes ticket ARGV[1] out: 1 if it was there.
var removeScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('DEL', KEYS[2] .. ARGV[1])
`)

func (q *redisQueue) keys() []string {
	return []string{q.prefix + "queue", q.prefix + "queue:seq", q.prefix + "ticket:"}
}

func (q *redisQueue) pair(ctx context.Context, t ticket) (*ticket, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	res, err := pairScript.Run(ctx, q.rdb, q.keys(), t.ID, raw, q.lease.Milliseconds(), scanLimit).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil // queued
	case err != nil:
		return nil, fmt.Errorf("queue: %w", err)
	}
	var p ticket
	if err := json.Unmarshal([]byte(res), &p); err != nil {
		return nil, fmt.Errorf("queue: a malformed ticket: %w", err)
	}
	return &p, nil
}

func (q *redisQueue) remove(ctx context.Context, id string) (bool, error) {
	k := q.keys()
	n, err := removeScript.Run(ctx, q.rdb, []string{k[0], k[2]}, id).Int()
	if err != nil {
		return false, fmt.Errorf("queue: %w", err)
	}
	return n == 1, nil
}

func (q *redisQueue) renew(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.BoolCmd, len(ids))
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.PExpire(ctx, q.prefix+"ticket:"+id, q.lease)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: renew: %w", err)
	}
	var gone []string
	for i, c := range cmds {
		if !c.Val() {
			gone = append(gone, ids[i])
		}
	}
	return gone, nil
}
