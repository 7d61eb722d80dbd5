"""Stopping workers at the edges: a registration its handler closed, a hung sync handler on
asyncio, shutdown from an ``async def`` handler of a sync queue, slot threads left over after
a final stop, and an outage at shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from kueatomic import Queue, aio

from .test_worker_async import state_of as astate_of
from .test_worker_sync import FAST, state_of

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
