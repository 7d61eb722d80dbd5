"""Stopping workers at the edges: a registration its handler closed, a hung sync handler on
asyncio, shutdown from an ``async def`` handler of a sync queue, slot threads left over after
a final stop, and an outage at shutdown."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from kueatomic import Queue, aio

from .test_worker_async import _eq, until
from .test_worker_async import state_of as astate_of
from .test_worker_sync import FAST, state_of, wait_for

# --- a registration closed by ctx.shutdown() still runs a job: a full shutdown settles it ---

def test_a_full_shutdown_releases_the_job_of_a_registration_its_handler_closed(
        make_queue: Callable[..., Queue]) -> None:
    queue = make_queue()
    queue.configure_workers(**FAST)
    started, release = threading.Event(), threading.Event()

    def work(job: Any, ctx: Any) -> None:
        ctx.shutdown()  # this registration is done, but this job still runs
        started.set()
        release.wait(10)

    job = queue.create("email").save()
    queue.process("email", work)
    try:
        assert started.wait(10)
        queue.shutdown(timeout=100)
        assert state_of(queue, job.id) == "inactive"  # released before shutdown returned
        assert any(line.startswith("Released at shutdown") for line in queue.get_job(job.id).logs())
    finally:
        release.set()


async def test_a_full_asyncio_shutdown_releases_the_job_of_a_registration_its_handler_closed(
        make_aqueue: Callable[..., aio.Queue]) -> None:
    queue = make_aqueue()
    queue.configure_workers(**FAST)
    started = asyncio.Event()

    async def work(job: aio.Job, ctx: Any) -> None:
        ctx.shutdown()
        started.set()
        await asyncio.sleep(30)

    job = await queue.create("email").save()
    queue.process("email", work)
    await asyncio.wait_for(started.wait(), 10)
    await queue.shutdown(timeout=100)
    assert await astate_of(queue, job.id) == "inactive"
    await queue.close()


# --- asyncio: a hung sync handler given up must not keep the registration's thread ---------

async def test_a_hung_sync_handler_given_up_on_asyncio_does_not_hold_the_next_job(
        make_aqueue: Callable[..., aio.Queue]) -> None:
    queue = make_aqueue()
    queue.configure_workers(**FAST)
    release = threading.Event()
    ran: list[str] = []

    def work(job: Any) -> None:
        ran.append(job.data["name"])
        if job.data["name"] == "hang":
            release.wait(20)

    hung = await queue.create("email", {"name": "hang"}).ttl(150).save()
    queue.process("email", 1, work)
    try:
        await until(lambda: _eq(astate_of(queue, hung.id), "failed"), what="ttl exceeded")
        later = await queue.create("email", {"name": "next"}).save()
        await until(lambda: _eq(astate_of(queue, later.id), "complete"), what="the next job")
        assert not release.is_set() and ran == ["hang", "next"]  # the first one still hangs
    finally:
        release.set()
    await queue.shutdown()
    await queue.close()


# --- an async def handler of a sync queue may call the blocking shutdown() -------------------

def test_shutdown_from_an_async_handler_of_a_sync_queue_does_not_deadlock_its_loop(
        make_queue: Callable[..., Queue]) -> None:
    queue = make_queue()
    queue.configure_workers(**FAST)
    returned = threading.Event()

    async def work(job: Any) -> str:
        queue.shutdown()  # the sync queue's: blocking, called on the bridge's event loop
        returned.set()
        return "stopped the worker"

    first = queue.create("email").save()
    queue.process("email", 1, work)
    assert returned.wait(10), "shutdown() blocked the loop it was called on"
    wait_for(lambda: state_of(queue, first.id) == "complete", what="the job completed")
    wait_for(lambda: not queue.worker.started, what="the worker stopped")
    later = queue.create("email").save()
    assert state_of(queue, later.id) == "inactive"


# --- a final stop ends every slot thread ------------------------------------------------------

def slot_threads(job_type: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"kueatomic-{job_type}-slot"]


def test_a_final_stop_ends_every_slot_thread_even_after_an_abandon_race(
        make_queue: Callable[..., Queue]) -> None:
    """A handler that returns just as its job is given up: its thread goes back to its slot
    while a replacement is started, one thread more than the slots. None may be left blocked."""
    from kueatomic.worker.registration import InFlight

    queue = make_queue()
    queue.configure_workers(**FAST)
    queue.process("leak", 2, lambda job: None)
    worker = queue.worker
    wait_for(lambda: len(slot_threads("leak")) == 2, what="two slot threads")
    (reg,) = worker.registrations
    idle = slot_threads("leak")[0]  # back at its slot, but not yet seen to have finished
    record = InFlight(1, "token", reg, {}, 0.0)
    record.handle = idle
    worker._abandon([record])
    assert len(slot_threads("leak")) == 3
    queue.shutdown()
    wait_for(lambda: not slot_threads("leak"), timeout=5, what="every slot thread to end")


# --- an outage at shutdown: the outcomes are given up, the flush thread ends -------------------

def test_an_outage_at_shutdown_gives_up_the_releases_and_ends_the_flush_thread(
        proxy: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from kueatomic.worker import core

    monkeypatch.setattr(core, "FLUSH_WAIT_S", 0.5)  # how long a stop waits for its outcomes
    queue = Queue("stops", proxy.url)
    queue.configure_workers(**{**FAST, "reply_timeout_ms": 300})
    started, release = threading.Event(), threading.Event()

    def work(job: Any) -> None:
        started.set()
        release.wait(10)

    queue.create("email").save()
    queue.process("email", work)
    try:
        assert started.wait(10)
        threads = list(queue.worker._threads)  # the flush and housekeeping threads
        assert len(threads) == 2
        proxy.black_hole(True)  # Redis gone: the release cannot be written
        with caplog.at_level(logging.WARNING, "kueatomic.worker"):
            queue.shutdown(timeout=0)
            wait_for(lambda: not any(t.is_alive() for t in threads), timeout=3,
                     what="the flush thread to end")
        assert "lease recovery returns the jobs to inactive" in caplog.text
    finally:
        release.set()
        proxy.black_hole(False)
        queue.close()
