-- lib/lifecycle.lua: what happens when a job ends (completes, fails for good, is cancelled or
-- removed), for the scripts that end jobs. Included after lib/kue.lua and lib/search.lua.
-- kueatomic's additions, which Node Kue ignores (lua/README.md, "Job lifecycle"):
--   - its unique key is freed (<prefix>:unique, key -> id);
--   - its dependents move on: each waits in delayed (promote_at never due) with the set
--     <prefix>:job:<id>:waiting of the parents not yet complete; the parent lists them in
--     <prefix>:job:<parent>:dependents and marks its hash has_dependents;
--   - the retention policy it carries (keep_complete / keep_failed: "age_ms,count", either
--     may be empty) trims the finished jobs of that state that had a policy, oldest first,
--     at most TRIM_PER_END per job that ends, from <prefix>:retained:<state> (zset: end time).
-- `ends` (end_keys) holds the queue-level keys, which every caller receives through KEYS.

local WAITING_PROMOTE_AT = 9007199254740991  -- a waiting job's promote_at: never due
local TRIM_PER_END = 16  -- jobs a retention policy may delete per job that ends (bounded work)
local MAX_CASCADE = 1000  -- dependents failed in one call by a dependency that failed

local function end_keys(prefix, unique, retained_complete, retained_failed)
  return { prefix = prefix, unique = unique,
           retained = { complete = retained_complete, failed = retained_failed } }
end

local function waiting_key(prefix, id) return job_key(prefix, id) .. ':waiting' end
local function dependents_key(prefix, id) return job_key(prefix, id) .. ':dependents' end

-- Every trace of a job (remove_job's rule): hash, log, its sets, lease, search entries and
-- dependency sets, then the `remove` event. `state` false: a hash whose state is unknown
-- may sit in any state's sets.
local function delete_job(ends, id, jtype, state)
  local prefix, z = ends.prefix, zid(id)
  for s in pairs(state and { [state] = true } or STATES) do
    redis.call('ZREM', state_key(prefix, s), z)
    redis.call('ZREM', type_state_key(prefix, jtype, s), z)
  end
  redis.call('ZREM', prefix .. ':jobs', z)
  redis.call('ZREM', leases_key(prefix), z)
  redis.call('ZREM', ends.retained.complete, z)
  redis.call('ZREM', ends.retained.failed, z)
  local key = job_key(prefix, id)
  redis.call('DEL', key, key .. ':log', key .. ':waiting', key .. ':dependents')
  search_remove(prefix, id)
  if state == 'inactive' or not state then sync_tokens(prefix, jtype) end
  publish(prefix, id, 'remove', json_string(jtype))
end

local function free_unique(ends, id, unique_key)
  if unique_key and redis.call('HGET', ends.unique, unique_key) == id then
    redis.call('HDEL', ends.unique, unique_key)
  end
end

-- "age_ms,count" as two numbers (nil when empty), or nil for a text no script wrote.
local function parse_keep(text)
  local age, count = string.match(text or '', '^(%d*),(%d*)$')
  if not age then return nil end
  return tonumber(age), tonumber(count)
end

-- The job `id` just ended in `state` with the policy `keep`: note it, then delete the
-- oldest noted jobs beyond the policy's count or age, at most TRIM_PER_END of them.
local function apply_retention(ends, id, state, keep, now)
  local age, count = parse_keep(keep)
  if not age and not count then return end
  local set = ends.retained[state]
  redis.call('ZADD', set, now, zid(id))
  local excess = 0
  if count then excess = redis.call('ZCARD', set) - count end
  if age then excess = math.max(excess, redis.call('ZCOUNT', set, '-inf', now - age)) end
  excess = math.min(excess, TRIM_PER_END)
  if excess <= 0 then return end
  local oldest = redis.call('ZRANGE', set, 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', set, 0, excess - 1)
  for _, z in ipairs(oldest) do
    local old_id = id_of(z)
    local f = old_id and redis.call('HMGET', job_key(ends.prefix, old_id), 'type', 'state')
    -- A job moved on since (retried by hand) is no longer this state's to trim.
    if f and f[1] and f[2] == state then delete_job(ends, old_id, f[1], state) end
  end
end

-- A waiting job whose dependency `parent` failed for good fails too, without running: error,
-- failed_at, no attempts left, state failed, `failed` event. `f`: its type, priority,
-- max_attempts, unique_key, keep_failed.
local function fail_waiting(ends, id, f, parent, now)
  local key = job_key(ends.prefix, id)
  local err = 'dependency ' .. parent .. ' failed'
  redis.call('HSET', key, 'error', err, 'failed_at', int_text(now),
    'attempts', int_text(finite(f[3]) or 1))
  redis.call('RPUSH', key .. ':log', err)
  move_state(ends.prefix, { id = id, type = f[1], state = 'delayed', priority = finite(f[2]) or 0 },
    'failed', now)
  publish(ends.prefix, id, 'failed', json_string(err) .. ',null')
  free_unique(ends, id, f[4])
  if f[5] then apply_retention(ends, id, 'failed', f[5], now) end
end

-- The parent ended: completed (each dependent that waited only for it enters inactive) or
-- not (failed for good, cancelled, removed: a dependent fails too, unless it was created with
-- on_dependency_failure "ignore", which counts the parent as done). Dependents that fail
-- pass it on to theirs, MAX_CASCADE at most per call.
local function dependents_ended(ends, parent, completed, now)
  local prefix, work, i = ends.prefix, { { parent, completed } }, 1
  while i <= #work and i <= MAX_CASCADE do
    local id, done = work[i][1], work[i][2]
    i = i + 1
    -- The list stays (the job card shows it) until the job is deleted: a child moves only
    -- while this parent is in its waiting set, so reading the list again changes nothing.
    local children = redis.call('SMEMBERS', dependents_key(prefix, id))
    for _, child in ipairs(children) do
      local waiting = waiting_key(prefix, child)
      local f = redis.call('HMGET', job_key(prefix, child), 'type', 'priority', 'max_attempts',
        'unique_key', 'keep_failed', 'state', 'on_dependency_failure', 'has_dependents')
      -- Only a job still waiting moves (one moved by hand keeps its own course).
      if redis.call('SREM', waiting, id) == 1 and f[1] and f[6] == 'delayed' then
        if done or f[7] == 'ignore' then
          if redis.call('EXISTS', waiting) == 0 then
            local job = { id = child, type = f[1], state = 'delayed', priority = finite(f[2]) or 0,
                          set = { 'promote_at', int_text(now) } }
            move_state(prefix, job, 'inactive', now)
            publish(prefix, child, 'enqueue', json_string(f[1]))
            sync_tokens(prefix, f[1])
          end
        else
          redis.call('DEL', waiting)
          fail_waiting(ends, child, f, id, now)
          if f[8] then work[#work + 1] = { child, false } end
        end
      end
    end
  end
end

-- The job `id` ended in `state` ("complete", "failed" for good, or "removed"); unique_key,
-- has_dependents and keep (its keep_<state> field) as stored, nil when absent.
local function job_ended(ends, id, state, unique_key, has_dependents, keep, now)
  if unique_key then free_unique(ends, id, unique_key) end
  if has_dependents then dependents_ended(ends, id, state == 'complete', now) end
  if keep and state ~= 'removed' then apply_retention(ends, id, state, keep, now) end
end
