-- name: fail_jobs
-- version: 12
-- transition: active -> inactive | delayed | failed
-- purpose: Record many failed runs at once, each exactly as Kue's failedAttempt: error text and
--   a log summary line, failed_at, attempts + 1, then back to inactive (no backoff), to delayed
--   (backoff: fixed or exponential computed here from the stored spec, `true` reusing the job's
--   delay, or a delay the worker computed with a registered Python function and passed in) or
--   left failed when no attempts remain; events error, enqueue, failed attempt / failed. Each
--   job must still hold the caller's lease token, else it is left alone and reported lost.
--   Each recorded failure notes the state the job ended in under its claim token, in the hash
--   <prefix>:claim:<token>:failed (id -> state; one HSET and one PEXPIRE to the claim record's
--   remaining PTTL per token, only while the record <prefix>:claim:<token> exists): a job that
--   no longer holds the token but whose id is noted there is a retried call whose reply was
--   lost, answered that state again and left alone (no events). The same id twice under one
--   token in a call fails once. A job that failed for good then gets its end rules
--   (lib/lifecycle.lua): unique key freed, dependents failed (or released, for those created
--   with on_dependency_failure "ignore"), retention policy applied.
-- KEYS:
--   1 leases: <prefix>:leases, claimed jobs scored by lease deadline (ms)
--   2 unique: <prefix>:unique, unique key -> the id of the job holding it
--   3 retained_complete: <prefix>:retained:complete, completed jobs with a retention policy
--   4 retained_failed: <prefix>:retained:failed, failed jobs with a retention policy
-- ARGV:
--   1 prefix: the queue prefix
--   2 count: how many jobs follow
--   3.. jobs: per job: id, token (from the claim), error (stack or text, stored in `error`),
--     summary (the log line), message (for the events), delay (ms from a backoff function;
--     "" = compute from the stored backoff)
-- Derived keys: <prefix>:job:<id>, <prefix>:job:<id>:log, <prefix>:jobs:<state>,
--   <prefix>:jobs:<type>:<state>, <prefix>:<type>:jobs, <prefix>:claim:<token> (PTTL only),
--   <prefix>:claim:<token>:failed, <prefix>:jobs, <prefix>:job:<id>:waiting,
--   <prefix>:job:<id>:dependents, <prefix>:search:word:<code>, <prefix>:search:object:<id>
-- Returns: array with one string per job, in order: the state it ended in (inactive, delayed
--   or failed; for a retry, the state noted by the first call, nothing done), or "" when the
--   lease was lost (nothing done)
-- Errors: KUE_BAD_ARGS
-- Publishes: error, enqueue, failed attempt, failed, remove
--@include lib/kue.lua
--@include lib/search.lua
--@include lib/lifecycle.lua

local prefix, count = ARGV[1], int_arg(ARGV[2], 0, 100000)
local e = check_prefix(prefix)
if e then return e end
if not count or #ARGV ~= 2 + 6 * count then
  return bad_args('expected count then 6 arguments per job')
end
e = check_keys({ leases_key(prefix), prefix .. ':unique', prefix .. ':retained:complete',
                 prefix .. ':retained:failed' })
if e then return e end
for n = 1, count do
  local base = 2 + (n - 1) * 6
  local delay = ARGV[base + 6] == '' and 0 or number_arg(ARGV[base + 6])
  if not (is_id(ARGV[base + 1]) and is_token(ARGV[base + 2]) and is_utf8(ARGV[base + 3])
          and is_utf8(ARGV[base + 4]) and is_utf8(ARGV[base + 5])
          and delay and delay >= 0 and delay <= MAX_INT) then
    return bad_args('job ' .. n .. ': expected id, token, error, summary and message (UTF-8), ' ..
      'delay ms or ""')
  end
end
local FROM = moves_from('fail_jobs')
local now = now_ms()
local ended = {}
local touched_types = {}
local FAILED_STATES = { inactive = true, delayed = true, failed = true }
local done, ended_in = {}, {}  -- id -> token and id -> state, for the jobs this call fails
local notes = claim_notes(prefix)
local ends = end_keys(prefix, KEYS[2], KEYS[3], KEYS[4])

for n = 1, count do
  local base = 2 + (n - 1) * 6
  local id, token = ARGV[base + 1], ARGV[base + 2]
  local err, summary, message, delay = ARGV[base + 3], ARGV[base + 4], ARGV[base + 5], ARGV[base + 6]
  local job = load_attempt_job(prefix, id)
  if not job or job.lease ~= token or not FROM[job.state] then
    -- Not (or no longer) this token's job: the retry of a failure already recorded?
    local noted
    if done[id] == token then
      noted = ended_in[id]  -- the same job twice in this call: failed once
    else
      noted = redis.call('HGET', claim_key(prefix, token) .. CLAIM_FAILED, id)
    end
    if FAILED_STATES[noted] then ended[n] = noted else ended[n] = '' end
  else
    publish(prefix, id, 'error', json_string(err))
    local state, attempts = failed_attempt(prefix, job, err, summary, delay, now)
    if state == 'inactive' then
      touched_types[job.type] = true
      publish(prefix, id, 'enqueue', json_string(job.type))
    end
    if state == 'failed' then
      publish(prefix, id, 'failed', json_string(message) .. ',null')
      local f = redis.call('HMGET', job_key(prefix, id), 'unique_key', 'has_dependents', 'keep_failed')
      if f[1] or f[2] or f[3] then job_ended(ends, id, 'failed', f[1], f[2], f[3], now) end
    else
      publish(prefix, id, 'failed attempt', json_string(message) .. ',' .. attempts)
    end
    ended[n] = state
    done[id], ended_in[id] = token, state
    local list = claim_list(notes, token)
    if list then
      list[#list + 1], list[#list + 2] = id, state
    end
  end
end
send_notes(notes, CLAIM_FAILED, 'HSET')
for jtype in pairs(touched_types) do sync_tokens(prefix, jtype) end
return ended
