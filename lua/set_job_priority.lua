-- name: set_job_priority
-- version: 11
-- transition: any -> same
-- purpose: Change a job's priority and re-score it in every set that is scored by priority,
--   so dequeue order changes at once (the API's PUT /job/:id/priority/:priority).
-- KEYS:
--   1 job: <prefix>:job:<id>, the job hash
-- ARGV:
--   1 prefix: the queue prefix
--   2 id: the job id
--   3 priority: integer (lower is more urgent)
-- Derived keys: <prefix>:jobs, <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>,
--   <prefix>:<type>:jobs (a hash without a state only)
-- Returns: the new priority
-- Errors: KUE_BAD_ARGS, KUE_NOT_FOUND, KUE_BAD_PRIORITY
-- Publishes: enqueue
--@include lib/kue.lua

local prefix, id, priority = ARGV[1], ARGV[2], int_arg(ARGV[3], -MAX_INT, MAX_INT)
local e = check_prefix(prefix)
if e then return e end
if not (is_id(id) and #ARGV == 3) then return bad_args('expected prefix, id, priority') end
e = check_keys({ job_key(prefix, id) })
if e then return e end
if not priority then
  return redis.error_reply('KUE_BAD_PRIORITY priority must be an integer within +-(2^53 - 1)')
end
local job = load_job(prefix, id)
if not job then return not_found(id) end
local old = job.state
job.priority = priority
redis.call('HSET', KEYS[1], 'priority', int_text(priority))
redis.call('ZADD', prefix .. ':jobs', int_text(priority), zid(id))
-- Re-scored in its own state (an active job keeps its ttl deadline); a hash without a known
-- state is put in inactive, with its wake-up token, as Kue's re-save would.
move_state(prefix, job, old or 'inactive', now_ms())
if not old then
  sync_tokens(prefix, job.type)
  publish(prefix, id, 'enqueue', json_string(job.type))
end
return priority
