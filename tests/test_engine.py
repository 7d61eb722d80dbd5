"""Behaviour of the engine through the sync client, on fakeredis[lua] and real Redis."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest

import kueatomic
from kueatomic import (
    ConfigError,
    InvalidArgument,
    InvalidAttempts,
    InvalidDelay,
    InvalidPriority,
    InvalidRange,
    InvalidState,
    JobNotFound,
    NotSerializable,
    PayloadTooLarge,
    Queue,
    RedisUnavailable,
)
from kueatomic.keyspace import zid

from .conftest import queue_prefix
from .keydump import dump_keys

ON_CLUSTER = True  # the backend fixture also runs these tests on a Redis Cluster


def test_create_and_get_round_trip(queue: Queue) -> None:
    job = (queue.create("email", {"title": "welcome email for tj", "to": "tj@learnboost.com"})
           .priority("high").attempts(5).backoff({"type": "exponential", "delay": 1000})
           .delay(2000).ttl(5000).remove_on_complete(True).search_keys(["to", "title"]).save())
    assert job.id == 1 and job.state == "delayed"
    loaded = queue.get_job(1)
    assert loaded.type == "email"
    assert loaded.data == {"title": "welcome email for tj", "to": "tj@learnboost.com"}
    assert (loaded.priority_value, loaded.max_attempts, loaded.delay_ms, loaded.ttl_ms) == (-10, 5, 2000, 5000)
    assert loaded.backoff_spec == {"type": "exponential", "delay": 1000}
    assert loaded.remove_on_complete_flag is True
    assert loaded.promote_at == loaded.created_at + 2000


def test_to_json_has_kues_shape(queue: Queue) -> None:
    queue.create("email", {"to": "a@x"}).priority(10).ttl(100).save()
    body = queue.get_job("1").to_json(id_as_string=True)
    assert body["id"] == "1" and body["priority"] == 10 and body["progress"] == 0
    assert body["state"] == "inactive" and body["ttl"] == "100"
    assert isinstance(body["created_at"], str) and body["created_at"].isdigit()
    assert body["attempts"] == {"made": 0, "remaining": 1, "max": 1}
    assert set(body) == {"id", "type", "data", "priority", "progress", "state", "created_at",
                         "promote_at", "updated_at", "ttl", "attempts"}
    ranged = queue.range(0, -1)[0].to_json()
    assert ranged["id"] == 1


@pytest.mark.parametrize("level,score", [("low", 10), ("normal", 0), ("medium", -5),
                                         ("high", -10), ("critical", -15), (7, 7), ("-3", -3)])
def test_priorities(queue: Queue, level: Any, score: int) -> None:
    job = queue.create("t").priority(level).save()
    assert queue.client.zscore(f"{queue.prefix}:jobs:t:inactive", zid(job.id)) == score


@pytest.mark.parametrize("build,error", [
    (lambda q: q.create("t").priority("urgent"), InvalidPriority),
    (lambda q: q.create("t").priority(True), InvalidPriority),
    (lambda q: q.create("t").delay(-1), InvalidDelay),
    (lambda q: q.create("t").delay("soon"), InvalidDelay),
    (lambda q: q.create("t").attempts(0), InvalidAttempts),
    (lambda q: q.create("t").attempts(1.5), InvalidAttempts),
    (lambda q: q.create("t").ttl(0), InvalidArgument),
    (lambda q: q.create("t").backoff({"type": "linear"}), InvalidArgument),
    (lambda q: q.create("t").backoff("fast"), InvalidArgument),
    (lambda q: q.create("t").search_keys("to"), InvalidArgument),
    (lambda q: q.create("", {}), InvalidArgument),
    (lambda q: q.create("a:b", {}), InvalidArgument),
    (lambda q: q.create("t", {"when": dt.datetime.now()}).save(), NotSerializable),
    (lambda q: q.create("t", {"x": float("nan")}).save(), NotSerializable),
    (lambda q: q.create("t", {"x": "lone \ud800 surrogate"}).save(), NotSerializable),
])
def test_bad_input_raises_typed_errors_and_writes_nothing(
    queue: Queue, build: Callable[[Queue], Any], error: type
) -> None:
    with pytest.raises(error) as info:
        build(queue)
    assert isinstance(info.value, kueatomic.KueError) and str(info.value)
    assert dump_keys(queue.client) == {}


def test_oversized_payload_is_refused(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue(max_payload_bytes=100)
    with pytest.raises(PayloadTooLarge, match="limit is 100 bytes"):
        queue.create("t", {"blob": "x" * 200}).save()
    # Counted in UTF-8 bytes, not characters: 40 "é" are 80 bytes of text.
    with pytest.raises(PayloadTooLarge, match="is 101 bytes as JSON"):
        queue.create("t", {"blob": "é" * 40 + "x" * 10}).save()
    queue.create("t", {"blob": "é" * 40}).save()  # 91 bytes: within the limit
    assert len(dump_keys(queue.client)) > 0


def test_delay_accepts_timedelta_and_datetime(queue: Queue) -> None:
    assert queue.create("t").delay(dt.timedelta(seconds=2)).delay_ms == 2000
    soon = dt.datetime.now() + dt.timedelta(seconds=10)
    assert 9000 <= queue.create("t").delay(soon).delay_ms <= 10000
    assert queue.create("t").delay(dt.datetime(2000, 1, 1)).delay_ms == 0


def test_unknown_job_raises_not_found(queue: Queue) -> None:
    for job_id in (99, "99", "abc", None, 0):
        with pytest.raises(JobNotFound):
            queue.get_job(job_id)  # type: ignore[arg-type]
    ghost = queue.create("t")
    ghost.id = 42
    for action in (ghost.remove, ghost.complete, lambda: ghost.log("x"),
                   lambda: ghost.progress(1, 2), lambda: ghost.set_priority("high"), ghost.update):
        with pytest.raises(JobNotFound, match='job "42" doesnt exist|42'):
            action()
    assert dump_keys(queue.client) == {}


def test_unsaved_job_cannot_be_moved(queue: Queue) -> None:
    with pytest.raises(InvalidArgument, match="save"):
        queue.create("t").complete()


def test_unknown_state_is_refused(queue: Queue) -> None:
    job = queue.create("t").save()
    before = dump_keys(queue.client)
    with pytest.raises(InvalidState):
        job.set_state("bogus")
    with pytest.raises(InvalidState):
        queue.card("bogus")
    assert dump_keys(queue.client) == before


def test_state_changes_move_every_set_and_tokens(queue: Queue) -> None:
    job = queue.create("email", {}).priority("high").save()
    assert queue.client.lrange(f"{queue.prefix}:email:jobs", 0, -1) == ["1"]
    job.active()
    assert queue.client.llen(f"{queue.prefix}:email:jobs") == 0
    assert queue.client.zscore(f"{queue.prefix}:jobs:active", zid(1)) == -10  # -|priority| without ttl
    job.complete()
    assert queue.get_job(1).progress_percent == 100
    job.failed()
    assert queue.get_job(1).failed_at is not None
    job.delayed()
    created = queue.get_job(1).created_at
    assert queue.client.zscore(f"{queue.prefix}:jobs:delayed", zid(1)) == created  # promote_at = created_at
    job.inactive()
    job.inactive()  # re-entering inactive keeps exactly one token
    assert queue.client.llen(f"{queue.prefix}:email:jobs") == 1
    for state in kueatomic.STATES:
        expected = 1 if state == "inactive" else 0
        assert queue.card(state) == expected and queue.card(state, "email") == expected
    assert queue.counts() == {"inactive": 1, "active": 0, "complete": 0, "failed": 0, "delayed": 0}


def test_active_score_uses_ttl_deadline(queue: Queue) -> None:
    job = queue.create("t").ttl(5000).save()
    job.active()
    score = queue.client.zscore(f"{queue.prefix}:jobs:active", zid(job.id))
    assert score >= queue.get_job(job.id).updated_at + 5000


def test_priority_change_reorders_dequeue(queue: Queue) -> None:
    jobs = [queue.create("t", {"n": n}).save() for n in range(3)]
    assert queue.inactive("t") == [1, 2, 3]
    jobs[2].set_priority("critical")
    assert queue.inactive("t") == [3, 1, 2]
    assert queue.get_job(3).priority_value == -15
    assert queue.client.zscore(f"{queue.prefix}:jobs", zid(3)) == -15


def test_fifo_within_a_priority_across_digit_counts(queue: Queue) -> None:
    queue.create_bulk([{"type": "t"} for _ in range(12)])
    assert queue.inactive("t") == list(range(1, 13))


def test_update_resaves_data_priority_and_delay(queue: Queue) -> None:
    job = queue.create("t", {"v": 1}).save()
    job.data = {"v": 2}
    job.priority("low").delay(3000).update()
    loaded = queue.get_job(job.id)
    assert loaded.data == {"v": 2} and loaded.priority_value == 10
    assert loaded.promote_at == loaded.created_at + 3000
    assert loaded.state == "inactive" and queue.client.llen(f"{queue.prefix}:t:jobs") == 1


def test_remove_deletes_every_trace(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue(disable_search=False)
    job = queue.create("email", {"title": "welcome"}).save()
    job.log("hello")
    other = queue.create("email", {"title": "other"}).save()
    job.remove()
    keys = dump_keys(queue.client)
    assert f"{queue.prefix}:job:1" not in keys and f"{queue.prefix}:job:1:log" not in keys
    assert f"{queue.prefix}:search:object:1" not in keys
    assert all("01|1" not in json.dumps(v["value"]) for v in keys.values())
    assert queue.client.lrange(f"{queue.prefix}:email:jobs", 0, -1) == ["1"]  # only other's token
    assert queue.inactive() == [other.id]


def test_log_formats_like_util_format(queue: Queue) -> None:
    job = queue.create("t").save()
    job.log("rendering %dx%d slide", 800, 600)
    job.log("sending to %s", "a@x")
    job.log({"obj": 1, "arr": [1, 2]})
    job.log("100%% done %j", {"a": 1}, "extra", 3)
    assert job.logs() == ["rendering 800x600 slide", "sending to a@x", "{ obj: 1, arr: [ 1, 2 ] }",
                          '100% done {"a":1} extra 3']
    assert queue.job_logs(job.id) == job.logs()


def test_progress(queue: Queue) -> None:
    job = queue.create("t").save()
    job.progress(1, 3)
    assert queue.get_job(job.id).progress_percent == 33
    job.progress(3, 2, {"stage": "two"})
    loaded = queue.get_job(job.id)
    assert loaded.progress_percent == 100 and loaded.progress_data == {"stage": "two"}
    with pytest.raises(InvalidArgument, match="total must be > 0"):
        job.progress(1, 0)
    with pytest.raises(InvalidArgument):
        job.progress("1", 2)  # type: ignore[arg-type]


def test_ranges_follow_kues_ordering(queue: Queue) -> None:
    # docs/redis-layout.md §3: slice in score order, then sort the slice by id; desc reverses.
    for priority in (0, 0, -10, 10, -10, 0, 0, 0, -15):
        queue.create("video").priority(priority).save()
    # score order: 9(-15) 3 5 (-10) 1 2 6 7 8 (0) 4 (10)
    assert [j.id for j in queue.range(0, 4, "desc")] == [9, 5, 3, 2, 1]
    assert [j.id for j in queue.range(0, 4)] == [1, 2, 3, 5, 9]
    assert [j.id for j in queue.range_by_state("inactive", 0, 1)] == [3, 9]
    assert [j.id for j in queue.range_by_type("video", "inactive", 7, 8)] == [4, 8]
    assert queue.range(100, 200) == []
    with pytest.raises(InvalidRange):
        queue.range("a", "b")  # type: ignore[arg-type]
    with pytest.raises(InvalidRange):
        queue.range(0, 1, "sideways")
    with pytest.raises(InvalidState):
        queue.range_by_state("bogus", 0, 1)


def test_types_counts_and_work_time(queue: Queue) -> None:
    queue.create("email").save()
    queue.create("video").delay(10_000).save()
    assert sorted(queue.types()) == ["email", "video"]
    assert queue.inactive_count() == 1 and queue.delayed_count("video") == 1
    assert queue.failed_count("email") == 0 and queue.active_count() == 0
    assert queue.complete_count() == 0
    assert queue.work_time() is None
    assert queue.delayed() == [2] and queue.complete() == [] and queue.failed() == []
    assert queue.active() == []


def test_bulk_reports_per_job_errors(queue: Queue) -> None:
    results = queue.create_bulk([
        {"type": "email", "data": {"n": 1}},
        {"data": {"n": 2}},
        {"type": "video", "options": {"priority": "high", "attempts": "3", "delay": 0}},
        queue.create("email", {"n": 4}).attempts(2),
        {"type": "email", "options": {"colour": "red"}},
        "not a job",
    ])
    assert [r.id if isinstance(r, kueatomic.Job) else type(r).__name__ for r in results] == [
        1, "InvalidArgument", 2, 3, "InvalidArgument", "InvalidArgument"]
    assert "Must provide job type" in str(results[1])
    assert queue.get_job(2).max_attempts == 3 and queue.get_job(2).priority_value == -10
    assert queue.inactive_count() == 3 and queue.client.llen(f"{queue.prefix}:email:jobs") == 2


def test_bulk_of_many_spans_several_script_calls(queue: Queue) -> None:
    results = queue.create_bulk([{"type": "t", "data": {"n": n}} for n in range(2500)])
    assert [r.id for r in results] == list(range(1, 2501))
    assert queue.inactive_count("t") == 2500 and queue.client.llen(f"{queue.prefix}:t:jobs") == 2500


def test_bulk_is_streamed_in_chunks_and_reloads_flushed_scripts(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue.create("t").save()
    queue.client.script_flush()  # every streamed EVALSHA is refused, then sent again
    loads: list[str] = []
    real_load = queue.client.script_load
    monkeypatch.setattr(queue.client, "script_load", lambda text: loads.append(text) or real_load(text))
    specs: list[Any] = [{"type": "t", "data": {"n": n}} for n in range(250)]
    specs[150] = {"data": {}}
    results = queue.create_bulk(specs)
    assert len(loads) == 1  # three refused calls, one SCRIPT LOAD
    assert [r.id for r in results if isinstance(r, kueatomic.Job)] == list(range(2, 251))
    assert isinstance(results[150], InvalidArgument)
    assert queue.inactive_count("t") == 250 and queue.client.llen(f"{queue.prefix}:t:jobs") == 250


class _ExplodingSpec(dict):  # type: ignore[type-arg]
    def get(self, *args: Any) -> Any:
        raise RuntimeError("boom")


def test_bulk_stream_broken_by_a_bug_leaves_the_connection_usable(queue: Queue) -> None:
    specs: list[Any] = [{"type": "t"} for _ in range(250)]
    specs[220] = _ExplodingSpec(type="t")
    with pytest.raises(RuntimeError, match="boom"):
        queue.create_bulk(specs)  # two chunks were already sent, their replies unread
    job = queue.create("t").save()
    assert queue.get_job(job.id).type == "t"
    assert queue.inactive_count("t") == queue.client.llen(f"{queue.prefix}:t:jobs") == len(queue.inactive())


def test_search_when_enabled(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue(disable_search=False)
    queue.create("email", {"title": "welcome email for tj", "to": "tj@learnboost.com"}).search_keys(["to", "title"]).save()
    queue.create("email", {"title": "another email"}).save()
    assert queue.search("welcome tj") == ["1"]
    assert sorted(queue.search("email")) == ["1", "2"]
    assert queue.search("for") == [] and queue.search("") == []


def test_search_disabled_indexes_nothing(queue: Queue) -> None:
    queue.create("email", {"title": "welcome"}).save()
    assert queue.search("welcome") == []
    assert not [k for k in dump_keys(queue.client) if ":search:" in k]


def test_test_mode_records_without_writing(queue: Queue) -> None:
    queue.test_mode.enter()
    job = queue.create("email", {"n": 1}).save()
    assert job.id == "1" and queue.test_mode.jobs == [job]
    assert dump_keys(queue.client) == {}
    queue.test_mode.clear()
    assert queue.test_mode.jobs == []
    queue.test_mode.enter(process=True)
    real = queue.create("email").save()
    assert queue.test_mode.jobs == [real] and queue.get_job(real.id).type == "email"
    queue.test_mode.exit()
    queue.create("email").save()
    assert len(queue.test_mode.jobs) == 1


@pytest.mark.no_cluster  # a queue of its own, without a hash tag
def test_create_queue_alias(backend: str) -> None:
    queue = kueatomic.create_queue(prefix="other", redis=backend)
    job = queue.create("t").save()
    assert queue.client.exists("other:job:1") and job.id == 1
    queue.close()


@pytest.mark.parametrize("url", ["redis//localhost:6379", "http://localhost", "redis://localhost:port/0",
                                 "redis://localhost:6379/zero"])
def test_redis_url_typos_raise_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        Queue(redis=url)


def test_bad_redis_options_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown Redis option"):
        Queue(redis={"hots": "localhost"})
    with pytest.raises(ConfigError):
        Queue(redis=42)


def test_unreachable_redis_raises_unavailable_and_says_where() -> None:
    from .redis_server import free_port

    port = free_port()
    queue = Queue(redis=f"redis://127.0.0.1:{port}/0")
    with pytest.raises(RedisUnavailable, match=f"127.0.0.1:{port}"):
        queue.create("t").save()
    with pytest.raises(RedisUnavailable):
        queue.ping()
    with pytest.raises(RedisUnavailable):
        queue.create_bulk([{"type": "t"} for _ in range(250)])


def test_script_call_after_the_server_dropped_the_connection(real_redis_url: str) -> None:
    """Lone script calls skip redis-py's retry wrapper: a pooled connection the server
    closed meanwhile must still be noticed and replaced, and the job created once."""
    import redis

    queue = Queue(redis=real_redis_url)
    queue.create("t").save()
    admin = redis.Redis.from_url(real_redis_url)
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    job = queue.create("t").save()
    assert job.id == 2 and queue.inactive_count("t") == 2
    queue.close()
    admin.close()


def test_redis_as_dict_and_client(redis_server: Any) -> None:
    import redis

    queue = Queue(prefix="dict", redis={"host": "127.0.0.1", "port": redis_server.port})
    assert queue.ping()
    raw = redis.Redis(port=redis_server.port)  # bytes replies: still decoded by the engine
    queue2 = Queue(prefix="dict", redis=raw)
    job = queue2.create("t", {"a": "é"}).save()
    assert queue2.get_job(job.id).data == {"a": "é"}
    assert queue2.types() == ["t"] and queue2.job_logs(job.id) == []
    queue.close()
    queue2.close()


def test_scripts_reload_after_script_flush(queue: Queue) -> None:
    queue.create("t").save()
    queue.client.script_flush()
    queue.create("t").save()
    queue.client.script_flush()
    assert len(queue.create_bulk([{"type": "t"}] * 3)) == 3
    assert queue.inactive_count() == 5


def backoff_for_test(attempts: int, delay: int) -> int:
    return attempts * 10


def test_backoff_specs_survive_a_reload_and_resave(queue: Queue) -> None:
    fn_job = queue.create("t").backoff(backoff_for_test).save()
    stored = queue.client.hget(f"{queue.prefix}:job:{fn_job.id}", "backoff")
    assert json.loads(stored) == {"type": "function", "name": f"{__name__}:backoff_for_test"}
    assert kueatomic.backoff.lookup(f"{__name__}:backoff_for_test") is backoff_for_test
    loaded = queue.get_job(fn_job.id)
    loaded.update()
    assert queue.client.hget(f"{queue.prefix}:job:{fn_job.id}", "backoff") == stored
    js_source = "function (attempts, delay) { return attempts * 1000; }"
    node_job = queue.create("t").save()
    queue.client.hset(f"{queue.prefix}:job:{node_job.id}", "backoff", js_source)  # as Node Kue stores one
    queue.get_job(node_job.id).update()
    assert queue.client.hget(f"{queue.prefix}:job:{node_job.id}", "backoff") == js_source
    true_job = queue.create("t").backoff(True).save()
    assert queue.get_job(true_job.id).backoff_spec is True


@pytest.mark.no_cluster  # a queue of its own, without a hash tag
def test_client_factory_is_used(backend: str) -> None:
    from kueatomic.connection import sync_client

    calls: list[str] = []

    def factory() -> Any:
        calls.append("made")
        return sync_client(backend)

    queue = Queue(prefix="f", client_factory=factory)
    assert queue.create("t").save().id == 1 and calls == ["made"]
    queue.close()


def test_cli_stats_prints_counts(backend: str, capsys: Any) -> None:
    from kueatomic.cli import main

    prefix = queue_prefix(backend)
    queue = Queue(prefix, redis=backend)
    queue.create("email").save()
    queue.create("video").delay(10_000).save()
    assert main(["stats", "-r", backend, "-q", prefix]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["inactive"] == 1 and out["types"]["video"]["delayed"] == 1
    assert main(["stats", "-r", "redis://127.0.0.1:1/0"]) == 2
    assert "RedisUnavailable" in capsys.readouterr().err
    queue.close()


def test_absurd_numbers_are_refused(queue: Queue) -> None:
    with pytest.raises(InvalidPriority):
        queue.create("t").priority(10**30)
    with pytest.raises(InvalidPriority):
        queue.create("t").priority("9" * 30)
    for value in (1e300, float("nan"), float("inf")):
        with pytest.raises(InvalidDelay):
            queue.create("t").delay(value)
    with pytest.raises(InvalidDelay):
        queue.create("t").ttl(1e300)
    assert dump_keys(queue.client) == {}


def test_a_job_whose_type_has_a_colon_can_be_read(queue: Queue) -> None:
    job = queue.create("t").save()
    queue.client.eval("redis.call('HSET', KEYS[1], 'type', 'node:made')", 1, f"{queue.prefix}:job:{job.id}")
    assert queue.get_job(job.id).type == "node:made"
    assert [j.type for j in queue.range(0, -1)] == ["node:made"]
    with pytest.raises(InvalidArgument):
        queue.create("node:made")


def test_a_job_from_its_hash_has_every_field_a_new_job_has(queue: Queue) -> None:
    """from_hash skips __init__: load_fields must set everything __init__ would."""
    saved = queue.create("t", {"x": 1}).save()
    fields = queue.client.hgetall(f"{queue.prefix}:job:{saved.id}")
    loaded = kueatomic.Job.from_hash(queue, saved.id, fields)
    assert set(vars(loaded)) == set(vars(queue.create("t")))
    assert (loaded.type, loaded.data, loaded.state) == ("t", {"x": 1}, "inactive")


@pytest.mark.parametrize("stored", [
    '{"a":[1,2.5,"é"]}', ' {"a":1} ', "[]", '"text"', "12", "NaN", "1e400", "true", "null",
    "hello", "", '{"a":1} trailing', '{"a":', "{'a': 1}",
])
def test_stored_json_is_read_as_json_loads_reads_it(stored: str) -> None:
    """Data Kue or a person stored: JSON as json.loads parses it, anything else as text."""
    try:
        expected = json.loads(stored)
    except ValueError:
        expected = stored
    got = kueatomic.codec.loads_or_raw(stored)
    assert repr(got) == repr(expected) and type(got) is type(expected)  # repr: NaN equals nothing
