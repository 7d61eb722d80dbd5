-- lib/checks.lua: the argument rules every script applies before its first write (lua/README.md,
-- "Validation"). Each check returns an error reply for the caller to return, or nil, so a
-- script reads `local e = check...; if e then return e end` and writes nothing on a refusal.
-- The Python side checks the same rules earlier (kueatomic/keyspace.py, codec.py, backoff.py);
-- these are the ones that hold for a person calling EVALSHA by hand.

local function bad_args(message)
  return redis.error_reply('KUE_BAD_ARGS ' .. message)
end

-- A prefix is one key segment: 1..64 bytes, no ':' or whitespace or control bytes. So one
-- queue's keys are never another's ("q" and "q:x" would share "q:x:jobs", a list in one and a
-- zset in the other).
local function check_prefix(prefix)
  if type(prefix) ~= 'string' or #prefix == 0 or #prefix > 64
      or string.find(prefix, '[%s%c:]') then
    return bad_args('prefix must be 1..64 bytes without ":" or whitespace')
  end
end

-- KEYS must be exactly the queue-level keys the script declares, built from the prefix: a
-- script never touches a key it was not given, and never one of another queue.
local function check_keys(expected)
  if #KEYS ~= #expected then
    return bad_args('expected ' .. #expected .. ' KEYS, got ' .. #KEYS)
  end
  for i = 1, #expected do
    if KEYS[i] ~= expected[i] then
      return bad_args('KEYS[' .. i .. '] must be ' .. expected[i])
    end
  end
end

-- Job ids are Kue's INCR values: decimal, no sign or leading zero, below 2^53.
local function is_id(id)
  return type(id) == 'string' and #id <= 16 and string.find(id, '^[1-9]%d*$') ~= nil
    and tonumber(id) <= 9007199254740991
end

-- Integers as decimal text only: tonumber() would also take "0x10", " 5", "1e3" and "inf".
local function int_arg(text, min, max)
  if type(text) ~= 'string' or #text > 16 or not string.find(text, '^%-?%d+$') then return nil end
  local n = tonumber(text)
  if n < min or n > max then return nil end
  return n
end

-- Numbers (durations, progress) as JSON-style decimal text; no inf, nan or hex.
local function number_arg(text)
  if type(text) ~= 'string' or #text > 32
      or not string.find(text, '^%-?%d+%.?%d*$') and not string.find(text, '^%-?%d*%.?%d+[eE][-+]?%d+$') then
    return nil
  end
  local n = tonumber(text)
  if n == math.huge or n == -math.huge then return nil end  -- "1e999"
  return n
end

local MAX_INT = 9007199254740991  -- 2^53 - 1: scores and Lua numbers are doubles

-- A claim token: "<random letters and digits>:<counter>", as the workers make them. No other
-- ':' so "<prefix>:claim:<token>" and its ":complete" / ":failed" keys are never another key.
local function is_token(token)
  return type(token) == 'string' and #token <= 64 and string.find(token, '^%w+:%d+$') ~= nil
end

-- JSON text that any JSON parser accepts: cjson parses it, and outside its strings nothing is
-- left but punctuation, numbers and true/false/null (cjson alone would take NaN, Infinity
-- and hex, which JSON.parse and Python refuse).
local function is_json(text)
  if type(text) ~= 'string' or not pcall(cjson.decode, text) then return false end
  local bare = string.gsub(string.gsub(text, '\\.', ''), '"[^"]*"', '')
  bare = string.gsub(string.gsub(bare, '%d[eE][-+]?%d', ''), '%l+', function(word)
    if word == 'true' or word == 'false' or word == 'null' then return '' end
  end)
  return not string.find(bare, '%a')
end

-- A stored backoff Node Kue may eval (its Job.get runs `job._backoff = <text>`): only "true"
-- or a flat JSON object of string and number values, which evaluates to data, never code.
local function is_safe_backoff(text)
  if text == 'true' then return true end
  if not is_json(text) or string.sub(text, 1, 1) ~= '{' then return false end
  local bare = string.gsub(string.gsub(text, '\\.', ''), '"[^"]*"', '')
  return not string.find(bare, '[%[{]', 2)
end
