"""RQ: jobs pickled into a hash plus an RPUSH, one pipeline per enqueue; SimpleWorker runs
jobs in the worker process (the default Worker spawns a process per job)."""

from __future__ import annotations

from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker

from bench import tally
from bench.peers import QUEUE

PACKAGES = ["rq==3.0.0", "hiredis"]
DIST = "rq"
BULK_API = "Queue.enqueue_many"
BATCH_PATH = ""
CONCURRENCY = 1
ASYNC = False
SETTINGS = ("SimpleWorker (no process per job), result_ttl=0 (no result kept), "
            "logging at WARNING; one job at a time per process")


def noop(payload: Any) -> None:
    tally.hit(payload)


class Producer:
    def __init__(self, url: str) -> None:
        self.connection = Redis.from_url(url)
        self.queue = Queue(QUEUE, connection=self.connection)

    def send(self, payload: Any) -> None:
        self.queue.enqueue(noop, payload, result_ttl=0)

    def send_many(self, payloads: list[Any]) -> None:
        self.queue.enqueue_many(
            [Queue.prepare_data(noop, (p,), result_ttl=0) for p in payloads]
        )

    def close(self) -> None:
        self.connection.close()


def work(url: str, concurrency: int) -> None:
    connection = Redis.from_url(url)
    worker = SimpleWorker([Queue(QUEUE, connection=connection)], connection=connection)
    worker.work(logging_level="WARNING")
