"""Huey: a pickled message LPUSHed to one list; the consumer BRPOPs (blocking storage, the
default) into a pool of worker threads."""

from __future__ import annotations

import os
from typing import Any

from huey import RedisHuey

from bench import tally
from bench.peers import QUEUE

PACKAGES = ["huey==3.5.4", "redis", "hiredis"]
DIST = "huey"
BULK_API = None
BATCH_PATH = "loop of task() calls (no bulk API)"
CONCURRENCY = 64
ASYNC = False
SETTINGS = ("RedisHuey with blocking dequeue (default), results=False, thread consumer "
            "with 64 worker threads (best of a 1-256 sweep, bench/sweep.py), periodic off")

huey = RedisHuey(QUEUE, url=os.environ.get("BENCH_REDIS_URL"), results=False)


@huey.task()
def noop(payload: Any) -> None:
    tally.hit(payload)


class Producer:
    def __init__(self, url: str) -> None:
        pass  # the module-level huey instance is bound to BENCH_REDIS_URL

    def send(self, payload: Any) -> None:
        noop(payload)

    def send_many(self, payloads: list[Any]) -> None:
        for payload in payloads:
            noop(payload)

    def close(self) -> None:
        pass


def work(url: str, concurrency: int) -> None:
    import logging

    logging.getLogger("huey").setLevel(logging.WARNING)
    consumer = huey.create_consumer(workers=concurrency, worker_type="thread", periodic=False)
    consumer.run()
