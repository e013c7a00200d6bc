package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
)

// Store keeps sessions in Redis. Its methods are safe for concurrent use.
type Store struct {
	client  redis.UniversalClient
	prefix  string
	limit   int
	channel string
	// sharded is true when keys may live on different nodes (Cluster, Ring), so that
	// no script may touch two keys.
	sharded          bool
	subscribeTimeout time.Duration
	feed             eventFeed // session events: events.go
	msgs             messages  // application messages: messages.go
	presence         presence  // who is in each room: presence.go
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Events = events{}
	_ store.Fencer = fencedEvents{}
	_ store.Broker = (*Store)(nil)
)

// New returns a store that keeps sessions in the Redis that client reaches. The client
// is required; Close does not close it.
//
// Make the client with ContextTimeoutEnabled: true (redis.Options,
// redis.ClusterOptions, redis.FailoverOptions). Without it go-redis ignores the
// deadlines of contexts on its reads and writes, so a Redis that hangs holds every call
// for the client's ReadTimeout times its retries (tens of seconds) instead of the
// deadline fibermp sets (fibermp.Config.StoreTimeout).
func New(client redis.UniversalClient, config ...Config) *Store {
	if client == nil {
		panic("redisstore: nil client")
	}
	cfg := configDefault(config...)
	if strings.ContainsAny(cfg.Prefix, "{}") {
		panic("redisstore: Config.Prefix must not contain braces, which Redis Cluster reads as a hash tag")
	}
	_, single := client.(*redis.Client)
	return &Store{
		client:           client,
		prefix:           cfg.Prefix,
		limit:            cfg.MaxRecordBytes,
		channel:          cfg.Prefix + "events",
		sharded:          !single,
		subscribeTimeout: cfg.SubscribeTimeout,
		presence:         presence{instance: newEpoch(), ttl: cfg.PresenceTTL},
	}
}

func (s *Store) sessionKey(hash string) string { return s.prefix + "s:{" + hash + "}" }
func (s *Store) ownerKey(owner string) string  { return s.prefix + "o:{" + store.Hash(owner) + "}" }
func (s *Store) ticketKey(hash string) string  { return s.prefix + "t:{" + hash + "}" }

// Create implements store.Store. It costs one round trip: on a single node one script
// writes the session and its owner index atomically; on a sharded client the two
// scripts go out in one pipeline, one to each node.
func (s *Store) Create(ctx context.Context, id string, rec store.Record, idle time.Duration) error {
	if err := storekit.CheckID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return s.fail(ctx, "create", err)
	}
	if idle <= 0 {
		return errors.New("redisstore: create: idle must be positive")
	}
	for k := range rec.Fields {
		if err := storekit.CheckField(k); err != nil {
			return err
		}
	}
	if size := storekit.Size(rec.Fields); size > s.limit {
		return storekit.TooLarge(size, s.limit)
	}
	now := time.Now()
	var deadline int64
	if !rec.Deadline.IsZero() {
		deadline = rec.Deadline.UnixMilli()
	}
	hash := store.Hash(id)
	nowMS := now.UnixMilli()
	args := make([]any, 0, 5+2*len(rec.Fields))
	args = append(args, storekit.ExpiresAt(now, idle, rec.Deadline).UnixMilli(), deadline, rec.Owner, hash, nowMS)
	for k, v := range rec.Fields {
		args = append(args, k, v)
	}
	keys := []string{s.sessionKey(hash)}

	var created any
	if rec.Owner != "" && s.sharded {
		cmds, err := s.runPipelined(ctx,
			scriptCall{scriptIndex, []string{s.ownerKey(rec.Owner)}, []any{hash, nowMS, deadline}},
			scriptCall{scriptCreate, keys, args},
		)
		if err != nil {
			return s.fail(ctx, "create", err)
		}
		created = cmds[1].Val()
	} else {
		if rec.Owner != "" {
			keys = append(keys, s.ownerKey(rec.Owner))
		}
		res, err := scriptCreate.Run(ctx, s.client, keys, args...).Result()
		if err != nil {
			return s.fail(ctx, "create", err)
		}
		created = res
	}
	if created != int64(1) {
		return store.ErrExists
	}
	return nil
}

