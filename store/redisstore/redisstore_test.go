package redisstore

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
	"github.com/mpsession/mpsession/store/storetest"
	"github.com/redis/go-redis/v9"
)

// The tests need the Redis at MPSESSION_REDIS_ADDR (default 127.0.0.1:6379) and
// redis-server and redis-cli on PATH, for a Cluster and for a server they stop and
// start. Without them the tests skip, unless CI is set: then they fail.

func TestMain(m *testing.M) {
	testenv.QuietRedisLog()
	code := m.Run()
	stopCluster()
	if code == 0 {
		if err := testenv.FindLeaks(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// newClient returns a client of the shared single-node Redis, closed when t ends.
func newClient(t testing.TB, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: testenv.RedisAddr()}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		testenv.Unavailable(t, "Redis at %s: %v", o.Addr, err)
	}
	return c
}

// newClusterClient returns a client of the test binary's Redis Cluster, closed when t
// ends.
func newClusterClient(t testing.TB) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: clusterAddrs(t)})
	t.Cleanup(func() { c.Close() })
	return c
}

// backend is a Redis deployment and a way to get a client of it.
type backend struct {
	name   string
	client func(t testing.TB) redis.UniversalClient
}

// backends are the deployments every Redis-specific test runs against.
var backends = []backend{
	{"Single", func(t testing.TB) redis.UniversalClient { return newClient(t) }},
	{"Cluster", func(t testing.TB) redis.UniversalClient { return newClusterClient(t) }},
}

// newPrefix returns a prefix no other test uses, so that tests share Redis safely.
func newPrefix() string { return "mpsession-test-" + rand.Text() + ":" }

// newStore returns a store that is closed, and whose keys are deleted, when t ends.
func newStore(t testing.TB, c redis.UniversalClient, cfg Config) *Store {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = newPrefix()
	}
	s := New(c, cfg)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		deleteKeys(t, c, cfg.Prefix)
	})
	return s
}

// scanKeys returns the keys that start with prefix, on every node.
func scanKeys(t testing.TB, c redis.UniversalClient, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, node redis.Cmdable) error {
		iter := node.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return scan(ctx, node) })
	} else {
		err = scan(ctx, c)
	}
	if err != nil {
		t.Errorf("SCAN %s*: %v", prefix, err)
	}
	slices.Sort(keys)
	return keys
}

// deleteKeys deletes the keys that start with prefix: a test's own keys.
func deleteKeys(t testing.TB, c redis.UniversalClient, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, k := range scanKeys(t, c, prefix) {
		if err := c.Del(ctx, k).Err(); err != nil {
			t.Errorf("DEL %q: %v", k, err)
		}
	}
}

func suiteConfig(client func(t testing.TB) redis.UniversalClient) storetest.Config {
	return storetest.Config{
		New: func(t *testing.T, maxRecordBytes int) store.Store {
			return newStore(t, client(t), Config{MaxRecordBytes: maxRecordBytes})
		},
		CrossProcess: func(t *testing.T, s store.Store) store.Store {
			first := s.(*Store)
			second := New(client(t), Config{Prefix: first.prefix, MaxRecordBytes: first.limit})
			t.Cleanup(func() { second.Close() })
			return second
		},
		// Redis drops expired keys silently; the store cannot tell expiry from absence.
		SkipExpiryEvents: true,
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			b.client(t) // skip or fail at once without Redis
			storetest.Run(t, suiteConfig(b.client))
		})
	}
}

