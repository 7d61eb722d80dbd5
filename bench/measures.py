"""Issue 5's measurements 1-6, one run of one system each; every function returns records
``{"measure", "system", "value", ...}`` that bench/report.py aggregates (median, min, max).

Rates count from the first handler start to the last one, read from the tally every worker
process publishes (bench/tally.py), so process start-up and imports are not counted, and
every system is timed by the same clock in the same way.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from bench.harness import Bench

Record = dict[str, Any]


@dataclass
class Sizes:
    enqueue: int = 20_000  # jobs per timed enqueue run
    batch: int = 1_000  # jobs per bulk call
    drain: int = 20_000  # jobs per drain run
    latency_rate: float = 1_000.0  # jobs/s during the latency run
    latency_seconds: float = 5.0  # measured part (after warm_seconds)
    warm_seconds: float = 1.0
    backlogs: tuple[int, ...] = (1_000, 100_000, 1_000_000)
    claim: int = 5_000  # jobs timed per claim-scaling run (fewer when the backlog is smaller)
    fill_producers: int = 2  # producer processes for big fills
    ceiling_jobs: int = 200_000  # jobs per ceiling run


def rec(measure: str, system: str, value: float, **extra: Any) -> Record:
    return {"measure": measure, "system": system, "value": value, **extra}


def enqueue_single(bench: Bench, system: str, sizes: Sizes) -> list[Record]:
    bench.flush()
    out = bench.step(system, "single", sizes.enqueue)
    return [rec("enqueue", system, out["jobs"] / out["seconds"], unit="jobs/s")]


def enqueue_bulk(bench: Bench, system: str, sizes: Sizes) -> list[Record]:
    bench.flush()
    out = bench.step(system, "bulk", sizes.enqueue, "--batch", sizes.batch)
    return [rec("bulk", system, out["jobs"] / out["seconds"], unit="jobs/s")]


def memory(bench: Bench, system: str, sizes: Sizes) -> list[Record]:
    """Redis used_memory before and after queueing N jobs, per job (no worker running)."""
    bench.flush()
    before = bench.used_memory()
    bench.fill(system, sizes.drain)
    per_job = (bench.used_memory() - before) / sizes.drain
    return [rec("memory", system, per_job, unit="bytes/job")]


def drain(bench: Bench, system: str, sizes: Sizes, processes: int, concurrency: int
          ) -> list[Record]:
    """Queue N no-op jobs, then drain them with `processes` worker processes."""
    bench.flush()
    bench.fill(system, sizes.drain)
    bench.reset_tally()
    procs = bench.start_workers(system, processes, concurrency)
    try:
        bench.wait_count(1, procs, timeout=120)
        cpu, clock = bench.redis_cpu(), time.perf_counter()
        seen = bench.wait_count(sizes.drain, procs, timeout=max(120.0, sizes.drain / 50))
        busy = (bench.redis_cpu() - cpu) / (time.perf_counter() - clock)
    finally:
        bench.stop_workers(procs)
    rate = seen["count"] / max(seen["last"] - seen["first"], 1e-9)
    # redis_busy: the share of one core redis-server used meanwhile (near 1.0 = Redis-bound)
    return [rec(f"drain{processes}", system, rate, unit="jobs/s", redis_busy=busy)]


def end_to_end(bench: Bench, system: str, sizes: Sizes, concurrency: int) -> list[Record]:
    """The whole life of a job at full speed: one producer process creating N jobs by its
    bulk/batch path while one worker process runs them."""
    bench.flush()
    bench.reset_tally()
    procs = bench.start_workers(system, 1, concurrency)
    try:
        bench.fill(system, 1)  # the worker is up before the producer starts
        bench.wait_count(1, procs, timeout=60)
        bench.reset_tally()
        cpu, clock = bench.redis_cpu(), time.perf_counter()
        bench.step(system, "fill", sizes.drain, "--batch", sizes.batch)
        seen = bench.wait_count(sizes.drain, procs, timeout=max(120.0, sizes.drain / 50))
        busy = (bench.redis_cpu() - cpu) / (time.perf_counter() - clock)
    finally:
        bench.stop_workers(procs)
    return [rec("e2e", system, seen["count"] / max(seen["last"] - seen["first"], 1e-9),
                unit="jobs/s", redis_busy=busy)]


def latency(bench: Bench, system: str, sizes: Sizes, concurrency: int) -> list[Record]:
    """Create-to-handler-start latency at a steady rate, one producer, one worker process."""
    bench.flush()
    bench.reset_tally()
    procs = bench.start_workers(system, 1, concurrency)
    try:
        bench.fill(system, 1)  # proves the worker is up before the clock starts
        bench.wait_count(1, procs, timeout=60)
        total_seconds = sizes.warm_seconds + sizes.latency_seconds
        sent = bench.step(system, "paced", "--rate", sizes.latency_rate,
                          "--seconds", total_seconds, "--warm", sizes.warm_seconds)
        bench.wait_count(1 + sent["sent"], procs, timeout=120)
    finally:
        bench.stop_workers(procs)
    samples = sorted(bench.latencies())
    if not samples:
        raise RuntimeError(f"{system}: no latency samples")
    p50 = samples[len(samples) // 2] * 1000
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000
    return [
        rec("latency_p50", system, p50, unit="ms", samples=len(samples)),
        rec("latency_p99", system, p99, unit="ms", samples=len(samples),
            producer_rate=sent["rate"]),
    ]


class Backlog:
    """Keeps about `size` jobs queued for a system across runs: each run drains `claim`
    jobs and the next one tops the queue up again, so a 1M backlog is filled once."""

    def __init__(self, bench: Bench, system: str, size: int, sizes: Sizes) -> None:
        self.bench, self.system, self.size, self.sizes = bench, system, size, sizes
        self.queued = 0
        self.fill_seconds = 0.0
        bench.flush()

    def run(self, concurrency: int) -> list[Record]:
        bench, sizes = self.bench, self.sizes
        claim = min(self.size, sizes.claim)
        missing = self.size - self.queued
        self.fill_seconds += bench.fill(self.system, missing, sizes.fill_producers)
        self.queued = self.size
        bench.reset_tally()
        procs = bench.start_workers(self.system, 1, concurrency)
        try:
            seen = bench.wait_count(claim, procs, timeout=max(120.0, claim / 50))
        finally:
            bench.stop_workers(procs)
        after = bench.tally()["count"]  # the worker may have gone on a little past `claim`
        self.queued -= int(after)
        rate = seen["count"] / max(seen["last"] - seen["first"], 1e-9)
        return [rec(f"claim_{label(self.size)}", self.system, rate, unit="jobs/s",
                    timed_jobs=int(seen["count"]))]


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k" if n >= 1000 else str(n)


def median(values: list[float]) -> float:
    return statistics.median(values)


def settle(seconds: float = 0.5) -> None:
    """A short pause between steps so one system's exit work does not overlap the next."""
    time.sleep(seconds)
