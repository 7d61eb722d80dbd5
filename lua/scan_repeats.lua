-- name: scan_repeats
-- version: 2
-- transition: -
-- purpose: Read the repeatable jobs whose next ticks come first, with the server's clock, so
--   a scheduler (every worker's upkeep) can compute their ticks and call fire_repeat. Writes
--   nothing. With limit 0 it is just the server's clock (queue.repeat's first tick).
-- KEYS:
--   1 repeats: <prefix>:repeats, name -> the repeat's spec (JSON)
--   2 next: <prefix>:repeats:next, name scored by its next tick (ms)
-- ARGV:
--   1 prefix: the queue prefix
--   2 limit: how many repeats to read, soonest tick first (0..1000)
-- Derived keys: none
-- Returns: {now ms, then per repeat: name, next tick (ms), spec}, soonest tick first
-- Errors: KUE_BAD_ARGS
-- Publishes: none
--@include lib/kue.lua

local prefix, limit = ARGV[1], int_arg(ARGV[2], 0, 1000)
local e = check_prefix(prefix)
if e then return e end
if not (limit and #ARGV == 2) then return bad_args('expected prefix, limit 0..1000') end
e = check_keys({ prefix .. ':repeats', prefix .. ':repeats:next' })
if e then return e end
local out = { now_ms() }
if limit == 0 then return out end
local soonest = redis.call('ZRANGE', KEYS[2], 0, limit - 1, 'WITHSCORES')
for i = 1, #soonest, 2 do
  local spec = redis.call('HGET', KEYS[1], soonest[i])
  if spec then  -- a tick without a spec (no script leaves one) is not a repeat
    out[#out + 1] = soonest[i]
    out[#out + 1] = int_text(tonumber(soonest[i + 1]))
    out[#out + 1] = spec
  end
end
return out
