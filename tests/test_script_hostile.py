"""Every script called by hand, as a person with redis-cli would, with random and hostile
arguments, KEYS and prefixes (lua/README.md, "Validation"): after every call the keyspace
invariants hold, and a call answered with an error leaves every key byte-identical (DUMP)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kueatomic import InvalidArgument, Queue
from kueatomic.keyspace import Keys, check_prefix
from kueatomic.ops import Call, single
from kueatomic.scripts import expand_includes, lua_dir, registry
from kueatomic.worker import calls

from .invariants import check_invariants

PREFIX = "q"
KEYS = Keys(PREFIX)
NUMBERS = ["0", "1", "2", "5", "100", "-1", "1.5", "inf", "nan", "0x10", " 5", "1e3", "1e999",
           "9007199254740993", "", "abc"]
JSON = ['{"a":1}', "null", "0", '"x"', "[1,2]", "NaN", "Infinity", "{", '{"a":1} x', "0x10",
        '{"a":NaN}', "", '"\\u0000"', '"é"', b'"\xff"', b'{"a":"\xed\xa0\x80"}']
BACKOFFS = ["", "true", '{"type":"fixed","delay":10}', "function(){ return 1 }",
            '{"a":[1]}', '{"a":1};x()', "{a:b}"]
PREFIXES = [PREFIX, PREFIX, PREFIX, "q:x", "", "a b", "{q}", "x" * 65]
TYPES = ["email", "video", "", "a:b", "claim", "é", b"\xc3\x28"]
TEXTS = ["e", "é", b"\xff", b"\xed\xa0\x80"]  # error texts: UTF-8 or not (a surrogate)
TOKENS = ["bench:1", "tok", "a:b:c", "", "x:1"]
WORKER_IDS = ["kue:h:1:1", "kue:h:1:1", "w", "", "jobs", "a b", "x" * 201, "é"]
HOSTS = ["h", "h", "", "é", b"\xff", "a\nb", "x" * 256]
REPEAT_NAMES = ["r", "r", "s", "", "é", b"\xff"]  # seed() adds repeat r: spec {"a":1}, tick 1000
SPECS = ['{"a":1}', '{"a":1}', '{"b":2}', "[1]", "{", "", b'{"a":"\xff"}']
TICKS = ["1000", "1000", "2000", "0", "-1", "x", "", "1e3", "9007199254740993"]
# create_jobs' extra fields: n_extra, then name/value pairs (well-formed and not)
EXTRAS = [("0",), ("1", "unique_key", "u"), ("1", "unique_key", ""), ("1", "depends_on", "1"),
          ("1", "depends_on", "99"), ("1", "depends_on", "1,1"), ("1", "depends_on", "1,"),
          ("2", "depends_on", "2", "on_dependency_failure", "ignore"),
          ("1", "keep_complete", ",2"), ("1", "keep_failed", "0,"), ("1", "keep_failed", ","),
          ("1", "keep_complete", "-1,"), ("1", "traceparent", "00-ab-cd-01"), ("1", "x", "y"),
          ("2", "unique_key", "u", "unique_key", "v"), ("9",), ("1", "unique_key")]


def ids() -> st.SearchStrategy[str]:
    return st.sampled_from(["1", "2", "3", "4", "99", "0", "01", "-1", "1.0", "x", ""])


def any_text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NUMBERS + JSON + BACKOFFS + TYPES + TOKENS),
                     st.text(max_size=8))


def declared_keys(name: str, prefix: str, args: list[str]) -> list[str]:
    """The KEYS the header declares, built as the Python client builds them (prefix and, for
    per-type and per-job keys, the type or id in the args)."""
    job_id = args[1] if len(args) > 1 else "1"
    ends = [f"{prefix}:unique", f"{prefix}:retained:complete", f"{prefix}:retained:failed"]
    by_script = {
        "create_jobs": [f"{prefix}:ids", f"{prefix}:job:types", f"{prefix}:jobs", *ends],
        "activate_jobs": [f"{prefix}:jobs:{args[1] if len(args) > 1 else 'email'}:inactive",
                          f"{prefix}:leases", f"{prefix}:paused"],
        "complete_jobs": [f"{prefix}:leases", f"{prefix}:stats:work-time", *ends],
        "fail_jobs": [f"{prefix}:leases", *ends],
        "renew_leases": [f"{prefix}:leases"],
        "reclaim_jobs": [f"{prefix}:leases"],
        "release_jobs": [f"{prefix}:leases"],
        "promote_delayed_jobs": [f"{prefix}:jobs:delayed", "promotion:lock"],
        "recover_jobs": [f"{prefix}:leases", f"{prefix}:jobs:active", f"{prefix}:job:types",
                         *ends],
        "set_job_state": [f"{prefix}:job:{job_id}", f"{prefix}:leases"],
        "set_job_priority": [f"{prefix}:job:{job_id}"],
        "set_job_progress": [f"{prefix}:job:{job_id}"],
        "update_job": [f"{prefix}:job:{job_id}"],
        "remove_job": [f"{prefix}:job:{job_id}", *ends],
        "cancel_job": [f"{prefix}:job:{job_id}", *ends],
        "clean_jobs": [f"{prefix}:jobs:{args[2]}:{args[1]}" if len(args) > 2 and args[2]
                       else f"{prefix}:jobs:{args[1] if len(args) > 1 else 'complete'}", *ends],
        "retry_jobs": [f"{prefix}:jobs:{args[1]}:failed" if len(args) > 1 and args[1]
                       else f"{prefix}:jobs:failed"],
        "set_type_paused": [f"{prefix}:paused"],
        "add_job_log": [f"{prefix}:job:{job_id}", f"{prefix}:job:{job_id}:log"],
        "search_jobs": [f"{prefix}:searchtmpkey"],
        "open_queue": [f"{prefix}:meta"],
        "register_worker": [f"{prefix}:workers",
                            f"{prefix}:worker:{args[1] if len(args) > 1 else 'w'}"],
        "add_repeat": [f"{prefix}:repeats", f"{prefix}:repeats:next"],
        "scan_repeats": [f"{prefix}:repeats", f"{prefix}:repeats:next"],
        "remove_repeat": [f"{prefix}:repeats", f"{prefix}:repeats:next",
                          f"{prefix}:repeats:last"],
        "fire_repeat": [f"{prefix}:repeats", f"{prefix}:repeats:next",
                        f"{prefix}:repeats:last", f"{prefix}:ids", f"{prefix}:job:types",
                        f"{prefix}:jobs"],
    }
    return by_script[name]


def worker_args(draw: st.DrawFn) -> list[Any]:
    """register_worker's id, ttl, host, pid, slots, busy, started_at, batch, six counts and
    types: well-formed, or with one number (or more) hostile."""
    numbers = [draw(st.sampled_from(["0", "1", "4", "15000"])) for _ in range(11)]
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        numbers[draw(st.integers(0, 10))] = draw(st.sampled_from(NUMBERS))
    return [draw(st.sampled_from(WORKER_IDS)), numbers[0], draw(st.sampled_from(HOSTS)),
            *numbers[1:5], draw(st.sampled_from(TOKENS)), *numbers[5:],
            *draw(st.lists(st.sampled_from(TYPES), max_size=3))]


@st.composite
def hand_calls(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    name = draw(st.sampled_from(sorted(registry())))
    prefix = draw(st.sampled_from(PREFIXES))
    shapes: dict[str, Any] = {
        "create_jobs": lambda: ["1", *draw(st.sampled_from([("1", "0"), ("8", "7"), ("2", "2"),
                                                             ("0", "0"), ("1", "")])),
                                draw(st.sampled_from(TYPES)), draw(st.sampled_from(JSON)),
                                draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(NUMBERS)),
                                draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(NUMBERS)),
                                draw(st.sampled_from(BACKOFFS)),
                                draw(st.sampled_from(["", "true", "yes"])), "0",
                                *draw(st.sampled_from(EXTRAS))],
        "activate_jobs": lambda: [draw(st.sampled_from(TYPES)), draw(st.sampled_from(NUMBERS)),
                                  "w", draw(st.sampled_from(TOKENS)),
                                  draw(st.sampled_from(NUMBERS)),
                                  *draw(st.sampled_from([(), ("2", "1000"), ("0", "10"),
                                                         ("1", ""), ("x", "5")]))],
        "complete_jobs": lambda: ["1", draw(ids()), draw(st.sampled_from(TOKENS)),
                                  draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(JSON))],
        "fail_jobs": lambda: ["1", draw(ids()), draw(st.sampled_from(TOKENS)),
                              draw(st.sampled_from(TEXTS)), draw(st.sampled_from(TEXTS)),
                              draw(st.sampled_from(TEXTS)), draw(st.sampled_from(NUMBERS))],
        "renew_leases": lambda: [draw(st.sampled_from(NUMBERS)), draw(ids()),
                                 draw(st.sampled_from(TOKENS))],
        "reclaim_jobs": lambda: [draw(st.sampled_from(TOKENS)), draw(st.sampled_from(NUMBERS))],
        "release_jobs": lambda: ["1", draw(ids()), draw(st.sampled_from(TOKENS))],
        "promote_delayed_jobs": lambda: [draw(st.sampled_from(NUMBERS))],
        "recover_jobs": lambda: [draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(NUMBERS)),
                                 draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(["", "1", "x"]))],
        "set_job_state": lambda: [draw(ids()), draw(st.sampled_from(
            ["inactive", "active", "complete", "failed", "delayed", "stuck", ""])),
            draw(st.sampled_from(["", "job", "x"])), draw(st.sampled_from(NUMBERS))],
        "set_job_priority": lambda: [draw(ids()), draw(st.sampled_from(NUMBERS))],
        "set_job_progress": lambda: [draw(ids()), draw(st.sampled_from(NUMBERS)),
                                     draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(JSON))],
        "update_job": lambda: [draw(ids()), draw(st.sampled_from(JSON)),
                               draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(NUMBERS)),
                               draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(NUMBERS)),
                               draw(st.sampled_from(BACKOFFS)), draw(st.sampled_from(["", "true"]))],
        "remove_job": lambda: [draw(ids())],
        "cancel_job": lambda: [draw(ids())],
        "clean_jobs": lambda: [draw(st.sampled_from(["complete", "failed", "inactive", "delayed",
                                                     "active", "x"])),
                               draw(st.sampled_from(["", *TYPES])),
                               *(draw(st.sampled_from(NUMBERS)) for _ in range(4))],
        "retry_jobs": lambda: [draw(st.sampled_from(["", *TYPES])), draw(st.sampled_from(NUMBERS))],
        "set_type_paused": lambda: [draw(st.sampled_from(TYPES)),
                                    draw(st.sampled_from(["1", "", "0"]))],
        "add_job_log": list,
        "search_jobs": lambda: [draw(st.text(max_size=10))],
        "open_queue": lambda: [draw(st.sampled_from(NUMBERS))],
        "register_worker": lambda: worker_args(draw),
        "add_repeat": lambda: [draw(st.sampled_from(REPEAT_NAMES)),
                               draw(st.sampled_from(["", *SPECS])), draw(st.sampled_from(SPECS)),
                               draw(st.sampled_from(TICKS)), draw(st.sampled_from(["", "keep", "x"]))],
        "scan_repeats": lambda: [draw(st.sampled_from(["0", "1", "100", "1001", "-1", "x"]))],
        "remove_repeat": lambda: [draw(st.sampled_from(REPEAT_NAMES))],
        "fire_repeat": lambda: [draw(st.sampled_from(REPEAT_NAMES)), draw(st.sampled_from(SPECS)),
                                draw(st.sampled_from(TICKS)), draw(st.sampled_from(TICKS)),
                                *draw(st.sampled_from([("1", "0"), ("3", "2"), ("2", "2")])),
                                draw(st.sampled_from(TYPES)), draw(st.sampled_from(JSON)),
                                draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(NUMBERS)),
                                draw(st.sampled_from(NUMBERS)), draw(st.sampled_from(NUMBERS)),
                                draw(st.sampled_from(BACKOFFS)),
                                draw(st.sampled_from(["", "true", "yes"])),
                                *draw(st.sampled_from([("0",), ("1", "1000"), ("2", "1000", "1500"),
                                                       ("2", "1500", "1000"), ("1", "x"),
                                                       ("1", "9007199254740991"), ("101",)]))],
    }
    args = [prefix, *shapes[name]()]
    if name == "add_job_log":
        args = [draw(st.text(max_size=5)) for _ in range(draw(st.integers(0, 2)))]
        job_id = draw(ids())
        keys = [f"{prefix}:job:{job_id}", f"{prefix}:job:{job_id}:log"]
    else:
        keys = declared_keys(name, prefix, args)
    if draw(st.integers(0, 9)) == 0:  # a hostile KEYS list
        keys = draw(st.lists(st.sampled_from([*keys, "other:key", f"{PREFIX}:x:jobs", ""]),
                             max_size=4))
    if draw(st.integers(0, 9)) == 0:  # a stray or missing argument
        args = args[:-1] if args and draw(st.booleans()) else [*args, draw(any_text())]
    return name, keys, args


def snapshot(client: Any) -> dict[bytes, bytes | None]:
    """Every key's DUMP: byte-identical serialisation, type and value included."""
    return {key: client.dump(key) for key in sorted(client.keys("*"))}


