"""Workers that never stop silently: jobs written oddly (as Node Kue or a hand edit may write
them), handlers raising any BaseException, a loop hitting a bug, on both runtimes. Each bad
job fails its attempt saying why, each slot is freed, and the worker keeps draining."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from kueatomic import Queue, aio
from kueatomic.keyspace import zid
from kueatomic.worker import calls

from .conftest import queue_prefix
from .test_worker_sync import FAST, wait_for

ON_CLUSTER = True  # the backend fixture also runs these tests on a Redis Cluster


class Halt(BaseException):
    """A BaseException that is neither Exception nor SystemExit/KeyboardInterrupt."""


def state_of(queue: Queue, job_id: int) -> str | None:
    return queue.client.hget(queue.keys.job(job_id), "state")  # type: ignore[no-any-return]


def node_style(queue: Queue, job_type: str, **fields: str) -> int:
    """A job saved by kueatomic, then given fields the way Node Kue or a person may write."""
    job = queue.create(job_type, {"n": 0}).save()
    if fields:
        queue.client.hset(queue.keys.job(job.id), mapping=fields)  # test-only direct write
    return int(job.id)


def test_jobs_node_kue_wrote_oddly_fail_or_wait_and_the_rest_drain(
        make_queue: Callable[..., Queue]) -> None:
    queue = make_queue()
    queue.configure_workers(**FAST)
    float_ttl = node_style(queue, "email", ttl="1500.5")
    not_json = node_style(queue, "email", data="{not json")
    unserved = node_style(queue, "sms")
    rest = [node_style(queue, "email") for _ in range(20)]
    queue.process("email", 4, lambda job: "ok")
    wait_for(lambda: all(state_of(queue, i) == "complete" for i in rest), what="the rest")
    assert state_of(queue, float_ttl) == "complete"  # a fractional ttl is a ttl
    wait_for(lambda: state_of(queue, not_json) == "failed")
    failed = queue.get_job(not_json)
    assert failed.error.startswith(f"Cannot load job {not_json}: NotSerializable")
    assert "not JSON" in failed.error and failed.attempts_made == 1
    assert state_of(queue, unserved) == "inactive"  # nobody here serves "sms": never claimed
    assert queue.client.zscore(queue.keys.leases, zid(unserved)) is None
    late = queue.create("email").save()
    wait_for(lambda: state_of(queue, late.id) == "complete")


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt(), Halt("halt")],
                         ids=["SystemExit", "KeyboardInterrupt", "BaseException"])
def test_a_handler_raising_a_base_exception_fails_the_attempt_threaded(
        make_queue: Callable[..., Queue], raised: BaseException) -> None:
    queue = make_queue()
    queue.configure_workers(**FAST)
    bad = queue.create("email", {"bad": True}).save()
    good = queue.create("email", {"bad": False}).save()

    def work(job: Any) -> str:
        if job.data["bad"]:
            raise raised
        return "fine"

    queue.process("email", 1, work)  # one slot: the good job runs only if it was freed
    wait_for(lambda: state_of(queue, good.id) == "complete", what="the next job")
    wait_for(lambda: state_of(queue, bad.id) == "failed", what="the failure written")
    failed = queue.get_job(bad.id)
    assert failed.state == "failed" and type(raised).__name__ in failed.error
    assert "lease" not in failed.fields
    assert queue.client.zscore(queue.keys.leases, zid(bad.id)) is None


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt(), Halt("halt")],
                         ids=["SystemExit", "KeyboardInterrupt", "BaseException"])
async def test_a_handler_raising_a_base_exception_fails_the_attempt_asyncio(
        make_aqueue: Callable[..., aio.Queue], raised: BaseException, kind: str) -> None:
    queue = make_aqueue()
    queue.configure_workers(**FAST)
    bad = await queue.create("email", {"bad": True}).save()
    good = await queue.create("email", {"bad": False}).save()

    def check(job: Any) -> str:
        if job.data["bad"]:
            raise raised
        return "fine"

    async def work_async(job: Any) -> str:
        return check(job)

    queue.process("email", 1, work_async if kind == "async" else check)
    for _ in range(1000):
        states = [await queue.client.hget(queue.keys.job(j.id), "state") for j in (good, bad)]
        if states == ["complete", "failed"]:
            break
        await asyncio.sleep(0.01)
    failed = await queue.get_job(bad.id)
    assert failed.state == "failed" and type(raised).__name__ in failed.error
    assert "lease" not in failed.fields
    assert await queue.client.zscore(queue.keys.leases, zid(bad.id)) is None
    assert (await queue.get_job(good.id)).state == "complete"
    await queue.close()


def test_a_job_whose_field_holds_a_nul_byte_runs_with_its_fields_whole(
        make_queue: Callable[..., Queue]) -> None:
    """activate_jobs packs a job's fields NUL-joined; a value with a NUL of its own (a hand
    edit) cannot be split back, so the worker reclaims the claim unpacked and runs it."""
    queue = make_queue()
    queue.configure_workers(**FAST)
    odd = node_style(queue, "email", note="before\0after", error="a\0b\0c")
    plain = node_style(queue, "email")
    seen: dict[int, dict[str, str]] = {}

    def handler(job: Any) -> str:
        seen[int(job.id)] = dict(job.fields)
        return "ok"

    queue.process("email", 4, handler)
    wait_for(lambda: all(state_of(queue, i) == "complete" for i in (odd, plain)))
    assert seen[odd]["note"] == "before\0after" and seen[odd]["error"] == "a\0b\0c"
    assert seen[odd]["state"] == "active" and seen[odd]["data"] == '{"n":0}'
    assert seen[plain]["data"] == '{"n":0}'
    assert queue.get_job(odd).attempts_made == 1  # run once, not failed and retried


def test_claimed_fields_unpack_from_either_reply_shape() -> None:
    assert list(calls.unpacked(b"4\0type\0email\0data\0{}")) == ["type", "email", "data", "{}"]
    assert list(calls.unpacked("2\0data\0\xe9")) == ["data", "\xe9"]
    assert list(calls.unpacked(b"2\0data\0\xff")) == ["data", "\ufffd"]
    assert list(calls.unpacked([b"type", b"email"])) == ["type", "email"]
    assert list(calls.unpacked(["type", "email"])) == ["type", "email"]
    for ambiguous in (b"2\0data\0a\0b", b"x\0data", b"", "02\0data\0x"):
        with pytest.raises(calls.AmbiguousClaim):
            calls.unpacked(ambiguous)


def test_a_loop_that_hits_a_bug_logs_it_reports_once_and_goes_on(
        make_queue: Callable[..., Queue], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    queue = make_queue()
    queue.configure_workers(**FAST)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    real = calls.parse_claimed
    broken = {"left": 3}

    def parse_claimed(*args: Any) -> Any:
        if broken["left"]:
            broken["left"] -= 1
            raise RuntimeError("a bug in the claim path")
        return real(*args)

    monkeypatch.setattr(calls, "parse_claimed", parse_claimed)
    jobs = [queue.create("email").save() for _ in range(5)]
    with caplog.at_level(logging.INFO, logger="kueatomic"):
        queue.process("email", 2, lambda job: "ok")
        wait_for(lambda: all(state_of(queue, j.id) == "complete" for j in jobs), timeout=20)
    bugs = [e for e in errors if isinstance(e, RuntimeError)]
    assert len(bugs) == 1  # once per episode, not once per failed try
    records = [r for r in caplog.records if "a bug in the claim path" in r.getMessage()]
    assert records and records[0].exc_info is not None  # logged with its traceback
    assert any("working again" in r.getMessage() for r in caplog.records)


def test_the_library_adds_no_log_handlers() -> None:
    import kueatomic  # noqa: F401 - everything imported

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("kueatomic"):
            logger = logging.getLogger(name)
            assert not [h for h in logger.handlers if type(h).__name__ != "_CliHandler"], name


def test_an_aio_queue_with_handlers_but_no_loop_says_so(
        backend: str, caplog: pytest.LogCaptureFixture) -> None:
    queue = aio.Queue(queue_prefix(backend), redis=backend)
    with caplog.at_level(logging.WARNING, logger="kueatomic"):
        queue.process("email", lambda job: None)
        queue.process("sms", lambda job: None)
    warnings = [r for r in caplog.records if "no event loop running" in r.getMessage()]
    assert len(warnings) == 1 and "start_workers" in warnings[0].getMessage()
