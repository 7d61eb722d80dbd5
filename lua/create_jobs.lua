-- name: create_jobs
-- version: 1
-- transition: new -> inactive | delayed
-- purpose: Create one or many jobs in one call, each written exactly as Kue's save() writes a
--   new job (hash fields, zsets, one wake-up token per inactive job, "enqueue" event), and index
--   them for search when asked. All jobs of the call are created or none are.
-- KEYS:
--   1 ids: <prefix>:ids, the job id counter (INCR)
--   2 types: <prefix>:job:types, the set of every job type
--   3 all_jobs: <prefix>:jobs, every job scored by priority
-- ARGV:
--   1 prefix: the queue prefix, e.g. q
--   2 count: how many jobs follow
--   3.. jobs: per job, in order: type, data (JSON text), priority (integer), max_attempts,
--     delay (ms, 0 = none), ttl (ms, 0 = none), backoff ("" = none, else Kue's text),
--     remove_on_complete ("true" or ""), n_texts, then n_texts texts to index for search
-- Derived keys: <prefix>:job:<id>, <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>,
--   <prefix>:<type>:jobs, <prefix>:search:word:<code>, <prefix>:search:object:<id>
-- Returns: array of the new job ids (integers), in argument order
-- Errors: KUE_BAD_ARGS
-- Publishes: enqueue
--@include lib/kue.lua
--@include lib/search.lua

local prefix = ARGV[1]
local count = tonumber(ARGV[2])
if not count or count < 0 then
  return redis.error_reply('KUE_BAD_ARGS count must be a non-negative integer')
end
local now = now_ms()
local ids = {}
local touched_types = {}
local cursor = 3
for n = 1, count do
  local jtype, data = ARGV[cursor], ARGV[cursor + 1]
  local priority, max_attempts = tonumber(ARGV[cursor + 2]), ARGV[cursor + 3]
  local delay, ttl = tonumber(ARGV[cursor + 4]), tonumber(ARGV[cursor + 5])
  local backoff, remove_on_complete = ARGV[cursor + 6], ARGV[cursor + 7]
  local n_texts = tonumber(ARGV[cursor + 8])
  if not (jtype and jtype ~= '' and priority and delay and ttl and n_texts) then
    return redis.error_reply('KUE_BAD_ARGS job ' .. n .. ' of the call is malformed')
  end
  local id = int_text(redis.call('INCR', KEYS[1]))
  local key = job_key(prefix, id)
  local fields = { 'max_attempts', max_attempts, 'type', jtype, 'created_at', int_text(now),
                   'promote_at', int_text(now + delay), 'updated_at', int_text(now),
                   'priority', int_text(priority), 'data', data }
  if delay > 0 then table.insert(fields, 'delay'); table.insert(fields, int_text(delay)) end
  if ttl > 0 then table.insert(fields, 'ttl'); table.insert(fields, int_text(ttl)) end
  if remove_on_complete == 'true' then
    table.insert(fields, 'removeOnComplete'); table.insert(fields, 'true')
  end
  if backoff ~= '' then table.insert(fields, 'backoff'); table.insert(fields, backoff) end
  redis.call('SADD', KEYS[2], jtype)
  redis.call('HSET', key, unpack(fields))
  redis.call('ZADD', KEYS[3], priority, zid(id))
  local job = { id = id, type = jtype, state = false, priority = priority,
                promote_at = now + delay, ttl = ttl }
  if delay > 0 then
    move_state(prefix, job, 'delayed', now)
  else
    move_state(prefix, job, 'inactive', now)
    touched_types[jtype] = true
    publish(prefix, id, 'enqueue', json_string(jtype))
  end
  for t = 1, n_texts do
    search_index(prefix, id, ARGV[cursor + 8 + t])
  end
  cursor = cursor + 9 + n_texts
  ids[n] = tonumber(id)
end
for jtype in pairs(touched_types) do sync_tokens(prefix, jtype) end
return ids
