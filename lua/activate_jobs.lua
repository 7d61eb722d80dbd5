-- name: activate_jobs
-- version: 15
-- transition: inactive -> active
-- purpose: Claim up to `count` inactive jobs of one type for a worker, most urgent first
--   (lowest priority score, then FIFO within a priority), as Kue's worker dequeue does but many
--   per call. Each claimed job gets started_at, workerId and a lease: the claim token in the
--   hash field `lease` and the deadline (now + lease_ms) in <prefix>:leases. It moves to active
--   (ttl deadline scored in <prefix>:jobs:active) and `start` is published. The claim is
--   recorded in <prefix>:claim:<token>: a string, the claimed ids joined by "," in claim order
--   (one SET), expiring after 2 * lease_ms (renew_leases extends it), so a worker whose reply
--   was lost can get its jobs back with reclaim_jobs and complete/fail recognise a retried
--   call (they note outcomes in <prefix>:claim:<token>:complete and :failed). A member
--   whose hash is gone or not inactive is dropped from the queue, never run. count 0 only
--   re-balances the type's wake-up tokens (a worker that consumed a token and stopped calls it
--   so). A type paused for every worker (set_type_paused, in <prefix>:paused) claims nothing:
--   the reply says so and when to look again.
-- KEYS:
--   1 inactive: <prefix>:jobs:<type>:inactive, the type's queue (zset by priority, FIFO zids)
--   2 leases: <prefix>:leases, claimed jobs scored by lease deadline (ms)
--   3 paused: <prefix>:paused, the types paused for every worker
-- ARGV:
--   1 prefix: the queue prefix
--   2 type: the job type
--   3 count: how many jobs to claim at most (0..1000)
--   4 worker_id: stored in each job's workerId (Kue: kue:<host>:<pid>:<type>:<n>)
--   5 token: the claim token, unique per call; complete/fail/renew/reclaim must present it
--   6 lease_ms: lease length in ms (> 0)
--   7.. rate: optional, a rate limit for the type: limit (jobs, >= 1) then window_ms (>= 1).
--     At most `limit` jobs of the type start per window, counted in <prefix>:rate:<type> (a
--     counter that expires window_ms after the window's first claim), across every caller
-- Derived keys: <prefix>:job:<id>, <prefix>:jobs:inactive, <prefix>:jobs:active,
--   <prefix>:jobs:<type>:active, <prefix>:<type>:jobs, <prefix>:claim:<token> (written only
--   when a job was claimed), <prefix>:rate:<type> (with a rate limit)
-- Returns: flat array now, id1, fields1, id2, fields2, ... in claim order: now is the claim
--   time (ms), fields the job hash before the claim packed in one string (packed_fields in
--   lib/kue.lua: the count of field and value strings, then each, joined by NUL bytes); the
--   claim wrote state=active, updated_at=started_at=now, workerId and lease.
--   With a rate limit whose window is full: {now, "rate", ms until the window reopens}; for a
--   paused type: {now, "paused", ms until the caller should look again}
-- Errors: KUE_BAD_ARGS
-- Publishes: start
--@include lib/kue.lua

local prefix, jtype, worker_id, token = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
local count, lease_ms = int_arg(ARGV[3], 0, 1000), int_arg(ARGV[6], 1, MAX_INT)
local rate_limit = ARGV[7] and int_arg(ARGV[7], 1, MAX_INT)
local rate_window = ARGV[8] and int_arg(ARGV[8], 1, MAX_INT)
local e = check_prefix(prefix)
if e then return e end
if not (count and lease_ms and jtype ~= '' and is_token(token)
        and (#ARGV == 6 or #ARGV == 8 and rate_limit and rate_window)) then
  return bad_args('expected type, count 0..1000, worker id, token ("<letters>:<n>"), ' ..
    'lease_ms > 0 and, for a rate limit, limit >= 1 and window_ms >= 1')
end
e = check_keys({ type_state_key(prefix, jtype, 'inactive'), leases_key(prefix),
                 prefix .. ':paused' })
if e then return e end
local FROM = moves_from('activate_jobs')
local PAUSED_POLL_MS = 1000  -- how long a worker waits before asking again for a paused type
local now = now_ms()
local now_text = int_text(now)
local out = { now_text }
if count > 0 and redis.call('SISMEMBER', KEYS[3], jtype) == 1 then
  sync_tokens(prefix, jtype)
  return { now_text, 'paused', PAUSED_POLL_MS }
end
local rate_key
if rate_limit and count > 0 then
  rate_key = prefix .. ':rate:' .. jtype
  local used = finite(redis.call('GET', rate_key)) or 0
  if used >= rate_limit then
    local wait = redis.call('PTTL', rate_key)
    if wait < 0 then  -- a counter without its expiry (written by hand): a window from now
      redis.call('PEXPIRE', rate_key, rate_window)
      wait = rate_window
    end
    sync_tokens(prefix, jtype)
    return { now_text, 'rate', wait }
  end
  count = math.min(count, rate_limit - used)
end
if count > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], count)
  local claim = { 'started_at', now_text, 'workerId', worker_id, 'lease', token }
  local jobs = {}
  local texts = {}  -- field count -> its text (packed_fields)
  for i = 1, #popped, 2 do
    local z = popped[i]
    local id = id_of(z)
    local key = id and job_key(prefix, id)
    local flat = key and redis.call('HGETALL', key) or {}
    local found_type, state, priority, ttl
    for k = 1, #flat, 2 do
      local name = flat[k]
      if name == 'type' then found_type = flat[k + 1]
      elseif name == 'state' then state = flat[k + 1]
      elseif name == 'priority' then priority = finite(flat[k + 1])
      elseif name == 'ttl' then ttl = finite(flat[k + 1]) end
    end
    if found_type and FROM[state] then
      jobs[#jobs + 1] = { id = id, zid = z, key = key, type = found_type, state = 'inactive',
                          priority = priority or 0, ttl = ttl, set = claim }
      out[#out + 1] = id
      out[#out + 1] = packed_fields(flat, texts)
    else
      -- A stale member (job removed, or moved without its sets being fixed): drop it.
      redis.call('ZREM', state_key(prefix, 'inactive'), z)
    end
  end
  if #jobs > 0 then
    move_many(prefix, jobs, 'active', now, KEYS[1])
    local leases, ids, deadline = {}, {}, int_text(now + lease_ms)
    for i, job in ipairs(jobs) do
      leases[2 * i - 1], leases[2 * i] = deadline, job.zid
      ids[i] = job.id
    end
    redis.call('ZADD', KEYS[2], unpack(leases))
    redis.call('SET', claim_key(prefix, token), table.concat(ids, ','),
      'PX', int_text(2 * lease_ms))
    local start_args = json_string(jtype) .. ',null'
    for _, job in ipairs(jobs) do publish(prefix, job.id, 'start', start_args) end
    if rate_key and redis.call('INCRBY', rate_key, #jobs) == #jobs then
      redis.call('PEXPIRE', rate_key, rate_window)  -- the window starts at its first claim
    end
  end
end
sync_tokens(prefix, jtype)
return out
