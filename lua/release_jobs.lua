-- name: release_jobs
-- version: 11
-- transition: active -> inactive
-- purpose: Graceful shutdown gives claimed jobs back: each job that still holds the given
--   token and is active goes back to inactive as Kue's state(inactive) (its lease and
--   <prefix>:leases entry dropped like any exit from active) with no attempt used and its
--   stall count unchanged, a log line saying so and the `enqueue` event. Nothing is noted in
--   the claim record: the released job no longer holds the token, so neither a late
--   completion nor reclaim_jobs acts on it under that token. A job that no longer holds the
--   token is left alone and reported lost (also a release retried after its reply was lost).
--   The same id twice under one token in a call is released once. The wake-up tokens of each
--   type touched are re-synced.
-- KEYS:
--   1 leases: <prefix>:leases, claimed jobs scored by lease deadline (ms)
-- ARGV:
--   1 prefix: the queue prefix
--   2 count: how many pairs follow
--   3.. jobs: pairs of id, token (from the claim)
-- Derived keys: <prefix>:job:<id>, <prefix>:job:<id>:log, <prefix>:jobs:<state>,
--   <prefix>:jobs:<type>:<state>, <prefix>:<type>:jobs
-- Returns: array with one integer per pair, in order: 1 released, 0 lost (nothing done)
-- Errors: KUE_BAD_ARGS
-- Publishes: enqueue
--@include lib/kue.lua

local prefix, count = ARGV[1], int_arg(ARGV[2], 0, 100000)
local e = check_prefix(prefix)
if e then return e end
local pairs_ok = count and #ARGV == 2 + 2 * count
for n = 1, count or 0 do
  pairs_ok = pairs_ok and is_id(ARGV[2 * n + 1]) and is_token(ARGV[2 * n + 2])
end
if not pairs_ok then return bad_args('expected count then id, token pairs') end
e = check_keys({ leases_key(prefix) })
if e then return e end
local FROM = moves_from('release_jobs')
local LOG_LINE = 'Released at shutdown: the worker stopped before the job finished; back to ' ..
  'inactive, no attempt used'
local now = now_ms()
local statuses, jobs = {}, {}
local released = {}  -- id -> token, for the jobs this call releases
for n = 1, count do
  local id, token = ARGV[2 * n + 1], ARGV[2 * n + 2]
  if released[id] then  -- the same job twice in this call: released once
    if released[id] == token then statuses[n] = 1 else statuses[n] = 0 end
  else
    local key = job_key(prefix, id)
    local f = redis.call('HMGET', key, 'lease', 'type', 'state', 'priority')
    if f[1] == token and f[2] and FROM[f[3]] then
      released[id] = token
      jobs[#jobs + 1] = { id = id, key = key, type = f[2], state = 'active',
                          priority = finite(f[4]) or 0 }
      statuses[n] = 1
    else
      statuses[n] = 0
    end
  end
end
move_many(prefix, jobs, 'inactive', now)
local touched_types, type_order = {}, {}
for _, job in ipairs(jobs) do
  redis.call('RPUSH', job.key .. ':log', LOG_LINE)
  publish(prefix, job.id, 'enqueue', json_string(job.type))
  if not touched_types[job.type] then
    touched_types[job.type] = true
    type_order[#type_order + 1] = job.type
  end
end
for _, jtype in ipairs(type_order) do sync_tokens(prefix, jtype) end
return statuses
