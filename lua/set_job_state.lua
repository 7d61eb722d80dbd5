-- name: set_job_state
-- version: 2
-- transition: any -> inactive | active | complete | failed | delayed
-- purpose: Move a job to a state by hand (Kue's job.inactive()/active()/complete()/failed()/
--   delayed(), the API's PUT /job/:id/state/:state and GET /inactive/:id). complete also sets
--   progress to 100; failed also sets failed_at. Leaving active drops the job's lease, so the
--   worker that held it can no longer complete or fail it.
-- KEYS:
--   1 job: <prefix>:job:<id>, the job hash
-- ARGV:
--   1 prefix: the queue prefix
--   2 id: the job id
--   3 state: inactive, active, complete, failed or delayed
-- Derived keys: <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>, <prefix>:<type>:jobs,
--   <prefix>:leases
-- Returns: the previous state
-- Errors: KUE_NOT_FOUND, KUE_BAD_STATE
-- Publishes: enqueue
--@include lib/kue.lua

local prefix, id, state = ARGV[1], ARGV[2], ARGV[3]
if not STATES[state] then
  return redis.error_reply('KUE_BAD_STATE unknown state "' .. tostring(state) ..
    '"; use inactive, active, complete, failed or delayed')
end
local job = load_job(prefix, id)
if not job then return not_found(id) end
local old = job.state
local now = now_ms()
if state == 'complete' then redis.call('HSET', KEYS[1], 'progress', '100') end
if state == 'failed' then redis.call('HSET', KEYS[1], 'failed_at', int_text(now)) end
move_state(prefix, job, state, now)
if old == 'inactive' or state == 'inactive' then sync_tokens(prefix, job.type) end
if state == 'inactive' and old ~= 'inactive' then
  publish(prefix, id, 'enqueue', json_string(job.type))
end
return old or false
