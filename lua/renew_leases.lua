-- name: renew_leases
-- version: 11
-- transition: active -> same
-- purpose: Extend the leases a worker holds (its heartbeat): each job that still carries the
--   given token gets the deadline now + lease_ms in <prefix>:leases. A job whose token differs
--   or that is no longer active is reported lost, so the worker stops caring about its result.
--   The claim record <prefix>:claim:<token> of each distinct token among the pairs expires
--   2 * lease_ms from now (once per token), so it lives as long as the claim's jobs run, and
--   so do its outcome keys <prefix>:claim:<token>:complete and :failed while the record exists.
--   A job's ttl is not extended here (only progress does that, as in Kue).
-- KEYS:
--   1 leases: <prefix>:leases, claimed jobs scored by lease deadline (ms)
-- ARGV:
--   1 prefix: the queue prefix
--   2 lease_ms: new lease length in ms (> 0)
--   3.. jobs: pairs of id, token
-- Derived keys: <prefix>:job:<id>, <prefix>:claim:<token>, <prefix>:claim:<token>:complete,
--   <prefix>:claim:<token>:failed (expiry only)
-- Returns: array with one integer per pair, in order: 1 renewed, 0 lost
-- Errors: KUE_BAD_ARGS
-- Publishes: none
--@include lib/kue.lua

local prefix, lease_ms = ARGV[1], int_arg(ARGV[2], 1, MAX_INT)
local e = check_prefix(prefix)
if e then return e end
local pairs_ok = lease_ms and (#ARGV - 2) % 2 == 0
for i = 3, #ARGV, 2 do
  pairs_ok = pairs_ok and is_id(ARGV[i]) and is_token(ARGV[i + 1])
end
if not pairs_ok then return bad_args('expected lease_ms > 0 then id, token pairs') end
e = check_keys({ leases_key(prefix) })
if e then return e end
local FROM = moves_from('renew_leases')
local deadline = now_ms() + lease_ms
local renewed = {}
local tokens, token_order = {}, {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', job_key(prefix, id), 'lease', 'state')
  if f[1] == token and FROM[f[2]] then
    redis.call('ZADD', KEYS[1], deadline, zid(id))
    renewed[#renewed + 1] = 1
  else
    renewed[#renewed + 1] = 0
  end
  if not tokens[token] then
    tokens[token] = true
    token_order[#token_order + 1] = token
  end
end
local record_ms = int_text(2 * lease_ms)
for _, token in ipairs(token_order) do
  local record = claim_key(prefix, token)
  -- The outcome keys never outlive the record (they take its PTTL), so none without it.
  if redis.call('PEXPIRE', record, record_ms) == 1 then
    redis.call('PEXPIRE', record .. CLAIM_COMPLETE, record_ms)
    redis.call('PEXPIRE', record .. CLAIM_FAILED, record_ms)
  end
end
return renewed