// TestKeyLayout checks the key names and expiries the package doc promises.
func TestKeyLayout(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newClient(t)
	prefix := newPrefix()
	s := newStore(t, c, Config{Prefix: prefix})
	id, owner, ticket := "id-"+rand.Text(), "owner-"+rand.Text(), "ticket-"+rand.Text()
	deadline := time.Now().Add(2 * time.Hour).Truncate(time.Millisecond)
	rec := store.Record{Fields: map[string]string{"a": "1"}, Owner: owner, Deadline: deadline}
	if err := s.Create(ctx, id, rec, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTicket(ctx, ticket, "v", time.Minute); err != nil {
		t.Fatal(err)
	}
	sk := prefix + "s:{" + store.Hash(id) + "}"
	ok := prefix + "o:{" + store.Hash(owner) + "}"
	tk := prefix + "t:{" + store.Hash(ticket) + "}"
	want := []string{ok, sk, tk}
	slices.Sort(want)
	if got := scanKeys(t, c, prefix); !slices.Equal(got, want) {
		t.Fatalf("keys: want %q; got %q", want, got)
	}

	fields, err := c.HGetAll(ctx, sk).Result()
	if err != nil {
		t.Fatal(err)
	}
	wantFields := map[string]string{"a": "1", fieldOwner: owner, fieldDeadline: strconv.FormatInt(deadline.UnixMilli(), 10)}
	if fmt.Sprint(fields) != fmt.Sprint(wantFields) {
		t.Errorf("session hash: want %q; got %q", wantFields, fields)
	}
	ttls := []struct {
		key      string
		min, max time.Duration
	}{
		{sk, time.Hour - time.Minute, time.Hour},
		{ok, 2*time.Hour - time.Minute, 2 * time.Hour},
		{tk, 59 * time.Second, time.Minute},
	}
	for _, tt := range ttls {
		if d := c.PTTL(ctx, tt.key).Val(); d < tt.min || d > tt.max {
			t.Errorf("PTTL %q: want between %v and %v; got %v", tt.key, tt.min, tt.max, d)
		}
	}
	members := c.SMembers(ctx, ok).Val()
	if !slices.Equal(members, []string{store.Hash(id)}) {
		t.Errorf("owner index: want [%s]; got %q", store.Hash(id), members)
	}
	// A ticket's value is opaque: stored as given, for the caller to seal.
	if got := c.Get(ctx, tk).Val(); got != "v" {
		t.Errorf("ticket value: want %q as given; got %q", "v", got)
	}

	// A later session with an earlier deadline never shortens the index's life; a
	// later one extends it.
	for i, d := range []time.Duration{time.Hour, 3 * time.Hour} {
		rec := store.Record{Owner: owner, Deadline: time.Now().Add(d)}
		if err := s.Create(ctx, fmt.Sprintf("%s-%d", id, i), rec, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if d := c.PTTL(ctx, ok).Val(); d < 3*time.Hour-time.Minute {
		t.Errorf("PTTL of the owner index after a later deadline: want about 3h; got %v", d)
	}

	if err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if c.SIsMember(ctx, ok, store.Hash(id)).Val() {
		t.Errorf("owner index after Delete: still holds the session")
	}
}

// TestNoCredentialInDump checks that nothing Redis holds (key names, field names,
// values, set members) contains a session id or a ticket. A ticket's value is stored as
// given, so it holds what the caller sealed (wsauth seals the session id), never the
// ticket itself.
func TestNoCredentialInDump(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			c := b.client(t)
			prefix := newPrefix()
			s := newStore(t, c, Config{Prefix: prefix})
			id, ticket := "secret-id-"+rand.Text(), "secret-ticket-"+rand.Text()
			rec := store.Record{
				Fields:   map[string]string{"name": `"Ann"`},
				Owner:    "owner-" + rand.Text(),
				Deadline: time.Now().Add(time.Hour),
			}
			if err := s.Create(ctx, id, rec, time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := s.Save(ctx, id, store.Change{Set: map[string]string{"x": "1"}}, time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Incr(ctx, id, "n", 1); err != nil {
				t.Fatal(err)
			}
			sealed := "sealed-by-the-caller-" + rand.Text()
			if err := s.PutTicket(ctx, ticket, sealed, time.Minute); err != nil {
				t.Fatal(err)
			}

			var dump []string
			keys := scanKeys(t, c, prefix)
			if len(keys) != 3 {
				t.Errorf("keys: want 3 (session, owner index, ticket); got %q", keys)
			}
			for _, k := range keys {
				dump = append(dump, k)
				switch typ := c.Type(ctx, k).Val(); typ {
				case "hash":
					for f, v := range c.HGetAll(ctx, k).Val() {
						dump = append(dump, f, v)
					}
				case "set":
					dump = append(dump, c.SMembers(ctx, k).Val()...)
				case "string":
					dump = append(dump, c.Get(ctx, k).Val())
				default:
					t.Errorf("key %q: unexpected type %q", k, typ)
				}
			}
			for _, secret := range []string{id, ticket} {
				for _, d := range dump {
					if strings.Contains(d, secret) {
						t.Errorf("Redis holds %q, which contains the secret %q", d, secret)
					}
				}
			}
			// And the ticket gives its value back as it was put.
			if got, err := s.TakeTicket(ctx, ticket); err != nil || got != sealed {
				t.Errorf("TakeTicket: want %q and nil error; got %q and %v", sealed, got, err)
			}
		})
	}
}

// roundTrips counts the round trips of one call: the commands and pipelines sent
// through a client with a context that measure marked (a Cluster pipeline sends one
// batch to each node at once). Whatever else the client sends meanwhile, with other
// contexts (health checks, a subscription, other goroutines), is not counted. Nor are
// the commands go-redis sends inside a counted one, such as the HELLO and setup
// pipeline of a connection it dials for it: they carry the context without the mark.
type roundTrips struct{ n atomic.Int64 }

type roundTripsKey struct{}

// measure returns ctx marked so that r counts what is sent with it.
func (r *roundTrips) measure(ctx context.Context) context.Context {
	return context.WithValue(ctx, roundTripsKey{}, r)
}

// count counts a command or pipeline sent with ctx if ctx carries r's mark. It returns
// the context to go on with, without the mark, so that what go-redis sends inside this
// command is not counted.
func (r *roundTrips) count(ctx context.Context) context.Context {
	if ctx.Value(roundTripsKey{}) != r {
		return ctx
	}
	r.n.Add(1)
	return context.WithValue(ctx, roundTripsKey{}, nil)
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return next(r.count(ctx), cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return next(r.count(ctx), cmds)
	}
}

// TestRoundTrips checks how many round trips each method costs. It counts while
// another goroutine sends PINGs through the same client, and, on SingleRedial, with a
// client that dials a new connection for each call, so that the count is the call's
// own whatever else the client does.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	redial := backend{"SingleRedial", func(t testing.TB) redis.UniversalClient {
		return newClient(t, func(o *redis.Options) { o.ConnMaxIdleTime = time.Nanosecond })
	}}
	for _, b := range append(slices.Clone(backends), redial) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			c := b.client(t)
			s := newStore(t, c, Config{})
			owner := "owner-" + rand.Text()
			var id, ticket string
			createOwned := func(n int) error {
				for range n {
					rec := store.Record{Owner: owner, Deadline: time.Now().Add(time.Hour)}
					if err := s.Create(ctx, "id-"+rand.Text(), rec, time.Hour); err != nil {
						return err
					}
				}
				return nil
			}
			ops := []struct {
				name  string
				want  int64
				setup func() error // not counted
				fn    func(ctx context.Context) error
			}{
				{"Create", 1, nil, func(ctx context.Context) error {
					id = "id-" + rand.Text()
					rec := store.Record{Fields: map[string]string{"a": "1"}, Owner: owner, Deadline: time.Now().Add(2 * time.Hour)}
					return s.Create(ctx, id, rec, time.Hour)
				}},
				{"Load", 1, nil, func(ctx context.Context) error { _, err := s.Load(ctx, id, 0); return err }},
				{"Load with touch", 1, nil, func(ctx context.Context) error { _, err := s.Load(ctx, id, time.Hour); return err }},
				{"Load with touch past the deadline", 1, nil, func(ctx context.Context) error {
					rec, err := s.Load(ctx, id, 3*time.Hour)
					if err == nil && !rec.ExpiresAt.Equal(rec.Deadline) {
						err = fmt.Errorf("ExpiresAt %v; want the deadline %v", rec.ExpiresAt, rec.Deadline)
					}
					return err
				}},
				{"Save", 1, nil, func(ctx context.Context) error {
					return s.Save(ctx, id, store.Change{Set: map[string]string{"b": "2"}, Delete: []string{"a"}}, time.Hour)
				}},
				{"Incr", 1, nil, func(ctx context.Context) error { _, err := s.Incr(ctx, id, "n", 1); return err }},
				{"Touch", 1, nil, func(ctx context.Context) error { return s.Touch(ctx, id, time.Hour) }},
				{"PutTicket", 1, nil, func(ctx context.Context) error {
					ticket = "ticket-" + rand.Text()
					return s.PutTicket(ctx, ticket, "v", time.Minute)
				}},
				{"TakeTicket", 1, nil, func(ctx context.Context) error { _, err := s.TakeTicket(ctx, ticket); return err }},
				{"Sessions", 2, nil, func(ctx context.Context) error { _, err := s.Sessions(ctx, owner); return err }},
				{"Delete", 2, nil, func(ctx context.Context) error { return s.Delete(ctx, id) }},
				{"DeleteOwner", 3, func() error { return createOwned(3) }, func(ctx context.Context) error {
					n, err := s.DeleteOwner(ctx, owner)
					if err == nil && n != 3 {
						err = fmt.Errorf("removed %d sessions; want 3", n)
					}
					return err
				}},
			}
			// The first run of a script on a node costs an EVAL after EVALSHA: load them
			// all on every node first.
			for _, script := range []*redis.Script{scriptCreate, scriptIndex, scriptSave, scriptIncr, scriptTouch, scriptDelete, scriptRevoke} {
				if err := script.Load(ctx, c).Err(); err != nil {
					t.Fatalf("SCRIPT LOAD: %v", err)
				}
			}
			run := func(counted bool) {
				rt := &roundTrips{}
				if counted {
					c.AddHook(rt)
				}
				for _, op := range ops {
					if op.setup != nil {
						if err := op.setup(); err != nil {
							t.Fatalf("%s: setup: %v", op.name, err)
						}
					}
					rt.n.Store(0)
					if err := op.fn(rt.measure(ctx)); err != nil {
						t.Fatalf("%s: %v", op.name, err)
					}
					if !counted {
						continue
					}
					got := rt.n.Load()
					t.Logf("%-34s %d round trip(s)", op.name, got)
					if got != op.want {
						t.Errorf("%s: want %d round trip(s); got %d", op.name, op.want, got)
					}
				}
			}
			run(false)

			// Traffic of the client's own, which the count must leave out.
			pingCtx, stopPings := context.WithCancel(ctx)
			var pings sync.WaitGroup
			pings.Go(func() {
				for pingCtx.Err() == nil {
					c.Ping(pingCtx)
				}
			})
			defer func() {
				stopPings()
				pings.Wait()
			}()
			run(true)
		})
	}
}

