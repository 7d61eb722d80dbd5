"""Locust users that drive kueatomic the way its users do.

    python bench/locust_run.py            # the one command: private Redis + API server + locust

Users (weights give the mix; ConsumerUser is a fixed count):
- SharedQueueProducerUser  only in ``--scenario coalescing`` (its users, no other class): many
                    users creating single jobs as fast as they can on ONE shared
                    ``Queue``, as the request handlers of one web process do; concurrent
                    ``save()`` calls are coalesced into one create_jobs call
                    (KUEATOMIC_COALESCE=0 turns that off, for the comparison)
- ProducerUser      creates one job per call with the Python client (``Queue.create().save()``)
- BulkProducerUser  creates 100 jobs per call (``Queue.create_bulk``)
- ConsumerUser      a worker (``queue.process``) running the jobs; each job reports its
                    create-to-start latency as a "worker" request
- ApiUser           an HTTP client of Kue's JSON API (``kueatomic.web.create_app`` served by
                    ``kueatomic dashboard``): stats, ranges, one job, its log, types, POST /job
Python-client calls are reported to locust as requests (type "python"), with their response
time and exception, so locust's tables, charts and CSV show them beside the HTTP ones.

Environment: KUEATOMIC_REDIS_URL (the Redis the Python users talk to); locust's --host is the
API's base URL.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from locust import HttpUser, User, between, constant_pacing, task

from kueatomic import Queue

REDIS_URL = os.environ.get("KUEATOMIC_REDIS_URL", "")
JOB_TYPE = "locust"
PRIORITIES = ["low", "normal", "normal", "normal", "medium", "high", "critical"]


def redis_url() -> str:
    if not REDIS_URL or REDIS_URL.rstrip("/").endswith(":6379") or ":6379/" in REDIS_URL:
        # Someone's real data lives on 6379: this load test only runs on a Redis it was given.
        raise RuntimeError("set KUEATOMIC_REDIS_URL to a private Redis (bench/locust_run.py "
                           "starts one); refusing to load 127.0.0.1:6379")
    return REDIS_URL


@contextmanager
def reported(environment: Any, name: str, request_type: str = "python") -> Iterator[None]:
    """Time a Python-client call and fire it as a locust request (failures included)."""
    start = time.perf_counter()
    exception: BaseException | None = None
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - reported to locust; the user goes on
        exception = exc
    environment.events.request.fire(
        request_type=request_type, name=name, response_time=(time.perf_counter() - start) * 1000,
        response_length=0, exception=exception, context={},
    )


def payload() -> dict[str, Any]:
    return {"title": f"locust job {random.randrange(10**6)}", "t": time.time()}


class ProducerUser(User):
    """A web app or script enqueueing one job per request."""

    weight = 6
    wait_time = constant_pacing(0.02)  # at most 50 creates/s per user

    def on_start(self) -> None:
        self.queue = Queue(redis=redis_url())

    def on_stop(self) -> None:
        self.queue.close()

    @task
    def create(self) -> None:
        with reported(self.environment, "create().save()"):
            (self.queue.create(JOB_TYPE, payload()).priority(random.choice(PRIORITIES))
             .attempts(2).save())


_shared: dict[str, Queue] = {}


def shared_queue() -> Queue:
    """One Queue for every SharedQueueProducerUser of this locust process (greenlets under
    gevent's patched threading, so the sync queue's coalescing works as with threads)."""
    if "queue" not in _shared:
        coalesce = os.environ.get("KUEATOMIC_COALESCE", "1") != "0"
        _shared["queue"] = Queue(redis=redis_url(), coalesce_creates=coalesce)
    return _shared["queue"]


class SharedQueueProducerUser(User):
    """A request handler of a busy web process: one job per request, no pause, on the
    process's one Queue. Not in bench/locust_run.py's default mix: ``--scenario coalescing``."""

    wait_time = constant_pacing(0)

    @task
    def create(self) -> None:
        with reported(self.environment, "shared create().save()"):
            shared_queue().create(JOB_TYPE, payload()).save()


class BulkProducerUser(User):
    """A batch importer creating 100 jobs per call."""

    weight = 1
    wait_time = constant_pacing(0.2)

    def on_start(self) -> None:
        self.queue = Queue(redis=redis_url())

    def on_stop(self) -> None:
        self.queue.close()

    @task
    def create_bulk(self) -> None:
        with reported(self.environment, "create_bulk(100)"):
            self.queue.create_bulk([{"type": JOB_TYPE, "data": payload()} for _ in range(100)])


class ConsumerUser(User):
    """A worker process's worth of consumption: ``queue.process`` with 50 slots. Each job
    reports its create-to-start latency (from the producer's timestamp) as a request."""

    fixed_count = 1
    wait_time = between(1, 1)

    def on_start(self) -> None:
        self.queue = Queue(redis=redis_url())
        environment = self.environment

        def handler(job: Any, ctx: Any = None) -> None:
            created = job.data.get("t") if isinstance(job.data, dict) else None
            environment.events.request.fire(
                request_type="worker", name="create→start",
                response_time=(time.time() - created) * 1000 if created else 0,
                response_length=0, exception=None, context={},
            )

        self.queue.process(JOB_TYPE, 50, handler)

    def on_stop(self) -> None:
        self.queue.shutdown(timeout=2000)
        self.queue.close()

    @task
    def watch(self) -> None:
        """Report the backlog the worker faces (one ZCARD), like a dashboard would."""
        with reported(self.environment, "inactive_count()"):
            self.queue.inactive_count(JOB_TYPE)


class ApiUser(HttpUser):
    """A dashboard or a service using Kue's JSON API."""

    weight = 3
    wait_time = between(0.05, 0.2)

    @task(4)
    def stats(self) -> None:
        self.client.get("/stats")

    @task(3)
    def range_by_state(self) -> None:
        state = random.choice(["inactive", "active", "complete"])
        self.client.get(f"/jobs/{state}/0..19/desc", name="/jobs/[state]/0..19/desc")

    @task(2)
    def one_job(self) -> None:
        with self.client.get("/jobs/0..0/desc", name="/jobs/0..0/desc", catch_response=True) as r:
            jobs = r.json() if r.ok else []
        if jobs:
            job_id = jobs[0]["id"]
            self.client.get(f"/job/{job_id}", name="/job/[id]")
            self.client.get(f"/job/{job_id}/log", name="/job/[id]/log")

    @task(1)
    def types(self) -> None:
        self.client.get("/job/types")

    @task(2)
    def create_via_api(self) -> None:
        self.client.post("/job", json={"type": JOB_TYPE, "data": payload(),
                                       "options": {"priority": "high", "attempts": 2}})


