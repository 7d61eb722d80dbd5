"""lua/lib/search.lua against ground truth from the real reds 0.2.5 / natural 0.2.1.

tests/fixtures/reds_codes.json is produced by tests/tools/gen_reds_fixture.js (needs Node and
`npm install kue@0.11.6`; these tests do not). The library runs inside Lua exactly as scripts
include it: its text followed by a small body, sent with EVAL.

Every test runs on fakeredis (Lua 5.1 via lupa) and, when `redis-server` is on PATH, on a
private redis-server started here on a free port in a temp dir (never 6379).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import fakeredis
import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
LIB = (ROOT / "lua" / "lib" / "search.lua").read_text()
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "reds_codes.json").read_text())
WORDS = FIXTURE["words"]
PHRASES = FIXTURE["phrases"]


def run(client, body: str, *args):
    """EVAL the library text followed by `body` (which may use ARGV)."""
    return client.eval(LIB + "\nsearch_load()\n" + body, 0, *args)


# --------------------------------------------------------------------------- backends

def _free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


@pytest.fixture(scope="module")
def real_redis():
    """A throwaway redis-server of our own; skipped when redis-server is not installed."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server not on PATH")
    tmp = tempfile.mkdtemp(prefix="kueatomic-search-")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    pytest.fail("redis-server exited at start")
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not answer")
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(params=["fakeredis", "redis-server"])
def client(request):
    if request.param == "fakeredis":
        c = fakeredis.FakeRedis(decode_responses=True)
    else:
        c = request.getfixturevalue("real_redis")
    c.flushdb()
    return c


# --------------------------------------------------------------------------- fixture sanity

def test_fixture_is_from_the_real_versions():
    assert FIXTURE["versions"]["reds"] == "0.2.5"
    assert FIXTURE["versions"]["natural"] == "0.2.1"
    assert len(WORDS) >= 400
    assert len(PHRASES) >= 30


def test_stopword_list_matches_natural(client):
    listed = run(client, """
        local out = {}
        for w in pairs(SEARCH_STOPWORDS) do out[#out + 1] = w end
        return out""")
    assert sorted(listed) == sorted(FIXTURE["stopwords"])


# --------------------------------------------------------------------------- words

WORDS_BODY = """
local stems, codes, stem_codes, words = {}, {}, {}, {}
for i, w in ipairs(ARGV) do
  stems[i] = search_stem(w)
  codes[i] = search_metaphone(w)
  stem_codes[i] = search_metaphone(stems[i])
  words[i] = search_words(w)
end
return {stems, codes, stem_codes, words}
"""


def test_words_stem_and_metaphone(client):
    args = [w["word"] for w in WORDS]
    stems, codes, stem_codes, words = run(client, WORDS_BODY, *args)
    bad = []
    for i, w in enumerate(WORDS):
        want_words = [] if w["stopword"] else [w["stem"]]
        got = (stems[i], codes[i], stem_codes[i], words[i])
        want = (w["stem"], w["metaphone"], w["stem_metaphone"], want_words)
        if got != want:
            bad.append((w["word"], got, want))
    assert not bad, f"{len(bad)} mismatches (word, got, want): {bad[:20]}"


# --------------------------------------------------------------------------- phrases

PHRASES_BODY = """
local out = {}
for i, text in ipairs(ARGV) do
  local codes, scores = search_codes(text)
  local sc = {}
  for j, c in ipairs(codes) do sc[j] = scores[c] end
  out[i] = {search_words(text), codes, sc}
end
return out
"""


def test_phrases_words_codes_scores(client):
    got = run(client, PHRASES_BODY, *[p["text"] for p in PHRASES])
    bad = []
    for p, (words, codes, scores) in zip(PHRASES, got):
        want_index = [list(x) for x in p["index"]]
        got_index = [[c, s] for c, s in zip(codes, scores)]
        if words != p["words"] or got_index != want_index:
            bad.append((p["text"], words, got_index, p["words"], want_index))
    assert not bad, f"mismatches (text, got words, got index, want words, want index): {bad}"


# --------------------------------------------------------------------------- key effects