def seed(queue: Queue) -> None:
    """A keyspace with jobs in every state, one of them claimed under token bench:1."""
    queue.create_bulk([{"type": "email", "data": {"n": i}} for i in range(3)])
    queue.create("video", {"x": 1}).delay(60000).save()
    queue._run(single(calls.activate(KEYS, "email", 1, "w", "bench:1", 60000)))
    queue.create("email", {}).save().complete()
    queue._run(single(Call("add_repeat", (KEYS.repeats, KEYS.repeats_next),
                           (PREFIX, "r", "", '{"a":1}', 1000, ""))))


@pytest.mark.parametrize("backend", ["real"], indirect=True)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(hand_calls(), min_size=1, max_size=6))
def test_hand_calls_keep_invariants_and_refusals_write_nothing(
    make_queue: Any, steps: list[tuple[str, list[str], list[str]]]
) -> None:
    queue = make_queue(prefix=PREFIX)
    client = queue.client
    client.flushdb()  # the test session's own server (conftest's real_redis_url)
    seed(queue)
    events = client.pubsub(ignore_subscribe_messages=True)
    events.subscribe(f"{PREFIX}:events")
    for name, keys, args in steps:
        before = snapshot(client)
        try:
            client.evalsha(registry()[name].sha, len(keys), *keys, *args)
        except redis.ResponseError as exc:  # an error reply: nothing may have changed
            assert "attempt to" not in str(exc), f"{name}: a Lua runtime error, not a refusal: {exc}"
            assert snapshot(client) == before, f"{name} {keys} {args} wrote before failing: {exc}"
        check_invariants(client, PREFIX)
        while (message := events.get_message(timeout=0.01)) is not None:
            event = json.loads(message["data"])  # no argument can break an event's JSON
            assert isinstance(event["id"], int) and event["args"][0] == event["event"], event
    events.close()


