-- name: set_job_progress
-- version: 11
-- transition: any -> same
-- purpose: Record progress as Kue does: progress = min(100, floor(completed * 100 / total)),
--   optional progress_data, updated_at; an active job with a ttl gets its deadline pushed to
--   now + ttl (progress is the heartbeat Kue uses for ttl).
-- KEYS:
--   1 job: <prefix>:job:<id>, the job hash
-- ARGV:
--   1 prefix: the queue prefix
--   2 id: the job id
--   3 completed: number >= 0
--   4 total: number > 0
--   5 data: JSON text of progress data, "" for none
-- Derived keys: <prefix>:jobs:active
-- Returns: the stored percentage
-- Errors: KUE_NOT_FOUND, KUE_BAD_ARGS
-- Publishes: progress
--@include lib/kue.lua

local prefix, id = ARGV[1], ARGV[2]
local completed, total, data = number_arg(ARGV[3]), number_arg(ARGV[4]), ARGV[5]
local e = check_prefix(prefix)
if e then return e end
if not (is_id(id) and completed and total and total > 0 and completed >= 0 and #ARGV == 5
        and (data == '' or is_json(data))) then
  return bad_args('progress needs an id, completed >= 0, total > 0 and data JSON or ""')
end
e = check_keys({ job_key(prefix, id) })
if e then return e end
local job = load_job(prefix, id)
if not job then return not_found(id) end
local now = now_ms()
local percent = math.min(100, math.floor(completed * 100 / total))
local fields = { 'progress', int_text(percent), 'updated_at', int_text(now) }
if data ~= '' then table.insert(fields, 'progress_data'); table.insert(fields, data) end
redis.call('HSET', KEYS[1], unpack(fields))
if job.state == 'active' and (job.ttl or 0) > 0 then
  redis.call('ZADD', state_key(prefix, 'active'), int_text(now + job.ttl), zid(id))
end
local data_json = 'null'
if data ~= '' then data_json = data end
publish(prefix, id, 'progress', int_text(percent) .. ',' .. data_json)
return percent
