"""Create a few jobs with options on a kueatomic.Queue (the sync API).

    REDIS_URL=redis://127.0.0.1:6380/0 python examples/sync_producer.py [--jobs 5] [--prefix q]

Prints one line per job saved. REDIS_URL defaults to the embedded engine (memory://), which
lives only as long as this process: give a real Redis to see the jobs from a worker.
"""

from __future__ import annotations

import argparse
import os

from kueatomic import Queue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5, help="how many jobs to create (5)")
    parser.add_argument("--prefix", default="q", help="the queue's prefix (q)")
    args = parser.parse_args()

    queue = Queue(prefix=args.prefix, redis=os.environ.get("REDIS_URL", "memory://"))
    try:
        for i in range(args.jobs):
            job = (queue.create("email", {"title": f"welcome email #{i}", "to": f"user{i}@example.com"})
                   .priority("high" if i % 2 == 0 else "normal")
                   .attempts(3)
                   .backoff({"type": "exponential", "delay": 100})
                   .ttl(10_000)
                   .save())
            print(f"created job {job.id} (email, priority {'high' if i % 2 == 0 else 'normal'})")
        # One call for many jobs; errors come back in place of the job they concern.
        bulk = queue.create_bulk([{"type": "email", "data": {"title": "bulk job", "to": "bulk@example.com"},
                                   "options": {"priority": "low"}}])
        for item in bulk:
            print(f"created job {item.id} (email, bulk)" if hasattr(item, "id") else f"refused: {item}")
        print(f"inactive email jobs: {queue.inactive_count('email')}")
    finally:
        queue.close()


if __name__ == "__main__":
    main()
