-- name: complete_jobs
-- version: 2
-- transition: active -> complete | removed
-- purpose: Record many successful runs at once, each exactly as Kue's done(null, result):
--   duration, result (JSON, only when truthy in JavaScript), progress 100, state complete,
--   attempts + 1 (while below max_attempts), removal when removeOnComplete, `complete` event,
--   and the durations added to <prefix>:stats:work-time. Each job is checked first: it must
--   still hold the caller's lease token, else it is left alone and reported lost (the lease
--   expired and the job was recovered, or it was moved or removed by hand). The job's lease
--   is dropped, so a completed job looks like Kue's. Each completion is recorded in the claim
--   record (<prefix>:claim:<token> field id = "complete", one HSET per token, only while the
--   record exists): a job that no longer holds the token but whose field says "complete" is a
--   retried call whose reply was lost (also after removeOnComplete deleted the hash), answered
--   2 and left alone (no events, no work time). The same id twice under one token in a call
--   is completed once.
-- KEYS:
--   1 leases: <prefix>:leases, claimed jobs scored by lease deadline (ms)
--   2 work_time: <prefix>:stats:work-time, total ms of completed jobs
-- ARGV:
--   1 prefix: the queue prefix
--   2 count: how many jobs follow
--   3.. jobs: per job: id, token (from the claim), duration (ms), result (JSON text; "" = none)
-- Derived keys: <prefix>:job:<id>, <prefix>:job:<id>:log, <prefix>:jobs,
--   <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>, <prefix>:search:word:<code>,
--   <prefix>:search:object:<id>, <prefix>:claim:<token>
-- Returns: array with one integer per job, in order: 1 completed, 2 already completed under
--   this token (a retry; nothing done), 0 lease lost (nothing done)
-- Errors: KUE_BAD_ARGS
-- Publishes: complete, remove
--@include lib/kue.lua
--@include lib/search.lua

local prefix, count = ARGV[1], tonumber(ARGV[2])
if not count or count < 0 or #ARGV < 2 + 4 * count then
  return redis.error_reply('KUE_BAD_ARGS expected count then 4 arguments per job')
end
-- JSON texts of values JavaScript treats as false: Kue stores no result for them.
local FALSY = { [''] = true, ['null'] = true, ['false'] = true, ['0'] = true, ['-0'] = true,
                ['0.0'] = true, ['-0.0'] = true, ['""'] = true }
local now = now_ms()
local statuses, jobs = {}, {}
local work_time = 0
local done = {}  -- id -> token, for the jobs this call completes
local notes = claim_notes(prefix)

for n = 1, count do
  local base = 2 + (n - 1) * 4
  local id, token, duration, result = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  local key = job_key(prefix, id)
  local f = not done[id] and redis.call('HMGET', key, 'lease', 'type', 'state', 'priority',
    'removeOnComplete', 'attempts', 'max_attempts')
  if not f then  -- the same job twice in this call: completed once
    if done[id] == token then statuses[n] = 2 else statuses[n] = 0 end
  elseif f[1] ~= token or not f[2] or f[3] ~= 'active' then
    -- Not (or no longer) this token's job: the retry of a completion already recorded?
    if redis.call('HGET', claim_key(prefix, token), id) == 'complete' then
      statuses[n] = 2
    else
      statuses[n] = 0
    end
  else
    note_outcome(notes, token, id, 'complete')
    done[id] = token
    local ms = tonumber(duration) or 0
    local set = { 'duration', int_text(ms), 'progress', '100' }
    if not FALSY[result] then
      set[#set + 1], set[#set + 2] = 'result', result
    end
    local attempts = tonumber(f[6]) or 0
    if attempts < (tonumber(f[7]) or 1) then  -- Kue's attempt(): + 1 while below max
      set[#set + 1], set[#set + 2] = 'attempts', int_text(attempts + 1)
    end
    jobs[#jobs + 1] = { id = id, key = key, type = f[2], state = 'active',
                        priority = tonumber(f[4]) or 0,
                        set = set, remove = f[5] == 'true', result = result }
    work_time = work_time + ms
    statuses[n] = 1
  end
end
move_many(prefix, jobs, 'complete', now)
for _, job in ipairs(jobs) do
  if job.remove then
    local z, key = zid(job.id), job_key(prefix, job.id)
    redis.call('ZREM', state_key(prefix, 'complete'), z)
    redis.call('ZREM', type_state_key(prefix, job.type, 'complete'), z)
    redis.call('ZREM', prefix .. ':jobs', z)
    redis.call('DEL', key, key .. ':log')
    search_remove(prefix, job.id)
    publish(prefix, job.id, 'remove', json_string(job.type))
  end
  local result = job.result
  if result == '' then result = 'null' end
  publish(prefix, job.id, 'complete', result .. ',null')
end
-- Kue INCRBYs per job, so the key exists (maybe "0") once any job completed.
if #jobs > 0 then redis.call('INCRBY', KEYS[2], work_time) end
send_notes(notes)
return statuses
