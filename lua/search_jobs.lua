-- name: search_jobs
-- version: 7
-- transition: -
-- purpose: Answer a reds-style search query: stem and metaphone the query words, intersect
--   the word index sets (AND) in a scratch key, return ids by score, delete the scratch key.
--   Runs as a script because the scratch key is a write and the codes are computed in Lua.
-- KEYS:
--   1 scratch: <prefix>:searchtmpkey, the intersection scratch zset (left absent)
-- ARGV:
--   1 prefix: the queue prefix
--   2 query: the query text
-- Derived keys: <prefix>:search:word:<code>
-- Returns: array of job id strings, highest score first
-- Errors: KUE_BAD_ARGS
-- Publishes: none
--@include lib/checks.lua
--@include lib/search.lua

local e = check_prefix(ARGV[1])
if e then return e end
if #ARGV ~= 2 then return bad_args('expected prefix, query') end
e = check_keys({ ARGV[1] .. ':searchtmpkey' })
if e then return e end
return search_query(ARGV[1], ARGV[2])
