package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

// A topic's history (store.History) is a Redis stream, "<prefix>h:{<topic>}", and a
// small hash beside it, "<prefix>hm:{<topic>}", that holds the epoch ("e"), the last
// offset ("n"), the time of the last message ("t") and the retention's age ("a"). The
// braces keep the stream, the hash and the topic's channel ("<prefix>m:{<topic>}") in
// one Cluster slot, so that one script keeps a message and publishes it.
//
// An entry's id is "<offset>-<ms>": the offset orders the stream and lets Since start
// at an offset with one XRANGE; the milliseconds say when it was kept. MAXLEN drops
// the entries beyond the retention's size as each is added; those older than its age
// are skipped by Since and trimmed by the next messages (a few per message) or, on a
// quiet topic, by the stream's expiry, set to the age after each message. The hash
// lives a day after the last message.

var _ store.History = (*Store)(nil)

// epochLife is how long a topic's epoch and last offset outlive its last message.
const epochLife = 24 * time.Hour

func (s *Store) historyKeys(topic string) []string {
	return []string{s.prefix + "h:{" + topic + "}", s.prefix + "hm:{" + topic + "}"}
}

// scriptKeep keeps a message and publishes it with its position.
// KEYS: stream, hash. ARGV: channel, message, size, age (ms), now (ms), a new epoch
// (used when the topic has none), the hash's life (ms), "1" for SPUBLISH.
var scriptKeep = redis.NewScript(`
local stream, meta = KEYS[1], KEYS[2]
local age, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local m = redis.call('HMGET', meta, 'e', 'n', 't')
local epoch, n, t = m[1], 1, now
if not epoch then
  epoch = ARGV[6]
  redis.call('DEL', stream)
else
  n = tonumber(m[2]) + 1
  t = math.max(now, tonumber(m[3]))
end
local ns, ts = string.format('%d', n), string.format('%d', t)
redis.call('HSET', meta, 'e', epoch, 'n', ns, 't', ts, 'a', ARGV[4])
redis.call('PEXPIRE', meta, ARGV[7])
redis.call('XADD', stream, 'MAXLEN', ARGV[3], ns .. '-' .. ts, 'm', ARGV[2])
-- Trim a few entries older than the age from the front: each message adds one.
local old = redis.call('XRANGE', stream, '-', '+', 'COUNT', 4)
local cut = nil
for _, e in ipairs(old) do
  local dash = string.find(e[1], '-', 1, true)
  if tonumber(string.sub(e[1], dash + 1)) < now - age then cut = string.sub(e[1], 1, dash - 1) else break end
end
if cut then redis.call('XTRIM', stream, 'MINID', string.format('%d', tonumber(cut) + 1)) end
redis.call('PEXPIRE', stream, ARGV[4])
local msg = epoch .. '.' .. ns .. ' ' .. ARGV[2]
if ARGV[8] == '1' then redis.call('SPUBLISH', ARGV[1], msg) else redis.call('PUBLISH', ARGV[1], msg) end
return {epoch, ns}
`)

// scriptSince reads a topic's position and, when after is in its epoch and before its
// last offset, the entries from after's next offset. From the zero position, it starts
// an epoch for a topic that has none.
// KEYS: stream, hash. ARGV: after's epoch, after's offset, the first id to read, limit,
// a new epoch, the hash's life (ms).
var scriptSince = redis.NewScript(`
local meta = redis.call('HMGET', KEYS[2], 'e', 'n', 'a')
if not meta[1] then
  if ARGV[1] ~= '' then return {} end
  redis.call('HSET', KEYS[2], 'e', ARGV[5], 'n', '0', 't', '0', 'a', '1')
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  return {ARGV[5], '0'}
end
if ARGV[1] ~= meta[1] or tonumber(ARGV[2]) >= tonumber(meta[2]) then return meta end
return {meta[1], meta[2], meta[3], redis.call('XRANGE', KEYS[1], ARGV[3], '+', 'COUNT', ARGV[4])}
`)

