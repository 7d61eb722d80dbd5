-- lib/search.lua: the reds 0.2.5 full-text index that Kue 0.11.6 keeps, done inside Redis.
--
-- Included textually by scripts (--@include lib/search.lua), so everything here is `local`
-- and nothing is returned. Lua 5.1 only: string/table/math, no bit ops, no cjson.
--
-- reds pipeline (lib/reds.js), reproduced byte for byte:
--   words     = String(str).match(/\w+/g)           ASCII [A-Za-z0-9_]+, case kept
--   drop      stopwords.indexOf(word) != -1          natural's list, exact, case-sensitive
--   stem      natural 0.2.1 PorterStemmer.stem       (words shorter than 3 are kept as is)
--   code      natural 0.2.1 Metaphone.process        upper case, may be "" (e.g. "why")
--
-- natural's implementation is a chain of JavaScript regex replaces with quirks that differ from
-- the textbook algorithms (the Porter "measure" can be fractional, some metaphone rules only
-- apply once, a global match swallows the character after it, ...). Every step below copies
-- one natural function; the comment names it. Do not "fix" them: the index must match Kue's.
--
-- Provides:
--   search_words(text)             -> array of stemmed words (reds stem(stripStopWords(words)))
--   search_codes(text)             -> codes, scores: distinct codes in the order index() ZADDs
--                                     them, and code -> score as left by index()'s ZADDs
--   search_index(prefix, id, text) -> ZADDs of index(); returns the number of codes
--   search_remove(prefix, id)      -> reds remove(); returns the number of codes removed
--   search_query(prefix, text)     -> array of id strings, best first (reds Query, type "and")
--   search_stem(word), search_metaphone(word)  the two natural functions, for tests
--                                     (set by search_load(), which every search call runs)

