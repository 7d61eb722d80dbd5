"""Backoff text is code to Node Kue (``Job.get`` evaluates it), so kueatomic never writes
JavaScript there: the builder and ``POST /job`` refuse it, every spec kueatomic accepts is
stored as ``"true"`` or a canonical flat JSON object, and a job Node Kue stored with a
JavaScript backoff keeps it, untouched, when kueatomic re-saves it."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from kueatomic import InvalidArgument, Queue, aio, backoff_function
from kueatomic.backoff import encode
from kueatomic.web import create_app

from .web_helpers import client_for

PAYLOAD = "function(){ require('child_process').execSync('touch /tmp/x') }"
NODE_BACKOFF = "function (attempts, delay) { return attempts * 1000; }"  # as Node Kue stores it
SMUGGLED: list[Any] = [
    PAYLOAD,
    "  " + PAYLOAD,
    "(attempts) => attempts * 1000",
    "async function () { return 1 }",
    "true",
    '{"type":"fixed","delay":1}',
    {"type": "fixed", "delay": "1); require('child_process')"},
    {"type": "fixed", "delay": 1, "extra": PAYLOAD},
    {"type": "function", "name": "m:f\"}); require('child_process'); ({\""},
    {"type": "function", "name": PAYLOAD},
    {"type": PAYLOAD},
    {"type": "fixed", "delay": float("nan")},
    {"type": "fixed", "delay": True},
    [PAYLOAD],
    3,
]
_NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?"
CANONICAL = re.compile(
    rf'true|\{{"type":"(?:fixed|exponential)"(?:,"delay":{_NUMBER})?(?:,"maxDelay":{_NUMBER})?\}}'
    r'|\{"type":"function","name":"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z0-9_.<>]+"\}')


@backoff_function
def doubling(attempts: int, delay: int) -> int:
    return delay * 2**attempts


def assert_safe_text(text: str) -> None:
    """What the Lua scripts accept and Node's eval reads as plain data."""
    assert CANONICAL.fullmatch(text), text
    assert not text.lstrip().startswith("function")
    if text != "true":
        value = json.loads(text)
        assert all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                   for v in value.values())


# --- the builder -------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SMUGGLED, ids=range(len(SMUGGLED)))
def test_builder_refuses_anything_but_data(queue: Queue, spec: Any) -> None:
    with pytest.raises(InvalidArgument):
        queue.create("email").backoff(spec)
    job = queue.create("email")
    job.backoff_spec = spec  # set behind the builder's back: save() still refuses it
    with pytest.raises(InvalidArgument):
        job.save()
    assert queue.inactive_count() == 0


def test_the_refusal_says_why(queue: Queue) -> None:
    with pytest.raises(InvalidArgument, match="JavaScript source is refused: Node Kue evaluates"):
        queue.create("email").backoff(PAYLOAD)


@pytest.mark.parametrize("spec, stored", [
    (True, "true"),
    ({"delay": 1000, "type": "fixed"}, '{"type":"fixed","delay":1000}'),
    ({"type": "exponential", "delay": 400.0, "maxDelay": 700},
     '{"type":"exponential","delay":400,"maxDelay":700}'),
    ({"type": "exponential", "delay": 2.5}, '{"type":"exponential","delay":2.5}'),
    ({"delay": 5}, '{"type":"fixed","delay":5}'),
    ({"type": "fixed", "delay": None}, '{"type":"fixed"}'),
    (doubling, f'{{"type":"function","name":"{__name__}:doubling"}}'),
    ({"type": "function", "name": f"{__name__}:doubling"},
     f'{{"type":"function","name":"{__name__}:doubling"}}'),
])
def test_accepted_specs_are_stored_canonically(queue: Queue, spec: Any, stored: str) -> None:
    job = queue.create("email").attempts(2).backoff(spec).save()
    assert queue.client.hget(queue.keys.job(job.id), "backoff") == stored
    assert_safe_text(stored)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 2**42), st.floats(),
                    st.text(max_size=12), st.sampled_from(["fixed", "exponential", "function",
                                                           PAYLOAD, "m:f", "a.b:C.<locals>.d"]))
