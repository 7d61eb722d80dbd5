-- name: complete_jobs
-- version: 12
-- transition: active -> complete | removed
-- purpose: Record many successful runs at once, each exactly as Kue's done(null, result):
--   duration, result (JSON, only when truthy in JavaScript), progress 100, state complete,
--   attempts + 1 (while below max_attempts), removal when removeOnComplete, `complete` event,
--   and the durations added to <prefix>:stats:work-time. Each job is checked first: it must
--   still hold the caller's lease token, else it is left alone and reported lost (the lease
--   expired and the job was recovered, or it was moved or removed by hand). The job's lease
--   is dropped, so a completed job looks like Kue's. Each completion is noted under its claim
--   token: the id goes into the set <prefix>:claim:<token>:complete (one SADD and one PEXPIRE
--   to the claim record's remaining PTTL per token, only while the record <prefix>:claim:<token>
--   exists): a job that no longer holds the token but whose id is in that set is a retried call
--   whose reply was lost (also after removeOnComplete deleted the hash), answered 2 and left
--   alone (no events, no work time). The same id twice under one token in a call is completed
--   once. Then each completed job's end rules run (lib/lifecycle.lua): its unique key is freed,
--   its dependents waiting only for it enter inactive, its retention policy trims.
-- KEYS:
--   1 leases: <prefix>:leases, claimed jobs scored by lease deadline (ms)
--   2 work_time: <prefix>:stats:work-time, total ms of completed jobs
--   3 unique: <prefix>:unique, unique key -> the id of the job holding it
--   4 retained_complete: <prefix>:retained:complete, completed jobs with a retention policy
--   5 retained_failed: <prefix>:retained:failed, failed jobs with a retention policy
-- ARGV:
--   1 prefix: the queue prefix
--   2 count: how many jobs follow
--   3.. jobs: per job: id, token (from the claim), duration (ms), result (JSON text; "" = none)
-- Derived keys: <prefix>:job:<id>, <prefix>:job:<id>:log, <prefix>:jobs,
--   <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>, <prefix>:search:word:<code>,
--   <prefix>:search:object:<id>, <prefix>:claim:<token> (PTTL only),
--   <prefix>:claim:<token>:complete, <prefix>:job:<id>:waiting, <prefix>:job:<id>:dependents,
--   <prefix>:<type>:jobs
-- Returns: array with one integer per job, in order: 1 completed, 2 already completed under
--   this token (a retry; nothing done), 0 lease lost (nothing done)
-- Errors: KUE_BAD_ARGS
-- Publishes: complete, remove, enqueue, failed
--@include lib/kue.lua
--@include lib/search.lua
--@include lib/lifecycle.lua

local prefix, count = ARGV[1], int_arg(ARGV[2], 0, 100000)
local e = check_prefix(prefix)
if e then return e end
if not count or #ARGV ~= 2 + 4 * count then
  return bad_args('expected count then 4 arguments per job')
end
e = check_keys({ leases_key(prefix), prefix .. ':stats:work-time', prefix .. ':unique',
                 prefix .. ':retained:complete', prefix .. ':retained:failed' })
if e then return e end
-- A call's jobs mostly share their token and repeat durations: each distinct text is checked
-- once.
local durations, tokens_ok = {}, {}  -- duration text -> its number (false: not one); token -> ok
for n = 1, count do
  local base = 2 + (n - 1) * 4
  local token, text, result = ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  local duration = durations[text]
  if duration == nil and text then
    duration = number_arg(text) or false
    durations[text] = duration
  end
  local token_ok = tokens_ok[token]
  if token_ok == nil and token then
    token_ok = is_token(token)
    tokens_ok[token] = token_ok
  end
  if not (is_id(ARGV[base + 1]) and token_ok and duration and duration >= 0
          and duration <= MAX_INT and (result == '' or is_json(result))) then
    return bad_args('job ' .. n .. ': expected id, token, duration ms >= 0, result JSON or ""')
  end
