package redisstore

import "github.com/redis/go-redis/v9"

// Reserved fields of a session hash. Their names start with store.ReservedPrefix, which
// callers may not use. Every session has a deadline field ("0" for none), so a script
// learns in one HGET whether the session exists and until when it may live.
const (
	fieldOwner    = "\x00o"
	fieldDeadline = "\x00d"
	// fieldVersion counts the writes of the session's fields (Save, Incr): see
	// Store.LoadVersion. A record written before it existed has none, read as 0.
	fieldVersion = "\x00v"
)

// The scripts below touch one key each (two in Create on a single node), publish their
// own events and take "now" from the caller (see the package doc). Lua reads '\0d' as
// NUL, 'd'.

// luaLib holds the Lua helpers the scripts share.
const luaLib = `
-- live returns the session's deadline (0: none), or nil if the session does not
-- exist or its deadline has passed; then it deletes it and publishes an expired event.
-- Redis usually drops a session at its deadline by itself; see Store.Load for when it
-- does not, and clocks may disagree.
local function live(k, now, channel, hash)
  local d = redis.call('HGET', k, '\0d')
  if not d then return nil end
  d = tonumber(d) or 0
  if d > 0 and d <= now then
    redis.call('DEL', k)
    redis.call('PUBLISH', channel, string.char(4) .. hash)
    return nil
  end
  return d
end

-- user_fields returns the length of each user field's value, by name, and the
-- record's size as storekit.Size counts it: the store's own fields ('\0' first) are not
-- counted.
local function user_fields(k)
  local f = redis.call('HGETALL', k)
  local len, size = {}, 0
  for i = 1, #f, 2 do
    local n = f[i]
    if string.byte(n, 1) ~= 0 then
      len[n] = #f[i + 1]
      size = size + #n + #f[i + 1]
    end
  end
  return len, size
end

-- expires returns min(now+idle, deadline), as storekit.ExpiresAt does.
local function expires(now, idle, d)
  local exp = now + idle
  if d > 0 and d < exp then exp = d end
  return exp
end

-- add_to_index adds a session hash to its owner's index and makes the index live at
-- least as long as the session can. A session without a deadline makes it persistent.
local function add_to_index(k, hash, now, deadline)
  local ttl = redis.call('PTTL', k)
  redis.call('SADD', k, hash)
  if deadline <= 0 then
    redis.call('PERSIST', k)
  elseif ttl == -2 or (ttl >= 0 and now + ttl < deadline) then
    redis.call('PEXPIREAT', k, deadline)
  end
end
`

// scriptCreate: KEYS session [, owner index]; ARGV expires at, deadline (0: none),
// owner, hash, now, then field/value pairs. Returns 1, or 0 if the session exists.
var scriptCreate = redis.NewScript(luaLib + `
local k = KEYS[1]
local d = redis.call('HGET', k, '\0d')
if d then
  d = tonumber(d) or 0
  if d == 0 or d > tonumber(ARGV[5]) then return 0 end
  redis.call('DEL', k) -- past its deadline: gone for every operation
end
redis.call('HSET', k, '\0d', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', k, '\0o', ARGV[3]) end
for i = 6, #ARGV, 1000 do
  redis.call('HSET', k, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('PEXPIREAT', k, ARGV[1])
if KEYS[2] then add_to_index(KEYS[2], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[2])) end
return 1
`)

// scriptIndex: KEYS owner index; ARGV hash, now, deadline. Create's second half on a
// sharded client.
var scriptIndex = redis.NewScript(luaLib + `
add_to_index(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
return 1
`)

// scriptSave: KEYS session; ARGV now, idle (0: keep), limit, number of set arguments,
// channel, event, hash, then field/value pairs to set, then fields to delete.
// Returns the session's version after the write (see Store.LoadVersion) as a string, 0
// if the session does not exist, or -size if it would grow too large.
// It mirrors storekit.Apply: the deletions come after the sets, in the size count
// and in the writes, so that a field both set and deleted is deleted.
var scriptSave = redis.NewScript(luaLib + `
local k = KEYS[1]
local now, idle, limit, nset = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local d = live(k, now, ARGV[5], ARGV[7])
if not d then return 0 end
local first, last = 8, 7 + nset
if nset > 0 then
  local len, size = user_fields(k)
  for i = first, last, 2 do
    local n, l = ARGV[i], #ARGV[i + 1]
    if len[n] then size = size - len[n] + l else size = size + #n + l end
    len[n] = l
  end
  for i = last + 1, #ARGV do
    local n = ARGV[i]
    if len[n] then
      size = size - #n - len[n]
      len[n] = nil
    end
  end
  if size > limit then return -size end
  for i = first, last, 1000 do
    redis.call('HSET', k, unpack(ARGV, i, math.min(i + 999, last)))
  end
end
for i = last + 1, #ARGV, 1000 do
  redis.call('HDEL', k, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if idle > 0 then redis.call('PEXPIREAT', k, expires(now, idle, d)) end
if #ARGV > last or nset > 0 then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
  return tostring(redis.call('HINCRBY', k, '\0v', 1))
end
return redis.call('HGET', k, '\0v') or '0'
`)

// scriptIncr: KEYS session; ARGV field, delta, now, channel, event, hash, limit.
// Returns the new value as a string (Lua numbers would round integers above 2^53) and
// the session's version after the write (see Store.LoadVersion) as an integer, nil
// if the session does not exist, or, as an integer, the size the record would reach
// when a new field does not fit. A new field holds delta, so its size is known before
// HINCRBY writes it; an existing field that gains a digit is not checked, which would
// cost an HGETALL on every increment. HINCRBY's own errors (not an integer, overflow)
// abort the script before it writes.
var scriptIncr = redis.NewScript(luaLib + `
local k = KEYS[1]
if not live(k, tonumber(ARGV[3]), ARGV[4], ARGV[6]) then return false end
if redis.call('HEXISTS', k, ARGV[1]) == 0 then
  local _, size = user_fields(k)
  size = size + #ARGV[1] + #ARGV[2]
  if size > tonumber(ARGV[7]) then return size end
end
redis.call('HINCRBY', k, ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {redis.call('HGET', k, ARGV[1]), redis.call('HINCRBY', k, '\0v', 1)}
`)

// scriptTouch: KEYS session; ARGV now, idle, channel, hash. Returns the new expiry (unix
// ms), or 0 if the session does not exist.
var scriptTouch = redis.NewScript(luaLib + `
local k = KEYS[1]
local now = tonumber(ARGV[1])
local d = live(k, now, ARGV[3], ARGV[4])
if not d then return 0 end
local exp = expires(now, tonumber(ARGV[2]), d)
redis.call('PEXPIREAT', k, exp)
return exp
`)

// scriptDelete: KEYS session; ARGV channel, event. Returns the owner ("" if none), or
// nil if the session did not exist.
var scriptDelete = redis.NewScript(`
local o = redis.call('HGET', KEYS[1], '\0o')
if redis.call('DEL', KEYS[1]) == 0 then return false end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return o or ''
`)

// scriptRevoke: KEYS session; ARGV owner, now, channel, event. Deletes the session if it
// belongs to owner; returns 1 if it was live, else 0.
var scriptRevoke = redis.NewScript(`
local m = redis.call('HMGET', KEYS[1], '\0o', '\0d')
if m[1] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local d = tonumber(m[2]) or 0
if d > 0 and d <= tonumber(ARGV[2]) then return 0 end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`)