def test_python_and_lua_agree_on_prefixes(queue: Queue) -> None:
    for prefix in ["q", "{q}", "my-app.q", "q:x", "", "a b", "tab\t", "x" * 64, "x" * 65, "é"]:
        try:
            check_prefix(prefix)
            python_ok = True
        except InvalidArgument:
            python_ok = False
        try:  # search_jobs with an empty query reads nothing and writes nothing
            queue.client.eval(registry()["search_jobs"].text, 1, f"{prefix}:searchtmpkey",
                              prefix, "")
            lua_ok = True
        except redis.ResponseError:
            lua_ok = False
        assert python_ok == lua_ok, prefix


def test_a_prefix_that_could_overlap_is_refused_at_queue() -> None:
    with pytest.raises(InvalidArgument, match="without ':'"):
        Queue("q:x", redis="memory://overlap")


def lua_is_utf8(client: Any, text: bytes) -> bool:
    source = expand_includes("--@include lib/checks.lua\nreturn is_utf8(ARGV[1]) and 1 or 0",
                             lua_dir())
    return client.eval(source, 0, text) == 1


def python_is_utf8(text: bytes) -> bool:
    try:
        text.decode("utf-8")  # strict: refuses overlong forms, surrogates and > U+10FFFF
        return True
    except UnicodeDecodeError:
        return False