// Load implements store.Store in one round trip: a pipeline of HGETALL and either PTTL
// or, with touch, PEXPIREAT now+touch. Plain commands cost Redis less than a script.
//
// Load cannot cap that expiry at the deadline, which it learns only from the reply.
// Within touch of its deadline a session therefore stays in Redis after the deadline,
// for touch at most, but no operation sees it: every one checks the deadline itself
// (see the package doc), and Record.ExpiresAt is the capped value.
func (s *Store) Load(ctx context.Context, id string, touch time.Duration) (*store.Record, error) {
	return s.load(ctx, id, touch, nil)
}

// LoadVersion is Load that also returns the session's version: how many times Save
// (with a change) and Incr have written its fields, 0 for a record written before
// versions existed. The version of a write is the one its SaveVersion or IncrVersion
// returns, so a record at version v holds every write up to v and none after it. The
// session cache (fibermp.CacheConfig) applies the concurrent writes of its process in
// that order; most applications will not need these methods.
func (s *Store) LoadVersion(ctx context.Context, id string, touch time.Duration) (*store.Record, uint64, error) {
	var version uint64
	rec, err := s.load(ctx, id, touch, &version)
	return rec, version, err
}

// load is Load, which sets *version when version is not nil.
func (s *Store) load(ctx context.Context, id string, touch time.Duration, version *uint64) (*store.Record, error) {
	if err := storekit.CheckID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, s.fail(ctx, "load", err)
	}
	key := s.sessionKey(store.Hash(id))
	now := time.Now()
	want := time.UnixMilli(now.Add(touch).UnixMilli())
	var (
		ext *redis.BoolCmd
		ttl *redis.DurationCmd
	)
	pipe := s.client.Pipeline()
	all := pipe.HGetAll(ctx, key)
	if touch > 0 {
		ext = pipe.PExpireAt(ctx, key, want)
	} else {
		ttl = pipe.PTTL(ctx, key)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.fail(ctx, "load", err)
	}
	fields := all.Val()
	if len(fields) == 0 {
		return nil, store.ErrNotFound
	}
	rec := &store.Record{Fields: fields, Owner: fields[fieldOwner]}
	if ms, _ := strconv.ParseInt(fields[fieldDeadline], 10, 64); ms > 0 {
		rec.Deadline = time.UnixMilli(ms)
	}
	if version != nil {
		*version, _ = strconv.ParseUint(fields[fieldVersion], 10, 64)
	}
	for k := range fields {
		if strings.HasPrefix(k, store.ReservedPrefix) {
			delete(fields, k)
		}
	}
	if !rec.Deadline.IsZero() && !now.Before(rec.Deadline) {
		// Past its deadline, the session is gone whatever Redis holds. Deleting it
		// only frees the memory sooner, so a failure changes nothing.
		_ = s.client.Unlink(ctx, key).Err()
		return nil, store.ErrNotFound
	}
	switch {
	case touch > 0 && !ext.Val():
		return nil, store.ErrNotFound // deleted between the two commands
	case touch > 0:
		rec.ExpiresAt = storekit.ExpiresAt(now, touch, rec.Deadline)
	case ttl.Val() > 0:
		rec.ExpiresAt = now.Add(ttl.Val())
	}
	return rec, nil
}

// Save implements store.Store in one round trip: one script checks that the session
// exists and that the change fits, writes it, extends the expiry and publishes the event.
// A field both set and deleted in ch is deleted.
func (s *Store) Save(ctx context.Context, id string, ch store.Change, idle time.Duration) error {
	return s.save(ctx, id, ch, idle, "")
}

// SaveVersion is Save that also returns the session's version after the write (see
// LoadVersion); a change that writes nothing leaves it as it was.
func (s *Store) SaveVersion(ctx context.Context, id string, ch store.Change, idle time.Duration) (uint64, error) {
	var version uint64
	err := s.saveVersion(ctx, id, ch, idle, "", &version)
	return version, err
}

