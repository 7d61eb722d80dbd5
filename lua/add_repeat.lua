-- name: add_repeat
-- version: 2
-- transition: -
-- purpose: Add or replace a repeatable job (queue.repeat): its spec and its next tick. A
--   compare-and-set on the spec the caller read: when the stored spec is no longer `expected`
--   (another process saved or removed it meanwhile) nothing is written and the caller reads
--   again. With `keep` a recorded next tick stays (same schedule re-added, e.g. at every
--   start: ticks missed while no scheduler ran are still caught up).
-- KEYS:
--   1 repeats: <prefix>:repeats, name -> the repeat's spec (JSON)
--   2 next: <prefix>:repeats:next, name scored by its next tick (ms)
-- ARGV:
--   1 prefix: the queue prefix
--   2 name: the repeat's name (non-empty UTF-8, at most 1000 bytes)
--   3 expected: the spec the caller read ("" = none)
--   4 spec: the new spec, a JSON object
--   5 next_tick: the first tick (ms, >= 0)
--   6 keep: "keep" to leave a recorded next tick as it is, "" to replace it
-- Derived keys: none
-- Returns: 1 saved, 0 the stored spec was not `expected` (nothing written)
-- Errors: KUE_BAD_ARGS
-- Publishes: none
--@include lib/kue.lua

local prefix, name, expected, spec = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local next_tick, keep = int_arg(ARGV[5], 0, MAX_INT), ARGV[6]
local e = check_prefix(prefix)
if e then return e end
if not (#ARGV == 6 and type(name) == 'string' and #name > 0 and #name <= 1000 and is_utf8(name)
        and is_json(spec) and string.sub(spec, 1, 1) == '{' and next_tick
        and (keep == 'keep' or keep == '')) then
  return bad_args('expected prefix, name (UTF-8, 1..1000 bytes), expected spec, spec (a ' ..
    'JSON object), next tick ms >= 0, keep ("keep" or "")')
end
e = check_keys({ prefix .. ':repeats', prefix .. ':repeats:next' })
if e then return e end
if (redis.call('HGET', KEYS[1], name) or '') ~= expected then return 0 end
redis.call('HSET', KEYS[1], name, spec)
if keep == '' or not redis.call('ZSCORE', KEYS[2], name) then
  redis.call('ZADD', KEYS[2], int_text(next_tick), name)
end
return 1
