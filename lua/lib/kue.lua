-- lib/kue.lua: helpers shared by every script. Included textually (--@include), so it
-- defines only locals. It encodes Kue 0.11.6's Redis layout (docs/redis-layout.md §1-§3);
-- the Python side has the same facts in kueatomic/keyspace.py, checked by tests.
--@include lib/states.lua
--@include lib/checks.lua

-- The Redis server's clock in ms: one clock for every producer and worker (design rule 3).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as plain decimal text: tostring() would print 1e+15 style for large numbers.
-- '%d' is several times cheaper than '%.0f' (no float formatting) and exact below 2^53;
-- `n % 1` is nan for nan and inf, which take the '%.0f' branch as before.
local function int_text(n)
  if n % 1 == 0 and n < 9007199254740992 and n > -9007199254740992 then
    return string.format('%d', n)
  end
  return string.format('%.0f', n)
end

-- Kue's zset member: "<2-digit length>|<id>", so byte order equals numeric order (FIFO).
-- The length texts are constants: a number in a concatenation goes through sprintf.
local ZID_LENGTHS = { '01|', '02|', '03|', '04|', '05|', '06|', '07|', '08|', '09|', '10|',
                      '11|', '12|', '13|', '14|', '15|', '16|' }
local function zid(id)
  return (ZID_LENGTHS[#id] or string.format('%02d|', #id)) .. id
end

-- The id in a zid, or nil for a member no script wrote (callers drop such members).
local function id_of(z)
  local id = string.match(z, '^%d%d|([1-9]%d*)$')
  if id and (#id < 16 or #id == 16 and tonumber(id) <= 9007199254740991) then return id end
  return nil
end

local function job_key(prefix, id) return prefix .. ':job:' .. id end
local function state_key(prefix, state) return prefix .. ':jobs:' .. state end
local function type_state_key(prefix, jtype, state) return prefix .. ':jobs:' .. jtype .. ':' .. state end
local function tokens_key(prefix, jtype) return prefix .. ':' .. jtype .. ':jobs' end
local function leases_key(prefix) return prefix .. ':leases' end
-- kueatomic's claim record: one string per claim call, the claimed job ids joined by ",".
-- Outcomes under that claim live beside it, with the same expiry: <record>:complete, the set
-- of ids completed (integers, so Redis keeps an intset), and <record>:failed, a hash id -> the
-- state a failed attempt ended in. A released job needs no note: it lost its lease.
local function claim_key(prefix, token) return prefix .. ':claim:' .. token end
local function meta_key(prefix) return prefix .. ':meta' end
local CLAIM_COMPLETE, CLAIM_FAILED = ':complete', ':failed'

-- JSON string literal for event payloads (no cjson needed for plain strings).
local JSON_ESCAPES = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
                       ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
local function json_escape(c)
  return JSON_ESCAPES[c] or string.format('\\u%04x', string.byte(c))
end
-- A stored string that is not UTF-8 (only a hand-written HSET can make one; the scripts
-- refuse such arguments) is published with each non-ASCII byte as U+FFFD, so every event
-- stays JSON any parser reads.
local function json_string(s)
  if not is_utf8(s) then s = string.gsub(s, '[\128-\255]', '\239\191\189') end
  if not string.find(s, '[%c"\\]') then return '"' .. s .. '"' end
  return '"' .. string.gsub(s, '[%c"\\]', json_escape) .. '"'
end

-- Whether anyone can hear a PUBLISH on `channel`: a subscriber to it or to any pattern on
-- this server, a replica (which passes PUBLISH on to its own subscribers), or a Cluster
-- (whose nodes forward it to every node's subscribers). An INFO the server refuses (a Redis
-- before 7.0 takes one section) counts as heard.
local function events_heard(channel)
  if redis.call('PUBSUB', 'NUMSUB', channel)[2] > 0 or redis.call('PUBSUB', 'NUMPAT') > 0 then
    return true
  end
  local info = redis.pcall('INFO', 'replication', 'cluster')
  return type(info) ~= 'string' or not (string.find(info, 'connected_slaves:0\r', 1, true)
    and string.find(info, 'cluster_enabled:0\r', 1, true))
end

-- One PUBLISH on <prefix>:events in Kue's format: {"id":N,"event":E,"args":[E, ...]}.
-- `extra` is the JSON text of the arguments after the event name (or nil).
-- Event names are the scripts' own plain words (no JSON escaping needed); the message is
-- built in one concatenation, as workers publish two per job.
-- Events nobody can hear are not sent, as each costs ~6k instructions: a call's first
-- EVENTS_UNASKED go out as they come, and before the next one the script asks once whether
-- anyone listens (events_heard, ~35k, so calls of a few events never pay for asking).
local EVENTS_UNASKED = 8
local events_keys, events_sent, heard = {}, 0, {}  -- prefix -> channel; channel -> heard
local function publish(prefix, id, event, extra)
  local channel = events_keys[prefix]
  if not channel then
    channel = prefix .. ':events'
    events_keys[prefix] = channel
  end
  events_sent = events_sent + 1
  if events_sent > EVENTS_UNASKED then
    local yes = heard[channel]
    if yes == nil then
      yes = events_heard(channel)
      heard[channel] = yes
    end
    if not yes then return end
  end
  if extra then
    redis.call('PUBLISH', channel, '{"id":' .. id .. ',"event":"' .. event .. '","args":["'
      .. event .. '",' .. extra .. ']}')
  else
    redis.call('PUBLISH', channel, '{"id":' .. id .. ',"event":"' .. event .. '","args":["'
      .. event .. '"]}')
  end
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

-- Tokens for `n` inactive jobs of a type just added. LPUSH answers the list's length, which
-- one ZCARD checks against the inactive set: only tokens that had drifted (Node Kue lets
-- them) cost a re-balance, instead of every create paying for LLEN.
local function add_tokens(prefix, jtype, n)
  local tokens = tokens_key(prefix, jtype)
  local have
  if n == 1 then
    have = redis.call('LPUSH', tokens, '1')
  else
    local ones = {}
    for i = 1, math.min(n, 1000) do ones[i] = '1' end
    for start = 1, n, 1000 do
      have = redis.call('LPUSH', tokens, unpack(ones, 1, math.min(1000, n - start + 1)))
    end
  end
  if have ~= redis.call('ZCARD', type_state_key(prefix, jtype, 'inactive')) then
    sync_tokens(prefix, jtype)
  end
end

-- int_text(n) through `texts` (n -> its text): a call's jobs share a few scores.
local function cached_text(texts, n)
  local text = texts[n]
  if not text then
    text = int_text(n)
    texts[n] = text
  end
  return text
end

-- A claimed job's hash for a reply, as one string: the number of strings HGETALL gave, then
-- each field and value, joined by NUL bytes ("16\0type\0email\0data\0{}..."). Redis
-- turns a table of 16 strings into a reply for ~8k instructions more than one string, per
-- job. A value holding a NUL itself makes the count disagree with the parts: the client
-- then takes the claim back in tables with reclaim_jobs (lua/README.md, "Claim replies").
local function packed_fields(flat, texts)
  local n = #flat
  return (texts[n] or cached_text(texts, n)) .. '\0' .. table.concat(flat, '\0')
end

-- One command per key with many members (ZADD score member ..., ZREM member ...), in parts:
-- unpack() is limited by the C stack (4000 keeps score/member pairs whole).
local function send_many(command, key, list)
  local n = #list
  if n <= 4000 then
    redis.call(command, key, unpack(list))
    return
  end
  for i = 1, n, 4000 do redis.call(command, key, unpack(list, i, math.min(i + 3999, n))) end
end

-- Kue's state(S) transition (docs/redis-layout.md §3) for many jobs at once, plus lease clean-up when
-- leaving active. Each job is a table with id, type, priority (number), state (old, may be
-- false), promote_at and ttl (numbers, may be nil), and optionally `set` (more field/value
-- pairs written in the same HSET), `zid` and `key` (member and hash key, when the caller
-- has them). The zset writes are grouped into one ZREM or ZADD per key; the result equals
-- move_state() per job. Does not re-balance tokens or publish: callers do that once per type
-- after a batch. `popped` names a set the caller already took the members out of (activate's
-- ZPOPMIN): no ZREM is sent to it; `leases_dropped` says the caller already deleted the
-- `lease` fields (complete_jobs does, as it accepts each job). Every table, closure and
-- string made here is garbage Redis's Lua collector makes the call pay for, so keys and
-- score texts are built once per run of jobs of one (type, old state), not per job.
local function move_many(prefix, jobs, new_state, now, popped, leases_dropped)
  local n_jobs = #jobs
  if n_jobs == 0 then return end
  local now_text = int_text(now)
  local lists, removed, added = {}, {}, {}  -- key -> members; keys in first-use order
  local global_new = prefix .. ':jobs:' .. new_state
  local add_global = {}
  lists[global_new], added[1] = add_global, global_new
  local texts = {}  -- score -> its text (cached_text)
  local lease_holders
  local run_type, run_old, rem_global, rem_type, add_type
  for i = 1, n_jobs do
    local job = jobs[i]
    local id, old, jtype = job.id, job.state, job.type
    local z = job.zid or zid(id)
    local key = job.key or prefix .. ':job:' .. id
    if i == 1 or jtype ~= run_type or old ~= run_old then
      -- A new run: its lists (a key seen in an earlier run reuses its list).
      run_type, run_old, rem_global, rem_type = jtype, old, false, false
      if old and old ~= new_state then
        local k = prefix .. ':jobs:' .. old
        rem_global = lists[k]
        if not rem_global then
          rem_global = {}
          lists[k], removed[#removed + 1] = rem_global, k
        end
        k = prefix .. ':jobs:' .. jtype .. ':' .. old
        if k ~= popped then
          rem_type = lists[k]
          if not rem_type then
            rem_type = {}
            lists[k], removed[#removed + 1] = rem_type, k
          end
        end
      end
      local k = prefix .. ':jobs:' .. jtype .. ':' .. new_state
      add_type = lists[k]
      if not add_type then
        add_type = {}
        lists[k], added[#added + 1] = add_type, k
      end
    end
    if rem_global then
      rem_global[#rem_global + 1] = z
      if rem_type then rem_type[#rem_type + 1] = z end
      if old == 'active' then
        lease_holders = lease_holders or {}
        lease_holders[#lease_holders + 1] = z
        if not leases_dropped then redis.call('HDEL', key, 'lease') end
      end
    end
    if job.set then
      redis.call('HSET', key, 'state', new_state, 'updated_at', now_text, unpack(job.set))
    else
      redis.call('HSET', key, 'state', new_state, 'updated_at', now_text)
    end
    -- The global set scores by priority, except delayed (promote_at) and active (the ttl
    -- deadline, else -|priority|); the per-type set always scores by priority.
    local priority = job.priority
    local priority_text = texts[priority] or cached_text(texts, priority)
    local global_text = priority_text
    if new_state == 'delayed' then
      global_text = cached_text(texts, job.promote_at or now)
    elseif new_state == 'active' then
      local ttl = job.ttl or 0
      local kept = ttl > 0 and old == 'active' and redis.call('ZSCORE', global_new, z)
      if kept and tonumber(kept) > 100000 then
        -- A re-save of an active job (priority, update) keeps its ttl deadline: only
        -- progress pushes it back, as the worker's ttl check expects.
        global_text = kept
      elseif ttl > 0 then
        global_text = cached_text(texts, now + ttl)
      else
        global_text = cached_text(texts, -math.abs(priority))
      end
    end
    local n = #add_global
    add_global[n + 1], add_global[n + 2] = global_text, z
    n = #add_type
    add_type[n + 1], add_type[n + 2] = priority_text, z
    job.state = new_state
  end
  if lease_holders then
    local k = leases_key(prefix)
    lists[k], removed[#removed + 1] = lease_holders, k
  end
  for _, k in ipairs(removed) do send_many('ZREM', k, lists[k]) end
  for _, k in ipairs(added) do send_many('ZADD', k, lists[k]) end
end

-- Outcomes noted under claim tokens (lua/README.md, "Claim records"): a script collects, per
-- distinct token, the arguments for one write to the outcome key (<record>:complete: SADD of
-- the ids; <record>:failed: HSET id state ...) and sends each with one PEXPIRE giving the key
-- the claim record's remaining lifetime (PTTL), so the two expire together. A record that is
-- gone (expired, or the job was claimed before claims were recorded) gets nothing: no key
-- without an expiry is ever created here.
local function claim_notes(prefix)
  return { prefix = prefix, lists = {}, order = {}, ttls = {} }
end
-- The list to append a token's arguments to, or false when its claim record is gone.
local function claim_list(notes, token)
  local list = notes.lists[token]
  if list == nil then
    local ttl = redis.call('PTTL', claim_key(notes.prefix, token))
    list = ttl > 0 and {}
    notes.lists[token] = list
    if list then
      notes.order[#notes.order + 1] = token
      notes.ttls[token] = ttl
    end
  end
  return list
end
local function send_notes(notes, suffix, command)
  for _, token in ipairs(notes.order) do
    local key, list = claim_key(notes.prefix, token) .. suffix, notes.lists[token]
    if #list > 0 then
      for i = 1, #list, 4000 do  -- unpack() is limited by the C stack (4000 keeps pairs whole)
        redis.call(command, key, unpack(list, i, math.min(i + 3999, #list)))
      end
      redis.call('PEXPIRE', key, int_text(notes.ttls[token]))
    end
  end
end

-- Kue's state(S) for one job (see move_many).
local function move_state(prefix, job, new_state, now)
  move_many(prefix, { job }, new_state, now)
end

-- A stored number, or nil when the field is missing or not a finite number (a job Node Kue
-- or a person wrote oddly): arithmetic on it then never fails halfway through a script.
local function finite(text)
  local n = tonumber(text)
  if n and n - n == 0 then return n end  -- not nan, inf or -inf
  return nil
end

-- A stored state, or false when it is missing or not one of Kue's five.
local function known_state(state)
  if STATES[state] then return state end
  return false
end

-- Load the fields move_state needs; false when the job does not exist (no hash or no type).
local function load_job(prefix, id)
  local f = redis.call('HMGET', job_key(prefix, id), 'type', 'state', 'priority', 'promote_at', 'ttl')
  if not f[1] then return false end
  return { id = id, type = f[1], state = known_state(f[2]), priority = finite(f[3]) or 0,
           promote_at = finite(f[4]), ttl = finite(f[5]) }
end

-- Every script answers a missing job the same way, so Python maps it to JobNotFound.
local function not_found(id)
  return redis.error_reply('KUE_NOT_FOUND job "' .. id .. '" doesnt exist')
end

-- ---------------------------------------------------------------------------------------
-- Worker transitions (activate/complete/fail/recover): shared so each rule has one home.

-- A flat HGETALL reply as a table.
local function hash_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- The fields failed_attempt() needs, or false when the job does not exist.
local function load_attempt_job(prefix, id)
  local f = redis.call('HMGET', job_key(prefix, id), 'type', 'state', 'priority', 'promote_at',
    'ttl', 'attempts', 'max_attempts', 'backoff', 'delay', 'lease')
  if not f[1] then return false end
  return { id = id, type = f[1], state = known_state(f[2]), priority = finite(f[3]) or 0,
           promote_at = finite(f[4]), ttl = finite(f[5]), attempts = finite(f[6]) or 0,
           max_attempts = finite(f[7]) or 1, backoff = f[8], delay = finite(f[9]) or 0,
           lease = f[10] }
end

-- JavaScript's Math.round (halves go up).
local function js_round(x)
  return math.floor(x + 0.5)
end

-- Kue's retry delay for a stored backoff spec (docs/redis-layout.md §3), `attempts` counted after the
-- increment: fixed d; exponential round(min(maxDelay - d/2, d/2 * (2^attempts - 1))); "true"
-- the job's own delay. An object without delay uses the job's delay (JS `delay || _delay`).
-- Anything else (a function, stored as Kue's JS source or kueatomic's {"type":"function"})
-- cannot run here: the worker passes its delay in, and without one the job's delay is used.
local function backoff_delay(spec, attempts, own_delay)
  if spec == 'true' then return own_delay end
  local kind = string.match(spec, '"type"%s*:%s*"([^"]*)"')
  local delay = tonumber(string.match(spec, '"delay"%s*:%s*([-%d%.eE+]+)'))
  if not delay or delay == 0 then delay = own_delay end
  if kind == 'fixed' then return delay end
  if kind == 'exponential' then
    local max_delay = tonumber(string.match(spec, '"maxDelay"%s*:%s*([-%d%.eE+]+)'))
    if not max_delay or max_delay == 0 then max_delay = math.huge end
    return js_round(math.min(max_delay - delay * 0.5, delay * 0.5 * (2 ^ attempts - 1)))
  end
  return own_delay
end

-- Kue's failedAttempt (docs/redis-layout.md §3) without its events: error + log summary, failed_at,
-- state(failed), attempts + 1 (only while below max_attempts, as Kue's attempt() does), then
-- back to inactive, to delayed (with a backoff: promote_at = failed_at + delay) or left failed.
-- `delay_text` is a delay computed by the worker ("" = from the stored spec). The attempt is
-- over, so its stall count goes (stalls are counted per attempt). Returns the state the job
-- ended in and the attempt count. Callers publish error / enqueue / failed attempt / failed
-- and re-balance the type's tokens.
local function failed_attempt(prefix, job, err, summary, delay_text, now)
  local key = job_key(prefix, job.id)
  redis.call('HSET', key, 'error', err, 'failed_at', int_text(now))
  redis.call('HDEL', key, 'stalls')
  redis.call('RPUSH', key .. ':log', summary)
  move_state(prefix, job, 'failed', now)
  -- Counted here, not by HINCRBY, which would fail on a count Node Kue stored oddly.
  local attempts = job.attempts
  if attempts < job.max_attempts then
    attempts = attempts + 1
    redis.call('HSET', key, 'attempts', int_text(attempts))
  end
  if job.max_attempts - attempts <= 0 then return 'failed', attempts end
  if job.backoff and job.backoff ~= '' then
    local delay = tonumber(delay_text)
    if not delay then delay = backoff_delay(job.backoff, attempts, job.delay) end
    if delay and delay > 0 then job.delay = js_round(delay) end
    if job.delay > 0 then
      job.promote_at = now + job.delay
      redis.call('HSET', key, 'delay', int_text(job.delay), 'promote_at', int_text(job.promote_at))
    end
    -- Without any delay promote_at stays in the past: due at the next promotion, as in Kue.
    move_state(prefix, job, 'delayed', now)
    return 'delayed', attempts
  end
  move_state(prefix, job, 'inactive', now)
  return 'inactive', attempts
end
