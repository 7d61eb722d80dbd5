"""Dramatiq: each message is one Lua call (dispatch script); workers prefetch messages in
batches and run them on a thread pool."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench import tally
from bench.peers import QUEUE

PACKAGES = ["dramatiq[redis]==2.2.1", "hiredis"]
DIST = "dramatiq"
BULK_API = None
BATCH_PATH = "group(...).run() (one enqueue per message)"
CONCURRENCY = 64
ASYNC = False
SETTINGS = ("RedisBroker, default middleware, max_retries=0, one worker process with 64 "
            "threads (best of a 1-256 sweep; default 8), default prefetch (2 x threads)")

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(payload: Any) -> None:
    tally.hit(payload)


class Producer:
    def __init__(self, url: str) -> None:
        pass  # the module-level broker is bound to BENCH_REDIS_URL

    def send(self, payload: Any) -> None:
        noop.send(payload)

    def send_many(self, payloads: list[Any]) -> None:
        dramatiq.group(noop.message(p) for p in payloads).run()

    def close(self) -> None:
        pass


def work(url: str, concurrency: int) -> None:
    worker = dramatiq.Worker(broker, worker_threads=concurrency)
    worker.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    worker.stop()
