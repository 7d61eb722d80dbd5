"""A producer and a worker in one asyncio program, on kueatomic.aio.

    REDIS_URL=redis://127.0.0.1:6380/0 python examples/asyncio_app.py [--jobs 10]

The producer creates --jobs jobs (some one by one, the rest in one create_bulk call) while an
aio.Worker runs them as asyncio tasks; the program exits when every job is complete.
REDIS_URL defaults to the embedded engine (memory://).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

import kueatomic.aio


async def main(jobs: int, prefix: str) -> int:
    queue = kueatomic.aio.Queue(prefix, os.environ.get("REDIS_URL", "memory://"))
    worker = kueatomic.aio.Worker(queue, lease_ms=15000)
    all_done = asyncio.Event()
    done = 0

    async def resize(job: Any, ctx: Any) -> dict[str, Any]:
        nonlocal done
        await job.log("resizing %s to %dpx", job.data["src"], job.data["width"])
        await asyncio.sleep(0.01)  # the actual (non-blocking) work
        await job.progress(1, 1)
        done += 1
        print(f"processed job {job.id}: {job.data['src']}", flush=True)
        if done >= jobs:
            all_done.set()
        return {"width": job.data["width"]}

    worker.process("image", 5, resize)
    await worker.start()
    try:
        half = jobs // 2
        for i in range(half):
            job = await (queue.create("image", {"src": f"photo{i}.jpg", "width": 640})
                         .priority("high").attempts(2).save())
            print(f"created job {job.id}", flush=True)
        created = await queue.create_bulk([{"type": "image", "data": {"src": f"photo{i}.jpg", "width": 320}}
                                           for i in range(half, jobs)])
        print(f"created {len(created)} jobs in one call", flush=True)
        await asyncio.wait_for(all_done.wait(), timeout=60)
    finally:
        await worker.shutdown(timeout=5000)
    complete = await queue.complete_count("image")
    print(f"done: {done} jobs processed, {complete} complete", flush=True)
    await worker.close()
    await queue.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--prefix", default="q")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.jobs, args.prefix)))
