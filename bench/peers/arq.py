"""arq: each enqueue is a WATCH/MULTI transaction (job hash + ZADD); the worker polls the
queue zset and runs up to max_jobs coroutines, each job taking its own in-progress lock."""

from __future__ import annotations

import asyncio
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker, func

from bench import tally

PACKAGES = ["arq==0.28.0", "hiredis"]
DIST = "arq"
BULK_API = None
BATCH_PATH = "asyncio.gather of enqueue_job, 50 in flight (no bulk API)"
CONCURRENCY = 64
ASYNC = True
SETTINGS = ("max_jobs=64 (best of a 1-256 sweep), keep_result=0, poll_delay=0.01 s (the "
            "default 0.5 s adds up to half a second of latency), log_results off")
IN_FLIGHT = 50


async def noop(ctx: Any, payload: Any) -> None:
    tally.hit(payload)


class Producer:
    def __init__(self, url: str) -> None:
        self.settings = RedisSettings.from_dsn(url)

    async def start(self) -> None:
        self.pool = await create_pool(self.settings)

    async def send(self, payload: Any) -> None:
        await self.pool.enqueue_job("noop", payload)

    async def send_many(self, payloads: list[Any]) -> None:
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(payload: Any) -> None:
            async with gate:
                await self.pool.enqueue_job("noop", payload)

        await asyncio.gather(*(one(p) for p in payloads))

    async def close(self) -> None:
        await self.pool.aclose()


async def work(url: str, concurrency: int) -> None:
    worker = Worker(
        functions=[func(noop, name="noop")], redis_settings=RedisSettings.from_dsn(url),
        max_jobs=concurrency, keep_result=0, poll_delay=0.01, log_results=False,
        handle_signals=False,
    )
    await worker.main()
