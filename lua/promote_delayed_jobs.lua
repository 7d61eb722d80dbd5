-- name: promote_delayed_jobs
-- version: 12
-- transition: delayed -> inactive
-- purpose: Move delayed jobs whose promote_at has come (score <= now in <prefix>:jobs:delayed)
--   to inactive, at most `limit` per call, publishing promotion and enqueue for each, as Kue's
--   promotion timer does, but atomically, so any number of processes may call it at the same
--   time without a lock and each job is promoted once. Members whose hash is gone or not
--   delayed are dropped from the set. Also says how long until the next delayed job is due,
--   so callers can sleep until then. While Node Kue's own promoter holds its lock it promotes
--   nothing: Kue promotes with separate reads and writes, which a concurrent promotion here
--   could interleave with (leaving a job in two states).
-- KEYS:
--   1 delayed: <prefix>:jobs:delayed, delayed jobs scored by promote_at (ms)
--   2.. kue_lock: promotion:lock, Node Kue's promotion lock (unprefixed, as Kue names it; read
--     only). Passed only where Node Kue can run: never on a Redis Cluster, where the key
--     would be in another slot (and Kue does not run on one)
-- ARGV:
--   1 prefix: the queue prefix
--   2 limit: how many jobs to promote at most (> 0)
-- Derived keys: <prefix>:job:<id>, <prefix>:jobs:<state>, <prefix>:jobs:<type>:<state>,
--   <prefix>:<type>:jobs
-- Returns: {promoted, wait_ms}: wait_ms is the time until the next delayed job is due (0 when
--   more are due now, -1 when none is delayed); {0, 100} while a Node Kue process holds its
--   promotion lock
-- Errors: KUE_BAD_ARGS
-- Publishes: promotion, enqueue
--@include lib/kue.lua

local prefix, limit = ARGV[1], int_arg(ARGV[2], 1, 100000)
local e = check_prefix(prefix)
if e then return e end
if not limit or #ARGV ~= 2 then return bad_args('limit must be an integer 1..100000') end
local kue_lock = #KEYS ~= 1
e = check_keys(kue_lock and { state_key(prefix, 'delayed'), 'promotion:lock' }
                         or { state_key(prefix, 'delayed') })
if e then return e end
local FROM = moves_from('promote_delayed_jobs')
if kue_lock and redis.call('EXISTS', KEYS[2]) == 1 then return { 0, 100 } end
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
local promoted = 0
local touched_types = {}
for _, z in ipairs(due) do
  local id = id_of(z)
  local job = id and load_job(prefix, id)
  if job and FROM[job.state] then
    publish(prefix, id, 'promotion')
    move_state(prefix, job, 'inactive', now)
    publish(prefix, id, 'enqueue', json_string(job.type))
    touched_types[job.type] = true
    promoted = promoted + 1
  else
    redis.call('ZREM', KEYS[1], z)
  end
end
for jtype in pairs(touched_types) do sync_tokens(prefix, jtype) end
local wait_ms = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then wait_ms = math.max(0, tonumber(first[2]) - now) end
return { promoted, wait_ms }