// TestDeadlineOvershoot checks that a session Load kept in Redis past its deadline (see
// Store.Load) is gone for every operation.
func TestDeadlineOvershoot(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			c := b.client(t)
			s := newStore(t, c, Config{})
			id, owner := "id-"+rand.Text(), "owner-"+rand.Text()
			deadline := time.Now().Add(300 * time.Millisecond)
			if err := s.Create(ctx, id, store.Record{Owner: owner, Deadline: deadline}, time.Hour); err != nil {
				t.Fatal(err)
			}
			rec, err := s.Load(ctx, id, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if d := rec.ExpiresAt.Sub(deadline).Abs(); d > time.Millisecond {
				t.Errorf("ExpiresAt: want the deadline %v; got %v", deadline, rec.ExpiresAt)
			}
			time.Sleep(time.Until(deadline.Add(50 * time.Millisecond))) // past the deadline, on the clock: what is tested
			if c.Exists(ctx, s.sessionKey(store.Hash(id))).Val() != 1 {
				t.Fatal("the session is no longer in Redis: nothing to check")
			}

			_, err = s.Load(ctx, id, 0)
			wantNotFound(t, "Load", err)
			_, err = s.Load(ctx, id, time.Hour)
			wantNotFound(t, "Load with touch", err)
			_, err = s.Incr(ctx, id, "n", 1)
			wantNotFound(t, "Incr", err)
			wantNotFound(t, "Save", s.Save(ctx, id, store.Change{Set: map[string]string{"a": "1"}}, 0))
			wantNotFound(t, "Touch", s.Touch(ctx, id, time.Hour))
			if got, err := s.Sessions(ctx, owner); err != nil || len(got) != 0 {
				t.Errorf("Sessions: want [] and nil error; got %q and %v", got, err)
			}
			if n, err := s.DeleteOwner(ctx, owner); err != nil || n != 0 {
				t.Errorf("DeleteOwner: want 0 and nil error; got %d and %v", n, err)
			}
			if err := s.Create(ctx, id, store.Record{}, time.Hour); err != nil {
				t.Errorf("Create of the same id: want nil error; got %v", err)
			}

			// A Load that finds a session past its deadline deletes it.
			id = "id-" + rand.Text()
			deadline = time.Now().Add(100 * time.Millisecond)
			if err := s.Create(ctx, id, store.Record{Deadline: deadline}, time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Load(ctx, id, time.Hour); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Until(deadline.Add(50 * time.Millisecond))) // as above
			_, err = s.Load(ctx, id, time.Hour)
			wantNotFound(t, "Load", err)
			if n := c.Exists(ctx, s.sessionKey(store.Hash(id))).Val(); n != 0 {
				t.Errorf("after Load found the session past its deadline: still in Redis")
			}
		})
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s past the deadline: want %v; got %v", what, store.ErrNotFound, err)
	}
}

