"""Process the jobs of examples/sync_producer.py with a kueatomic.Worker (threads).

    REDIS_URL=redis://127.0.0.1:6380/0 python examples/sync_worker.py --until-empty
    REDIS_URL=redis://127.0.0.1:6380/0 python examples/sync_worker.py --jobs 6

Exits after --jobs N jobs have finished, or (--until-empty) once no email job is waiting or
running; with neither it runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Any

from kueatomic import Queue, Worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=0, help="exit after this many jobs (0: no limit)")
    parser.add_argument("--until-empty", action="store_true",
                        help="exit once no email job is inactive, active or delayed")
    parser.add_argument("--prefix", default="q", help="the queue's prefix (q)")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    queue = Queue(prefix=args.prefix, redis=os.environ.get("REDIS_URL", "memory://"))
    worker = Worker(queue, lease_ms=15000)
    done = 0
    lock = threading.Lock()
    finished = threading.Event()

    def send(job: Any, ctx: Any) -> dict[str, Any]:
        nonlocal done
        job.log("sending to %s", job.data["to"])
        job.progress(1, 2, {"stage": "smtp"})
        time.sleep(0.01)  # the actual work
        with lock:
            done += 1
            print(f"processed job {job.id}: {job.data['title']}", flush=True)
            if args.jobs and done >= args.jobs:
                ctx.shutdown()  # no more claims for this type: the main thread may be late
                finished.set()
        return {"sent": True}

    worker.process("email", args.concurrency, send)
    if not args.jobs and not args.until_empty:
        try:
            worker.run()  # blocks until SIGINT/SIGTERM, then shuts down gracefully
        finally:
            queue.close()
        return

    worker.start()
    try:
        while not finished.wait(0.1):
            if args.until_empty and not (queue.inactive_count("email") or queue.active_count("email")
                                         or queue.delayed_count("email")):
                break
    finally:
        worker.shutdown(timeout=5000)
        print(f"done: {done} jobs processed, {queue.complete_count('email')} complete, "
              f"{queue.failed_count('email')} failed", flush=True)
        queue.close()


if __name__ == "__main__":
    main()
