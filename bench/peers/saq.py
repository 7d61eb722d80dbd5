"""saq: each enqueue is one Lua call plus a job key; workers BLMOVE job ids (blocking, no
polling) and run up to `concurrency` coroutines per process."""

from __future__ import annotations

import asyncio
from typing import Any

from saq import Queue, Worker

from bench import tally
from bench.peers import QUEUE

# saq imports typing_extensions without declaring it
PACKAGES = ["saq[redis,hiredis]==0.26.4", "hiredis", "typing_extensions"]
DIST = "saq"
BULK_API = None
BATCH_PATH = "asyncio.gather of enqueue, 50 in flight (map() also waits for results)"
CONCURRENCY = 16
ASYNC = True
SETTINGS = "Worker(concurrency=16: best of a 1-256 sweep; default 10), hiredis"
IN_FLIGHT = 50


async def noop(ctx: Any, *, payload: Any) -> None:
    tally.hit(payload)


class Producer:
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        self.queue = Queue.from_url(self.url, name=QUEUE)
        await self.queue.connect()

    async def send(self, payload: Any) -> None:
        await self.queue.enqueue("noop", payload=payload)

    async def send_many(self, payloads: list[Any]) -> None:
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(payload: Any) -> None:
            async with gate:
                await self.queue.enqueue("noop", payload=payload)

        await asyncio.gather(*(one(p) for p in payloads))

    async def close(self) -> None:
        await self.queue.disconnect()


async def work(url: str, concurrency: int) -> None:
    queue = Queue.from_url(url, name=QUEUE)
    worker = Worker(queue, functions=[noop], concurrency=concurrency)
    await worker.start()