// outageCalls returns a call of every method that reaches Redis.
func outageCalls(s *Store) []struct {
	name string
	fn   func(ctx context.Context) error
} {
	id := "id-" + rand.Text()
	return []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"Create", func(ctx context.Context) error {
			return s.Create(ctx, id, store.Record{Owner: "o", Deadline: time.Now().Add(time.Hour)}, time.Hour)
		}},
		{"Load", func(ctx context.Context) error { _, err := s.Load(ctx, id, 0); return err }},
		{"Load with touch", func(ctx context.Context) error { _, err := s.Load(ctx, id, time.Hour); return err }},
		{"Save", func(ctx context.Context) error {
			return s.Save(ctx, id, store.Change{Set: map[string]string{"a": "1"}}, time.Hour)
		}},
		{"Incr", func(ctx context.Context) error { _, err := s.Incr(ctx, id, "n", 1); return err }},
		{"Touch", func(ctx context.Context) error { return s.Touch(ctx, id, time.Hour) }},
		{"Delete", func(ctx context.Context) error { return s.Delete(ctx, id) }},
		{"Sessions", func(ctx context.Context) error { _, err := s.Sessions(ctx, "o"); return err }},
		{"DeleteOwner", func(ctx context.Context) error { _, err := s.DeleteOwner(ctx, "o"); return err }},
		{"PutTicket", func(ctx context.Context) error { return s.PutTicket(ctx, "t", "v", time.Minute) }},
		{"TakeTicket", func(ctx context.Context) error { _, err := s.TakeTicket(ctx, "t"); return err }},
	}
}

// wantOutageError fails the test unless err is a backend failure that took no longer
// than the context allowed.
func wantOutageError(t *testing.T, what string, err error, took, limit time.Duration) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s with Redis down: want an error; got nil", what)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExists):
		t.Errorf("%s with Redis down: want a backend error; got %v", what, err)
	case !strings.HasPrefix(err.Error(), "redisstore: "):
		t.Errorf("%s with Redis down: want an error naming the store; got %v", what, err)
	}
	if took > limit {
		t.Errorf("%s with Redis down: took %v; want at most %v", what, took, limit)
	}
}

// TestOutage checks that a store whose Redis is unreachable returns errors promptly
// and does not panic.
func TestOutage(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		name   string
		client func(addr string) redis.UniversalClient
	}{
		{"Single", func(addr string) redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: addr}) }},
		{"Cluster", func(addr string) redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			c := b.client(testenv.FreeAddr(t))
			t.Cleanup(func() { c.Close() })
			s := New(c, Config{Prefix: newPrefix()})
			t.Cleanup(func() { s.Close() })
			const timeout = 500 * time.Millisecond
			for _, call := range outageCalls(s) {
				ctx, cancel := context.WithTimeout(t.Context(), timeout)
				start := time.Now()
				err := call.fn(ctx)
				cancel()
				took := time.Since(start)
				t.Logf("%-15s %4dms %v", call.name, took.Milliseconds(), err)
				wantOutageError(t, call.name, err, took, timeout+500*time.Millisecond)
			}
			start := time.Now()
			unsubscribe, err := s.Subscribe(func(store.Event) {})
			if err == nil {
				unsubscribe()
				t.Errorf("Subscribe with Redis down: want an error; got nil")
			}
			if took := time.Since(start); took > s.subscribeTimeout+time.Second {
				t.Errorf("Subscribe with Redis down: took %v", took)
			}
		})
	}
}

