-- name: retry_jobs
-- version: 3
-- transition: failed -> inactive
-- purpose: Retry failed jobs in bulk (of one type, or of all), as the dashboard's restart of
--   one job does (PUT /job/:id/state/inactive): each goes back to inactive, keeping its
--   attempts, with an `enqueue` event and its wake-up token. At most `limit` per call, oldest
--   first by the failed set's order (priority, then id).
-- KEYS:
--   1 failed: <prefix>:jobs:failed or <prefix>:jobs:<type>:failed, the set taken from
-- ARGV:
--   1 prefix: the queue prefix
--   2 type: the job type, "" for every type
--   3 limit: jobs to retry at most (1..10000)
-- Derived keys: <prefix>:job:<id>, <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>,
--   <prefix>:<type>:jobs
-- Returns: how many jobs went back to inactive
-- Errors: KUE_BAD_ARGS
-- Publishes: enqueue
--@include lib/kue.lua

local prefix, jtype, limit = ARGV[1], ARGV[2], int_arg(ARGV[3], 1, 10000)
local e = check_prefix(prefix)
if e then return e end
if not (#ARGV == 3 and type(jtype) == 'string' and is_utf8(jtype) and limit) then
  return bad_args('expected prefix, type or "", limit 1..10000')
end
e = check_keys({ jtype == '' and state_key(prefix, 'failed') or type_state_key(prefix, jtype, 'failed') })
if e then return e end
local FROM = moves_from('retry_jobs')
local now = now_ms()
local jobs, types = {}, {}
for _, z in ipairs(redis.call('ZRANGE', KEYS[1], 0, limit - 1)) do
  local id = id_of(z)
  local job = id and load_job(prefix, id)
  if job and FROM[job.state] then
    job.zid = z
    jobs[#jobs + 1] = job
    types[job.type] = true
  else
    redis.call('ZREM', KEYS[1], z)  -- a member no failed job backs
  end
end
move_many(prefix, jobs, 'inactive', now)
for _, job in ipairs(jobs) do publish(prefix, job.id, 'enqueue', json_string(job.type)) end
for t in pairs(types) do sync_tokens(prefix, t) end
return #jobs
