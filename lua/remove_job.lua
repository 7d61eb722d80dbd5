-- name: remove_job
-- version: 8
-- transition: any -> removed
-- purpose: Delete a job and every trace of it: its hash, log, membership of the state and
--   priority sets, lease, wake-up token and search index entries.
-- KEYS:
--   1 job: <prefix>:job:<id>, the job hash
--   2 log: <prefix>:job:<id>:log, the job's log lines
-- ARGV:
--   1 prefix: the queue prefix
--   2 id: the job id
-- Derived keys: <prefix>:jobs, <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>,
--   <prefix>:<type>:jobs, <prefix>:leases, <prefix>:search:word:<code>,
--   <prefix>:search:object:<id>
-- Returns: the removed job's type
-- Errors: KUE_BAD_ARGS, KUE_NOT_FOUND
-- Publishes: remove
--@include lib/kue.lua
--@include lib/search.lua

local prefix, id = ARGV[1], ARGV[2]
local e = check_prefix(prefix)
if e then return e end
if not (is_id(id) and #ARGV == 2) then return bad_args('expected prefix, id') end
e = check_keys({ job_key(prefix, id), job_key(prefix, id) .. ':log' })
if e then return e end
local job = load_job(prefix, id)
if not job then return not_found(id) end
local z = zid(id)
-- A hash without a known state may still sit in any state's sets: clear them all.
for state in pairs(job.state and { [job.state] = true } or STATES) do
  redis.call('ZREM', state_key(prefix, state), z)
  redis.call('ZREM', type_state_key(prefix, job.type, state), z)
end
redis.call('ZREM', prefix .. ':jobs', z)
redis.call('ZREM', leases_key(prefix), z)
redis.call('DEL', KEYS[1], KEYS[2])
search_remove(prefix, id)
if job.state == 'inactive' or not job.state then sync_tokens(prefix, job.type) end
publish(prefix, id, 'remove', json_string(job.type))
return job.type
