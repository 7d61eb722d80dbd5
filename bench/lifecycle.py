"""Issue 13's two measures, on a private redis-server (a free port, never 6379):

    python3 bench/lifecycle.py rate      # a drain under a 10,000 jobs/s rate limit (~15 s)
    python3 bench/lifecycle.py memory    # Redis memory over a 1,000,000-job drain (~2-3 min)

``rate``: --jobs no-op jobs (default 80,000) drained by one threaded worker (concurrency 500,
claims of 100) with ``rate_limit=(10000, 1000)``. From every job's started_at: the jobs started
in each full window, the mean over the windows, and the most in any window (which must not
pass the limit); the target is a mean within 5% of the limit.

``memory``: --jobs jobs (default 1,000,000), each created with ``remove_on_complete({"count":
1000})`` by a producer thread (create_bulk calls of 1,000, keeping at most 20,000 waiting) while
one worker drains them. Every --every completed jobs (default 100,000) it samples the server's
used_memory and DBSIZE: with the retention policy both stay flat, where a drain that keeps its
completed jobs (Kue's default) grows by about 600 bytes per job.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import kueatomic
from kueatomic import Queue
from tests.redis_server import RedisServer


def rate(url: str, jobs: int, limit: int, window_ms: int) -> None:
    queue = Queue("rate", url)
    for start in range(0, jobs, 1000):
        queue.create_bulk([{"type": "t"} for _ in range(start, min(jobs, start + 1000))])
    worker = kueatomic.Worker(queue, upkeep_interval_ms=500)
    worker.process("t", 500, lambda job: None, rate_limit=(limit, window_ms))
    began = time.perf_counter()
    worker.start()
    while queue.complete_count() < jobs:
        time.sleep(0.2)
    elapsed = time.perf_counter() - began
    worker.shutdown(timeout=5000)
    starts = sorted(int(queue.client.hget(queue.keys.job(i), "started_at")) for i in range(1, jobs + 1))
    first, last = starts[0], starts[-1]
    windows = (last - first) // window_ms  # full windows only: the last one is cut short
    per_window = [0] * windows
    for at in starts:
        index = (at - first) // window_ms
        if index < windows:
            per_window[index] += 1
    mean = sum(per_window) / windows * 1000 / window_ms
    busiest = max(per_window) * 1000 / window_ms
    print(f"| rate limit | {limit:,} jobs / {window_ms} ms |")
    print(f"| jobs | {jobs:,} in {elapsed:.1f} s |")
    print(f"| full windows | {windows} (windows counted from the first start) |")
    print(f"| mean rate over the full windows | {mean:,.0f} jobs/s ({mean / limit * 1000 / window_ms - 1:+.1%} of the limit) |")
    print(f"| busiest window | {busiest:,.0f} jobs/s |")
    print(f"| quietest window | {min(per_window) * 1000 / window_ms:,.0f} jobs/s |")
    queue.close()


def memory(url: str, jobs: int, every: int, keep: int) -> None:
    queue = Queue("mem", url)
    producer_done = threading.Event()

    def produce() -> None:
        made = 0
        while made < jobs:
            if queue.inactive_count("t") > 20_000:
                time.sleep(0.01)
                continue
            n = min(1000, jobs - made)
            queue.create_bulk([queue.create("t", {"n": made + i}).remove_on_complete({"count": keep})
                               for i in range(n)])
            made += n
        producer_done.set()

    worker = kueatomic.Worker(queue, upkeep_interval_ms=500)
    worker.process("t", 500, lambda job: None)
    worker.start()
    threading.Thread(target=produce, daemon=True).start()
    began = time.perf_counter()
    print("| jobs completed | used_memory (MB) | keys in the db | completed jobs kept | elapsed (s) |")
    print("|---:|---:|---:|---:|---:|")
    mark = every
    while True:
        done = int(queue.client.get(queue.keys.ids) or 0) - queue.inactive_count() - queue.active_count()
        if done >= mark or (producer_done.is_set() and done >= jobs):
            info = queue.client.info("memory")
            print(f"| {done:,} | {info['used_memory'] / 1e6:.1f} | {queue.client.dbsize():,} | "
                  f"{queue.complete_count():,} | {time.perf_counter() - began:.0f} |", flush=True)
            mark += every
            if done >= jobs:
                break
        time.sleep(0.05)
    worker.shutdown(timeout=5000)
    queue.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("measure", choices=("rate", "memory"))
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--limit", type=int, default=10_000, help="rate: jobs per window")
    parser.add_argument("--window-ms", type=int, default=1000, help="rate: the window")
    parser.add_argument("--every", type=int, default=100_000, help="memory: sample interval")
    parser.add_argument("--keep", type=int, default=1000, help="memory: the policy's count")
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        version = Queue("v", server.url).client.info("server")["redis_version"]
        print(f"python3 bench/lifecycle.py {' '.join(sys.argv[1:])}  (redis-server {version}, "
              f"kueatomic {kueatomic.__version__})\n")
        if args.measure == "rate":
            print("| measure | value |\n|---|---|")
            rate(server.url, args.jobs or 80_000, args.limit, args.window_ms)
        else:
            memory(server.url, args.jobs or 1_000_000, args.every, args.keep)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
