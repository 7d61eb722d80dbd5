-- name: recover_jobs
-- version: 11
-- transition: active -> inactive | delayed | failed
-- purpose: Crash recovery and Kue's ttl, for any process to call at any time (no lock):
--   1) jobs whose lease expired (the worker was killed, hung or lost Redis for longer than its
--   lease) go back to inactive with a log line and a `stalled` event, their hash counting
--   `stalls` (per attempt: every failed attempt resets the count); one stall past max_stalls
--   ends the attempt instead, as an ordinary failed attempt with a "Stalled: ..." error
--   (retried with the job's backoff while attempts remain, else failed). 2) active jobs past
--   their ttl deadline (score in [100000, now] of <prefix>:jobs:active; progress pushes it
--   back) get a failed attempt "TTL exceeded" (retried if attempts remain), as Kue's ttl
--   sweeper does; a job claimed by a Node Kue worker (no lease) is left to Kue's own sweeper
--   for grace_ms first. 3) with rebalance "1", every type's wake-up tokens are re-synced
--   (watchStuckJobs). At most `limit` jobs per part per call. A job that fails for good gets
--   its end rules (lib/lifecycle.lua), as in fail_jobs.
-- KEYS:
--   1 leases: <prefix>:leases, claimed jobs scored by lease deadline (ms)
--   2 active: <prefix>:jobs:active, active jobs scored by ttl deadline (or <= 0 without ttl)
--   3 types: <prefix>:job:types, every job type (read for rebalance)
--   4 unique: <prefix>:unique, unique key -> the id of the job holding it
--   5 retained_complete: <prefix>:retained:complete, completed jobs with a retention policy
--   6 retained_failed: <prefix>:retained:failed, failed jobs with a retention policy
-- ARGV:
--   1 prefix: the queue prefix
--   2 limit: jobs to handle at most per part (> 0)
--   3 max_stalls: how many lease expiries an attempt survives; the next one fails it (>= 0)
--   4 grace_ms: extra ms a lease-less (Node Kue) job past its ttl is left to Kue's sweeper
--   5 rebalance: "1" to re-sync every type's wake-up tokens, "" not to
-- Derived keys: <prefix>:job:<id>, <prefix>:job:<id>:log, <prefix>:jobs:<state>,
--   <prefix>:jobs:<type>:<state>, <prefix>:<type>:jobs, <prefix>:jobs,
--   <prefix>:job:<id>:waiting, <prefix>:job:<id>:dependents, <prefix>:search:word:<code>,
--   <prefix>:search:object:<id>
-- Returns: {requeued, stalled_failed, ttl_failed}: counts of jobs put back to inactive after a
--   stall, failed attempts for stalling too often, and failed attempts for an exceeded ttl
-- Errors: KUE_BAD_ARGS
-- Publishes: stalled, enqueue, error, failed attempt, failed, ttl exceeded, ttl exceeded ack,
--   remove
--@include lib/kue.lua
--@include lib/search.lua
--@include lib/lifecycle.lua