// save is Save, whose event carries origin ("" for none).
func (s *Store) save(ctx context.Context, id string, ch store.Change, idle time.Duration, origin string) error {
	return s.saveVersion(ctx, id, ch, idle, origin, nil)
}

// saveVersion is save, which sets *version when version is not nil.
func (s *Store) saveVersion(ctx context.Context, id string, ch store.Change, idle time.Duration, origin string, version *uint64) error {
	if err := storekit.CheckID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return s.fail(ctx, "save", err)
	}
	if err := storekit.CheckChange(ch); err != nil {
		return err
	}
	hash := store.Hash(id)
	names := make([]string, 0, len(ch.Set)+len(ch.Delete))
	args := make([]any, 7, 7+2*len(ch.Set)+len(ch.Delete))
	for k, v := range ch.Set {
		args = append(args, k, v)
		names = append(names, k)
	}
	for _, k := range ch.Delete {
		args = append(args, k)
		if _, set := ch.Set[k]; !set {
			names = append(names, k)
		}
	}
	args[0] = time.Now().UnixMilli()
	args[1] = max(idle.Milliseconds(), 0)
	args[2] = s.limit
	args[3] = 2 * len(ch.Set)
	args[4] = s.eventChannel(hash)
	args[5] = encodeEvent(time.Now(), store.EventChanged, hash, origin, names...)
	args[6] = hash
	res, err := scriptSave.Run(ctx, s.client, []string{s.sessionKey(hash)}, args...).Result()
	if err != nil {
		return s.fail(ctx, "save", err)
	}
	switch v := res.(type) {
	case string: // the version
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("redisstore: save: %w", err)
		}
		if version != nil {
			*version = n
		}
		return nil
	case int64:
		if v == 0 {
			return store.ErrNotFound
		}
		return storekit.TooLarge(int(-v), s.limit)
	}
	return fmt.Errorf("redisstore: save: unexpected reply %T", res)
}

// Incr implements store.Store in one round trip. It returns store.ErrTooLarge when a
// new field would take the record past Config.MaxRecordBytes; an existing field whose
// value gains digits is not checked (a counter is 20 bytes at most).
func (s *Store) Incr(ctx context.Context, id, field string, delta int64) (int64, error) {
	return s.incr(ctx, id, field, delta, "")
}

// IncrVersion is Incr that also returns the session's version after the write (see
// LoadVersion).
func (s *Store) IncrVersion(ctx context.Context, id, field string, delta int64) (int64, uint64, error) {
	var version uint64
	n, err := s.incrVersion(ctx, id, field, delta, "", &version)
	return n, version, err
}

// incr is Incr, whose event carries origin ("" for none).
func (s *Store) incr(ctx context.Context, id, field string, delta int64, origin string) (int64, error) {
	return s.incrVersion(ctx, id, field, delta, origin, nil)
}

// incrVersion is incr, which sets *version when version is not nil.
func (s *Store) incrVersion(ctx context.Context, id, field string, delta int64, origin string, version *uint64) (int64, error) {
	if err := storekit.CheckID(id); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, s.fail(ctx, "incr", err)
	}
	if err := storekit.CheckField(field); err != nil {
		return 0, err
	}
	hash := store.Hash(id)
	res, err := scriptIncr.Run(ctx, s.client, []string{s.sessionKey(hash)}, field, delta,
		time.Now().UnixMilli(), s.eventChannel(hash), encodeEvent(time.Now(), store.EventChanged, hash, origin, field), hash, s.limit).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return 0, store.ErrNotFound
	case err != nil && strings.Contains(err.Error(), "hash value is not an integer"):
		return 0, fmt.Errorf("%w: %q", store.ErrNotInteger, field)
	case err != nil && strings.Contains(err.Error(), "increment or decrement would overflow"):
		return 0, fmt.Errorf("%w: %q: adding %d overflows int64", store.ErrNotInteger, field, delta)
	case err != nil:
		return 0, s.fail(ctx, "incr", err)
	}
	switch v := res.(type) {
	case []any: // the value and the version
		s, _ := v[0].(string)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || len(v) != 2 {
			return 0, fmt.Errorf("redisstore: incr: unexpected reply %q", v)
		}
		if ver, ok := v[1].(int64); ok && version != nil {
			*version = uint64(ver)
		}
		return n, nil
	case int64:
		return 0, storekit.TooLarge(int(v), s.limit)
	}
	return 0, fmt.Errorf("redisstore: incr: unexpected reply %T", res)
}