INDEX_BODY = "return search_index(ARGV[1], ARGV[2], ARGV[3])"
REMOVE_BODY = "return search_remove(ARGV[1], ARGV[2])"
QUERY_BODY = "return search_query(ARGV[1], ARGV[2])"


def zset(client, key):
    return dict(client.zrange(key, 0, -1, withscores=True))


def test_kue_wire_example_index_query_remove(client):
    # kue indexes each searchKey separately: {to:'tj@learnboost.com', title:'welcome email for tj'}
    assert run(client, INDEX_BODY, "q", "1", "tj@learnboost.com") == 3
    assert run(client, INDEX_BODY, "q", "1", "welcome email for tj") == 3
    assert sorted(client.keys("*")) == sorted([
        "q:search:object:1", "q:search:word:TJ", "q:search:word:LRNBST", "q:search:word:KM",
        "q:search:word:WLKM", "q:search:word:EML",
    ])
    # The second call overwrites TJ's score (1), it does not add to it.
    assert zset(client, "q:search:object:1") == {
        "TJ": 1.0, "LRNBST": 1.0, "KM": 1.0, "WLKM": 1.0, "EML": 1.0}
    for code in ("TJ", "LRNBST", "KM", "WLKM", "EML"):
        assert zset(client, f"q:search:word:{code}") == {"1": 1.0}

    run(client, INDEX_BODY, "q", "2", "TJ tj tj sends email")   # TJ:2 (the later "tj" count)
    run(client, INDEX_BODY, "q", "3", "an email")
    assert run(client, QUERY_BODY, "q", "tj") == ["2", "1"]
    assert run(client, QUERY_BODY, "q", "Emails") == ["3", "2", "1"]  # equal scores: reverse order
    assert run(client, QUERY_BODY, "q", "email for TJ") == ["2", "1"]  # AND, summed scores
    assert run(client, QUERY_BODY, "q", "welcome tj") == ["1"]
    assert run(client, QUERY_BODY, "q", "nobody") == []
    assert run(client, QUERY_BODY, "q", "for the") == []          # stopwords only
    assert run(client, QUERY_BODY, "q", "") == []
    assert not client.exists("q:searchtmpkey")

    assert run(client, REMOVE_BODY, "q", "1") == 5
    assert not client.exists("q:search:object:1")
    assert sorted(client.keys("q:search:word:*")) == ["q:search:word:EML", "q:search:word:SNT",
                                                       "q:search:word:TJ"]
    assert zset(client, "q:search:word:TJ") == {"2": 2.0}
    assert run(client, QUERY_BODY, "q", "tj") == ["2"]
    assert run(client, REMOVE_BODY, "q", "1") == 0
    run(client, REMOVE_BODY, "q", "2")
    run(client, REMOVE_BODY, "q", "3")
    assert client.keys("*") == []


def _model_query(index_by_id, query_codes):
    """ZINTERSTORE (sum) + ZREVRANGE over the fixture's index data, in Python."""
    if not query_codes:
        return []
    hits = []
    for doc_id, scores in index_by_id.items():
        if all(c in scores for c in query_codes):
            hits.append((sum(scores[c] for c in query_codes), doc_id))
    hits.sort(reverse=True)   # score desc, then member desc (Redis' ZREVRANGE order)
    return [doc_id for _, doc_id in hits]


def test_fixture_phrases_index_then_query(client):
    index_by_id = {}
    for n, p in enumerate(PHRASES, start=1):
        run(client, INDEX_BODY, "q", str(n), p["text"])
        index_by_id[str(n)] = {c: s for c, s in p["index"]}
    for doc_id, want in index_by_id.items():
        assert zset(client, f"q:search:object:{doc_id}") == {c: float(s) for c, s in want.items()}
    for p in PHRASES:
        assert run(client, QUERY_BODY, "q", p["text"]) == _model_query(index_by_id, p["query_codes"]), p["text"]
    assert not client.exists("q:searchtmpkey")


def test_the_library_costs_nothing_until_used(client):
    # Scripts include it whether or not search is on: its tables are built on first use.
    assert client.eval(LIB + "\nreturn SEARCH_STOPWORDS == nil and search_stem == nil", 0) == 1
    assert client.eval(LIB + "\nsearch_words('x'); return SEARCH_STOPWORDS ~= nil", 0) == 1
