-- name: remove_repeat
-- version: 2
-- transition: -
-- purpose: Remove a repeatable job: its spec, next tick and last tick. Jobs it already
--   created stay.
-- KEYS:
--   1 repeats: <prefix>:repeats, name -> the repeat's spec (JSON)
--   2 next: <prefix>:repeats:next, name scored by its next tick (ms)
--   3 last: <prefix>:repeats:last, name -> the last tick that got a job (ms)
-- ARGV:
--   1 prefix: the queue prefix
--   2 name: the repeat's name
-- Derived keys: none
-- Returns: 1 removed, 0 no repeat of that name
-- Errors: KUE_BAD_ARGS
-- Publishes: none
--@include lib/kue.lua

local prefix, name = ARGV[1], ARGV[2]
local e = check_prefix(prefix)
if e then return e end
if not (#ARGV == 2 and type(name) == 'string' and #name > 0) then
  return bad_args('expected prefix, name')
end
e = check_keys({ prefix .. ':repeats', prefix .. ':repeats:next', prefix .. ':repeats:last' })
if e then return e end
local removed = redis.call('HDEL', KEYS[1], name)
redis.call('ZREM', KEYS[2], name)
redis.call('HDEL', KEYS[3], name)
return removed
