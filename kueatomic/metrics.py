"""Prometheus metrics (the ``metrics`` extra: ``pip install 'kueatomic[metrics]'``).

Nothing else in kueatomic imports this module, so ``prometheus_client`` is needed only by
who uses it. Three pieces:

- ``JobsCollector``: the ``kueatomic_jobs{queue,state,type}`` gauge, read from Redis at scrape
  time (the types, then every count in one pipelined round trip: ``shards.type_counts``);
- ``WorkerMetrics``: a worker's ``Observer`` (``kueatomic.worker.core``), the counters and
  histograms of claims, runs and outcomes; pass it as ``Worker(queue, observer=...)``;
- ``Metrics.track_created()``: ``kueatomic_jobs_created_total`` for the jobs the queues of this
  process create.

``kueatomic worker --metrics-port N`` and the web app's ``GET /metrics`` wire them up; the
names are listed in README.md ("Metrics").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

__all__ = ["REGISTRY", "CollectorRegistry", "JobsCollector", "Metrics", "StaticCollector",
           "WorkerMetrics", "default", "jobs_family", "serve", "wait_ms"]

from . import queue_base
from .shards import type_counts
from .worker.core import Observer
from .worker.heartbeat import wait_ms  # the wait the registry's activity counts too
from .worker.registration import InFlight

log = logging.getLogger("kueatomic.metrics")

# Seconds: from a millisecond job to a long batch job.
RUN_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
               300.0, 1800.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
                3600.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def jobs_family(prefix: str, counts: dict[str, dict[str, int]],
                family: GaugeMetricFamily | None = None) -> GaugeMetricFamily:
    """``kueatomic_jobs`` samples of one queue (added to ``family`` if given)."""
    if family is None:
        family = GaugeMetricFamily("kueatomic_jobs", "Jobs in the queue by state and type",
                                   labels=["queue", "state", "type"])
    for job_type, by_state in counts.items():
        for state, count in by_state.items():
            family.add_metric([prefix, state, job_type], count)
    return family


class JobsCollector(Collector):
    """``kueatomic_jobs`` for sync ``kueatomic.Queue`` objects, read at each scrape (one round
    of reads per queue). A queue whose Redis is unavailable is left out (and logged)."""

    def __init__(self, *queues: Any) -> None:
        self.queues = list(queues)

    def describe(self) -> list[Any]:
        return []  # no reads when registered

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = jobs_family("", {})
        for queue in self.queues:
            try:
                counts = queue._run(type_counts(queue.keys))
            except Exception as exc:  # noqa: BLE001 - a scrape must still answer
                log.warning("kueatomic_jobs of %s not collected: %s", queue.prefix, exc)
                continue
            jobs_family(queue.prefix, counts, family)
        yield family


class StaticCollector(Collector):
    """Families computed beforehand (the web app reads the counts asynchronously)."""

    def __init__(self, families: Sequence[Any]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Any]:
        yield from self.families


class Metrics:
    """The counters and histograms of one registry (default: prometheus_client's)."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.registry = registry
        pair = ["queue", "type"]
        self.created = Counter("kueatomic_jobs_created", "Jobs created by this process",
                               pair, registry=registry)
        self.started = Counter("kueatomic_jobs_started", "Job attempts started (handler "
                               "called)", pair, registry=registry)
        self.completed = Counter("kueatomic_jobs_completed", "Job attempts whose handler "
                                 "returned", pair, registry=registry)
        self.failed = Counter("kueatomic_jobs_failed", "Job attempts that failed (handler "
                              "raised, or the job could not be loaded)", pair, registry=registry)
        self.released = Counter("kueatomic_jobs_released", "Jobs released back to inactive "
                                "at shutdown, no attempt used", pair, registry=registry)
        self.stalled = Counter("kueatomic_jobs_stalled", "Jobs whose lease this worker lost "
                               "(stalled past the lease or ttl, or moved by hand)", pair,
                               registry=registry)
        self.outages = Counter("kueatomic_redis_outages", "Outage episodes (Redis "
                               "unavailable) a worker loop went through", ["queue", "loop"],
                               registry=registry)
        self.run_seconds = Histogram("kueatomic_job_run_seconds", "Handler duration",
                                     pair, buckets=RUN_BUCKETS, registry=registry)
        self.wait_seconds = Histogram("kueatomic_job_wait_seconds", "From created (or "
                                      "promoted, for a delayed job) to claimed, by the Redis "
                                      "clock", pair, buckets=WAIT_BUCKETS, registry=registry)
        self.claim_batch = Histogram("kueatomic_claim_batch_size", "Jobs per claim call that "
                                     "took any", pair, buckets=BATCH_BUCKETS, registry=registry)
        self._tracking = False

    def worker(self, queue: Any) -> WorkerMetrics:
        """An observer for a worker of ``queue`` (``Worker(queue, observer=...)``)."""
        return WorkerMetrics(self, queue.prefix)

    def track_created(self) -> Metrics:
        """Count the jobs every queue of this process creates (idempotent)."""
        if not self._tracking:
            self._tracking = True
            queue_base.CREATED_HOOKS.append(self._created)
        return self

    def untrack_created(self) -> None:
        if self._tracking:
            self._tracking = False
            queue_base.CREATED_HOOKS.remove(self._created)

    def _created(self, prefix: str, job_type: str, count: int) -> None:
        self.created.labels(prefix, job_type).inc(count)


_default: Metrics | None = None
_default_lock = threading.Lock()


def default() -> Metrics:
    """The process's ``Metrics`` on prometheus_client's default registry, made once; it
    counts created jobs."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics().track_created()
        return _default


class WorkerMetrics(Observer):
    """The worker ``Observer`` that feeds ``Metrics`` for the queue ``prefix``."""

    def __init__(self, metrics: Metrics, prefix: str) -> None:
        self.metrics = metrics
        self.prefix = prefix

    def claimed(self, job_type: str, records: Sequence[InFlight]) -> None:
        if records:
            self.metrics.claim_batch.labels(self.prefix, job_type).observe(len(records))

    def started(self, record: InFlight) -> None:
        job_type = record.reg.job_type
        self.metrics.started.labels(self.prefix, job_type).inc()
        wait = wait_ms(record.fields)
        if wait is not None:
            self.metrics.wait_seconds.labels(self.prefix, job_type).observe(wait / 1000)

    def finished(self, record: InFlight, ok: bool, duration_ms: int | None) -> None:
        job_type = record.reg.job_type
        (self.metrics.completed if ok else self.metrics.failed).labels(self.prefix,
                                                                       job_type).inc()
        if duration_ms is not None:
            self.metrics.run_seconds.labels(self.prefix, job_type).observe(duration_ms / 1000)

    def released(self, job_type: str, count: int) -> None:
        self.metrics.released.labels(self.prefix, job_type).inc(count)

    def lost(self, record: InFlight) -> None:
        self.metrics.stalled.labels(self.prefix, record.reg.job_type).inc()

    def outage(self, loop: str) -> None:
        self.metrics.outages.labels(self.prefix, loop).inc()


def serve(port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> Any:
    """``prometheus_client.start_http_server`` on ``host:port`` (a daemon thread)."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=registry)