local prefix, limit, max_stalls = ARGV[1], int_arg(ARGV[2], 1, 100000), int_arg(ARGV[3], 0, MAX_INT)
local grace_ms = int_arg(ARGV[4], 0, MAX_INT)
local e = check_prefix(prefix)
if e then return e end
if not (limit and max_stalls and grace_ms and #ARGV == 5 and (ARGV[5] == '1' or ARGV[5] == '')) then
  return bad_args('expected limit 1..100000, max_stalls >= 0, grace_ms >= 0, rebalance "1" or ""')
end
e = check_keys({ leases_key(prefix), state_key(prefix, 'active'), prefix .. ':job:types',
                 prefix .. ':unique', prefix .. ':retained:complete', prefix .. ':retained:failed' })
if e then return e end
local FROM = moves_from('recover_jobs')
local now = now_ms()
local requeued, stalled_failed, ttl_failed = 0, 0, 0
local touched_types = {}
local ends = end_keys(prefix, KEYS[4], KEYS[5], KEYS[6])

-- The events of a failed attempt, after failed_attempt() ran.
local function publish_outcome(job, state, attempts, message)
  if state == 'inactive' then
    touched_types[job.type] = true
    publish(prefix, job.id, 'enqueue', json_string(job.type))
  end
  if state == 'failed' then
    publish(prefix, job.id, 'failed', json_string(message) .. ',null')
    local f = redis.call('HMGET', job_key(prefix, job.id), 'unique_key', 'has_dependents',
      'keep_failed')
    if f[1] or f[2] or f[3] then job_ended(ends, job.id, 'failed', f[1], f[2], f[3], now) end
  else
    publish(prefix, job.id, 'failed attempt', json_string(message) .. ',' .. attempts)
  end
end

-- 1) expired leases
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
for _, z in ipairs(expired) do
  local id = id_of(z)
  local job = id and load_attempt_job(prefix, id)
  if not job or not FROM[job.state] or not job.lease then
    redis.call('ZREM', KEYS[1], z)  -- stale: the job left active without its lease (or is gone)
    if job and job.lease then redis.call('HDEL', job_key(prefix, id), 'lease') end
  else
    local key = job_key(prefix, id)
    -- Counted here, not by HINCRBY, which would fail on a count stored oddly.
    local stalls = (finite(redis.call('HGET', key, 'stalls')) or 0) + 1
    redis.call('HSET', key, 'stalls', int_text(stalls))
    publish(prefix, id, 'stalled', int_text(stalls))
    if stalls > max_stalls then
      -- An ordinary failed attempt: retried (with the job's backoff) while attempts remain.
      local err = 'Stalled: the worker stopped renewing its lease (killed, hung or cut off ' ..
        'from Redis) ' .. stalls .. ' times in this attempt; max_stalls is ' .. int_text(max_stalls)
      publish(prefix, id, 'error', json_string(err))
      local state, attempts = failed_attempt(prefix, job, err, err, '', now)
      publish_outcome(job, state, attempts, err)
      stalled_failed = stalled_failed + 1
    else
      redis.call('RPUSH', key .. ':log', 'Stalled: the lease expired (worker killed, hung or ' ..
        'cut off from Redis); back to inactive (stall ' .. stalls .. ')')
      move_state(prefix, job, 'inactive', now)
      touched_types[job.type] = true
      publish(prefix, id, 'enqueue', json_string(job.type))
      requeued = requeued + 1
    end
  end
end

-- 2) ttl exceeded (Kue's sweeper range: only scores that are deadlines)
local over = redis.call('ZRANGEBYSCORE', KEYS[2], 100000, now, 'LIMIT', 0, limit, 'WITHSCORES')
for i = 1, #over, 2 do
  local z, deadline = over[i], tonumber(over[i + 1])
  local id = id_of(z)
  local job = id and load_attempt_job(prefix, id)
  if not job or not FROM[job.state] then
    redis.call('ZREM', KEYS[2], z)  -- stale member
  elseif job.lease or deadline + grace_ms <= now then
    local err = 'TTL exceeded'
    publish(prefix, id, 'ttl exceeded')
    publish(prefix, id, 'error', json_string(err))
    local state, attempts = failed_attempt(prefix, job, err, err, '', now)
    publish_outcome(job, state, attempts, err)
    if job.lease then publish(prefix, id, 'ttl exceeded ack') end
    ttl_failed = ttl_failed + 1
  end
end

-- 3) wake-up tokens of every type (Node Kue workers let them drift)
if ARGV[5] == '1' then
  for _, jtype in ipairs(redis.call('SMEMBERS', KEYS[3])) do touched_types[jtype] = true end
end
for jtype in pairs(touched_types) do sync_tokens(prefix, jtype) end
return { requeued, stalled_failed, ttl_failed }
