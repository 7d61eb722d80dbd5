-- name: set_job_priority
-- version: 2
-- transition: any -> same
-- purpose: Change a job's priority and re-score it in every set that is scored by priority,
--   so dequeue order changes at once (the API's PUT /job/:id/priority/:priority).
-- KEYS:
--   1 job: <prefix>:job:<id>, the job hash
-- ARGV:
--   1 prefix: the queue prefix
--   2 id: the job id
--   3 priority: integer (lower is more urgent)
-- Derived keys: <prefix>:jobs, <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>
-- Returns: the new priority
-- Errors: KUE_NOT_FOUND, KUE_BAD_PRIORITY
-- Publishes: none
--@include lib/kue.lua

local prefix, id, priority = ARGV[1], ARGV[2], tonumber(ARGV[3])
if not priority or priority ~= math.floor(priority) then
  return redis.error_reply('KUE_BAD_PRIORITY priority must be an integer')
end
local job = load_job(prefix, id)
if not job then return not_found(id) end
job.priority = priority
redis.call('HSET', KEYS[1], 'priority', int_text(priority))
redis.call('ZADD', prefix .. ':jobs', priority, zid(id))
move_state(prefix, job, job.state or 'inactive', now_ms())
return priority
