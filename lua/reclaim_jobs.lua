-- name: reclaim_jobs
-- version: 12
-- transition: active -> same
-- purpose: Give a worker back the jobs of a claim whose reply it lost (a timeout or a dropped
--   connection after Redis ran activate_jobs): the claim record <prefix>:claim:<token> (the
--   claimed ids joined by ",") names the jobs that claim took. Each one whose hash still holds
--   the lease (`lease` = token, state active) and that is not in the claim's completions
--   (<prefix>:claim:<token>:complete) gets its lease renewed (now + lease_ms in
--   <prefix>:leases, as renew_leases does) and is returned, so the worker runs it at once
--   instead of waiting for the lease to expire and recovery to count a stall. Jobs completed,
--   failed or released under the token (each of these drops the lease), recovered after their
--   lease expired, or moved by hand are skipped. The record and its outcome keys
--   (<prefix>:claim:<token>:complete and :failed) then expire 2 * lease_ms from now. Without
--   a record (the claim never ran, or its record expired) nothing is written.
-- KEYS:
--   1 leases: <prefix>:leases, claimed jobs scored by lease deadline (ms)
-- ARGV:
--   1 prefix: the queue prefix
--   2 token: the claim token the lost activate_jobs call was sent with
--   3 lease_ms: new lease length in ms (> 0)
-- Derived keys: <prefix>:claim:<token> (read; expiry only), <prefix>:claim:<token>:complete
--   (read; expiry only), <prefix>:claim:<token>:failed (expiry only), <prefix>:job:<id> (read)
-- Returns: activate_jobs' reply shape, so calls.parse_claimed reads it: flat array now, id1,
--   fields1, id2, fields2, ... where now is this call's time (ms) and fields each job's
--   current hash as a flat field/value array (as HGETALL gives it; it already holds the
--   claim's state, started_at, workerId and lease); just {now} when nothing is returned.
--   Never packed as activate_jobs' are: no byte a value holds can make these ambiguous, so
--   the client reclaims a claim whose packed fields were (lib/kue.lua, packed_fields)
-- Errors: KUE_BAD_ARGS
-- Publishes: none
--@include lib/kue.lua

local prefix, token, lease_ms = ARGV[1], ARGV[2], int_arg(ARGV[3], 1, MAX_INT)
local e = check_prefix(prefix)
if e then return e end
if not (is_token(token) and lease_ms and #ARGV == 3) then
  return bad_args('expected prefix, token ("<letters>:<n>"), lease_ms > 0')
end
e = check_keys({ leases_key(prefix) })
if e then return e end
local FROM = moves_from('reclaim_jobs')
local now = now_ms()
local out = { int_text(now) }
local record_key = claim_key(prefix, token)
local record = redis.call('GET', record_key)
if not record then return out end
local complete_key = record_key .. CLAIM_COMPLETE
local leases, deadline = {}, int_text(now + lease_ms)
for id in string.gmatch(record, '[^,]+') do
  local flat = is_id(id) and redis.call('HGETALL', job_key(prefix, id)) or {}
  local lease, state
  for k = 1, #flat, 2 do
    local name = flat[k]
    if name == 'lease' then lease = flat[k + 1]
    elseif name == 'state' then state = flat[k + 1] end
  end
  if lease == token and FROM[state] and
      redis.call('SISMEMBER', complete_key, id) == 0 then
    leases[#leases + 1] = deadline
    leases[#leases + 1] = zid(id)
    out[#out + 1] = id
    out[#out + 1] = flat
  end
end
if #leases > 0 then redis.call('ZADD', KEYS[1], unpack(leases)) end
local record_ms = int_text(2 * lease_ms)
redis.call('PEXPIRE', record_key, record_ms)
redis.call('PEXPIRE', complete_key, record_ms)
redis.call('PEXPIRE', record_key .. CLAIM_FAILED, record_ms)
return out
