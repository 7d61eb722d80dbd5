-- name: add_job_log
-- version: 10
-- transition: any -> same
-- purpose: Append formatted log lines to a job's log and touch updated_at.
-- KEYS:
--   1 job: <prefix>:job:<id>, the job hash
--   2 log: <prefix>:job:<id>:log, the job's log lines
-- ARGV:
--   1.. lines: the lines to append, in order
-- Derived keys: none
-- Returns: the log's new length
-- Errors: KUE_BAD_ARGS, KUE_NOT_FOUND
-- Publishes: none
--@include lib/kue.lua

local prefix, id = string.match(KEYS[1] or '', '^(.*):job:(%d+)$')
local e = check_prefix(prefix)
if e then return e end
if not (is_id(id) and #KEYS == 2 and KEYS[2] == KEYS[1] .. ':log' and #ARGV > 0) then
  return bad_args('expected KEYS <prefix>:job:<id> and its :log, and at least one line')
end
if redis.call('HEXISTS', KEYS[1], 'type') == 0 then
  return redis.error_reply('KUE_NOT_FOUND job for key "' .. KEYS[1] .. '" doesnt exist')
end
redis.call('HSET', KEYS[1], 'updated_at', int_text(now_ms()))
return redis.call('RPUSH', KEYS[2], unpack(ARGV))
