-- name: open_queue
-- version: 8
-- transition: -
-- purpose: Record and report the data-format version of a queue's keys: the first caller's
--   format is stored in <prefix>:meta field `format` (HSETNX, so it is never overwritten), and
--   every caller gets the stored one back. Workers and the dashboard call it at start and
--   refuse a format newer than they read (kueatomic.IncompatibleFormat). A shard of a sharded
--   queue also records the number of shards (field `shards`, HSETNX the same way), which no
--   later caller may change.
-- KEYS:
--   1 meta: <prefix>:meta, the queue's own facts (hash)
-- ARGV:
--   1 prefix: the queue prefix
--   2 format: the caller's data-format version (integer >= 1)
--   3.. shards: for a shard of a sharded queue, the number of shards (1..1024); else absent
-- Derived keys: none
-- Returns: {stored format, stored number of shards (0 when none is recorded)}
-- Errors: KUE_BAD_ARGS
-- Publishes: none
--@include lib/kue.lua

local prefix, format = ARGV[1], int_arg(ARGV[2], 1, 1000000)
local shards = ARGV[3] and int_arg(ARGV[3], 1, 1024)
local e = check_prefix(prefix)
if e then return e end
if not (format and #ARGV <= 3 and (shards or not ARGV[3])) then
  return bad_args('expected prefix, format >= 1 and, for a shard, the shard count 1..1024')
end
e = check_keys({ meta_key(prefix) })
if e then return e end
redis.call('HSETNX', KEYS[1], 'format', int_text(format))
if shards then redis.call('HSETNX', KEYS[1], 'shards', int_text(shards)) end
local stored = redis.call('HMGET', KEYS[1], 'format', 'shards')
return { finite(stored[1]) or format, finite(stored[2]) or 0 }