// hungStore returns a store on a Redis that accepts connections and never answers, with
// SubscribeTimeout timeout. Without a read timeout of its own, go-redis waits as long as
// the context lets it: only SubscribeTimeout can end the wait.
func hungStore(t *testing.T, timeout time.Duration) (*Store, *testenv.HungServer) {
	t.Helper()
	hung := testenv.StartHung(t)
	c := redis.NewClient(&redis.Options{Addr: hung.Addr, ContextTimeoutEnabled: true, ReadTimeout: -1})
	t.Cleanup(func() { c.Close() })
	s := New(c, Config{Prefix: newPrefix(), SubscribeTimeout: timeout})
	t.Cleanup(func() { s.Close() })
	return s, hung
}

// TestSubscribeTimeout checks that Config.SubscribeTimeout, not the default nor
// go-redis's own timeouts, bounds how long Subscribe and Listen wait for a Redis that
// accepts connections and never answers.
func TestSubscribeTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		call func(s *Store) error
	}{
		{"Subscribe", func(s *Store) error {
			unsubscribe, err := s.Subscribe(func(store.Event) {})
			if err == nil {
				unsubscribe()
			}
			return err
		}},
		{"Listen", func(s *Store) error {
			stop, err := s.Listen("topic", func([]byte) {})
			if err == nil {
				stop()
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const timeout = 300 * time.Millisecond
			s, hung := hungStore(t, timeout)
			start := time.Now()
			err := tc.call(s)
			took := time.Since(start)
			if err == nil {
				t.Fatalf("%s to a hung Redis: want an error; got nil", tc.name)
			}
			if took < timeout || took > ConfigDefault.SubscribeTimeout/2 {
				t.Errorf("%s to a hung Redis with SubscribeTimeout %v: took %v (%v)", tc.name, timeout, took, err)
			}
			hung.Close() // go-redis's connections fail at once, so Close waits for none
		})
	}
}

// TestSubscribeTimeoutDefault checks that a SubscribeTimeout of zero or less takes the
// default, as the other fields do.
func TestSubscribeTimeoutDefault(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, -time.Second} {
		if got := configDefault(Config{SubscribeTimeout: d}).SubscribeTimeout; got != 5*time.Second {
			t.Errorf("SubscribeTimeout %v: want the default, 5s; got %v", d, got)
		}
	}
	if got := configDefault(Config{SubscribeTimeout: time.Second}).SubscribeTimeout; got != time.Second {
		t.Errorf("SubscribeTimeout 1s: want 1s; got %v", got)
	}
}