end
local FROM = moves_from('complete_jobs')
-- JSON texts of values JavaScript treats as false: Kue stores no result for them.
local FALSY = { [''] = true, ['null'] = true, ['false'] = true, ['0'] = true, ['-0'] = true,
                ['0.0'] = true, ['-0.0'] = true, ['""'] = true }
local now = now_ms()
local statuses, jobs = {}, {}
local texts = {}  -- number -> its text (cached_text): durations and attempts repeat
local work_time = 0
local notes = claim_notes(prefix)
local last_token, list  -- the notes list of the last token seen (runs of one token are usual)

-- An earlier copy of (id, token) in this call that was completed: this copy is answered 2.
local function completed_earlier(n, id, token)
  for m = n - 1, 1, -1 do
    local base = 2 + (m - 1) * 4
    if statuses[m] == 1 and ARGV[base + 1] == id and ARGV[base + 2] == token then return true end
  end
  return false
end

for n = 1, count do
  local base = 2 + (n - 1) * 4
  local id, token, duration, result = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  local key = job_key(prefix, id)
  local f = redis.call('HMGET', key, 'lease', 'type', 'state', 'priority',
    'removeOnComplete', 'attempts', 'max_attempts', 'on_end')
  if f[1] ~= token or not f[2] or not FROM[f[3]] then
    -- Not (or no longer) this token's job. A second copy of a job this call completed reads
    -- so too (its lease is gone): completed once. Else the retry of a completion noted
    -- under the token?
    if (not f[1] and FROM[f[3]] and completed_earlier(n, id, token)) or
        redis.call('SISMEMBER', claim_key(prefix, token) .. CLAIM_COMPLETE, id) == 1 then
      statuses[n] = 2
    else
      statuses[n] = 0
    end
  else
    -- Dropped now (move_many is told so) rather than with the state change after the loop,
    -- so a second copy of this job in the call reads as no longer this token's: no table of
    -- the ids seen is needed.
    redis.call('HDEL', key, 'lease')
    if token ~= last_token then
      last_token, list = token, claim_list(notes, token)
    end
    if list then list[#list + 1] = id end
    local ms = math.floor(durations[duration])
    -- Kue's attempt(): + 1 while below max (written back unchanged at max: the same hash).
    local attempts = finite(f[6]) or 0
    if attempts < (finite(f[7]) or 1) then attempts = attempts + 1 end
    local set = { 'duration', texts[ms] or cached_text(texts, ms), 'progress', '100',
                  'attempts', texts[attempts] or cached_text(texts, attempts) }
    if not FALSY[result] then
      set[7], set[8] = 'result', result
    end
    jobs[#jobs + 1] = { id = id, key = key, type = f[2], state = 'active',
                        priority = finite(f[4]) or 0,
                        set = set, remove = f[5] == 'true', result = result, on_end = f[8] }
    work_time = work_time + ms
    statuses[n] = 1
  end
end
move_many(prefix, jobs, 'complete', now, nil, true)
local ends = end_keys(prefix, KEYS[3], KEYS[4], KEYS[5])
for _, job in ipairs(jobs) do
  -- A job with end rules (a unique key, dependents, a retention policy) marks its hash on_end;
  -- only then are those fields read.
  local rules = job.on_end and redis.call('HMGET', job.key, 'unique_key', 'has_dependents',
    'keep_complete')
  if job.remove then delete_job(ends, job.id, job.type, 'complete') end
  local result = job.result
  publish(prefix, job.id, 'complete', result == '' and 'null,null' or result .. ',null')
  if rules then
    job_ended(ends, job.id, 'complete', rules[1], rules[2], not job.remove and rules[3], now)
  end
end
-- Kue INCRBYs per job, so the key exists (maybe "0") once any job completed.
if #jobs > 0 then redis.call('INCRBY', KEYS[2], work_time) end
send_notes(notes, CLAIM_COMPLETE, 'SADD')
return statuses
