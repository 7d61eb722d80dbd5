-- name: cancel_job
-- version: 3
-- transition: inactive | delayed | active -> failed
-- purpose: Cancel a job that has not ended: it ends failed with error "Cancelled", no attempts
--   left (never retried), `cancelled_at` set, a log line and the `failed` event. An inactive or
--   delayed job (also one waiting for dependencies) never runs. An active job loses its lease,
--   so the worker running it can no longer complete or fail it (its late result is discarded):
--   a `cancel` message on the channel <prefix>:cancels (Kue's event format, on a channel of its
--   own so workers need not read every job's events) tells that worker to stop the handler
--   (ctx.cancelled, task cancellation); its next lease renewal reports the lease lost anyway. Then the job's end
--   rules run (lib/lifecycle.lua): unique key freed, dependents failed, retention applied.
-- KEYS:
--   1 job: <prefix>:job:<id>, the job hash
--   2 unique: <prefix>:unique, unique key -> the id of the job holding it
--   3 retained_complete: <prefix>:retained:complete, completed jobs with a retention policy
--   4 retained_failed: <prefix>:retained:failed, failed jobs with a retention policy
-- ARGV:
--   1 prefix: the queue prefix
--   2 id: the job id
-- Derived keys: <prefix>:job:<id>, <prefix>:job:<id>:log, <prefix>:leases, <prefix>:jobs, <prefix>:jobs:<state>,
--   <prefix>:jobs:<type>:<state>, <prefix>:<type>:jobs, <prefix>:job:<id>:waiting,
--   <prefix>:job:<id>:dependents, <prefix>:search:word:<code>, <prefix>:search:object:<id>
-- Returns: the state the job was in
-- Errors: KUE_BAD_ARGS, KUE_NOT_FOUND, KUE_BAD_MOVE
-- Publishes: failed, enqueue, remove
--@include lib/kue.lua
--@include lib/search.lua
--@include lib/lifecycle.lua

local prefix, id = ARGV[1], ARGV[2]
local e = check_prefix(prefix)
if e then return e end
if not (is_id(id) and #ARGV == 2) then return bad_args('expected prefix, id') end
e = check_keys({ job_key(prefix, id), prefix .. ':unique',
                 prefix .. ':retained:complete', prefix .. ':retained:failed' })
if e then return e end
local f = redis.call('HMGET', KEYS[1], 'type', 'state', 'priority', 'max_attempts', 'unique_key',
  'has_dependents', 'keep_failed')
if not f[1] then return not_found(id) end
local old = known_state(f[2])
if not moves_from('cancel_job')[old or NO_STATE] then
  return redis.error_reply('KUE_BAD_MOVE job ' .. id .. ' is ' .. tostring(old) ..
    ' and cannot be cancelled')
end
local now = now_ms()
local now_text = int_text(now)
local ends = end_keys(prefix, KEYS[2], KEYS[3], KEYS[4])
-- A job waiting for dependencies leaves their lists.
local waiting = waiting_key(prefix, id)
for _, parent in ipairs(redis.call('SMEMBERS', waiting)) do
  redis.call('SREM', dependents_key(prefix, parent), id)
end
redis.call('DEL', waiting)
redis.call('HSET', KEYS[1], 'error', 'Cancelled', 'failed_at', now_text, 'cancelled_at', now_text,
  'attempts', int_text(finite(f[4]) or 1))
redis.call('RPUSH', KEYS[1] .. ':log', 'Cancelled')
move_state(prefix, { id = id, type = f[1], state = old, priority = finite(f[3]) or 0 }, 'failed', now)
if old == 'inactive' then sync_tokens(prefix, f[1]) end
if old == 'active' then
  redis.call('PUBLISH', prefix .. ':cancels', '{"id":' .. id .. ',"event":"cancel","args":["cancel"]}')
end
publish(prefix, id, 'failed', '"Cancelled",null')
if f[5] or f[6] or f[7] then job_ended(ends, id, 'failed', f[5], f[6], f[7], now) end
return old
