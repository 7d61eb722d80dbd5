-- lib/kue.lua: helpers shared by every script. Included textually (--@include), so it
-- defines only locals. It encodes Kue 0.11.6's Redis layout (shared/kue-wire.md §1-§3);
-- the Python side has the same facts in kueatomic/keyspace.py, checked by tests.

-- The Redis server's clock in ms: one clock for every producer and worker (design rule 3).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as plain decimal text: tostring() would print 1e+15 style for large numbers.
local function int_text(n)
  return string.format('%.0f', n)
end

-- Kue's zset member: "<2-digit length>|<id>", so byte order equals numeric order (FIFO).
local function zid(id)
  return string.format('%02d|%s', string.len(id), id)
end

local STATES = { inactive = true, active = true, complete = true, failed = true, delayed = true }

local function job_key(prefix, id) return prefix .. ':job:' .. id end
local function state_key(prefix, state) return prefix .. ':jobs:' .. state end
local function type_state_key(prefix, jtype, state) return prefix .. ':jobs:' .. jtype .. ':' .. state end
local function tokens_key(prefix, jtype) return prefix .. ':' .. jtype .. ':jobs' end
local function leases_key(prefix) return prefix .. ':leases' end

-- JSON string literal for event payloads (no cjson needed for plain strings).
local JSON_ESCAPES = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
                       ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
local function json_string(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c)
    return JSON_ESCAPES[c] or string.format('\\u%04x', string.byte(c))
  end) .. '"'
end

-- One PUBLISH on <prefix>:events in Kue's format: {"id":N,"event":E,"args":[E, ...]}.
-- `extra` is the JSON text of the arguments after the event name (or nil).
local function publish(prefix, id, event, extra)
  local args = json_string(event)
  if extra then args = args .. ',' .. extra end
  redis.call('PUBLISH', prefix .. ':events',
    '{"id":' .. id .. ',"event":' .. json_string(event) .. ',"args":[' .. args .. ']}')
end

-- Exactly one wake-up token per inactive job of a type (Kue lets them drift). Workers may
-- BLPOP a token; every script that moves jobs in or out of inactive re-balances here.
local function sync_tokens(prefix, jtype)
  local tokens = tokens_key(prefix, jtype)
  local want = redis.call('ZCARD', type_state_key(prefix, jtype, 'inactive'))
  local have = redis.call('LLEN', tokens)
  if have > want then
    if want == 0 then redis.call('DEL', tokens) else redis.call('LTRIM', tokens, 0, want - 1) end
  end
  while have < want do
    local n = math.min(want - have, 1000)
    local ones = {}
    for i = 1, n do ones[i] = '1' end
    redis.call('LPUSH', tokens, unpack(ones))
    have = have + n
  end
end

-- Kue's state(S) transition (kue-wire.md §3), plus lease clean-up when leaving active.
-- `job` is a table with id, type, priority (number), state (old, may be false),
-- promote_at and ttl (numbers, may be nil). Does not re-balance tokens or publish:
-- callers do that once per type after a batch.
local function move_state(prefix, job, new_state, now)
  local z = zid(job.id)
  local old = job.state
  if old and old ~= new_state then
    redis.call('ZREM', state_key(prefix, old), z)
    redis.call('ZREM', type_state_key(prefix, job.type, old), z)
    if old == 'active' then
      redis.call('ZREM', leases_key(prefix), z)
      redis.call('HDEL', job_key(prefix, job.id), 'lease')
    end
  end
  redis.call('HSET', job_key(prefix, job.id), 'state', new_state, 'updated_at', int_text(now))
  redis.call('ZADD', state_key(prefix, new_state), job.priority, z)
  redis.call('ZADD', type_state_key(prefix, job.type, new_state), job.priority, z)
  if new_state == 'delayed' then
    redis.call('ZADD', state_key(prefix, 'delayed'), job.promote_at or now, z)
  elseif new_state == 'active' then
    local ttl = job.ttl or 0
    local score = -math.abs(job.priority)
    if ttl > 0 then score = now + ttl end
    redis.call('ZADD', state_key(prefix, 'active'), score, z)
  end
  job.state = new_state
end

-- Load the fields move_state needs; false when the job does not exist (no hash or no type).
local function load_job(prefix, id)
  local f = redis.call('HMGET', job_key(prefix, id), 'type', 'state', 'priority', 'promote_at', 'ttl')
  if not f[1] then return false end
  return { id = id, type = f[1], state = f[2], priority = tonumber(f[3]) or 0,
           promote_at = tonumber(f[4]), ttl = tonumber(f[5]) }
end

-- Every script answers a missing job the same way, so Python maps it to JobNotFound.
local function not_found(id)
  return redis.error_reply('KUE_NOT_FOUND job "' .. id .. '" doesnt exist')
end
