-- name: update_job
-- version: 11
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
--   <prefix>:search:word:<code>, <prefix>:search:object:<id>, <prefix>:<type>:jobs (a hash
--   without a state only)
-- Returns: the job's state
-- Errors: KUE_NOT_FOUND, KUE_BAD_ARGS
-- Publishes: enqueue
--@include lib/kue.lua
--@include lib/search.lua

local prefix, id = ARGV[1], ARGV[2]
local priority, max_attempts = int_arg(ARGV[4], -MAX_INT, MAX_INT), int_arg(ARGV[5], 1, MAX_INT)
local delay, ttl = int_arg(ARGV[6], 0, MAX_INT), int_arg(ARGV[7], 0, MAX_INT)
local backoff, remove_on_complete = ARGV[8], ARGV[9]
local e = check_prefix(prefix)
if e then return e end
if not (is_id(id) and is_json(ARGV[3]) and priority and max_attempts and delay and ttl
        and (backoff == '' or is_safe_backoff(backoff))
        and (remove_on_complete == '' or remove_on_complete == 'true')) then
  return bad_args('expected id, data JSON, integer priority, max_attempts >= 1, delay and ' ..
    'ttl ms >= 0, backoff "" or "true" or a flat JSON object, remove_on_complete "true" or ""')
end
e = check_keys({ job_key(prefix, id) })
if e then return e end
local job = load_job(prefix, id)
if not job then return not_found(id) end
local old = job.state
local now = now_ms()
local fields = { 'data', ARGV[3], 'priority', int_text(priority), 'max_attempts', int_text(max_attempts) }
if delay > 0 then
  -- Kue: promote_at = (failed_at or created_at) + delay; a hash missing both counts from now.
  local f = redis.call('HMGET', KEYS[1], 'failed_at', 'created_at')
  job.promote_at = (finite(f[1]) or finite(f[2]) or now) + delay
  fields[#fields + 1], fields[#fields + 2] = 'delay', int_text(delay)
  fields[#fields + 1], fields[#fields + 2] = 'promote_at', int_text(job.promote_at)
end
if ttl > 0 then
  job.ttl = ttl
  fields[#fields + 1], fields[#fields + 2] = 'ttl', int_text(ttl)
end
if backoff ~= '' then fields[#fields + 1], fields[#fields + 2] = 'backoff', backoff end
if remove_on_complete == 'true' then
  fields[#fields + 1], fields[#fields + 2] = 'removeOnComplete', 'true'
end
redis.call('HSET', KEYS[1], unpack(fields))
job.priority = priority
redis.call('ZADD', prefix .. ':jobs', int_text(priority), zid(id))
-- Re-scored in its own state (an active job keeps its ttl deadline); a hash without a known
-- state is put in inactive, with its wake-up token, as Kue's re-save would.
move_state(prefix, job, old or 'inactive', now)
if not old then
  sync_tokens(prefix, job.type)
  publish(prefix, id, 'enqueue', json_string(job.type))
end
if #ARGV >= 10 then
  search_remove(prefix, id)
  for t = 10, #ARGV do search_index(prefix, id, ARGV[t]) end
end
return job.state
