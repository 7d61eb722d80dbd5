"""Many concurrent producers of single jobs, against create_bulk, on a private redis-server.

    python3 bench/producers.py                 # about 30 s
    python3 bench/producers.py --jobs 2000     # smaller

Measures, in the same run and on the same server (a private redis-server on a free port,
never 6379): create_bulk (calls of 1,000), one caller saving jobs one after another, 200
asyncio tasks each awaiting save() in a loop on one kueatomic.aio.Queue, and 32 threads each
calling save() on one kueatomic.Queue; the concurrent ones with coalesced creates (the
default) and without (coalesce_creates=False). Reports jobs/s (median of --repeat runs) and
the errors callers got. Issue 15's targets: 200 tasks >= 50% of create_bulk, 32 threads >= 30%.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kueatomic import KueError, Queue, aio
from tests.redis_server import RedisServer


def bulk(url: str, jobs: int, _: bool) -> tuple[float, int]:
    queue = Queue(f"bulk{time.time_ns()}", url)
    started = time.perf_counter()
    for start in range(0, jobs, 1000):
        queue.create_bulk([{"type": "t", "data": {"i": i}} for i in range(start, min(jobs, start + 1000))])
    elapsed = time.perf_counter() - started
    queue.close()
    return jobs / elapsed, 0


def sequential(url: str, jobs: int, coalesce: bool) -> tuple[float, int]:
    queue = Queue(f"seq{time.time_ns()}", url, coalesce_creates=coalesce)
    started = time.perf_counter()
    for i in range(jobs):
        queue.create("t", {"i": i}).save()
    elapsed = time.perf_counter() - started
    queue.close()
    return jobs / elapsed, 0


def tasks(url: str, jobs: int, coalesce: bool, count: int = 200) -> tuple[float, int]:
    async def run() -> tuple[float, int]:
        queue = aio.Queue(f"tasks{time.time_ns()}", url, coalesce_creates=coalesce)
        errors = 0
        each = max(1, jobs // count)

        async def produce() -> None:
            nonlocal errors
            for i in range(each):
                try:
                    await queue.create("t", {"i": i}).save()
                except KueError:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(produce() for _ in range(count)))
        elapsed = time.perf_counter() - started
        await queue.close()
        return (each * count - errors) / elapsed, errors  # jobs saved, not attempts

    return asyncio.run(run())


def threads(url: str, jobs: int, coalesce: bool, count: int = 32) -> tuple[float, int]:
    queue = Queue(f"threads{time.time_ns()}", url, coalesce_creates=coalesce)
    errors = 0
    lock = threading.Lock()
    each = max(1, jobs // count)

    def produce() -> None:
        nonlocal errors
        for i in range(each):
            try:
                queue.create("t", {"i": i}).save()
            except KueError:
                with lock:
                    errors += 1

    workers = [threading.Thread(target=produce) for _ in range(count)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    queue.close()
    return (each * count - errors) / elapsed, errors  # jobs saved, not attempts


MEASURES: list[tuple[str, Callable[[str, int, bool], tuple[float, int]], bool]] = [
    ("create_bulk, calls of 1,000", bulk, True),
    ("one caller, save() after save()", sequential, True),
    ("200 asyncio tasks, save() each, coalesced", tasks, True),
    ("200 asyncio tasks, save() each, coalesce_creates=False", tasks, False),
    ("32 threads, save() each, coalesced", threads, True),
    ("32 threads, save() each, coalesce_creates=False", threads, False),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        rates: dict[str, list[float]] = {name: [] for name, _, _ in MEASURES}
        errors: dict[str, int] = dict.fromkeys(rates, 0)
        for _ in range(args.repeat):  # interleaved: each run goes through every measure
            for name, measure, coalesce in MEASURES:
                rate, failed = measure(server.url, args.jobs, coalesce)
                rates[name].append(rate)
                errors[name] += failed
        bulk_rate = statistics.median(rates[MEASURES[0][0]])
        print(f"{args.jobs:,} jobs per run, median of {args.repeat} runs "
              f"({time.strftime('%Y-%m-%d %H:%M')}):\n")
        print("| producers | jobs saved/s | of create_bulk | errors callers got |")
        print("|---|---:|---:|---:|")
        for name, _, _ in MEASURES:
            rate = statistics.median(rates[name])
            print(f"| {name} | {rate:,.0f} | {rate / bulk_rate:.0%} | {errors[name]:,} |")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
