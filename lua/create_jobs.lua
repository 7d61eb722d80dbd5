-- name: create_jobs
-- version: 11
-- transition: new -> inactive | delayed
-- purpose: Create one or many jobs in one call, each written exactly as Kue's save() writes a
--   new job (hash fields, zsets, one wake-up token per inactive job, "enqueue" event), and index
--   them for search when asked. All jobs of the call are created or none are.
-- KEYS:
--   1 ids: <prefix>:ids, the job id counter (one INCRBY per call)
--   2 types: <prefix>:job:types, the set of every job type
--   3 all_jobs: <prefix>:jobs, every job scored by priority
-- ARGV:
--   1 prefix: the queue prefix, e.g. q
--   2 count: how many jobs follow
--   3 id_step: 1 for Kue's ids (the counter's values, consecutive); N for shard `offset` of a
--     queue sharded over N slots, whose ids are counter * N - N + offset + 1, so a job's id
--     names its shard ((id - 1) % N) and no two shards issue the same id
--   4 id_offset: 0..id_step - 1
--   5.. jobs: per job, in order: type, data (JSON text), priority (integer), max_attempts,
--     delay (ms, 0 = none), ttl (ms, 0 = none), backoff ("" = none, else Kue's text),
--     remove_on_complete ("true" or ""), n_texts, then n_texts texts to index for search
-- Derived keys: <prefix>:job:<id>, <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>,
--   <prefix>:<type>:jobs, <prefix>:search:word:<code>, <prefix>:search:object:<id>
-- Returns: array of the new job ids (integers), in argument order
-- Errors: KUE_BAD_ARGS
-- Publishes: enqueue
--@include lib/kue.lua
--@include lib/search.lua

local prefix, count = ARGV[1], int_arg(ARGV[2], 0, 100000)
local id_step = int_arg(ARGV[3], 1, 1024)
local id_offset = id_step and int_arg(ARGV[4], 0, id_step - 1)
local e = check_prefix(prefix)
if e then return e end
if not count then return bad_args('count must be an integer 0..100000') end
if not id_offset then return bad_args('id_step must be 1..1024 and id_offset 0..id_step - 1') end
e = check_keys({ prefix .. ':ids', prefix .. ':job:types', prefix .. ':jobs' })
if e then return e end
-- Check every job before writing anything: the call creates all of them or none. Jobs of a
-- call mostly repeat their type and integer texts: each distinct text is checked once.
local cursor = 5
local nums, types_ok = {}, {}  -- integer text -> its number (false: not one); type -> ok
local function int_of(text)
  local v = nums[text]
  if v == nil and text then
    v = int_arg(text, -MAX_INT, MAX_INT) or false
    nums[text] = v
  end
  return v
end
local function type_ok(jtype)
  local ok = types_ok[jtype]
  if ok == nil and jtype then
    ok = jtype ~= '' and is_utf8(jtype)
    types_ok[jtype] = ok
  end
  return ok
end
for n = 1, count do
  local backoff, remove_on_complete = ARGV[cursor + 6], ARGV[cursor + 7]
  local priority, max_attempts = int_of(ARGV[cursor + 2]), int_of(ARGV[cursor + 3])
  local delay, ttl, n_texts = int_of(ARGV[cursor + 4]), int_of(ARGV[cursor + 5]), int_of(ARGV[cursor + 8])
  if not (type_ok(ARGV[cursor]) and is_json(ARGV[cursor + 1])
          and priority and max_attempts and max_attempts >= 1 and delay and delay >= 0
          and ttl and ttl >= 0 and n_texts and n_texts >= 0 and n_texts <= 10000
          and (backoff == '' or is_safe_backoff(backoff))
          and (remove_on_complete == '' or remove_on_complete == 'true')) then
    return bad_args('job ' .. n .. ' of the call is malformed: type (UTF-8), data JSON, integer ' ..
      'priority, max_attempts >= 1, delay and ttl ms >= 0, backoff "true" or a flat JSON ' ..
      'object, remove_on_complete "true" or "", n_texts, texts')
  end
  cursor = cursor + 9 + n_texts
end
if #ARGV ~= cursor - 1 then return bad_args('arguments after the last job') end
if count == 0 then return {} end
local now = now_ms()
local now_text = int_text(now)
-- Ids are consecutive, as Kue's INCR per job would give them; one INCRBY takes them all.
local first_id = redis.call('INCRBY', KEYS[1], count) - count + 1
local ids, inactive, delayed, all_jobs, types = {}, {}, {}, {}, {}
cursor = 5
for n = 1, count do
  local jtype, data = ARGV[cursor], ARGV[cursor + 1]
  local priority, max_attempts = nums[ARGV[cursor + 2]], ARGV[cursor + 3]
  local delay, ttl = nums[ARGV[cursor + 4]], nums[ARGV[cursor + 5]]
  local backoff, remove_on_complete = ARGV[cursor + 6], ARGV[cursor + 7]
  local n_texts = nums[ARGV[cursor + 8]]
  local number = (first_id + n - 2) * id_step + id_offset + 1
  local id = int_text(number)
  -- Kue's first-save fields; move_many adds state and updated_at in the same HSET.
  local priority_text = int_text(priority)
  local promote_at_text = now_text
  if delay > 0 then promote_at_text = int_text(now + delay) end
  local set = { 'max_attempts', max_attempts, 'type', jtype, 'created_at', now_text,
                'promote_at', promote_at_text, 'priority', priority_text, 'data', data }
  if delay > 0 then set[#set + 1], set[#set + 2] = 'delay', int_text(delay) end
  if ttl > 0 then set[#set + 1], set[#set + 2] = 'ttl', int_text(ttl) end
  if remove_on_complete == 'true' then
    set[#set + 1], set[#set + 2] = 'removeOnComplete', 'true'
  end
  if backoff ~= '' then set[#set + 1], set[#set + 2] = 'backoff', backoff end
  local z = zid(id)
  local job = { id = id, zid = z, type = jtype, state = false, priority = priority,
                promote_at = now + delay, ttl = ttl, set = set }
  if delay > 0 then delayed[#delayed + 1] = job else inactive[#inactive + 1] = job end
  all_jobs[#all_jobs + 1] = priority_text
  all_jobs[#all_jobs + 1] = z
  types[jtype] = true
  ids[n] = number
  cursor = cursor + 9
  for t = 1, n_texts do
    search_index(prefix, id, ARGV[cursor])
    cursor = cursor + 1
  end
end
for jtype in pairs(types) do redis.call('SADD', KEYS[2], jtype) end
for i = 1, #all_jobs, 4000 do  -- unpack() is limited by the C stack
  redis.call('ZADD', KEYS[3], unpack(all_jobs, i, math.min(i + 3999, #all_jobs)))
end
move_many(prefix, delayed, 'delayed', now)
move_many(prefix, inactive, 'inactive', now)
local touched = {}  -- type -> its JSON text, for the events
for _, job in ipairs(inactive) do
  local type_json = touched[job.type]
  if not type_json then
    type_json = json_string(job.type)
    touched[job.type] = type_json
  end
  publish(prefix, job.id, 'enqueue', type_json)
end
for jtype in pairs(touched) do sync_tokens(prefix, jtype) end
return ids
