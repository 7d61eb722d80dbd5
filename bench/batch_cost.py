"""What one claim or completion call costs on its own, apart from its jobs: the figure that
says what completing a batch and claiming the next in one script (BullMQ's moveToFinished)
could save inside Redis.

    python3 bench/batch_cost.py             # about 40 s; needs valgrind and redis-server
    python3 bench/batch_cost.py --jobs 400  # smaller

The same jobs are claimed (activate_jobs) and completed (complete_jobs) in calls of two
sizes, under callgrind as in bench/lua_cost.py. A call of k jobs costs fixed + k x per_job,
so the two totals give both parts (at small --jobs, Redis's Lua GC step every 50 calls
blurs the fixed part). A combined complete-and-claim call would pay one fixed
part where the worker pays two today: the saving per job is at most the smaller fixed part
over the batch size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.lua_cost import claim_all, dump, under_callgrind
from kueatomic import Queue
from kueatomic.worker import calls

SIZES = (100, 25)  # jobs per call: the worker's batch, and a smaller one


def run(url: str, pid: int, jobs_n: int) -> None:
    for size in SIZES:
        # Each size on its own queue: both start from the same empty sets.
        queue = Queue(f"b{size}", redis=url)
        queue.driver.load_all()
        execute = queue.driver.execute
        for start in range(0, jobs_n, 1000):
            queue.create_bulk([{"type": "w", "data": {"i": i}}
                               for i in range(start, min(start + 1000, jobs_n))])
        dump(pid, f"fill{size}")
        claimed = claim_all(queue, jobs_n, size)
        dump(pid, f"claim{size}")
        for start in range(0, jobs_n, size):
            execute([calls.complete(queue.keys, claimed[start : start + size])])
        dump(pid, f"complete{size}")
        queue.close()


def parts(total_big: float, total_small: float, jobs_n: int) -> tuple[float, float]:
    """(fixed per call, per job) from the totals of the two call sizes."""
    big, small = SIZES
    calls_big, calls_small = jobs_n / big, jobs_n / small
    fixed = (total_small - total_big) / (calls_small - calls_big)
    return fixed, (total_big - calls_big * fixed) / jobs_n


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/batch_cost.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per phase")
    args = parser.parse_args()
    if args.jobs % SIZES[0]:
        parser.error(f"--jobs must be a multiple of {SIZES[0]}")
    _, counts = under_callgrind(lambda url, pid: run(url, pid, args.jobs))
    print("| script | fixed per call | per job | per job in calls of "
          f"{SIZES[0]} |\n|---|---:|---:|---:|")
    fixed_parts = []
    for script, phase in (("activate_jobs", "claim"), ("complete_jobs", "complete")):
        fixed, per_job = parts(counts[f"{phase}{SIZES[0]}"], counts[f"{phase}{SIZES[1]}"],
                               args.jobs)
        fixed_parts.append(fixed)
        print(f"| {script} | {fixed:,.0f} | {per_job:,.0f} | "
              f"{per_job + fixed / SIZES[0]:,.0f} |")
    saved = min(fixed_parts) / SIZES[0]
    print(f"\nOne combined call per batch of {SIZES[0]} would save at most {saved:,.0f} "
          "instructions per job inside Redis.")


if __name__ == "__main__":
    main()