// Touch implements store.Store in one round trip.
func (s *Store) Touch(ctx context.Context, id string, idle time.Duration) error {
	if err := storekit.CheckID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return s.fail(ctx, "touch", err)
	}
	if idle <= 0 {
		return errors.New("redisstore: touch: idle must be positive")
	}
	hash := store.Hash(id)
	exp, err := scriptTouch.Run(ctx, s.client, []string{s.sessionKey(hash)},
		time.Now().UnixMilli(), max(idle.Milliseconds(), 1), s.eventChannel(hash), hash).Int64()
	if err != nil {
		return s.fail(ctx, "touch", err)
	}
	if exp == 0 {
		return store.ErrNotFound
	}
	return nil
}

// TouchMany implements store.Store: the touches go in one pipeline (one round trip per
// node on a Cluster), for less than a Touch each.
func (s *Store) TouchMany(ctx context.Context, ids []string, idle time.Duration) []error {
	errs := make([]error, len(ids))
	if idle <= 0 {
		for i := range errs {
			errs[i] = errors.New("redisstore: touch: idle must be positive")
		}
		return errs
	}
	now, ms := time.Now().UnixMilli(), max(idle.Milliseconds(), 1)
	cmds := make([]*redis.Cmd, len(ids))
	pipe := s.client.Pipeline()
	for i, id := range ids {
		if errs[i] = storekit.CheckID(id); errs[i] != nil {
			continue
		}
		hash := store.Hash(id)
		cmds[i] = scriptTouch.EvalSha(ctx, pipe, []string{s.sessionKey(hash)}, now, ms, s.eventChannel(hash), hash)
	}
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			// The script cache was emptied (a restart): Touch loads it again.
			errs[i] = s.Touch(ctx, ids[i], idle)
			continue
		}
		exp, err := cmd.Int64()
		switch {
		case err != nil:
			errs[i] = s.fail(ctx, "touch", err)
		case exp == 0:
			errs[i] = store.ErrNotFound
		}
	}
	return errs
}

// Delete implements store.Store. It costs one round trip, and a second to remove an
// owned session from its owner's index, which may live on another node. That second
// step is tidying: Sessions and DeleteOwner skip and prune entries of sessions that are
// gone, so its failure is not Delete's.
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.delete(ctx, id, "")
}

// delete is Delete, whose event carries origin ("" for none).
func (s *Store) delete(ctx context.Context, id string, origin string) error {
	if err := storekit.CheckID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return s.fail(ctx, "delete", err)
	}
	hash := store.Hash(id)
	owner, err := scriptDelete.Run(ctx, s.client, []string{s.sessionKey(hash)},
		s.eventChannel(hash), encodeEvent(time.Now(), store.EventDeleted, hash, origin)).Text()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return s.fail(ctx, "delete", err)
	}
	if owner != "" {
		_ = s.client.SRem(ctx, s.ownerKey(owner), hash).Err()
	}
	return nil
}

// Sessions implements store.Store in two round trips: it reads the owner's index, then
// asks each session in one pipeline (go-redis sends one batch to each node at once)
// whether it still exists and still belongs to owner. A third removes the entries that
// do not, when there are any.
func (s *Store) Sessions(ctx context.Context, owner string) ([]string, error) {
	if err := storekit.CheckID(owner); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, s.fail(ctx, "sessions", err)
	}
	index := s.ownerKey(owner)
	members, err := s.client.SMembers(ctx, index).Result()
	if err != nil {
		return nil, s.fail(ctx, "sessions", err)
	}
	live := make([]string, 0, len(members))
	if len(members) == 0 {
		return live, nil
	}
	now := time.Now()
	pipe := s.client.Pipeline()
	cmds := make([]*redis.SliceCmd, len(members))
	for i, h := range members {
		cmds[i] = pipe.HMGet(ctx, s.sessionKey(h), fieldOwner, fieldDeadline)
	}
	_, _ = pipe.Exec(ctx)
	var stale []any
	for i, cmd := range cmds {
		m, err := cmd.Result()
		if err != nil {
			return nil, s.fail(ctx, "sessions", err)
		}
		// A missing session reads as [nil nil]; another owner's, from a Create that
		// found the id taken, as [other ...].
		o, _ := m[0].(string)
		d, _ := m[1].(string)
		ms, _ := strconv.ParseInt(d, 10, 64)
		if o == owner && (ms <= 0 || now.UnixMilli() < ms) {
			live = append(live, members[i])
		} else {
			stale = append(stale, members[i])
		}
	}
	if len(stale) > 0 {
		_ = s.client.SRem(ctx, index, stale...).Err() // tidying, as in Delete
	}
	return live, nil
}

