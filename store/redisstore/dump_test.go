package redisstore_test

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mpsession/mpsession/internal/dumptest"
	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/store/redisstore"
)

// TestDumpHoldsNoSecret logs users in through fibermp against Redis, then reads every
// key the store wrote, with every field, member and value, and looks there for each
// secret of the logins in every common encoding.
func TestDumpHoldsNoSecret(t *testing.T) {
	t.Parallel()
	c := testenv.Redis(t)
	prefix := testenv.RedisPrefix(t, c)
	st := redisstore.New(c, redisstore.Config{Prefix: prefix})
	t.Cleanup(func() { _ = st.Close() })

	secrets, clear := dumptest.Logins(t, st)
	dump := dumpRedis(t, c, prefix)
	if !dumptest.Holds(dump, clear) {
		t.Fatalf("the dump of %d entries does not hold the field the application set in clear (%q): it misses what the store keeps", len(dump), clear)
	}
	dumptest.Check(t, dump, secrets)
}

// dumpRedis returns every key under prefix with what it holds.
func dumpRedis(t *testing.T, c *redis.Client, prefix string) []dumptest.Entry {
	t.Helper()
	ctx := t.Context()
	var keys []string
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN %s*: %v", prefix, err)
	}
	var dump []dumptest.Entry
	add := func(data string, where string, args ...any) {
		dump = append(dump, dumptest.Entry{Where: fmt.Sprintf(where, args...), Data: []byte(data)})
	}
	members := func(k, what string, vs []string, err error) {
		if err != nil {
			t.Fatalf("Redis key %q: %v", k, err)
		}
		for i, v := range vs {
			add(v, "Redis %s %q, %s %d", what, k, what, i)
		}
	}
	for _, k := range keys {
		add(k, "Redis key name %q", k)
		switch typ := c.Type(ctx, k).Val(); typ {
		case "hash":
			fields, err := c.HGetAll(ctx, k).Result()
			if err != nil {
				t.Fatalf("HGETALL %q: %v", k, err)
			}
			for f, v := range fields {
				add(f, "Redis hash %q, field name %q", k, f)
				add(v, "Redis hash %q, field %q", k, f)
			}
		case "string":
			v, err := c.Get(ctx, k).Result()
			if err != nil {
				t.Fatalf("GET %q: %v", k, err)
			}
			add(v, "Redis string %q", k)
		case "set":
			vs, err := c.SMembers(ctx, k).Result()
			members(k, "set", vs, err)
		case "zset":
			vs, err := c.ZRange(ctx, k, 0, -1).Result()
			members(k, "zset", vs, err)
		case "list":
			vs, err := c.LRange(ctx, k, 0, -1).Result()
			members(k, "list", vs, err)
		default:
			t.Fatalf("Redis key %q has type %q, which the dump does not read", k, typ)
		}
	}
	return dump
}