// TestRecovery stops Redis under load and starts it again: while it is down every
// operation fails promptly, and within 2 s of its return operations succeed and events
// flow again.
func TestRecovery(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	addr := srv.Addr
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	s := New(c, Config{Prefix: newPrefix()})
	t.Cleanup(func() { s.Close() })
	events := make(chan store.Event, 1024)
	var resyncs atomic.Int64
	unsubscribe, err := s.Subscribe(func(ev store.Event) {
		if ev.Kind == store.EventResync {
			resyncs.Add(1)
		}
		select {
		case events <- ev:
		default:
		}
	})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer unsubscribe()
	id := "id-" + rand.Text()
	if err := s.Create(t.Context(), id, store.Record{Owner: "o"}, time.Hour); err != nil {
		t.Fatalf("Create: %v", err)
	}

	srv.Stop()
	// Traffic during the outage, enough to trip go-redis's dial circuit breaker.
	var wg sync.WaitGroup
	for range 4 {
		for _, call := range outageCalls(s) {
			wg.Go(func() {
				const timeout = 500 * time.Millisecond
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				start := time.Now()
				err := call.fn(ctx)
				wantOutageError(t, call.name, err, time.Since(start), timeout+500*time.Millisecond)
			})
		}
	}
	wg.Wait()
	time.Sleep(500 * time.Millisecond) // down for a while, as in a real outage

	srv.Start(t)
	back := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		err := s.Create(ctx, "id-"+rand.Text(), store.Record{Owner: "o"}, time.Hour)
		cancel()
		if err == nil {
			break
		}
		if time.Since(back) > 10*time.Second {
			t.Fatalf("Create 10 s after Redis came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(back)
	t.Logf("operations succeed %v after Redis came back", took)
	if took > 2*time.Second {
		t.Errorf("operations succeed %v after Redis came back; want at most 2s", took)
	}

	// Events published from now on arrive: the subscription came back too.
	id = "id-" + rand.Text()
	if err := s.Create(t.Context(), id, store.Record{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitEventFlow(t, s, id, events, 10*time.Second)
	t.Logf("events flow %v after Redis came back", time.Since(back))
	// Events written during the outage were lost: subscribers were told.
	if resyncs.Load() == 0 {
		t.Errorf("after Redis came back: want a %v event; got none", store.EventResync)
	}
}

// waitEventFlow saves to id every 50 ms until its changed event arrives on events, and
// returns how long that took.
func waitEventFlow(t *testing.T, s *Store, id string, events <-chan store.Event, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		ch := store.Change{Set: map[string]string{"i": strconv.Itoa(i)}}
		if err := s.Save(t.Context(), id, ch, time.Hour); err != nil {
			t.Fatalf("Save: %v", err)
		}
		for {
			select {
			case ev := <-events:
				if ev.Kind == store.EventChanged && ev.Hash == store.Hash(id) {
					return time.Since(start)
				}
				continue
			case <-tick.C:
			}
			break
		}
		if time.Since(start) > limit {
			t.Fatalf("no event within %v", limit)
		}
	}
}

// pubsubConns returns the ids of the pub/sub connections named name.
func pubsubConns(t *testing.T, c *redis.Client, name string) []string {
	t.Helper()
	list, err := c.Do(t.Context(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		var id string
		named := false
		for _, kv := range strings.Fields(sc.Text()) {
			k, v, _ := strings.Cut(kv, "=")
			switch {
			case k == "id":
				id = v
			case k == "name" && v == name:
				named = true
			}
		}
		if named {
			ids = append(ids, id)
		}
	}
	return ids
}

// TestResubscribe kills the store's pub/sub connection from another client and checks
// that every subscriber receives an EventResync, that later events arrive, and that all
// subscribers share one connection.
func TestResubscribe(t *testing.T) {
	t.Parallel()
	name := "mpsession-test-" + rand.Text()
	c := newClient(t, func(o *redis.Options) { o.ClientName = name })
	admin := newClient(t)
	s := newStore(t, c, Config{})
	events := make(chan store.Event, 1024)
	var other, otherResyncs atomic.Int64
	for _, fn := range []func(store.Event){
		func(ev store.Event) { events <- ev },
		func(ev store.Event) {
			other.Add(1)
			if ev.Kind == store.EventResync {
				otherResyncs.Add(1)
			}
		},
	} {
		unsubscribe, err := s.Subscribe(fn)
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		defer unsubscribe()
	}
	conns := pubsubConns(t, admin, name)
	if len(conns) != 1 {
		t.Fatalf("pub/sub connections after two Subscribes: want 1; got %d", len(conns))
	}

	id := "id-" + rand.Text()
	if err := s.Create(t.Context(), id, store.Record{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitEventFlow(t, s, id, events, 5*time.Second)
	// The first subscription is no resubscription.
	if n := otherResyncs.Load(); n != 0 {
		t.Errorf("resync events before the kill: want 0; got %d", n)
	}

	if err := admin.Do(t.Context(), "CLIENT", "KILL", "ID", conns[0]).Err(); err != nil {
		t.Fatalf("CLIENT KILL ID %s: %v", conns[0], err)
	}
	// Nothing is written until the resync arrives: go-redis notices the closed
	// connection by itself.
	took := waitResync(t, events, 10*time.Second)
	t.Logf("resync %v after the pub/sub connection was killed", took)
	took = waitEventFlow(t, s, id, events, 10*time.Second)
	t.Logf("events flow %v after the resync", took)
	after := pubsubConns(t, admin, name)
	if len(after) != 1 || after[0] == conns[0] {
		t.Errorf("pub/sub connections after the kill: want one new one; got %q (killed %s)", after, conns[0])
	}
	if other.Load() == 0 {
		t.Errorf("second subscriber: got no events")
	}
	if otherResyncs.Load() == 0 {
		t.Errorf("second subscriber: got no %v event", store.EventResync)
	}
}

// waitResync waits for an EventResync on events, failing the test on any other event
// or after limit, and returns how long it took.
func waitResync(t *testing.T, events <-chan store.Event, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	timeout := time.After(limit)
	for {
		select {
		case ev := <-events:
			if ev.Kind != store.EventResync {
				t.Fatalf("before the resync: want no event; got %v %s %q", ev.Kind, ev.Hash, ev.Fields)
			}
			if ev.Hash != "" || ev.Fields != nil {
				t.Errorf("resync event: want no hash and no fields; got %q and %q", ev.Hash, ev.Fields)
			}
			return time.Since(start)
		case <-timeout:
			t.Fatalf("no %v event within %v", store.EventResync, limit)
		}
	}
}

// TestUnsubscribe checks that an unsubscribed function is not called again.
func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := newStore(t, c, Config{})
	var calls atomic.Int64
	unsubscribe, err := s.Subscribe(func(store.Event) { calls.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan store.Event, 1024)
	unsubscribe2, err := s.Subscribe(func(ev store.Event) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer unsubscribe2()
	unsubscribe()
	unsubscribe()
	id := "id-" + rand.Text()
	if err := s.Create(t.Context(), id, store.Record{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitEventFlow(t, s, id, events, 5*time.Second)
	if n := calls.Load(); n != 0 {
		t.Errorf("unsubscribed function: called %d times", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(func(store.Event) {}); err == nil {
		t.Errorf("Subscribe after Close: want an error; got nil")
	}
}

func TestEventEncoding(t *testing.T) {
	t.Parallel()
	hash := store.Hash("id")
	at := time.UnixMilli(1764370000123)
	for _, ev := range []store.Event{
		{Kind: store.EventChanged, Hash: hash, Fields: []string{"a", "", "12:34", "名字", strings.Repeat("x", 1000)}},
		{Kind: store.EventDeleted, Hash: hash},
		{Kind: store.EventRevoked, Hash: hash},
		{Kind: store.EventExpired, Hash: hash},
		{Kind: store.EventChanged, Hash: hash, Fields: []string{"a"}, At: at},
		{Kind: store.EventDeleted, Hash: hash, At: at},
		// Origins: after the time, before it when there is none, and holding the
		// characters the format uses.
		{Kind: store.EventChanged, Hash: hash, Fields: []string{"a", "#b", "@c"}, At: at, Origin: "o1"},
		{Kind: store.EventChanged, Hash: hash, Fields: []string{"n"}, Origin: "node-7:4f2a"},
		{Kind: store.EventDeleted, Hash: hash, At: at, Origin: "#@1:a@5#"},
		{Kind: store.EventRevoked, Hash: hash, Origin: strings.Repeat("~", 64)},
		{Kind: store.EventRevoked, Hash: hash, At: at, Origin: "!"},
	} {
		p := encodeEvent(ev.At, ev.Kind, ev.Hash, ev.Origin, ev.Fields...)
		got, ok := decodeEvent(p)
		if !ok || fmt.Sprint(got) != fmt.Sprint(ev) {
			t.Errorf("decode(%q): want %v; got %v, %v", p, ev, got, ok)
		}
	}
	// A payload without an origin is the same as before origins existed.
	if p, want := encodeEvent(at, store.EventChanged, hash, "", "ab"), "\x01"+hash+"2:ab@1764370000123"; p != want {
		t.Errorf("encode without an origin: want %q; got %q", want, p)
	}
	// The scripts write an expired event as the byte 4 and the hash.
	if store.EventExpired != 4 {
		t.Errorf("store.EventExpired is %d; the Lua scripts send 4", store.EventExpired)
	}
	for _, p := range []string{"", "\x01", "\x00" + hash, "\x05" + hash, "\x01" + hash + "3:ab", "\x01" + hash + "x", "\x01" + hash + "1",
		"\x01" + hash + "@", "\x01" + hash + "@x", "\x01" + hash + "@-5", "\x01" + hash + "@+5", "\x01" + hash + "@99999999999999999999",
		// Origins store.ValidOrigin refuses, and misplaced trailers.
		"\x01" + hash + "#", "\x01" + hash + "@5#", "\x01" + hash + "#a b", "\x01" + hash + "#a\x7f", "\x01" + hash + "#é",
		"\x01" + hash + "#" + strings.Repeat("o", 65), "\x01" + hash + "@5#o\n", "\x01" + hash + "@5" + "1:a", "\x01" + hash + "@#o"} {
		if ev, ok := decodeEvent(p); ok {
			t.Errorf("decode(%q): want false; got %v", p, ev)
		}
	}
	// After "#", everything is the origin: a field or a time there is part of it.
	for p, want := range map[string]string{"\x01" + hash + "#o@5": "o@5", "\x01" + hash + "#o1:a": "o1:a"} {
		if ev, ok := decodeEvent(p); !ok || ev.Origin != want || ev.Fields != nil || !ev.At.IsZero() {
			t.Errorf("decode(%q): want origin %q alone; got %v, %v", p, want, ev, ok)
		}
	}
}

// TestEventOriginLikeStore checks that the payload carries exactly the origins for
// which store.ValidOrigin is true, those that Events.From takes, and "" as none.
func TestEventOriginLikeStore(t *testing.T) {
	t.Parallel()
	hash := store.Hash("id")
	// From reaches no Redis: the client is never used.
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	defer c.Close()
	events := New(c).Capabilities().Events
	for _, o := range []string{"o1", "", " ", "a b", "\x00", "\x7f", "é", strings.Repeat("x", 64), strings.Repeat("x", 65), "#", "@", "~!"} {
		valid := store.ValidOrigin(o)
		if taken := fromTakes(events, o); taken != valid {
			t.Errorf("origin %q: store.ValidOrigin says %v; Events.From takes it: %v", o, valid, taken)
		}
		if valid || o == "" {
			ev, ok := decodeEvent(encodeEvent(time.Time{}, store.EventDeleted, hash, o))
			if !ok || ev.Origin != o {
				t.Errorf("origin %q: the payload carries %q (%v)", o, ev.Origin, ok)
			}
		}
		if _, ok := decodeEvent("\x02" + hash + "#" + o); ok != valid {
			t.Errorf("decode of origin %q: want ok %v; got %v", o, valid, ok)
		}
	}
}

// TestEventFenceWire checks a fence's payload: kind, time and token, read back as they
// were sent, and payloads a fence may not take (a hash, fields, no token, an invalid
// token) refused. EventResync never travels: its kind is refused too.
func TestEventFenceWire(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1764370000123)
	for _, token := range []string{"t", "mpsession-cache:ab12/99", strings.Repeat("~", 64)} {
		ev, ok := decodeEvent(encodeEvent(at, store.EventFence, "", token))
		if want := (store.Event{Kind: store.EventFence, At: at, Origin: token}); !ok || fmt.Sprint(ev) != fmt.Sprint(want) {
			t.Errorf("fence %q: want %v; got %v, %v", token, want, ev, ok)
		}
	}
	for _, p := range []string{"\x06", "\x06#", "\x06@5", "\x06@5#", "\x06#a b", "\x061:a#t", "\x06" + store.Hash("id") + "#t",
		"\x05" + store.Hash("id"), "\x07" + store.Hash("id")} {
		if ev, ok := decodeEvent(p); ok {
			t.Errorf("decode(%q): want refused; got %v", p, ev)
		}
	}
}

// fromTakes reports whether events.From returns a view for origin rather than panic.
func fromTakes(events store.Events, origin string) (taken bool) {
	defer func() {
		if recover() != nil {
			taken = false
		}
	}()
	return events.From(origin) != nil
}

// FuzzDecodeEvent feeds payloads as any publisher on the channel could send them.
func FuzzDecodeEvent(f *testing.F) {
	at := time.UnixMilli(1764370000123)
	f.Add(encodeEvent(time.Time{}, store.EventChanged, store.Hash("id"), "", "a", "bc"))
	f.Add(encodeEvent(at, store.EventRevoked, store.Hash("id"), ""))
	f.Add(encodeEvent(at, store.EventChanged, store.Hash("id"), "", "a"))
	f.Add(encodeEvent(at, store.EventChanged, store.Hash("id"), "o1", "a", "#", "@"))
	f.Add(encodeEvent(time.Time{}, store.EventDeleted, store.Hash("id"), "#@1:x"))
	f.Add(encodeEvent(at, store.EventRevoked, store.Hash("id"), strings.Repeat("~", 64)))
	f.Add("\x01" + store.Hash("id") + "99999999999:")
	f.Add("\x01" + store.Hash("id") + "@5#")
	f.Add("\x01" + store.Hash("id") + "#a b")
	f.Add(encodeEvent(at, store.EventFence, "", "mpsession-cache:0123/456"))
	f.Add(encodeEvent(time.Time{}, store.EventFence, "", strings.Repeat("~", 64)))
	f.Add("\x06" + store.Hash("id") + "#t")
	f.Add("\x061:a#t")
	f.Add("\x06@5")
	f.Add("\x05" + store.Hash("id"))
	f.Fuzz(func(t *testing.T, p string) {
		ev, ok := decodeEvent(p)
		if !ok {
			return
		}
		if ev.Origin != "" && !store.ValidOrigin(ev.Origin) {
			t.Errorf("decode(%q): origin %q, which store.ValidOrigin refuses", p, ev.Origin)
		}
		again, ok := decodeEvent(encodeEvent(ev.At, ev.Kind, ev.Hash, ev.Origin, ev.Fields...))
		if !ok || fmt.Sprint(again) != fmt.Sprint(ev) {
			t.Errorf("decode(encode(decode(%q))): want %v; got %v, %v", p, ev, again, ok)
		}
	})
}

// FuzzIncrLikeMemory checks that Redis and the memory store (memstore) agree on what
// Incr makes of a value and a delta: the same result, or store.ErrNotInteger from both.
func FuzzIncrLikeMemory(f *testing.F) {
	for _, v := range []string{"0", "-1", "12", "+5", "-0", "007", " 5", "", "1e3",
		"9223372036854775807", "-9223372036854775808", "9223372036854775808", "00000000000000000001"} {
		f.Add(v, int64(1))
		f.Add(v, int64(-1))
	}
	f.Add("1", int64(math.MaxInt64))
	f.Add("-2", int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, v string, delta int64) {
		if len(v) > 64 {
			t.Skip("longer than any int64")
		}
		ctx := t.Context()
		rs := newStore(t, newClient(t), Config{})
		ms := memstore.New()
		defer ms.Close()
		results := make([]string, 2)
		for i, s := range []store.Store{rs, ms} {
			if err := s.Create(ctx, "id", store.Record{Fields: map[string]string{"v": v}}, time.Hour); err != nil {
				t.Fatal(err)
			}
			n, err := s.Incr(ctx, "id", "v", delta)
			switch {
			case errors.Is(err, store.ErrNotInteger):
				results[i] = "ErrNotInteger"
			case err != nil:
				t.Fatalf("Incr(%q, %d): %v", v, delta, err)
			default:
				results[i] = strconv.FormatInt(n, 10)
			}
		}
		if results[0] != results[1] {
			t.Errorf("Incr of %q by %d: Redis %s; Memory %s", v, delta, results[0], results[1])
		}
	})
}

func BenchmarkRedis(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			storetest.Bench(b, newStore(b, be.client(b), Config{}))
		})
	}
}

// The Cluster: three masters on loopback ports, started once for the test binary.
var cluster struct {
	once  sync.Once
	addrs []string
	err   error
	dir   string
	procs []*exec.Cmd
}

func clusterAddrs(t testing.TB) []string {
	t.Helper()
	cluster.once.Do(func() { cluster.addrs, cluster.err = startCluster() })
	if cluster.err != nil {
		testenv.Unavailable(t, "Redis Cluster: %v", cluster.err)
	}
	return cluster.addrs
}

// freePorts returns n loopback ports free at the time of the call.
func freePorts(n int) ([]string, error) {
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		_, port, _ := net.SplitHostPort(l.Addr().String())
		ports = append(ports, port)
	}
	return ports, nil
}

func startCluster() ([]string, error) {
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "redisstore-cluster-")
	if err != nil {
		return nil, err
	}
	cluster.dir = dir
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for i := range 3 {
		port, bus := ports[2*i], ports[2*i+1]
		cmd := testenv.RedisCommand(port, dir, "--cluster-port", bus, "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes-"+port+".conf"),
			"--logfile", filepath.Join(dir, "redis-"+port+".log"))
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		cluster.procs = append(cluster.procs, cmd)
		addrs = append(addrs, "127.0.0.1:"+port)
	}
	for _, addr := range addrs {
		if err := testenv.WaitRedis(addr, 10*time.Second); err != nil {
			return nil, fmt.Errorf("node %s: %w", addr, err)
		}
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		for {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				return nil, fmt.Errorf("node %s: cluster not ok after 30 s: %v %s", addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
	return addrs, nil
}

func stopCluster() {
	for _, cmd := range cluster.procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	if cluster.dir != "" {
		_ = os.RemoveAll(cluster.dir)
	}
}
