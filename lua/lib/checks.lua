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
    and (#id < 16 or tonumber(id) <= 9007199254740991)  -- no strtod below 16 digits
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

-- Well-formed UTF-8 (no overlong forms, surrogates or bytes past U+10FFFF), as JSON.parse and
-- Python need for event and field text; cjson alone passes any byte through. Each pattern
-- swaps one well-formed sequence for an ASCII byte, so no pass can join bytes that the one
-- before left apart; what is left must be ASCII.
local UTF8_SEQUENCES = {
  '\240[\144-\191][\128-\191][\128-\191]', '[\241-\243][\128-\191][\128-\191][\128-\191]',
  '\244[\128-\143][\128-\191][\128-\191]', '\224[\160-\191][\128-\191]',
  '[\225-\236\238\239][\128-\191][\128-\191]', '\237[\128-\159][\128-\191]',
  '[\194-\223][\128-\191]',
}
local function is_utf8(text)
  if not string.find(text, '[\128-\255]') then return true end
  for _, sequence in ipairs(UTF8_SEQUENCES) do text = string.gsub(text, sequence, '.') end
  return not string.find(text, '[\128-\255]')
end

-- JSON text with its strings taken out (escapes first, so an escaped quote ends nothing).
local function outside_strings(text)
  return (string.gsub(string.gsub(text, '\\.', ''), '"[^"]*"', ''))
end

-- JSON text that any JSON parser accepts: UTF-8 that cjson parses with its invalid numbers
-- refused (NaN, Infinity, hex, +1, 01, which JSON.parse and Python refuse too). Redis's cjson
-- has a switch for them, shared by every script: it is set for the one decode and put back
-- (a script runs alone, and pcall catches the decode's error, so it is always restored). A
-- cjson without the switch (fakeredis' lupa) gets the text-based check: outside its strings
-- nothing may be left but punctuation, numbers and true/false/null.
local decode_invalid_numbers = cjson.decode_invalid_numbers
local function is_json(text)
  if type(text) ~= 'string' or not is_utf8(text) then return false end
  if decode_invalid_numbers then
    local permissive = decode_invalid_numbers()
    decode_invalid_numbers(false)
    local ok = pcall(cjson.decode, text)
    decode_invalid_numbers(permissive)
    return ok
  end
  if not pcall(cjson.decode, text) then return false end
  local bare = string.gsub(string.gsub(outside_strings(text), '%d[eE][-+]?%d', ''), '%l+',
    function(word)
      if word == 'true' or word == 'false' or word == 'null' then return '' end
    end)
  return not string.find(bare, '%a')
end

-- A stored backoff Node Kue may eval (its Job.get runs `job._backoff = <text>`): only "true"
-- or a flat JSON object of string and number values, which evaluates to data, never code.
local function is_safe_backoff(text)
  if text == 'true' then return true end
  if not is_json(text) or string.sub(text, 1, 1) ~= '{' then return false end
  return not string.find(outside_strings(text), '[%[{]', 2)
end
