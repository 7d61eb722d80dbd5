-- name: create_jobs
-- version: 14
-- transition: new -> inactive | delayed | failed
-- purpose: Create one or many jobs in one call, each written exactly as Kue's save() writes a
--   new job (hash fields, zsets, one wake-up token per inactive job, "enqueue" event), and index
--   them for search when asked. All jobs of the call are created or none are. kueatomic's
--   additions (lua/README.md, "Job lifecycle"): a job with a unique key that a job still
--   inactive, delayed or active holds is not created: the holder's id is answered, negated
--   (also for a repeat within the call). A job with dependencies waits in delayed, promote_at
--   never due, until every parent completed (lib/lifecycle.lua); one whose parent already
--   failed for good fails at once (unless on_dependency_failure is "ignore"). Retention
--   policies and trace context are stored as hash fields for the scripts that end the job.
-- KEYS:
--   1 ids: <prefix>:ids, the job id counter (one INCRBY per call)
--   2 types: <prefix>:job:types, the set of every job type
--   3 all_jobs: <prefix>:jobs, every job scored by priority
--   4 unique: <prefix>:unique, unique key -> the id of the job holding it
--   5 retained_complete: <prefix>:retained:complete, completed jobs with a retention policy
--   6 retained_failed: <prefix>:retained:failed, failed jobs with a retention policy
-- ARGV:
--   1 prefix: the queue prefix, e.g. q
--   2 count: how many jobs follow
--   3 id_step: 1 for Kue's ids (the counter's values, consecutive); N for shard `offset` of a
--     queue sharded over N slots, whose ids are counter * N - N + offset + 1, so a job's id
--     names its shard ((id - 1) % N) and no two shards issue the same id
--   4 id_offset: 0..id_step - 1
--   5.. jobs: per job, in order: type, data (JSON text), priority (integer), max_attempts,
--     delay (ms, 0 = none), ttl (ms, 0 = none), backoff ("" = none, else Kue's text),
--     remove_on_complete ("true" or ""), n_texts, then n_texts texts to index for search,
--     n_extra, then n_extra name/value pairs, each name at most once: unique_key (1..1024
--     bytes), depends_on (1..100 distinct existing job ids joined by ","),
--     on_dependency_failure ("fail", the default, or "ignore"), keep_complete and keep_failed
--     ("age_ms,count", either may be empty, not both), traceparent and tracestate (up to 512
--     bytes)
-- Derived keys: <prefix>:leases, <prefix>:job:<id>, <prefix>:job:<id>:log, <prefix>:jobs:<state>,
--   <prefix>:jobs:<type>:<state>, <prefix>:<type>:jobs, <prefix>:search:word:<code>,
--   <prefix>:search:object:<id>, <prefix>:job:<id>:waiting, <prefix>:job:<id>:dependents
-- Returns: array with one integer per job, in argument order: the new job's id, or minus the
--   id of the job that holds its unique key (nothing created for it)
-- Errors: KUE_BAD_ARGS
-- Publishes: enqueue, failed, remove
--@include lib/kue.lua
--@include lib/search.lua
--@include lib/lifecycle.lua

-- Jobs of a call mostly repeat their integer texts (and "1" and "0" are also the call's own
-- arguments): each distinct text is checked once. Every table and closure below costs each
-- call its allocation, so the ones only jobs with extra fields need are made on first use.
local nums = {}  -- integer text -> its number (false: not one)
local function int_of(text)
  local v = nums[text]
  if v == nil and text then
    v = int_arg(text, -MAX_INT, MAX_INT) or false
    nums[text] = v
  end
  return v
end
local prefix, count, id_step, id_offset = ARGV[1], int_of(ARGV[2]), int_of(ARGV[3]), int_of(ARGV[4])
local e = check_prefix(prefix)
if e then return e end
if not (count and count >= 0 and count <= 100000) then
  return bad_args('count must be an integer 0..100000')
end
if not (id_step and id_offset and id_step >= 1 and id_step <= 1024 and id_offset >= 0
        and id_offset < id_step) then
  return bad_args('id_step must be 1..1024 and id_offset 0..id_step - 1')
end
e = check_keys({ prefix .. ':ids', prefix .. ':job:types', prefix .. ':jobs', prefix .. ':unique',
                 prefix .. ':retained:complete', prefix .. ':retained:failed' })
if e then return e end
-- Extra fields: name -> the check of its value (true when valid).
local function extra_checks()
  local function text_upto(limit)
    return function(v) return #v >= 1 and #v <= limit and is_utf8(v) end
  end
  -- A retention policy: "age_ms,count", either may be empty, not both.
  local function keep_ok(v)
    local age, kept = string.match(v, '^(%d*),(%d*)$')
    return age ~= nil and #v <= 34 and (age ~= '' or kept ~= '')
  end
  return {
    unique_key = text_upto(1024),
    depends_on = function(v) return #v <= 1700 and string.find(v, '^[1-9][%d,]*$') ~= nil end,
    on_dependency_failure = function(v) return v == 'fail' or v == 'ignore' end,
    keep_complete = keep_ok,
    keep_failed = keep_ok,
    traceparent = text_upto(512),
    tracestate = text_upto(512),
  }
end
-- Jobs with extra fields (made on the first one): EXTRA, the checks; extras, job number ->
-- its fields (name -> value); held, unique key -> the id holding it (a number; minus: the
-- n-th job of the call); outcome, job number -> minus an existing id, for jobs not created;
-- parents, job number -> its parent ids (texts).
local EXTRA, extras, held, outcome, parents
-- Check every job before writing anything: the call creates all of them or none.
local cursor = 5
local last_type  -- the type checked last (a call's jobs mostly share one)
local new_count = 0
for n = 1, count do
  local jtype, backoff, remove_on_complete = ARGV[cursor], ARGV[cursor + 6], ARGV[cursor + 7]
  local priority, max_attempts = int_of(ARGV[cursor + 2]), int_of(ARGV[cursor + 3])
  local delay, ttl, n_texts = int_of(ARGV[cursor + 4]), int_of(ARGV[cursor + 5]), int_of(ARGV[cursor + 8])
  if jtype ~= last_type and jtype and jtype ~= '' and is_utf8(jtype) then last_type = jtype end
  if not (jtype == last_type and is_json(ARGV[cursor + 1])
          and priority and max_attempts and max_attempts >= 1 and delay and delay >= 0
          and ttl and ttl >= 0 and n_texts and n_texts >= 0 and n_texts <= 10000
          and (backoff == '' or is_safe_backoff(backoff))
          and (remove_on_complete == '' or remove_on_complete == 'true')) then
    return bad_args('job ' .. n .. ' of the call is malformed: type (UTF-8), data JSON, integer ' ..
      'priority, max_attempts >= 1, delay and ttl ms >= 0, backoff "true" or a flat JSON ' ..
      'object, remove_on_complete "true" or "", n_texts, texts')
  end
  cursor = cursor + 9 + n_texts
  local n_extra = int_of(ARGV[cursor])
  if not (n_extra and n_extra >= 0 and n_extra <= 8) then
    return bad_args('job ' .. n .. ': n_extra must be 0..8')
  end
  if n_extra > 0 then
    if not EXTRA then EXTRA, extras, held, outcome, parents = extra_checks(), {}, {}, {}, {} end
    local fields = {}
    for k = 1, n_extra do
      local name, value = ARGV[cursor + 2 * k - 1], ARGV[cursor + 2 * k]
      local check = name and EXTRA[name]
      if not (check and value and fields[name] == nil and check(value)) then
        return bad_args('job ' .. n .. ': extra field ' .. tostring(name) .. ' is unknown, ' ..
          'repeated or malformed (see create_jobs.lua)')
      end
      fields[name] = value
    end
    extras[n] = fields
    if fields.depends_on then
      local list, seen = {}, {}
      for parent in string.gmatch(fields.depends_on, '[^,]+') do
        if not is_id(parent) or seen[parent] or #list >= 100 then
          return bad_args('job ' .. n .. ': depends_on must be 1..100 distinct job ids')
        end
        if not redis.call('HGET', job_key(prefix, parent), 'type') then
          return bad_args('job ' .. n .. ': dependency ' .. parent .. ' does not exist')
        end
        seen[parent] = true
        list[#list + 1] = parent
      end
      if #list == 0 or string.find(fields.depends_on, ',,') or
          string.sub(fields.depends_on, -1) == ',' then
        return bad_args('job ' .. n .. ': depends_on must be 1..100 distinct job ids')
      end
      parents[n] = list
    end
    local key = fields.unique_key
    if key then
      local holder = held[key]
      if holder == nil then
        local id = redis.call('HGET', KEYS[4], key)
        local state = id and redis.call('HGET', job_key(prefix, id), 'state')
        holder = (state == 'inactive' or state == 'delayed' or state == 'active') and tonumber(id)
        held[key] = holder
      end
      if holder then outcome[n] = holder end
    end
  end
  if not (outcome and outcome[n]) then
    new_count = new_count + 1
    if extras and extras[n] and extras[n].unique_key then held[extras[n].unique_key] = -n end
  end
  cursor = cursor + 1 + 2 * n_extra
end
if #ARGV ~= cursor - 1 then return bad_args('arguments after the last job') end
if count == 0 then return {} end
local now = now_ms()
local now_text = int_text(now)
-- Ids are consecutive, as Kue's INCR per job would give them; one INCRBY takes them all.
local first_id = new_count > 0 and redis.call('INCRBY', KEYS[1], new_count) - new_count + 1
local ids, inactive, delayed, all_jobs = {}, {}, {}, {}
local failed_parent  -- new job -> the parent that already failed for good (made on first use)
local made = 0  -- jobs created so far
local texts = {}  -- number -> its text (cached_text): priorities and promote_at repeat
texts[now] = now_text
cursor = 5
for n = 1, count do
  local jtype, data = ARGV[cursor], ARGV[cursor + 1]
  local n_texts = nums[ARGV[cursor + 8]]
  local fields = extras and extras[n]
  local holder = outcome and outcome[n]
  if holder then
    if holder < 0 then holder = ids[-holder] end  -- a job of this call holds the key
    ids[n] = -holder
    cursor = cursor + 9 + n_texts
  else
    local priority, max_attempts = nums[ARGV[cursor + 2]], ARGV[cursor + 3]
    local delay, ttl = nums[ARGV[cursor + 4]], nums[ARGV[cursor + 5]]
    local backoff, remove_on_complete = ARGV[cursor + 6], ARGV[cursor + 7]
    local number = (first_id + made - 1) * id_step + id_offset + 1
    made = made + 1
    local id = int_text(number)
    -- Kue's first-save fields; move_many adds state and updated_at in the same HSET.
    local priority_text = texts[priority] or cached_text(texts, priority)
    local promote_at = now + delay
    local waiting = false
    if parents and parents[n] then  -- a parent not complete yet: wait for it
      for _, parent in ipairs(parents[n]) do
        local state = redis.call('HGET', job_key(prefix, parent), 'state')
        if state == 'failed' and fields.on_dependency_failure ~= 'ignore' then
          failed_parent = failed_parent or {}
          failed_parent[id] = failed_parent[id] or parent
        elseif state ~= 'complete' and state ~= 'failed' then
          redis.call('SADD', waiting_key(prefix, id), parent)
          redis.call('SADD', dependents_key(prefix, parent), id)
          redis.call('HSET', job_key(prefix, parent), 'has_dependents', '1', 'on_end', '1')
          waiting = true
        end
      end
      if waiting or failed_parent and failed_parent[id] then promote_at = WAITING_PROMOTE_AT end
    end
    local set = { 'max_attempts', max_attempts, 'type', jtype, 'created_at', now_text,
                  'promote_at', texts[promote_at] or cached_text(texts, promote_at),
                  'priority', priority_text, 'data', data }
    if delay > 0 then set[#set + 1], set[#set + 2] = 'delay', cached_text(texts, delay) end
    if ttl > 0 then set[#set + 1], set[#set + 2] = 'ttl', cached_text(texts, ttl) end
    if remove_on_complete == 'true' then
      set[#set + 1], set[#set + 2] = 'removeOnComplete', 'true'
    end
    if backoff ~= '' then set[#set + 1], set[#set + 2] = 'backoff', backoff end
    if fields then
      for name, value in pairs(fields) do set[#set + 1], set[#set + 2] = name, value end
      if fields.unique_key then redis.call('HSET', KEYS[4], fields.unique_key, id) end
      if fields.unique_key or fields.keep_complete or fields.keep_failed then
        set[#set + 1], set[#set + 2] = 'on_end', '1'  -- complete_jobs reads the rest only then
      end
    end
    local z = zid(id)
    local job = { id = id, zid = z, type = jtype, state = false, priority = priority,
                  promote_at = promote_at, ttl = ttl, set = set }
    if promote_at > now then delayed[#delayed + 1] = job else inactive[#inactive + 1] = job end
    local k = #all_jobs
    all_jobs[k + 1], all_jobs[k + 2] = priority_text, z
    ids[n] = number
    cursor = cursor + 9
    for t = 1, n_texts do
      search_index(prefix, id, ARGV[cursor])
      cursor = cursor + 1
    end
  end
  cursor = cursor + 1 + 2 * nums[ARGV[cursor]]
end
-- Kue SADDs the type on every save; a call's types are its jobs' (in runs, mostly one).
local types, seen_type = {}, nil
for _, list in ipairs({ inactive, delayed }) do
  for _, job in ipairs(list) do
    if job.type ~= seen_type and not types[job.type] then
      seen_type, types[job.type] = job.type, true
      redis.call('SADD', KEYS[2], job.type)
    end
  end
end
if #all_jobs > 0 then send_many('ZADD', KEYS[3], all_jobs) end
move_many(prefix, delayed, 'delayed', now)
move_many(prefix, inactive, 'inactive', now)
-- One `enqueue` per inactive job, then each type's new wake-up tokens.
local added, type_json, run_type = {}, nil, nil  -- type -> inactive jobs added
for _, job in ipairs(inactive) do
  if job.type ~= run_type then
    run_type, type_json = job.type, json_string(job.type)
  end
  publish(prefix, job.id, 'enqueue', type_json)
  added[run_type] = (added[run_type] or 0) + 1
end
for jtype, n in pairs(added) do add_tokens(prefix, jtype, n) end
if failed_parent then
  local ends = end_keys(prefix, KEYS[4], KEYS[5], KEYS[6])
  for _, job in ipairs(delayed) do
    local parent = failed_parent[job.id]
    if parent then
      if redis.call('EXISTS', waiting_key(prefix, job.id)) == 1 then
        -- It waits for others too: the failed parent decides now.
        for _, other in ipairs(redis.call('SMEMBERS', waiting_key(prefix, job.id))) do
          redis.call('SREM', dependents_key(prefix, other), job.id)
        end
        redis.call('DEL', waiting_key(prefix, job.id))
      end
      local f = redis.call('HMGET', job_key(prefix, job.id), 'type', 'priority', 'max_attempts',
        'unique_key', 'keep_failed')
      fail_waiting(ends, job.id, f, parent, now)
    end
  end
end
return ids
