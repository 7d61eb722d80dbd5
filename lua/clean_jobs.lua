-- name: clean_jobs
-- version: 3
-- transition: inactive | delayed | complete | failed -> removed
-- purpose: Remove the jobs of one state (of one type, or of all) that entered it at least
--   older_than_ms ago (by updated_at), as remove_job removes each (end rules included), at
--   most `limit` per call and scanning at most `budget` members of the state's set, from rank
--   `cursor`: the caller repeats with the returned cursor until it is -1 or enough jobs went,
--   so no call blocks Redis for long. Members whose hash is gone are dropped. Active jobs are
--   not cleaned (a worker holds them): cancel them first.
-- KEYS:
--   1 jobs: <prefix>:jobs:<state> or <prefix>:jobs:<type>:<state>, the set scanned
--   2 unique: <prefix>:unique, unique key -> the id of the job holding it
--   3 retained_complete: <prefix>:retained:complete, completed jobs with a retention policy
--   4 retained_failed: <prefix>:retained:failed, failed jobs with a retention policy
-- ARGV:
--   1 prefix: the queue prefix
--   2 state: inactive, delayed, complete or failed
--   3 type: the job type, "" for every type
--   4 older_than_ms: minimum age in the state (ms, >= 0)
--   5 limit: jobs to remove at most (1..10000)
--   6 cursor: the rank to scan from (>= 0; 0 the first time)
--   7 budget: members to scan at most (1..10000)
-- Derived keys: <prefix>:job:<id>, <prefix>:job:<id>:log, <prefix>:jobs, <prefix>:jobs:<state>,
--   <prefix>:jobs:<type>:<state>, <prefix>:<type>:jobs, <prefix>:leases,
--   <prefix>:job:<id>:waiting, <prefix>:job:<id>:dependents, <prefix>:search:word:<code>,
--   <prefix>:search:object:<id>
-- Returns: {removed, next cursor (-1 when the set was scanned to its end)}
-- Errors: KUE_BAD_ARGS
-- Publishes: remove, enqueue, failed
--@include lib/kue.lua
--@include lib/search.lua
--@include lib/lifecycle.lua

local prefix, state, jtype = ARGV[1], ARGV[2], ARGV[3]
local older_than, limit = int_arg(ARGV[4], 0, MAX_INT), int_arg(ARGV[5], 1, 10000)
local cursor, budget = int_arg(ARGV[6], 0, MAX_INT), int_arg(ARGV[7], 1, 10000)
local e = check_prefix(prefix)
if e then return e end
local CLEANABLE = moves_from('clean_jobs')
if not (#ARGV == 7 and CLEANABLE[state] and type(jtype) == 'string' and is_utf8(jtype)
        and older_than and limit and cursor and budget) then
  return bad_args('expected prefix, state (inactive, delayed, complete or failed), type or "", ' ..
    'older_than_ms >= 0, limit 1..10000, cursor >= 0, budget 1..10000')
end
local scanned = jtype == '' and state_key(prefix, state) or type_state_key(prefix, jtype, state)
e = check_keys({ scanned, prefix .. ':unique', prefix .. ':retained:complete',
                 prefix .. ':retained:failed' })
if e then return e end
local now = now_ms()
local ends = end_keys(prefix, KEYS[2], KEYS[3], KEYS[4])
local members = redis.call('ZRANGE', KEYS[1], cursor, cursor + budget - 1)
local removed, gone = 0, 0
for _, z in ipairs(members) do
  if removed >= limit then break end
  local id = id_of(z)
  local f = id and redis.call('HMGET', job_key(prefix, id), 'type', 'state', 'updated_at',
    'unique_key', 'has_dependents')
  if not (f and f[1]) then
    redis.call('ZREM', KEYS[1], z)  -- a member no job backs
    gone = gone + 1
  elseif f[2] == state and (finite(f[3]) or 0) <= now - older_than then
    delete_job(ends, id, f[1], state)
    if f[4] or f[5] then job_ended(ends, id, 'removed', f[4], f[5], nil, now) end
    removed = removed + 1
  end
end
local next_cursor = cursor + #members - removed - gone
if #members < budget and removed < limit then next_cursor = -1 end
return { removed, next_cursor }
