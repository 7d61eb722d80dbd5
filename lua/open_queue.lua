-- name: open_queue
-- version: 3
-- transition: -
-- purpose: Record and report the data-format version of a queue's keys: the first caller's
--   format is stored in <prefix>:meta field `format` (HSETNX, so it is never overwritten), and
--   every caller gets the stored one back. Workers and the dashboard call it at start and
--   refuse a format newer than they read (kueatomic.IncompatibleFormat).
-- KEYS:
--   1 meta: <prefix>:meta, the queue's own facts (hash)
-- ARGV:
--   1 prefix: the queue prefix
--   2 format: the caller's data-format version (integer >= 1)
-- Derived keys: none
-- Returns: the stored format (integer)
-- Errors: KUE_BAD_ARGS
-- Publishes: none
--@include lib/kue.lua

local prefix, format = ARGV[1], int_arg(ARGV[2], 1, 1000000)
local e = check_prefix(prefix)
if e then return e end
if not (format and #ARGV == 2) then return bad_args('expected prefix, format >= 1') end
e = check_keys({ meta_key(prefix) })
if e then return e end
redis.call('HSETNX', KEYS[1], 'format', int_text(format))
return tonumber(redis.call('HGET', KEYS[1], 'format')) or format
