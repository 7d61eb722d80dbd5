-- name: fire_repeat
-- version: 3
-- transition: new -> inactive | delayed
-- purpose: Create the jobs of a repeatable job's due ticks and record its next tick, as one
--   compare-and-set: only while the repeat's spec is still `spec` and its recorded next tick
--   is still `tick` (so of two schedulers racing for a tick exactly one creates its job; the
--   other writes nothing). Each job is written as create_jobs writes a new one (hash fields,
--   zsets, one wake-up token per inactive job, "enqueue" event; not indexed for search), plus
--   the fields `repeat` (the repeat's name) and `repeat_at` (its tick, ms), which Kue ignores.
--   The caller computes the ticks (cron or every, catch-up window); the script checks they
--   are due by the server's clock and ascending, and the next tick is later than all of them.
-- KEYS:
--   1 repeats: <prefix>:repeats, name -> the repeat's spec (JSON)
--   2 next: <prefix>:repeats:next, name scored by its next tick (ms)
--   3 last: <prefix>:repeats:last, name -> the last tick that got a job (ms)
--   4 ids: <prefix>:ids, the job id counter
--   5 types: <prefix>:job:types, the set of every job type
--   6 all_jobs: <prefix>:jobs, every job scored by priority
-- ARGV:
--   1 prefix: the queue prefix
--   2 name: the repeat's name
--   3 spec: the spec the caller read (must equal the stored one)
--   4 tick: the next tick the caller read (must equal the recorded one), ms
--   5 next_tick: the tick to record next (ms), "" for none (the schedule has no more ticks)
--   6 id_step: as create_jobs' (1 for Kue's ids; a sharded queue's shard 0: the shard count)
--   7 id_offset: as create_jobs' (0..id_step - 1)
--   8 type: the jobs' type
--   9 data: the jobs' data (JSON text)
--   10 priority: integer
--   11 max_attempts: integer >= 1
--   12 delay: ms >= 0 (0 = none)
--   13 ttl: ms >= 0 (0 = none)
--   14 backoff: "" = none, else Kue's text ("true" or a flat JSON object)
--   15 remove_on_complete: "true" or ""
--   16 count: how many ticks follow (0..100; 0 only skips to next_tick)
--   17.. ticks: the ticks (ms) that get a job, ascending, from `tick` to now
-- Derived keys: <prefix>:job:<id>, <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>,
--   <prefix>:<type>:jobs
-- Returns: {1, now, the new job ids...} fired; {0, now} the spec or tick changed (another
--   scheduler fired it, or it was replaced or removed): nothing written; {2, now} a tick is
--   not due yet by the server's clock: nothing written
-- Errors: KUE_BAD_ARGS
-- Publishes: enqueue
--@include lib/kue.lua

local prefix, name, spec = ARGV[1], ARGV[2], ARGV[3]
local tick = int_arg(ARGV[4], 0, MAX_INT)
local next_tick = ARGV[5] ~= '' and int_arg(ARGV[5], 0, MAX_INT)
local id_step = int_arg(ARGV[6], 1, 1024)
local id_offset = id_step and int_arg(ARGV[7], 0, id_step - 1)
local jtype, data, backoff, remove_on_complete = ARGV[8], ARGV[9], ARGV[14], ARGV[15]
local priority, max_attempts = int_arg(ARGV[10], -MAX_INT, MAX_INT), int_arg(ARGV[11], 1, MAX_INT)
local delay, ttl = int_arg(ARGV[12], 0, MAX_INT), int_arg(ARGV[13], 0, MAX_INT)
local count = int_arg(ARGV[16], 0, 100)
local e = check_prefix(prefix)
if e then return e end
if not (type(name) == 'string' and #name > 0 and type(spec) == 'string' and tick
        and (next_tick or ARGV[5] == '') and id_offset
        and type(jtype) == 'string' and jtype ~= '' and is_utf8(jtype) and is_json(data)
        and priority and max_attempts and delay and ttl
        and (backoff == '' or is_safe_backoff(backoff))
        and (remove_on_complete == '' or remove_on_complete == 'true')
        and count and #ARGV == 16 + count) then
  return bad_args('expected prefix, name, spec, tick, next tick ("" = none), id_step 1..1024 ' ..
    'and id_offset, type (UTF-8), data JSON, integer priority, max_attempts >= 1, delay and ' ..
    'ttl ms >= 0, backoff "true" or a flat JSON object, remove_on_complete "true" or "", ' ..
    'count 0..100 and that many ticks')
end
local ticks, latest = {}, tick
for i = 1, count do
  local t = int_arg(ARGV[16 + i], 0, MAX_INT)
  if not (t and t >= latest) then
    return bad_args('ticks must be ascending integers from the recorded tick on')
  end
  ticks[i], latest = t, t
end
if next_tick and not (next_tick > latest) then
  return bad_args('the next tick must be later than the recorded tick and every fired one')
end
e = check_keys({ prefix .. ':repeats', prefix .. ':repeats:next', prefix .. ':repeats:last',
                 prefix .. ':ids', prefix .. ':job:types', prefix .. ':jobs' })
if e then return e end
local now = now_ms()
local recorded = redis.call('ZSCORE', KEYS[2], name)
if redis.call('HGET', KEYS[1], name) ~= spec or not recorded or tonumber(recorded) ~= tick then
  return { 0, now }
end
if latest > now then return { 2, now } end
-- Every check passed: from here on the call writes.
if next_tick then
  redis.call('ZADD', KEYS[2], int_text(next_tick), name)
else
  redis.call('ZREM', KEYS[2], name)
end
if count == 0 then return { 1, now } end
redis.call('HSET', KEYS[3], name, int_text(latest))
local now_text = int_text(now)
local priority_text = int_text(priority)
local promote_at_text = now_text
if delay > 0 then promote_at_text = int_text(now + delay) end
local first_id = redis.call('INCRBY', KEYS[4], count) - count + 1
local out, jobs, all_jobs = { 1, now }, {}, {}
for n = 1, count do
  local number = (first_id + n - 2) * id_step + id_offset + 1
  local id = int_text(number)
  -- create_jobs' first-save fields, and the repeat's; move_many adds state and updated_at.
  local set = { 'max_attempts', ARGV[11], 'type', jtype, 'created_at', now_text,
                'promote_at', promote_at_text, 'priority', priority_text, 'data', data,
                'repeat', name, 'repeat_at', int_text(ticks[n]) }
  if delay > 0 then set[#set + 1], set[#set + 2] = 'delay', int_text(delay) end
  if ttl > 0 then set[#set + 1], set[#set + 2] = 'ttl', int_text(ttl) end
  if remove_on_complete == 'true' then
    set[#set + 1], set[#set + 2] = 'removeOnComplete', 'true'
  end
  if backoff ~= '' then set[#set + 1], set[#set + 2] = 'backoff', backoff end
  local z = zid(id)
  jobs[n] = { id = id, zid = z, type = jtype, state = false, priority = priority,
              promote_at = now + delay, ttl = ttl, set = set }
  all_jobs[#all_jobs + 1] = priority_text
  all_jobs[#all_jobs + 1] = z
  out[#out + 1] = number
end
redis.call('SADD', KEYS[5], jtype)
redis.call('ZADD', KEYS[6], unpack(all_jobs))
if delay > 0 then
  move_many(prefix, jobs, 'delayed', now)
else
  move_many(prefix, jobs, 'inactive', now)
  local type_json = json_string(jtype)
  for _, job in ipairs(jobs) do publish(prefix, job.id, 'enqueue', type_json) end
  sync_tokens(prefix, jtype)
end
return out
