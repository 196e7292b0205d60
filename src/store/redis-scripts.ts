// Lua scripts for the Redis store. A script runs atomically on the server, so "create, then set
// the TTL only if new" and the sliding-window update need no locks and one round trip. Every
// script touches exactly one key (KEYS[1]), so they also work on Redis Cluster.
import { createHash } from 'node:crypto';

export interface Script {
  readonly lua: string;
  readonly sha: string;
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** ARGV: by, ttlMs (0 = none). Returns the new value. */
export const INCR = script(`
local existed = redis.call('EXISTS', KEYS[1])
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if existed == 0 and ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return v
`);

/** ARGV: ttlMs, member... Returns how many members were new. */
export const SADD = script(`
local existed = redis.call('EXISTS', KEYS[1])
local added = 0
-- unpack() is limited by the Lua C stack, so add in slices.
for i = 2, #ARGV, 1000 do
  added = added + redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local ttl = tonumber(ARGV[1])
if existed == 0 and ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return added
`);

/** ARGV: ttlMs, field, delta, field, delta... */
export const HINCR_MANY = script(`
local existed = redis.call('EXISTS', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
local ttl = tonumber(ARGV[1])
if existed == 0 and ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 0
`);

/**
 * ARGV: windowMs, by. The same steps as slide() in window.ts, with the server's clock (TIME) so
 * nodes with skewed clocks still agree on bucket boundaries. Returns the estimate as a string
 * (a Lua number would be truncated to an integer reply).
 */
export const HIT = script(`
-- Redis < 5 needs effect replication before a write may follow TIME; later versions always do it.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(ARGV[1])
local by = tonumber(ARGV[2])
local bucket = math.floor(now / w)
local v = redis.call('HMGET', KEYS[1], 'b', 'c', 'p')
local b = tonumber(v[1])
local c = 0
local p = 0
if b == bucket then
  c = tonumber(v[2]) or 0
  p = tonumber(v[3]) or 0
elseif b == bucket - 1 then
  p = tonumber(v[2]) or 0
end
c = c + by
local elapsed = now - bucket * w
local estimate = p * (w - elapsed) / w + c
if by > 0 then
  redis.call('HSET', KEYS[1], 'b', string.format('%d', bucket), 'c', string.format('%d', c), 'p', string.format('%d', p))
  redis.call('PEXPIRE', KEYS[1], 2 * w)
end
return string.format('%.17g', estimate)
`);