// DeleteOwner implements store.Store. It reads the owner's index (one round trip), runs
// a script on each session in one pipeline that deletes it only if it still belongs to
// owner (one round trip; go-redis sends one batch to each node at once), then removes
// the entries from the index (one round trip), only after the sessions are gone, so
// that a failure never leaves a live session outside the index.
func (s *Store) DeleteOwner(ctx context.Context, owner string, keep ...string) (int, error) {
	return s.deleteOwner(ctx, owner, keep, "")
}

// deleteOwner is DeleteOwner, whose events carry origin ("" for none).
func (s *Store) deleteOwner(ctx context.Context, owner string, keep []string, origin string) (int, error) {
	if err := storekit.CheckID(owner); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, s.fail(ctx, "delete owner", err)
	}
	index := s.ownerKey(owner)
	members, err := s.client.SMembers(ctx, index).Result()
	if err != nil {
		return 0, s.fail(ctx, "delete owner", err)
	}
	kept := make(map[string]bool, len(keep))
	for _, id := range keep {
		kept[store.Hash(id)] = true
	}
	now := time.Now().UnixMilli()
	var calls []scriptCall
	var drop []any
	for _, h := range members {
		if kept[h] {
			continue
		}
		calls = append(calls, scriptCall{scriptRevoke, []string{s.sessionKey(h)},
			[]any{owner, now, s.eventChannel(h), encodeEvent(time.Now(), store.EventRevoked, h, origin)}})
		drop = append(drop, h)
	}
	if len(calls) == 0 {
		return 0, nil
	}
	cmds, err := s.runPipelined(ctx, calls...)
	if err != nil {
		return 0, s.fail(ctx, "delete owner", err)
	}
	n := 0
	for _, cmd := range cmds {
		if cmd.Val() == int64(1) {
			n++
		}
	}
	_ = s.client.SRem(ctx, index, drop...).Err() // tidying, as in Delete
	return n, nil
}

// PutTicket implements store.Store in one round trip (SET PX). The key is the ticket's
// hash; the value is stored as given, so a caller whose value is a credential seals it
// first (wsauth does).
func (s *Store) PutTicket(ctx context.Context, ticket string, value string, ttl time.Duration) error {
	if err := storekit.CheckID(ticket); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return s.fail(ctx, "put ticket", err)
	}
	if ttl <= 0 {
		return errors.New("redisstore: put ticket: ttl must be positive")
	}
	// SET PX takes whole milliseconds; never round a short ttl down to none.
	ttl = max(ttl, time.Millisecond)
	if err := s.client.Set(ctx, s.ticketKey(store.Hash(ticket)), value, ttl).Err(); err != nil {
		return s.fail(ctx, "put ticket", err)
	}
	return nil
}

// TakeTicket implements store.Store in one round trip (GETDEL).
func (s *Store) TakeTicket(ctx context.Context, ticket string) (string, error) {
	if err := storekit.CheckID(ticket); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", s.fail(ctx, "take ticket", err)
	}
	value, err := s.client.GetDel(ctx, s.ticketKey(store.Hash(ticket))).Result()
	if errors.Is(err, redis.Nil) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", s.fail(ctx, "take ticket", err)
	}
	return value, nil
}

