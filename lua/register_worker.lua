-- name: register_worker
-- version: 2
-- transition: -
-- purpose: A worker process's heartbeat (the workers registry and the activity series the
--   dashboard charts). The worker's hash <prefix>:worker:<id> gets id, host, pid, types (a JSON
--   array), slots, busy, started_at, heartbeat_at (now) and batch, and expires in ttl_ms; the
--   zset <prefix>:workers scores the id by that expiry (now + ttl_ms) and loses up to 100
--   entries whose expiry has passed. The counts the worker made since its previous heartbeat
--   are added to the activity bucket of the current minute, <prefix>:activity:<minute start
--   ms> (hash: completed, failed, wait_ms_sum, wait_count, run_ms_sum, run_count, expiring 2
--   hours after its last write), unless the hash already holds this batch token: a call
--   retried after its reply was lost adds nothing twice. ttl_ms 0 deregisters (a clean
--   stop): the id leaves the zset at once and the hash keeps only its batch field, for 60 s,
--   so a retried deregistration is recognised too.
-- KEYS:
--   1 workers: <prefix>:workers, worker ids scored by when their entry expires (ms)
--   2 worker: <prefix>:worker:<id>, the worker's hash
-- ARGV:
--   1 prefix: the queue prefix
--   2 id: the worker's id, 1..200 bytes of letters, digits and . _ - : @ (not "jobs", which
--     would make <prefix>:worker:jobs, the wake-up list of a type "worker")
--   3 ttl_ms: how long the entry lives without another heartbeat, 0..86400000 (0 deregisters)
--   4 host: the worker's host name, 1..255 bytes of UTF-8 text without control bytes
--   5 pid: its process id, 0..2^53-1
--   6 slots: how many jobs it may run at once (the sum of its process() concurrencies)
--   7 busy: how many handlers run now
--   8 started_at: when it started (ms, the value an earlier reply gave), 0 for "the stored
--     value, else now"
--   9 batch: the token of the counts below, as a claim token: <letters and digits>:<counter>
--   10 completed: handlers that returned since the previous batch
--   11 failed: attempts that failed (the handler raised, or the job could not be loaded)
--   12 wait_ms_sum: sum of the claimed jobs' waits (started_at - created or promoted), ms
--   13 wait_count: how many waits that sum holds
--   14 run_ms_sum: sum of the handlers' durations, ms
--   15 run_count: how many durations that sum holds
--   16.. types: the job types it serves (0..1000, each 1..512 bytes of UTF-8, no ':')
-- Derived keys: <prefix>:activity:<minute> (the start of the current minute, ms)
-- Returns: array {now, started_at, 1 when the counts were added (0: this batch was already in)}
-- Errors: KUE_BAD_ARGS
-- Publishes: none
--@include lib/checks.lua

-- Not lib/kue.lua: this script touches no job, and so keeps its text (and SHA) when the job
-- scripts' library changes. Its helpers (the server clock, integer and JSON text) are these:
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int_text(n) return string.format('%d', n) end  -- exact below 2^53
-- A type as a JSON string: validated UTF-8, with quotes, backslashes and control bytes
-- escaped as \u00XX.
local function json_text(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c)
    return string.format('\\u%04x', string.byte(c))
  end) .. '"'
end

local ACTIVITY_MS = 7200000  -- a bucket lives 2 hours after its last write
local TOMBSTONE_MS = 60000   -- a deregistered worker's batch token is kept this long
local TRIM = 100             -- expired entries removed per call
local COUNTS = { 'completed', 'failed', 'wait_ms_sum', 'wait_count', 'run_ms_sum', 'run_count' }

local prefix, id = ARGV[1], ARGV[2]
local e = check_prefix(prefix)
if e then return e end
if type(id) ~= 'string' or #id == 0 or #id > 200 or string.find(id, '[^%w%.%-_:@]')
    or id == 'jobs' then
  return bad_args('worker id must be 1..200 bytes of letters, digits and . _ - : @')
end
local ttl_ms = int_arg(ARGV[3], 0, 86400000)
local host = ARGV[4]
local pid, slots, busy = int_arg(ARGV[5], 0, MAX_INT), int_arg(ARGV[6], 0, MAX_INT),
  int_arg(ARGV[7], 0, MAX_INT)
local started_arg = int_arg(ARGV[8], 0, MAX_INT)
local batch = ARGV[9]
if not ttl_ms or not pid or not slots or not busy or not started_arg then
  return bad_args('ttl_ms (0..86400000), pid, slots, busy and started_at must be integers >= 0')
end
if type(host) ~= 'string' or #host == 0 or #host > 255 or string.find(host, '%c')
    or not is_utf8(host) then
  return bad_args('host must be 1..255 bytes of UTF-8 text')
end
if not is_token(batch) then return bad_args('batch must be <letters and digits>:<counter>') end
local deltas = {}
for i = 1, #COUNTS do
  deltas[i] = int_arg(ARGV[9 + i], 0, MAX_INT)
  if not deltas[i] then return bad_args(COUNTS[i] .. ' must be an integer >= 0') end
end
if #ARGV - 15 > 1000 then return bad_args('at most 1000 types') end
local types = {}
for i = 16, #ARGV do
  local jtype = ARGV[i]
  if #jtype == 0 or #jtype > 512 or string.find(jtype, ':', 1, true) or not is_utf8(jtype) then
    return bad_args('types must be 1..512 bytes of UTF-8 text without ":"')
  end
  types[#types + 1] = json_text(jtype)
end
e = check_keys({ prefix .. ':workers', prefix .. ':worker:' .. id })
if e then return e end

local now = now_ms()
local stored = redis.call('HMGET', KEYS[2], 'batch', 'started_at')
local fresh = stored[1] ~= batch
if fresh then
  local minute = now - now % 60000
  local bucket = prefix .. ':activity:' .. int_text(minute)
  local wrote = false
  for i = 1, #COUNTS do
    if deltas[i] > 0 then
      redis.call('HINCRBY', bucket, COUNTS[i], deltas[i])
      wrote = true
    end
  end
  if wrote then redis.call('PEXPIRE', bucket, ACTIVITY_MS) end
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. int_text(now), 'LIMIT', 0, TRIM)
if #expired > 0 then redis.call('ZREM', KEYS[1], unpack(expired)) end

local started = started_arg
if started == 0 then
  started = int_arg(stored[2], 1, MAX_INT) or now
end
if ttl_ms == 0 then
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'batch', batch)
  redis.call('PEXPIRE', KEYS[2], TOMBSTONE_MS)
else
  redis.call('HSET', KEYS[2], 'id', id, 'host', host, 'pid', int_text(pid),
    'types', '[' .. table.concat(types, ',') .. ']', 'slots', int_text(slots),
    'busy', int_text(busy), 'started_at', int_text(started), 'heartbeat_at', int_text(now),
    'batch', batch)
  redis.call('PEXPIRE', KEYS[2], ttl_ms)
  redis.call('ZADD', KEYS[1], now + ttl_ms, id)
end
return { now, started, fresh and 1 or 0 }
