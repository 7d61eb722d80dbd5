"""Workers check the queue's data format (``<prefix>:meta``) before their first claim, in
both runtimes: a newer format than this version reads is refused (nothing claimed, no
upkeep, the error logged and raised by ``join()``/``run()``), format 1 or no meta yet works,
and an outage during the check only delays it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from kueatomic import IncompatibleFormat, Queue, Worker, aio
from kueatomic.states import DATA_FORMAT

from .test_worker_async import _eq, until
from .test_worker_async import state_of as astate_of
from .test_worker_sync import FAST, state_of, wait_for

NEWER = 99


def test_a_threaded_worker_refuses_a_newer_format(make_queue: Callable[..., Queue],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    queue = make_queue()
    queue.client.hset(queue.keys.meta, "format", NEWER)
    delayed = queue.create("email").delay(1).save()
    job = queue.create("email").save()
    ran: list[int] = []
    worker = Worker(queue, **FAST)
    worker.process("email", 2, lambda job: ran.append(job.id))
    with caplog.at_level(logging.ERROR, "kueatomic.worker"):
        worker.start()
        with pytest.raises(IncompatibleFormat, match="newer than"):
            worker.join(5000)
    assert "holds data format 99" in caplog.text
    assert isinstance(worker.error, IncompatibleFormat)
    with pytest.raises(IncompatibleFormat):
        worker.start()  # still refused: it does not start over by itself
    time.sleep(0.3)  # claims and upkeep would have run by now
    assert ran == [] and state_of(queue, job.id) == "inactive"
    assert state_of(queue, delayed.id) == "delayed"  # no promotion either
    assert queue.client.hget(queue.keys.meta, "format") == str(NEWER)  # untouched
    worker.shutdown()


def test_run_raises_the_refusal(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue()
    queue.client.hset(queue.keys.meta, "format", NEWER)
    queue.configure_workers(**FAST)
    queue.process("email", lambda job: None)
    with pytest.raises(IncompatibleFormat):
        queue.run()  # the Kue shorthand's worker: it stops, then raises
    assert not queue.worker.started


def test_async_handlers_of_a_sync_queue_are_refused_too(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue()
    queue.client.hset(queue.keys.meta, "format", NEWER)
    queue.configure_workers(**FAST)
    ran: list[int] = []

    async def work(job: Any) -> None:
        ran.append(job.id)

    job = queue.create("email").save()
    queue.process("email", work)
    with pytest.raises(IncompatibleFormat):
        queue.worker.join(5000)
    time.sleep(0.3)
    assert ran == [] and state_of(queue, job.id) == "inactive"
    queue.shutdown()


async def test_an_asyncio_worker_refuses_a_newer_format(
        make_aqueue: Callable[..., aio.Queue], caplog: pytest.LogCaptureFixture) -> None:
    queue = make_aqueue()
    await queue.client.hset(queue.keys.meta, "format", NEWER)
    job = await queue.create("email").save()
    ran: list[int] = []

    async def work(job: aio.Job) -> None:
        ran.append(job.id)

    worker = aio.Worker(queue, **FAST)
    worker.process("email", 2, work)
    worker.process("sms", 1, lambda job: ran.append(job.id))  # a sync handler as well
    with caplog.at_level(logging.ERROR, "kueatomic.worker"):
        await worker.start()
        with pytest.raises(IncompatibleFormat, match="newer than"):
            await worker.join(5000)
    assert "holds data format 99" in caplog.text
    await worker.shutdown()
    assert ran == [] and await astate_of(queue, job.id) == "inactive"
    with pytest.raises(IncompatibleFormat):
        await worker.run()  # started again, refused again: shut down, then raised
    assert not worker.started
    await queue.close()


@pytest.mark.parametrize("meta", ["missing", "format 1"])
def test_format_1_or_no_meta_yet_works_in_both_runtimes(meta: str,
                                                        make_queue: Callable[..., Queue],
                                                        make_aqueue: Callable[..., aio.Queue]
                                                        ) -> None:
    import asyncio

    queue = make_queue()
    if meta != "missing":
        queue.client.hset(queue.keys.meta, "format", DATA_FORMAT)
    worker = Worker(queue, **FAST)
    worker.process("email", lambda job: "done")
    job = queue.create("email").save()
    worker.start()
    wait_for(lambda: state_of(queue, job.id) == "complete")
    assert worker.join(0) is False and worker.error is None
    worker.shutdown()
    assert worker.join(0) is True
    assert queue.client.hget(queue.keys.meta, "format") == str(DATA_FORMAT)

    async def on_asyncio() -> None:
        aqueue = make_aqueue()
        aworker = aio.Worker(aqueue, **FAST)

        async def work(job: aio.Job) -> str:
            return "done"

        aworker.process("email", work)
        ajob = await aqueue.create("email").save()
        await aworker.start()
        await until(lambda: _eq(astate_of(aqueue, ajob.id), "complete"))
        assert await aworker.join(0) is False and aworker.error is None
        await aworker.shutdown()
        await aqueue.close()

    asyncio.run(on_asyncio())


def test_an_outage_during_the_check_only_delays_the_first_claim(proxy: Any) -> None:
    queue = Queue("format-outage", proxy.url)
    job = queue.create("email").save()
    done = threading.Event()
    worker = Worker(queue, **{**FAST, "reply_timeout_ms": 300})
    worker.process("email", lambda job: done.set())
    proxy.black_hole(True)  # Redis unreachable while the worker starts
    try:
        worker.start()
        time.sleep(0.8)
        assert worker.error is None and not done.is_set()
    finally:
        proxy.black_hole(False)
    assert done.wait(10)
    wait_for(lambda: state_of(queue, job.id) == "complete")
    worker.shutdown()
    queue.close()
