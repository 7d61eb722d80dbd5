"""bullmq (the Python port of BullMQ): every enqueue and every move is a Lua script, as in
kueatomic; the worker fetches one job per script call and runs up to `concurrency`
coroutines."""

from __future__ import annotations

import asyncio
from typing import Any

from bullmq import Queue, Worker

from bench import tally
from bench.peers import QUEUE

PACKAGES = ["bullmq==3.4.4", "hiredis"]
DIST = "bullmq"
BULK_API = "Queue.addBulk"
BATCH_PATH = ""
CONCURRENCY = 16
ASYNC = True
SETTINGS = ("Worker(concurrency=16: best of a 1-256 sweep), jobs with removeOnComplete=True "
            "(BullMQ's advice)")
JOB_OPTS = {"removeOnComplete": True}


async def noop(job: Any, token: str) -> None:
    tally.hit(job.data)


class Producer:
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        self.queue = Queue(QUEUE, {"connection": self.url})

    async def send(self, payload: Any) -> None:
        await self.queue.add("noop", payload, JOB_OPTS)

    async def send_many(self, payloads: list[Any]) -> None:
        await self.queue.addBulk([{"name": "noop", "data": p, "opts": JOB_OPTS} for p in payloads])

    async def close(self) -> None:
        await self.queue.close()


async def work(url: str, concurrency: int) -> None:
    Worker(QUEUE, noop, {"connection": url, "concurrency": concurrency})
    await asyncio.Event().wait()  # the worker runs as a task until the process is killed
