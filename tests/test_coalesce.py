"""Coalesced creates (kueatomic/coalesce.py): concurrent save() calls share create calls,
each caller gets its own job or its own error, and a full pool never fails a save."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from kueatomic import InvalidArgument, KueError, Queue, RedisUnavailable, aio
from kueatomic.coalesce import Coalescer, hand_out

from .crowds import crowd_a_small_pool, in_threads
from .redis_server import free_port


def test_the_first_caller_leads_and_hands_over_to_the_next() -> None:
    coalescer = Coalescer()
    first = coalescer.arrive("a")
    assert first.lead and first.ready()
    batch = coalescer.take()
    assert batch == [first]
    second, third = coalescer.arrive("b"), coalescer.arrive("c")  # while the call is out
    assert not second.ready() and not third.ready()
    assert hand_out(batch, [1], None) is False
    woken = coalescer.finished(batch)
    assert first.done and first.outcome() == 1 and second.lead and not third.lead
    assert woken == [second, first]  # the next leader first
    batch = coalescer.take()
    assert batch == [second, third]
    hand_out(batch, [2, 3], None)
    coalescer.finished(batch)
    assert (second.outcome(), third.outcome()) == (2, 3) and not coalescer.sending


def test_a_refused_call_is_sent_again_job_by_job_and_an_outage_reaches_everyone() -> None:
    coalescer = Coalescer()
    batch = [coalescer.arrive("a"), coalescer.arrive("b")]
    assert hand_out(batch, None, InvalidArgument("refused")) is True  # nothing handed out
    assert all(entry.error is None for entry in batch)
    outage = RedisUnavailable("down")
    assert hand_out(batch, None, outage) is False
    for entry in batch:
        with pytest.raises(RedisUnavailable):
            entry.outcome()


def test_one_refused_job_does_not_fail_the_others(queue: Queue) -> None:
    good = [queue.create_block(queue.create("t", {"n": n})) for n in range(3)]
    bad = list(good[0])
    bad[2] = "not a number"  # priority: refused by create_jobs (KUE_BAD_ARGS), nothing written
    coalescer = Coalescer()
    batch = [coalescer.arrive(block) for block in (good[0], bad, good[1], good[2])]
    queue._send_creates(batch)
    assert [entry.outcome() for entry in (batch[0], batch[2], batch[3])] == [1, 2, 3]
    with pytest.raises(KueError):
        batch[1].outcome()
    assert queue.inactive_count() == 3


def test_many_threads_share_create_calls(queue: Queue) -> None:
    saved: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def produce(n: int) -> None:
        for i in range(25):
            job = queue.create("t", {"thread": n, "i": i}).save()
            with lock:
                saved.append((job.id, job.data))

    in_threads(16, produce)
    assert sorted(job_id for job_id, _ in saved) == list(range(1, 401))
    for job_id, data in saved[::37]:  # each caller got the job it created
        assert queue.get_job(job_id).data == data


def test_many_tasks_never_exhaust_the_pool(backend: str) -> None:
    """200 tasks each awaiting save() on one asyncio queue whose pool holds 5 connections:
    every save succeeds, and every caller gets the job it created."""
    async def scenario() -> list[tuple[int, Any]]:
        url = backend if backend.startswith("memory") else backend + "?max_connections=5"
        queue = aio.Queue(redis=url)
        saved: list[tuple[int, Any]] = []

        async def produce(n: int) -> None:
            for i in range(10):
                job = await queue.create("t", {"task": n, "i": i}).save()
                saved.append((job.id, job.data))

        await asyncio.gather(*(produce(n) for n in range(200)))
        for job_id, data in saved[::97]:
            assert (await queue.get_job(job_id)).data == data
        await queue.close()
        return saved

    saved = asyncio.run(scenario())
    assert sorted(job_id for job_id, _ in saved) == list(range(1, 2001))


def test_an_outage_reaches_every_waiting_caller() -> None:
    queue = Queue(redis=f"redis://127.0.0.1:{free_port()}/0")
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            queue.create("t").save()
        except KueError as exc:
            errors.append(exc)

    in_threads(8, lambda _: produce(), timeout=30)
    assert len(errors) == 8 and all(isinstance(e, RedisUnavailable) for e in errors)
    assert not queue._creates.sending and not queue._creates.waiting
    queue.close()


def test_coalescing_can_be_turned_off(make_queue: Any) -> None:
    queue = make_queue(coalesce_creates=False)
    assert [queue.create("t").save().id for _ in range(3)] == [1, 2, 3]
    assert queue.like(Queue).coalesce_creates is False


def test_a_cancelled_sender_does_not_cancel_the_callers_it_carried() -> None:
    coalescer = Coalescer()
    batch = [coalescer.arrive("a"), coalescer.arrive("b")]
    hand_out(batch, None, asyncio.CancelledError())
    with pytest.raises(RedisUnavailable, match="interrupted"):
        batch[1].outcome()


def test_a_full_pool_makes_callers_wait_without_coalescing(real_redis_url: str) -> None:
    crowd_a_small_pool(real_redis_url)
