-- name: set_job_state
-- version: 11
-- transition: any -> inactive | active | complete | failed | delayed
-- purpose: Move a job to a state by hand (Kue's job.inactive()/active()/complete()/failed()/
--   delayed(), the API's PUT /job/:id/state/:state and GET /inactive/:id), as far as
--   kueatomic/states.py MANUAL_MOVES allows: an active job cannot be moved to active (that
--   would take it from the worker holding its lease). Leaving active drops the job's lease, so
--   the worker that held it can no longer complete or fail it. Entering active gives the job a
--   lease nobody holds (token "manual:<now>", deadline now + lease_ms), so recovery returns it
--   when nobody completes it. With mark "job" (Kue's Job#complete()/failed(), not its route)
--   complete also sets progress to 100 and failed sets failed_at.
-- KEYS:
--   1 job: <prefix>:job:<id>, the job hash
--   2 leases: <prefix>:leases, claimed jobs scored by lease deadline (ms)
-- ARGV:
--   1 prefix: the queue prefix
--   2 id: the job id
--   3 state: inactive, active, complete, failed or delayed
--   4 mark: "job" to also write what Kue's Job#complete()/failed() write, "" for the route
--   5 lease_ms: the lease of a job moved to active (> 0)
-- Derived keys: <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>, <prefix>:<type>:jobs
-- Returns: the previous state (false for a hash without a known state)
-- Errors: KUE_BAD_ARGS, KUE_NOT_FOUND, KUE_BAD_STATE, KUE_BAD_MOVE
-- Publishes: enqueue
--@include lib/kue.lua

local prefix, id, state, mark = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local lease_ms = int_arg(ARGV[5], 1, MAX_INT)
local e = check_prefix(prefix)
if e then return e end
if not (is_id(id) and (mark == '' or mark == 'job') and lease_ms and #ARGV == 5) then
  return bad_args('expected prefix, id, state, mark ("job" or ""), lease_ms > 0')
end
e = check_keys({ job_key(prefix, id), leases_key(prefix) })
if e then return e end
if not STATES[state] then
  return redis.error_reply('KUE_BAD_STATE unknown state "' .. tostring(state) ..
    '"; use inactive, active, complete, failed or delayed')
end
local job = load_job(prefix, id)
if not job then return not_found(id) end
local old = job.state
if not manual_moves(old or NO_STATE)[state] then
  return redis.error_reply('KUE_BAD_MOVE job ' .. id .. ' is ' .. tostring(old) ..
    ' and cannot be moved to ' .. state .. ' by hand')
end
local now = now_ms()
if mark == 'job' and state == 'complete' then redis.call('HSET', KEYS[1], 'progress', '100') end
if mark == 'job' and state == 'failed' then redis.call('HSET', KEYS[1], 'failed_at', int_text(now)) end
if state == 'active' then
  job.set = { 'lease', 'manual:' .. int_text(now) }
end
move_state(prefix, job, state, now)
if state == 'active' then redis.call('ZADD', KEYS[2], int_text(now + lease_ms), zid(id)) end
if old == 'inactive' or state == 'inactive' then sync_tokens(prefix, job.type) end
if state == 'inactive' and old ~= 'inactive' then
  publish(prefix, id, 'enqueue', json_string(job.type))
end
return old or false