UTF8_EDGES = [b"", b"plain", "é€𝄞".encode(), b"\xc0\x80", b"\xc2", b"\xe0\x80\xaf",
              b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80",
              b"\xf8\x88\x80\x80\x80", b"\xc2" + "€".encode() + b"\x80", b"\x80", b"\xff"]


@pytest.mark.parametrize("backend", ["real"], indirect=True)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.one_of(st.sampled_from(UTF8_EDGES), st.binary(max_size=12),
                      st.text(max_size=6).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_lua_utf8_check_agrees_with_a_strict_decoder(queue: Queue, text: bytes) -> None:
    assert lua_is_utf8(queue.client, text) == python_is_utf8(text), text


@pytest.mark.parametrize("backend", ["real"], indirect=True)
def test_a_type_stored_as_bad_bytes_is_still_published_as_json(queue: Queue) -> None:
    """Only a hand-written HSET can store such a type; its events stay JSON (U+FFFD)."""
    client = queue.client
    job = queue.create("email", {}).save()
    client.hset(KEYS.job(job.id), "type", b"bad\xff")
    events = client.pubsub(ignore_subscribe_messages=True)
    events.subscribe(f"{PREFIX}:events")
    job.remove()
    message = events.get_message(timeout=1.0)
    while message is None or message["type"] != "message":
        message = events.get_message(timeout=1.0)
    events.close()
    assert json.loads(message["data"])["args"] == ["remove", "bad\ufffd"]
