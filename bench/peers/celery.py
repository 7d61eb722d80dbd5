"""Celery with the Redis broker (kombu): one LPUSH of a JSON message per task; the solo pool
runs tasks in the worker process itself, the fastest pool for tasks that do nothing."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, group

from bench import tally
from bench.peers import QUEUE

PACKAGES = ["celery[redis]==5.7.0", "hiredis"]
DIST = "celery"
BULK_API = None
BATCH_PATH = "group(...).apply_async() (one publish per task)"
CONCURRENCY = 1
ASYNC = False
SETTINGS = ("solo pool (faster than threads at 4-256 in a sweep), task_ignore_result, "
            "worker_prefetch_multiplier=100, --without-gossip/mingle/heartbeat, rate limits "
            "off, loglevel WARNING")

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=100,
    worker_disable_rate_limits=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop(payload: Any) -> None:
    tally.hit(payload)


class Producer:
    def __init__(self, url: str) -> None:
        pass  # the module-level app is bound to BENCH_REDIS_URL

    def send(self, payload: Any) -> None:
        noop.delay(payload)

    def send_many(self, payloads: list[Any]) -> None:
        group(noop.s(p) for p in payloads).apply_async()

    def close(self) -> None:
        pass


def work(url: str, concurrency: int) -> None:
    pool = "solo" if concurrency == 1 else "threads"
    app.worker_main([
        "worker", f"--pool={pool}", f"--concurrency={concurrency}", "--loglevel=WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", QUEUE,
        "-n", f"bench{os.getpid()}@%h",
    ])
