-- name: update_job
-- version: 2
-- transition: any -> same
-- purpose: Re-save an existing job as Kue's update() does: data, priority, attempts, delay,
--   ttl, backoff and removeOnComplete are rewritten and the job is re-scored in its current
--   state's sets. A delay changes promote_at to (failed_at or created_at) + delay. The search
--   index of the job is replaced when texts are given.
-- KEYS:
--   1 job: <prefix>:job:<id>, the job hash
-- ARGV:
--   1 prefix: the queue prefix
--   2 id: the job id
--   3 data: JSON text
--   4 priority: integer
--   5 max_attempts: integer
--   6 delay: ms, 0 = unchanged
--   7 ttl: ms, 0 = unchanged
--   8 backoff: "" = unchanged, else Kue's text
--   9 remove_on_complete: "true" or "" (unchanged)
--   10.. texts: texts to index for search (none = leave the index alone)
-- Derived keys: <prefix>:jobs, <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>,
--   <prefix>:search:word:<code>, <prefix>:search:object:<id>
-- Returns: the job's state
-- Errors: KUE_NOT_FOUND, KUE_BAD_ARGS
-- Publishes: none
--@include lib/kue.lua
--@include lib/search.lua

local prefix, id = ARGV[1], ARGV[2]
local priority, delay, ttl = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
if not (priority and delay and ttl) then
  return redis.error_reply('KUE_BAD_ARGS priority, delay and ttl must be integers')
end
local job = load_job(prefix, id)
if not job then return not_found(id) end
local now = now_ms()
local fields = { 'data', ARGV[3], 'priority', int_text(priority), 'max_attempts', ARGV[5] }
if delay > 0 then
  local base = redis.call('HGET', KEYS[1], 'failed_at') or redis.call('HGET', KEYS[1], 'created_at')
  job.promote_at = tonumber(base) + delay
  table.insert(fields, 'delay'); table.insert(fields, int_text(delay))
  table.insert(fields, 'promote_at'); table.insert(fields, int_text(job.promote_at))
end
if ttl > 0 then
  job.ttl = ttl
  table.insert(fields, 'ttl'); table.insert(fields, int_text(ttl))
end
if ARGV[8] ~= '' then table.insert(fields, 'backoff'); table.insert(fields, ARGV[8]) end
if ARGV[9] == 'true' then table.insert(fields, 'removeOnComplete'); table.insert(fields, 'true') end
redis.call('HSET', KEYS[1], unpack(fields))
job.priority = priority
redis.call('ZADD', prefix .. ':jobs', priority, zid(id))
move_state(prefix, job, job.state or 'inactive', now)
if #ARGV >= 10 then
  search_remove(prefix, id)
  for t = 10, #ARGV do search_index(prefix, id, ARGV[t]) end
end
return job.state