// Close stops the store's subscription, if any, and stops vouching for the members it
// added to rooms (store.Presence), which stop being listed within PresenceTTL. It does
// not close the client, and must not be called from a subscriber.
func (s *Store) Close() error {
	s.stopPresence()
	return s.feed.close()
}

// Capabilities implements store.Store: the store sends events that reach every process
// sharing the Redis and the prefix (Subscribe, EventsLive), carries messages between
// them (Publish, Listen) and keeps their recent history (PublishKept, Since).
func (s *Store) Capabilities() store.Capabilities {
	if _, ring := s.client.(*redis.Ring); ring {
		return store.Capabilities{Events: events{s}, Broker: s} // a Ring keeps neither histories nor presence (and its Publish fails)
	}
	if s.sharded {
		return store.Capabilities{Events: events{s}, Broker: s, History: s, Presence: s}
	}
	return store.Capabilities{Events: fencedEvents{events{s}}, Broker: s, History: s, Presence: s}
}

// events is the store's store.Events: Subscribe and EventsLive are the Store's own.
type events struct{ *Store }

// Shared implements store.Events: events travel over Redis pub/sub to every process
// sharing the Redis and the prefix.
func (events) Shared() bool { return true }

// From implements store.Events. It panics on an origin for which store.ValidOrigin is
// false.
func (e events) From(origin string) store.Store {
	s := e.Store
	return originView{storekit.View(s, storekit.Writes{Save: s.save, Incr: s.incr, Delete: s.delete, DeleteOwner: s.deleteOwner}, origin), s, origin}
}

// originView is a view of From, with the Store's versioned methods (LoadVersion),
// whose writes carry its origin.
type originView struct {
	store.Store
	s      *Store
	origin string
}

func (v originView) LoadVersion(ctx context.Context, id string, touch time.Duration) (*store.Record, uint64, error) {
	return v.s.LoadVersion(ctx, id, touch)
}

func (v originView) SaveVersion(ctx context.Context, id string, ch store.Change, idle time.Duration) (uint64, error) {
	var version uint64
	err := v.s.saveVersion(ctx, id, ch, idle, v.origin, &version)
	return version, err
}

func (v originView) IncrVersion(ctx context.Context, id, field string, delta int64) (int64, uint64, error) {
	var version uint64
	n, err := v.s.incrVersion(ctx, id, field, delta, v.origin, &version)
	return n, version, err
}

// fencedEvents are the events of a store on one Redis (a single node, or the master
// of a Sentinel group), which can fence them: one server runs every PUBLISH, the
// scripts' and the fences', one at a time, and writes each to a subscribed connection
// before it runs the next, so a store receives the fences and its sessions' events,
// whichever channel each went on, in that order on its one connection. A Cluster cannot (see store.Fencer): its nodes run the
// scripts of their keys and relay each other's messages over the cluster bus, with no
// order between nodes.
type fencedEvents struct{ events }

// Fence implements store.Fencer with one PUBLISH on the events channel.
func (e fencedEvents) Fence(ctx context.Context, token string) error {
	if !store.ValidOrigin(token) {
		return fmt.Errorf("redisstore: fence: invalid token %q", token)
	}
	if err := e.client.Publish(ctx, e.channel, encodeEvent(time.Now(), store.EventFence, "", token)).Err(); err != nil {
		return e.fail(ctx, "fence", err)
	}
	return nil
}

// scriptCall is one script run in a pipeline.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
}

// runPipelined runs calls in one pipeline with EVALSHA. Calls that reached a node
// without the script cached (NOSCRIPT) ran nothing there and are sent again with
// EVAL, which caches it. It returns the first error of any call.
func (s *Store) runPipelined(ctx context.Context, calls ...scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	pipe := s.client.Pipeline()
	for i, c := range calls {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx)
	var again []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		pipe = s.client.Pipeline()
		for _, i := range again {
			cmds[i] = calls[i].script.Eval(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		_, _ = pipe.Exec(ctx)
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return cmds, err
		}
	}
	return cmds, nil
}

// fail wraps a backend error with the store's name and the operation, and with
// ctx.Err() when the context ended, whatever go-redis reported (often an i/o timeout).
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("redisstore: %s: %w: %w", op, cerr, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}
