"""kueatomic: create is one EVALSHA of lua/create_jobs.lua (create_bulk packs up to 1,000
jobs per call); workers claim and complete jobs in batches, one script call each."""

from __future__ import annotations

from typing import Any

from bench import tally
from bench.peers import QUEUE
from kueatomic import Queue

PACKAGES: list[str] = []  # kueatomic itself is installed from this checkout (bench/envs.py)
DIST = "kueatomic"
BULK_API = "Queue.create_bulk"
BATCH_PATH = ""
CONCURRENCY = 500
ASYNC = False
SETTINGS = ("threaded worker, concurrency=500 (best of a 50-1000 sweep; claims 100 per "
            "call), other defaults (completed jobs are kept, as in Kue), hiredis installed")


def noop(job: Any, ctx: Any = None) -> None:
    tally.hit(job.data)


class Producer:
    def __init__(self, url: str) -> None:
        self.queue = Queue(redis=url)

    def send(self, payload: Any) -> None:
        self.queue.create(QUEUE, payload).save()

    def send_many(self, payloads: list[Any]) -> None:
        self.queue.create_bulk([{"type": QUEUE, "data": p} for p in payloads])

    def close(self) -> None:
        self.queue.close()


def work(url: str, concurrency: int) -> None:
    queue = Queue(redis=url)
    queue.process(QUEUE, concurrency, noop)
    queue.run()
