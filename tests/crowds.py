"""Many callers at once on one queue: threads, and a full pool that must make them wait."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from kueatomic import Queue, aio


def in_threads(count: int, target: Any, timeout: float = 60) -> None:
    """``target(n)`` in ``count`` threads at once, n = 0..count - 1; back when all ended
    (each given ``timeout`` s)."""
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)


def crowd_a_small_pool(url: str, prefix: str = "q") -> None:
    """Coalescing off, 40 threads and 200 tasks on pools of 3 connections (``url`` plus
    max_connections=3): every call waits for a free connection and succeeds (redis-py's own
    pools fail them: Too many connections). Shared by the one-Redis, Cluster and Sentinel
    tests."""
    small = url + ("&" if "?" in url else "?") + "max_connections=3"
    queue = Queue(prefix, redis=small, coalesce_creates=False)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for _ in range(10):
                job = queue.create("t", {"x": 1}).save()
                queue.get_job(job.id)
        except BaseException as exc:  # noqa: BLE001 - the test counts them
            errors.append(exc)

    in_threads(40, lambda _: produce())
    assert errors == [] and queue.inactive_count("t") == 400
    queue.close()

    async def tasks() -> int:
        aqueue = aio.Queue(prefix, redis=small, coalesce_creates=False)
        jobs = await asyncio.gather(*(aqueue.create("u").save() for _ in range(200)))
        await asyncio.gather(*(aqueue.get_job(job.id) for job in jobs))
        count = await aqueue.inactive_count("u")
        await aqueue.close()
        return count

    assert asyncio.run(tasks()) == 200