local search_stem, search_metaphone, SEARCH_STOPWORDS
-- Building the stemmer, Metaphone and stopword tables costs about 20 us, so it waits for the
-- first search call of a script run: scripts that include this file but index nothing (search
-- disabled, the usual case) pay nothing for it.
local function search_load()
  if SEARCH_STOPWORDS then return end
  local VOWEL = {a = true, e = true, i = true, o = true, u = true}

  -- Emulates JS s.replace(/re/g, ...) for regexes Lua patterns cannot express (alternation,
  -- ^ inside a group). try(s, i) tests the regex at byte i and returns (length, replacement)
  -- or nil; like the JS engine, after a match the scan resumes after the matched text, so a
  -- consumed character cannot start the next match. All regexes used match >= 1 char.
  local function js_replace_all(s, try)
    local out, i, n = {}, 1, #s
    while i <= n do
      local len, rep = try(s, i)
      if len then
        out[#out + 1] = rep
        i = i + len
      else
        out[#out + 1] = s:sub(i, i)
        i = i + 1
      end
    end
    return table.concat(out)
  end

  ---------------------------------------------------------------- PorterStemmer (porter_stemmer.js)

  -- categorizeGroups: /[^aeiouy]+y/g -> 'CV', /[aeiou]+/g -> 'V', /[^V]+/g -> 'C'.
  -- Literal chain on purpose: "bya" gives "CVV" (two Vs), which makes measure 0.5.
  local function categorize_groups(t)
    t = t:gsub("[^aeiouy]+y", "CV")
    t = t:gsub("[aeiou]+", "V")
    return (t:gsub("[^V]+", "C"))
  end

  -- categorizeChars: /[^aeiouy]y/g -> 'CV', /[aeiou]/g -> 'V', /[^V]/g -> 'C' (one char each).
  local function categorize_chars(t)
    t = t:gsub("[^aeiouy]y", "CV")
    t = t:gsub("[aeiou]", "V")
    return (t:gsub("[^V]", "C"))
  end

  -- measure: -1 for null/'' (JS !token), else len(groups minus leading C, minus trailing V) / 2.
  local function measure(t)
    if t == nil or t == "" then return -1 end
    local g = categorize_groups(t):gsub("^C", "")
    g = g:gsub("V$", "")
    return #g / 2
  end

  -- attemptReplace with a string pattern: replace the suffix, else null. JS treats a ''
  -- result as false at every call site, so '' is returned as nil here.
  local function replace_suffix(t, suffix, rep)
    if #t >= #suffix and t:sub(-#suffix) == suffix then
      local r = t:sub(1, #t - #suffix) .. rep
      if r ~= "" then return r end
    end
    return nil
  end

  -- attemptReplacePatterns: the measure test looks at the ORIGINAL token with the suffix cut,
  -- but the replacement applies to the running result, so several rules may fire in a row.
  local function replace_patterns(t, rules, threshold)
    local r = t
    for _, rule in ipairs(rules) do
      if threshold == nil or measure(replace_suffix(t, rule[1], "")) > threshold then
        r = replace_suffix(r, rule[1], rule[2]) or r
      end
    end
    return r
  end

  -- step1a: /(ss|i)es$/ -> $1, else drop a final 's' not preceded by 's' (length > 2).
  local function step1a(t)
    if t:sub(-4) == "sses" or t:sub(-3) == "ies" then return t:sub(1, -3) end
    if t:sub(-1) == "s" and t:sub(-2, -2) ~= "s" and #t > 2 then return t:sub(1, -2) end
    return t
  end

  local STEP1B_RULES = {{"at", "ate"}, {"bl", "ble"}, {"iz", "ize"}}

  -- step1b: 'eed' -> 'ee' if measure(stem) > 0 (if not, the token is kept: 'ed' is not tried);
  -- else strip /(ed|ing)$/ when the rest has a vowel group, then at->ate, bl->ble, iz->ize,
  -- or undouble a final consonant pair (not l/s/z), or add 'e' after a short CVC stem.
  local function step1b(t)
    if t:sub(-3) == "eed" then
      if measure(t:sub(1, -4)) > 0 then return t:sub(1, -4) .. "ee" end
      return t
    end
    local base
    if t:sub(-2) == "ed" then base = t:sub(1, -3)
    elseif t:sub(-3) == "ing" then base = t:sub(1, -4) end
    if base == nil or base == "" or not categorize_groups(base):find("V", 1, true) then
      return t
    end
    local r = replace_patterns(base, STEP1B_RULES, nil)
    if r ~= base then return r end
    local last = base:sub(-1)
    -- endsWithDoublCons /([^aeiou])\1$/ and /[^lsz]$/
    if #base >= 2 and base:sub(-2, -2) == last and not VOWEL[last]
        and last ~= "l" and last ~= "s" and last ~= "z" then
      return base:sub(1, -2)
    end
    -- measure == 1, categorizeChars(...).substr(-3) == 'CVC', /[^wxy]$/
    if measure(base) == 1 and categorize_chars(base):sub(-3) == "CVC"
        and last ~= "w" and last ~= "x" and last ~= "y" then
      return base .. "e"
    end
    return base
  end

  -- step1c: final 'y' -> 'i' when the groups before the last one contain a V.
  local function step1c(t)
    if t:sub(-1) == "y" then
      local g = categorize_groups(t)
      if g:sub(1, -2):find("V", 1, true) then return t:sub(1, -2) .. "i" end
    end
    return t
  end

  -- step2 rules, in natural's order, applied when measure(stem) > 0.
  local STEP2_RULES = {
    {"ational", "ate"}, {"tional", "tion"}, {"enci", "ence"}, {"anci", "ance"},
    {"izer", "ize"}, {"abli", "able"}, {"bli", "ble"}, {"alli", "al"}, {"entli", "ent"},
    {"eli", "e"}, {"ousli", "ous"}, {"ization", "ize"}, {"ation", "ate"}, {"ator", "ate"},
    {"alism", "al"}, {"iveness", "ive"}, {"fulness", "ful"}, {"ousness", "ous"},
    {"aliti", "al"}, {"iviti", "ive"}, {"biliti", "ble"}, {"logi", "log"},
  }

  -- step3 rules, applied when measure(stem) > 0.
  local STEP3_RULES = {
    {"icate", "ic"}, {"ative", ""}, {"alize", "al"}, {"iciti", "ic"}, {"ical", "ic"},
    {"ful", ""}, {"ness", ""},
  }

  -- step4 suffixes of /^(.+?)(al|ance|...|ize)$/
  local STEP4_SUFFIX = {}
  for _, s in ipairs({"al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment",
                      "ent", "ou", "ism", "ate", "iti", "ous", "ive", "ize"}) do
    STEP4_SUFFIX[s] = true
  end

  -- step4: the lazy (.+?) means the longest listed suffix that leaves >= 1 char wins; it is
  -- dropped only if measure(rest) > 1 (no shorter suffix is tried). Otherwise
  -- /^(.+?)(s|t)(ion)$/ drops 'ion' if measure(rest) > 1.
  local function step4(t)
    for i = 2, #t do
      if STEP4_SUFFIX[t:sub(i)] then
        local r = t:sub(1, i - 1)
        if measure(r) > 1 then return r end
        break
      end
    end
    if #t >= 5 and (t:sub(-4) == "sion" or t:sub(-4) == "tion") then
      local r = t:sub(1, -4)
      if measure(r) > 1 then return r end
    end
    return t
  end

  -- step5a: drop a final 'e' if m > 1, or m == 1 and not (chars[-4..-2] == 'CVC' and the
  -- second-to-last char is not w/x/y). m is measured without the 'e'.
  local function step5a(t)
    local m = measure((t:gsub("e$", "")))
    if m > 1 or m == 1 then
      local c = categorize_chars(t)
      local start = math.max(#c - 4, 0)            -- JS substr(-4, 3)
      local cvc = c:sub(start + 1, start + 3) == "CVC" and t:match("[^wxy].$") ~= nil
      if m > 1 or not cvc then t = t:gsub("e$", "") end
    end
    return t
  end

  -- step5b: 'll' -> 'l' when measure > 1.
  local function step5b(t)
    if measure(t) > 1 then t = t:gsub("ll$", "l") end
    return t
  end

  -- PorterStemmer.stem: tokens shorter than 3 are returned untouched (case kept!).
  search_stem = function(token)
    if #token < 3 then return token end
    local t = token:lower()
    t = step1a(t)
    t = step1b(t)
    t = step1c(t)
    t = replace_patterns(t, STEP2_RULES, 0)
    t = replace_patterns(t, STEP3_RULES, 0)
    t = step4(t)
    t = step5a(t)
    return step5b(t)
  end

  ---------------------------------------------------------------- Metaphone (metaphone.js)

  -- dedup: /([^c])\1/g -> '$1' (pairs, left to right: "aaa" -> "aa")
  local function dedup(s, i)
    local a = s:sub(i, i)
    if a ~= "c" and s:sub(i + 1, i + 1) == a then return 2, a end
  end

  -- cTransform: /([^s]|^)(c)(h)/g -> '$1x$3'; the [^s] char is consumed ("chch" -> "xhch").
  local function c_to_x(s, i)
    local a, b, c = s:sub(i, i), s:sub(i + 1, i + 1), s:sub(i + 2, i + 2)
    if a ~= "s" and b == "c" and c == "h" then return 3, a .. "xh" end
    if i == 1 and a == "c" and b == "h" then return 2, "xh" end
  end

  -- transformG: /([^g]|^)(g)(i|e|y)/g -> '$1j$3' (same consuming shape as above)
  local function g_to_j(s, i)
    local a, b, c = s:sub(i, i), s:sub(i + 1, i + 1), s:sub(i + 2, i + 2)
    if a ~= "g" and b == "g" and (c == "i" or c == "e" or c == "y") then return 3, a .. "j" .. c end
    if i == 1 and a == "g" and (b == "i" or b == "e" or b == "y") then return 2, "j" .. b end
  end

  -- dropH: /([aeiou])h([^aeiou]|$)/g -> '$1$2'
  local function drop_h(s, i)
    local a = s:sub(i, i)
    if VOWEL[a] and s:sub(i + 1, i + 1) == "h" then
      local c = s:sub(i + 2, i + 2)
      if c == "" then return 2, a end
      if not VOWEL[c] then return 3, a .. c end
    end
  end

  -- transformS: /s(h|io|ia)/g -> 'x$1'
  local function s_to_x(s, i)
    if s:sub(i, i) == "s" then
      if s:sub(i + 1, i + 1) == "h" then return 2, "xh" end
      local two = s:sub(i + 1, i + 2)
      if two == "io" or two == "ia" then return 3, "x" .. two end
    end
  end

  -- transformT: /t(ia|io)/g -> 'x$1'
  local function t_to_x(s, i)
    if s:sub(i, i) == "t" then
      local two = s:sub(i + 1, i + 2)
      if two == "ia" or two == "io" then return 3, "x" .. two end
    end
  end

  -- dropW / dropY: /w([^aeiou]|$)/g -> '$1' (the next char is consumed: "ww" -> "w")
  local function drop_before_consonant(letter)
    return function(s, i)
      if s:sub(i, i) == letter then
        local b = s:sub(i + 1, i + 1)
        if b == "" then return 1, "" end
        if not VOWEL[b] then return 2, b end
      end
    end
  end
  local drop_w = drop_before_consonant("w")
  local drop_y = drop_before_consonant("y")

  -- Metaphone.process: the rule chain in natural's order. maxLength is never applied
  -- (natural's "maxLength == maxLength || 32" is a no-op), so codes are not truncated.
  search_metaphone = function(token)
    local t = token:lower()
    t = js_replace_all(t, dedup)
    -- dropInitialLetters: /^(kn|gn|pn|ae|wr)/ drops the first letter
    local head = t:sub(1, 2)
    if head == "kn" or head == "gn" or head == "pn" or head == "ae" or head == "wr" then
      t = t:sub(2)
    end
    t = t:gsub("mb$", "m")                       -- dropBafterMAtEnd
    t = t:gsub("ck", "k")                        -- transformCK
    t = js_replace_all(t, c_to_x)                -- cTransform
    t = t:gsub("cia", "xia")
    t = t:gsub("c([iey])", "s%1")
    t = t:gsub("c", "k")
    t = t:gsub("d(g[eyi])", "j%1")               -- dTransform
    t = t:gsub("d", "t")
    t = t:gsub("gh([^aeiou])", "h%1")            -- dropG (its '^$' branch can never match)
    if t:sub(-2) == "gn" then                    -- dropG: /g(n|ned)$/ -> '$1'
      t = t:sub(1, -3) .. "n"
    elseif t:sub(-4) == "gned" then
      t = t:sub(1, -5) .. "ned"
    end
    t = t:gsub("gh", "f")                        -- transformG
    t = js_replace_all(t, g_to_j)
    t = t:gsub("gg", "g")
    t = t:gsub("g", "k")
    t = js_replace_all(t, drop_h)                -- dropH
    t = t:gsub("ph", "f")                        -- transformPH
    t = t:gsub("q", "k")                         -- transformQ
    t = js_replace_all(t, s_to_x)                -- transformS
    if t:sub(1, 1) == "x" then t = "s" .. t:sub(2) end  -- transformX: /^x/ -> 's'
    t = t:gsub("x", "ks")                        --   then /x/g -> 'ks'
    t = js_replace_all(t, t_to_x)                -- transformT
    t = t:gsub("th", "0", 1)                     --   /th/ (not global): first 'th' only
    t = t:gsub("tch", "ch")                      -- dropT
    t = t:gsub("v", "f")                         -- transformV
    if t:sub(1, 2) == "wh" then t = "w" .. t:sub(3) end  -- transformWH
    t = js_replace_all(t, drop_w)                -- dropW
    t = js_replace_all(t, drop_y)                -- dropY
    t = t:gsub("z", "s", 1)                      -- transformZ: /z/ (not global): first only
    t = t:sub(1, 1) .. t:sub(2):gsub("[aeiou]", "")  -- dropVowels: keep the first letter
    return t:upper()
  end

  -- natural's English stopword list (util/stopwords.js) that reds strips, matched exactly.
  SEARCH_STOPWORDS = {}
  for _, w in ipairs({
    "about", "after", "all", "also", "am", "an", "and", "another", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "between", "both", "but", "by", "came", "can",
    "come", "could", "did", "do", "each", "for", "from", "get", "got", "has", "had",
    "he", "have", "her", "here", "him", "himself", "his", "how", "if", "in", "into",
    "is", "it", "like", "make", "many", "me", "might", "more", "most", "much", "must",
    "my", "never", "now", "of", "on", "only", "or", "other", "our", "out", "over",
    "said", "same", "see", "should", "since", "some", "still", "such", "take", "than",
    "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
    "through", "to", "too", "under", "up", "very", "was", "way", "we", "well", "were",
    "what", "where", "which", "while", "who", "with", "would", "you", "your",
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
    "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z", "$", "1",
    "2", "3", "4", "5", "6", "7", "8", "9", "0", "_"}) do
    SEARCH_STOPWORDS[w] = true
  end
end

-- reds: stem(stripStopWords(words(str))). Stopwords are tested before stemming, on the
-- word as written ("The" is not a stopword, "the" is).
local function search_words(text)
  search_load()
  local out = {}
  for w in tostring(text or ""):gmatch("[A-Za-z0-9_]+") do
    if not SEARCH_STOPWORDS[w] then out[#out + 1] = search_stem(w) end
  end
  return out
end

-- True for strings JS treats as array indices ("0", "44", not "007" or "4294967295"):
-- Object.keys lists those first, in ascending numeric order.
local function search_is_js_index(s)
  return s:match("^[0-9]+$") ~= nil and (s == "0" or s:sub(1, 1) ~= "0")
    and #s <= 10 and tonumber(s) <= 4294967294
end

-- What reds index() leaves in Redis. index() ZADDs, for each key of metaphoneMap(words)
-- (Object.keys order), score countWords(words)[word] under code metaphone(word). Counts are
-- per stemmed word, not per code: "TJ" (too short to be stemmed, so not lower-cased) and
-- "tj" are two words with one code, and the later ZADD overwrites the earlier score.
-- Two JS object quirks: a "__proto__" word never becomes a key (so it is not indexed), and
-- for "constructor" the count starts from the inherited Object function, giving a string
-- score Redis rejects, so its ZADDs fail (the rest of index()'s MULTI still applies).
local function search_codes(text)
  local counts, index_keys, other_keys = {}, {}, {}
  for _, w in ipairs(search_words(text)) do
    if w ~= "__proto__" and w ~= "constructor" then
      if counts[w] == nil then
        counts[w] = 0
        if search_is_js_index(w) then index_keys[#index_keys + 1] = w
        else other_keys[#other_keys + 1] = w end
      end
      counts[w] = counts[w] + 1
    end
  end
  table.sort(index_keys, function(a, b) return tonumber(a) < tonumber(b) end)
  for _, w in ipairs(other_keys) do index_keys[#index_keys + 1] = w end

  local codes, scores = {}, {}
  for _, w in ipairs(index_keys) do
    local code = search_metaphone(w)
    if scores[code] == nil then codes[#codes + 1] = code end
    scores[code] = counts[w]
  end
  return codes, scores
end

-- reds index(str, id) with key <prefix>:search. Codes may be "" (key "<prefix>:search:word:").
local function search_index(prefix, id, text)
  local codes, scores = search_codes(text)
  for _, code in ipairs(codes) do
    redis.call("ZADD", prefix .. ":search:word:" .. code, scores[code], id)
    redis.call("ZADD", prefix .. ":search:object:" .. id, scores[code], code)
  end
  return #codes
end

-- reds remove(id): codes from ZREVRANGEBYSCORE object +inf 0, DEL the object key, ZREM id
-- from every word key.
local function search_remove(prefix, id)
  local object_key = prefix .. ":search:object:" .. id
  local codes = redis.call("ZREVRANGEBYSCORE", object_key, "+inf", 0)
  redis.call("DEL", object_key)
  for _, code in ipairs(codes) do
    redis.call("ZREM", prefix .. ":search:word:" .. code, id)
  end
  return #codes
end

-- reds Query(str).end() with the default type "and": distinct codes of the query words in
-- order (metaphoneArray), ZINTERSTORE into <prefix>:searchtmpkey (scores summed),
-- ZREVRANGE 0 -1 (best first; equal scores in reverse member order), then
-- ZREMRANGEBYRANK 0 -1, which empties and so removes the tmp key. No words -> {}.
local function search_query(prefix, text)
  local keys, seen = {}, {}
  for _, w in ipairs(search_words(text)) do
    local code = search_metaphone(w)
    if not seen[code] then
      seen[code] = true
      keys[#keys + 1] = prefix .. ":search:word:" .. code
    end
  end
  if #keys == 0 then return {} end
  local tmp = prefix .. ":searchtmpkey"
  redis.call("ZINTERSTORE", tmp, #keys, unpack(keys))
  local ids = redis.call("ZREVRANGE", tmp, 0, -1)
  redis.call("ZREMRANGEBYRANK", tmp, 0, -1)
  return ids
end