_SPECS = st.one_of(
    _VALUES,
    st.dictionaries(st.sampled_from(["type", "delay", "maxDelay", "name", "x"]), _VALUES,
                    max_size=4),
    st.lists(_VALUES, max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(spec=_SPECS)
def test_encode_writes_only_canonical_data(spec: Any) -> None:
    try:
        text = encode(spec)
    except InvalidArgument:
        return
    if spec is None or spec is False:
        assert text == ""
    else:
        assert_safe_text(text)


# --- POST /job ---------------------------------------------------------------------------

def test_api_refuses_javascript_backoff(queue: Queue) -> None:
    with client_for(create_app(queue)) as client:
        response = client.post("/job", json={"type": "email", "options": {"backoff": PAYLOAD}})
        assert response.status_code == 400
        assert "JavaScript source is refused" in response.json()["error"]
        many = client.post("/job", json=[
            {"type": "email", "options": {"backoff": {"type": "fixed", "delay": 10}}},
            {"type": "email", "options": {"backoff": PAYLOAD}}])
        assert many.status_code == 400
        assert many.json()[0] == {"message": "job created", "id": 1}
        assert "JavaScript" in many.json()[1]["error"]
        for spec in SMUGGLED:
            if "nan" in repr(spec):
                continue  # not JSON: nobody can send it
            refused = client.post("/job", json={"type": "email", "options": {"backoff": spec}})
            assert refused.status_code == 400, spec
    assert queue.inactive_count() == 1
    assert queue.client.hget(queue.keys.job(1), "backoff") == '{"type":"fixed","delay":10}'


# --- a job Node Kue stored ---------------------------------------------------------------

def node_kue_job(queue: Queue) -> int:
    """A job as Node Kue leaves it after ``job.backoff(function (attempts, delay) {...})``
    (the test writes the field itself, standing in for Node Kue)."""
    job_id = queue.create("email", {"n": 1}).attempts(3).save().id
    assert job_id is not None
    queue.client.hset(queue.keys.job(job_id), "backoff", NODE_BACKOFF)
    return job_id


def test_resaving_a_node_job_keeps_its_backoff_untouched(queue: Queue) -> None:
    job_id = node_kue_job(queue)
    job = queue.get_job(job_id)
    assert job.backoff_spec == NODE_BACKOFF
    job.priority("high").attempts(5)
    job.data = {"n": 2}
    job.save()
    job.set_priority("low")
    fields = queue.client.hgetall(queue.keys.job(job_id))
    assert fields["backoff"] == NODE_BACKOFF
    assert (fields["max_attempts"], json.loads(fields["data"])) == ("5", {"n": 2})
    # Setting it, even to the same text, is writing JavaScript: refused.
    with pytest.raises(InvalidArgument):
        job.backoff(NODE_BACKOFF)
    # A new spec replaces it.
    job.backoff({"type": "fixed", "delay": 5}).save()
    assert queue.client.hget(queue.keys.job(job_id), "backoff") == '{"type":"fixed","delay":5}'


async def test_async_resave_keeps_a_node_backoff(queue: Queue, make_aqueue: Any) -> None:
    job_id = node_kue_job(queue)
    aqueue: aio.Queue = make_aqueue()
    try:
        job = await aqueue.get_job(job_id)
        job.priority("critical")
        await job.save()
    finally:
        await aqueue.close()
    assert queue.client.hget(queue.keys.job(job_id), "backoff") == NODE_BACKOFF
    assert queue.get_job(job_id).priority_value == -15


def test_api_actions_on_a_node_job_keep_its_backoff(queue: Queue) -> None:
    job_id = node_kue_job(queue)
    with client_for(create_app(queue)) as client:
        assert client.put(f"/job/{job_id}/priority/high").status_code == 200
        assert client.put(f"/job/{job_id}/state/failed").status_code == 200
        assert client.put(f"/job/{job_id}/state/inactive").status_code == 200
        assert client.get(f"/job/{job_id}").status_code == 200
    assert queue.client.hget(queue.keys.job(job_id), "backoff") == NODE_BACKOFF


# --- everything kueatomic sends, watched with MONITOR -----------------------------------

_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r'\\(x[0-9a-fA-F]{2}|.)')
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code.startswith("x") and len(code) == 3:
            return chr(int(code[1:], 16))
        return _SIMPLE.get(code, code)
    return _ESCAPE.sub(one, text)


@contextmanager
def monitored(url: str) -> Iterator[list[tuple[bool, list[str]]]]:
    """(run by a script?, arguments) of every command the server runs while the block runs."""
    client = redis.Redis.from_url(url, decode_responses=True)
    seen: list[tuple[bool, list[str]]] = []
    marker = f"kueatomic-monitor-end-{uuid.uuid4().hex}"
    ready, done = threading.Event(), threading.Event()

    def watch() -> None:
        conn = client.connection_pool.get_connection()
        try:
            conn.send_command("MONITOR")
            conn.read_response()  # OK
            ready.set()
            while True:
                line = str(conn.read_response())
                if marker in line:
                    done.set()
                    return
                head, _, rest = line.partition("] ")
                seen.append((head.endswith("lua"), [_unescape(a) for a in _ARG.findall(rest)]))
        finally:
            conn.disconnect()

    threading.Thread(target=watch, daemon=True).start()
    assert ready.wait(5), "MONITOR did not start"
    try:
        yield seen
    finally:
        client.echo(marker)
        assert done.wait(10), "MONITOR did not see the end marker"
        client.close()


def test_nothing_kueatomic_writes_to_backoff_is_javascript(real_redis_url: str) -> None:
    queue = Queue(redis=real_redis_url)
    try:
        node_id = node_kue_job(queue)  # before MONITOR: the stand-in for Node Kue's write
        with monitored(real_redis_url) as seen:
            for spec in (True, {"type": "fixed", "delay": 1}, {"delay": 2},
                         {"type": "exponential", "delay": 3, "maxDelay": 9}, doubling):
                queue.create("email").attempts(2).backoff(spec).save()
            queue.create_bulk([{"type": "video", "options": {"backoff": {"delay": 4}}},
                               {"type": "video", "options": {"backoff": PAYLOAD}}])
            with client_for(create_app(queue)) as client:
                client.post("/job", json={"type": "email", "options": {"backoff": PAYLOAD}})
                client.post("/job", json={"type": "email", "options": {"backoff": True}})
                client.put(f"/job/{node_id}/priority/high")
            node = queue.get_job(node_id)
            node.priority("low").save()
            for spec in SMUGGLED:
                with pytest.raises(InvalidArgument):
                    node.backoff(spec)
        written = [args[args.index("backoff") + 1] for by_lua, args in seen
                   if by_lua and args and args[0].lower() in ("hset", "hmset")
                   and "backoff" in args[2::2]]
        assert len(written) == 7  # 5 creates, 1 from the bulk, 1 from the API
        for text in written:
            assert_safe_text(text)
        sent = [arg for by_lua, args in seen if not by_lua for arg in args]
        assert "evalsha" in [a.lower() for a in sent] and PAYLOAD not in sent
        assert not [arg for arg in sent if arg.lstrip().startswith(("function", "(", "async"))]
        assert queue.client.hget(queue.keys.job(node_id), "backoff") == NODE_BACKOFF
    finally:
        queue.close()
