"""The asyncio worker: ``async def`` handlers on ``kueatomic.aio.Queue`` (and on the sync
``Queue`` through its background loop), sync handlers on an ``aio.Queue``, events delivered
on the loop, ttl cancelling a hung task, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kueatomic import Queue, aio

from .conftest import queue_prefix
from .test_worker_sync import FAST, wait_for

ON_CLUSTER = True  # the backend fixture also runs these tests on a Redis Cluster


async def until(fn: Callable[[], Awaitable[Any]], timeout: float = 10.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def state_of(queue: aio.Queue, job_id: int) -> str | None:
    return await queue.client.hget(queue.keys.job(job_id), "state")  # type: ignore[no-any-return]


async def test_async_handlers_on_the_asyncio_queue(make_aqueue: Callable[..., aio.Queue]) -> None:
    queue = make_aqueue()
    queue.configure_workers(**FAST)
    active = [0, 0]

    async def send(job: aio.Job, ctx: Any) -> dict[str, Any]:
        active[0] += 1
        active[1] = max(active)
        await job.log("to %s", job.data["to"])
        await job.progress(1, 2)
        await asyncio.sleep(0.02)
        active[0] -= 1
        return {"to": job.data["to"]}

    jobs = await queue.create_bulk([{"type": "email", "data": {"to": n}} for n in range(20)])
    queue.process("email", 5, send)
    await until(lambda: queue.complete_count(), what="first completion")
    await until(lambda: _eq(queue.complete_count(), 20), what="all complete")
    done = await queue.get_job(jobs[3].id)
    assert done.result == {"to": 3} and await done.logs() == ["to 3"]
    assert "lease" not in done.fields and active[1] == 5
    await queue.shutdown()
    await queue.close()


async def _eq(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def test_sync_handlers_on_the_asyncio_queue(make_aqueue: Callable[..., aio.Queue]) -> None:
    queue = make_aqueue()
    queue.configure_workers(**FAST)
    threads: list[str] = []

    def blocking(job: Any) -> int:
        threads.append(threading.current_thread().name)
        job.log("sync log")  # a sync twin's job: plain blocking calls
        time.sleep(0.01)
        return int(job.data["n"]) * 2

    job = await queue.create("email", {"n": 21}).save()
    queue.process("email", 2, blocking)
    await until(lambda: _eq(state_of(queue, job.id), "complete"))
    done = await queue.get_job(job.id)
    assert done.result == 42 and await done.logs() == ["sync log"]
    assert threads and threads[0] != threading.current_thread().name
    await queue.shutdown()
    await queue.close()


def test_async_handlers_on_the_sync_queue(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue()
    queue.configure_workers(**FAST)
    loops: list[Any] = []

    async def send(job: aio.Job) -> str:
        loops.append(asyncio.get_running_loop())
        await job.progress(1, 1)
        await asyncio.sleep(0.01)
        return "async result"

    job = queue.create("email").save()
    delayed = queue.create("email").delay(100).save()  # upkeep runs for async-only queues too
    queue.process("email", 3, send)
    wait_for(lambda: queue.client.hget(queue.keys.job(delayed.id), "state") == "complete")
    assert queue.get_job(job.id).result == "async result"
    assert loops[0] is not None
    queue.shutdown(timeout=1000)


async def test_async_retries_and_events_on_the_loop(make_aqueue: Callable[..., aio.Queue]) -> None:
    queue = make_aqueue()
    queue.configure_workers(**FAST)
    loop = asyncio.get_running_loop()
    seen: list[tuple[Any, ...]] = []
    on_loop: list[bool] = []

    async def on_attempt(job_id: int, message: str, attempt: int) -> None:
        on_loop.append(asyncio.get_running_loop() is loop)
        seen.append(("attempt", message, attempt))

    queue.on("job failed attempt", on_attempt)
    queue.on("job complete", lambda job_id, result: seen.append(("complete", result)))

    async def flaky(job: aio.Job) -> str:
        if job.attempts_made == 0:
            raise RuntimeError("first try")
        return "second try"

    job = await queue.create("email").attempts(2).backoff({"type": "exponential", "delay": 100}).save()
    queue.process("email", flaky)
    await until(lambda: _eq(state_of(queue, job.id), "complete"))
    await until(lambda: _true(len(seen) == 2))
    assert seen == [("attempt", "first try", 1), ("complete", "second try")]
    assert on_loop == [True]
    await queue.shutdown()
    await queue.close()


async def _true(value: bool) -> bool:
    return value


async def test_ttl_cancels_a_hung_async_handler(make_aqueue: Callable[..., aio.Queue]) -> None:
    queue = make_aqueue()
    queue.configure_workers(**FAST)
    cancelled = asyncio.Event()

    async def hang(job: aio.Job) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job = await queue.create("email").ttl(150).save()
    queue.process("email", hang)
    await until(lambda: _eq(state_of(queue, job.id), "failed"))
    assert (await queue.get_job(job.id)).error == "TTL exceeded"
    await asyncio.wait_for(cancelled.wait(), 5)
    await queue.shutdown()
    await queue.close()


async def test_async_shutdown_releases_running_jobs(make_aqueue: Callable[..., aio.Queue]) -> None:
    queue = make_aqueue()
    queue.configure_workers(**FAST)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(job: aio.Job) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job = await queue.create("email").attempts(2).save()
    queue.process("email", slow)
    # Running, not only claimed: a task cancelled before its first step never sees the
    # CancelledError (the job is released all the same).
    await asyncio.wait_for(started.wait(), 10)
    await queue.shutdown(timeout=100)
    done = await queue.get_job(job.id)
    assert done.state == "inactive" and done.attempts_made == 0 and cancelled.is_set()
    assert any(line.startswith("Released at shutdown") for line in await done.logs())
    await queue.close()


async def test_async_shutdown_with_fail_running_fails_them(make_aqueue: Callable[..., aio.Queue]) -> None:
    queue = make_aqueue()
    queue.configure_workers(**FAST)

    async def slow(job: aio.Job) -> None:
        await asyncio.sleep(30)

    job = await queue.create("email").save()
    queue.process("email", slow)
    await until(lambda: _eq(state_of(queue, job.id), "active"))
    await queue.shutdown(timeout=100, fail_running=True)
    done = await queue.get_job(job.id)
    assert done.state == "failed" and done.error == "Shutdown"
    await queue.close()


def test_process_before_the_loop_runs_is_deferred(backend: str) -> None:
    queue = aio.Queue(queue_prefix(backend), redis=backend)
    queue.configure_workers(**FAST)
    results: list[int] = []

    async def work(job: aio.Job) -> None:
        results.append(job.data["n"])

    queue.process("email", work)  # no running loop yet

    async def main() -> None:
        await queue.create("email", {"n": 7}).save()
        await queue.start_workers()
        await until(lambda: _true(results == [7]))
        await queue.shutdown()
        await queue.close()

    asyncio.run(main())


def test_handler_kind_is_detected() -> None:
    from kueatomic.worker.registration import handler_wants_ctx, is_async_handler

    async def a(job: Any, ctx: Any) -> None: ...

    def s(job: Any) -> None: ...

    class Callable_:
        async def __call__(self, job: Any) -> None: ...

    assert is_async_handler(a) and not is_async_handler(s) and is_async_handler(Callable_())
    assert handler_wants_ctx(a) and not handler_wants_ctx(s)


async def test_shutdown_from_inside_an_async_handler(make_aqueue: Callable[..., aio.Queue]) -> None:
    queue = make_aqueue()
    queue.configure_workers(**FAST)

    async def work(job: aio.Job) -> str:
        await queue.shutdown()
        return "stopped the worker"

    first = await queue.create("email").save()
    queue.process("email", 1, work)
    await until(lambda: _eq(state_of(queue, first.id), "complete"))
    later = await queue.create("email").save()
    await asyncio.sleep(0.3)
    assert await state_of(queue, later.id) == "inactive"
    await queue.close()


async def test_sync_handlers_get_all_their_slots(make_aqueue: Callable[..., aio.Queue]) -> None:
    """More slots than the loop's default executor has threads (min(32, cpus + 4))."""
    queue = make_aqueue()
    queue.configure_workers(**FAST)
    running, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def work(job: Any) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1

    await queue.create_bulk([{"type": "email"} for _ in range(40)])
    queue.process("email", 40, work)
    await until(lambda: _true(running[0] == 40), what="40 handlers at once")
    release.set()
    await until(lambda: _eq(queue.complete_count(), 40))
    assert peak[0] == 40
    await queue.shutdown()
    await queue.close()