func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// PublishKept implements store.History with one script: XADD, a trim, and PUBLISH (or
// SPUBLISH on a Cluster) of the message with its position, in one round trip.
func (s *Store) PublishKept(ctx context.Context, topic string, msg []byte, keep store.Retention) (store.Position, error) {
	if err := storekit.CheckTopic(topic); err != nil {
		return store.Position{}, err
	}
	if err := keep.Check(); err != nil {
		return store.Position{}, err
	}
	sharded := "0"
	switch s.client.(type) {
	case *redis.ClusterClient:
		sharded = "1"
	case *redis.Ring:
		return store.Position{}, fmt.Errorf("redisstore: publish: %w", errRing)
	}
	age := max(keep.Age.Milliseconds(), 1)
	res, err := scriptKeep.Run(ctx, s.client, s.historyKeys(topic),
		s.msgChannel(topic), msg, keep.Size, age, time.Now().UnixMilli(), newEpoch(), epochLife.Milliseconds(), sharded).StringSlice()
	if err != nil {
		return store.Position{}, s.fail(ctx, "publish", err)
	}
	if len(res) != 2 {
		return store.Position{}, fmt.Errorf("redisstore: publish: the script returned %q", res)
	}
	pos, err := store.ParsePosition(res[0] + "." + res[1])
	if err != nil {
		return store.Position{}, fmt.Errorf("redisstore: publish: the script returned %q: %w", res, err)
	}
	return pos, nil
}

// Since implements store.History with one script: HMGET of the topic's position, and
// XRANGE from after's next offset when there is something to read (or, from the zero
// position on a topic with no history, HSET of a new epoch).
func (s *Store) Since(ctx context.Context, topic string, after store.Position, limit int) ([]store.Kept, store.Position, bool, error) {
	if err := storekit.CheckTopic(topic); err != nil {
		return nil, store.Position{}, false, err
	}
	if limit <= 0 {
		return nil, store.Position{}, false, fmt.Errorf("redisstore: since: limit %d", limit)
	}
	if _, ok := s.client.(*redis.Ring); ok {
		return nil, store.Position{}, false, fmt.Errorf("redisstore: since: %w", errRing)
	}
	first := "0-0"
	if after.Offset < 1<<63 {
		first = strconv.FormatUint(after.Offset+1, 10) + "-0"
	}
	res, err := scriptSince.Run(ctx, s.client, s.historyKeys(topic),
		after.Epoch, strconv.FormatUint(after.Offset, 10), first, limit, newEpoch(), epochLife.Milliseconds()).Slice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, store.Position{}, false, s.fail(ctx, "since", err)
	}
	if len(res) == 0 || res[0] == nil {
		return nil, store.Position{}, after.IsZero(), nil // no history: lost, expired or never kept
	}
	epoch, _ := res[0].(string)
	n, _ := res[1].(string)
	last, err := store.ParsePosition(epoch + "." + n)
	if err != nil {
		return nil, store.Position{}, false, fmt.Errorf("redisstore: since: the topic's hash holds %q: %w", res, err)
	}
	switch {
	case after.IsZero():
		return nil, last, true, nil
	case after.Epoch != last.Epoch || after.Offset > last.Offset:
		return nil, last, false, nil
	case after.Offset == last.Offset:
		return nil, last, true, nil
	}
	if len(res) < 4 {
		return nil, last, false, fmt.Errorf("redisstore: since: the script returned %q", res)
	}
	ageMS, _ := strconv.ParseInt(fmt.Sprint(res[2]), 10, 64)
	oldest := time.Now().UnixMilli() - ageMS
	entries, _ := res[3].([]any)
	msgs := make([]store.Kept, 0, len(entries))
	next := after.Offset + 1
	for _, e := range entries {
		offset, at, msg, ok := parseEntry(e)
		if !ok {
			return nil, last, false, fmt.Errorf("redisstore: since: a malformed entry in the stream of %q", topic)
		}
		if offset != next || at < oldest {
			break // dropped before it (size), or too old (age): every later one is newer
		}
		msgs = append(msgs, store.Kept{Pos: store.Position{Epoch: last.Epoch, Offset: offset}, Msg: msg})
		next++
	}
	if len(msgs) == 0 {
		return nil, last, false, nil
	}
	return msgs, last, true, nil
}

// parseEntry reads an XRANGE entry: ["<offset>-<ms>", ["m", message]].
func parseEntry(e any) (offset uint64, at int64, msg []byte, ok bool) {
	pair, _ := e.([]any)
	if len(pair) != 2 {
		return 0, 0, nil, false
	}
	id, _ := pair[0].(string)
	fields, _ := pair[1].([]any)
	o, t, found := strings.Cut(id, "-")
	if !found || len(fields) != 2 {
		return 0, 0, nil, false
	}
	offset, err1 := strconv.ParseUint(o, 10, 64)
	at, err2 := strconv.ParseInt(t, 10, 64)
	m, isString := fields[1].(string)
	if err1 != nil || err2 != nil || !isString {
		return 0, 0, nil, false
	}
	return offset, at, []byte(m), true
}
