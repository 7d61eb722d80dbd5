-- name: set_type_paused
-- version: 2
-- transition: -
-- purpose: Pause or resume one job type for every worker of the queue: a paused type is in the
--   set <prefix>:paused, and activate_jobs claims none of its jobs (running jobs finish; new
--   ones wait in inactive). Workers look again about once a second, so a resume takes effect
--   within that.
-- KEYS:
--   1 paused: <prefix>:paused, the types paused for every worker
-- ARGV:
--   1 prefix: the queue prefix
--   2 type: the job type
--   3 paused: "1" to pause, "" to resume
-- Derived keys: none
-- Returns: 1 when the type's flag changed, 0 when it already was so
-- Errors: KUE_BAD_ARGS
-- Publishes: none
--@include lib/checks.lua

local prefix, jtype, paused = ARGV[1], ARGV[2], ARGV[3]
local e = check_prefix(prefix)
if e then return e end
if not (#ARGV == 3 and type(jtype) == 'string' and #jtype >= 1 and #jtype <= 1024
        and is_utf8(jtype) and (paused == '1' or paused == '')) then
  return bad_args('expected prefix, type (1..1024 bytes of UTF-8), paused "1" or ""')
end
e = check_keys({ prefix .. ':paused' })
if e then return e end
if paused == '1' then return redis.call('SADD', KEYS[1], jtype) end
return redis.call('SREM', KEYS[1], jtype)
