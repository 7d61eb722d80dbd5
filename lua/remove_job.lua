-- name: remove_job
-- version: 11
-- transition: any -> removed
-- purpose: Delete a job and every trace of it: its hash, log, membership of the state and
--   priority sets, lease, wake-up token and search index entries. Its end rules run
--   (lib/lifecycle.lua): its unique key is freed and its waiting dependents fail (or go on,
--   for those created with on_dependency_failure "ignore").
-- KEYS:
--   1 job: <prefix>:job:<id>, the job hash
--   2 unique: <prefix>:unique, unique key -> the id of the job holding it
--   3 retained_complete: <prefix>:retained:complete, completed jobs with a retention policy
--   4 retained_failed: <prefix>:retained:failed, failed jobs with a retention policy
-- ARGV:
--   1 prefix: the queue prefix
--   2 id: the job id
-- Derived keys: <prefix>:job:<id>, <prefix>:job:<id>:log, <prefix>:leases, <prefix>:jobs,
--   <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>, <prefix>:<type>:jobs,
--   <prefix>:search:word:<code>, <prefix>:search:object:<id>, <prefix>:job:<id>:waiting,
--   <prefix>:job:<id>:dependents
-- Returns: the removed job's type
-- Errors: KUE_BAD_ARGS, KUE_NOT_FOUND
-- Publishes: remove, enqueue, failed
--@include lib/kue.lua
--@include lib/search.lua
--@include lib/lifecycle.lua

local prefix, id = ARGV[1], ARGV[2]
local e = check_prefix(prefix)
if e then return e end
if not (is_id(id) and #ARGV == 2) then return bad_args('expected prefix, id') end
e = check_keys({ job_key(prefix, id), prefix .. ':unique',
                 prefix .. ':retained:complete', prefix .. ':retained:failed' })
if e then return e end
local f = redis.call('HMGET', KEYS[1], 'type', 'state', 'unique_key', 'has_dependents')
if not f[1] then return not_found(id) end
local ends = end_keys(prefix, KEYS[2], KEYS[3], KEYS[4])
delete_job(ends, id, f[1], known_state(f[2]))
if f[3] or f[4] then job_ended(ends, id, 'removed', f[3], f[4], nil, now_ms()) end
return f[1]
