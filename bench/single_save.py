"""Where one sequential ``create().save()`` spends its wall time: the script inside Redis
against a bare round trip.

    python3 bench/single_save.py [--saves 5000]

On a private redis-server (free port, never 6379): N saves one after another, with
``INFO commandstats`` around them (the script's own time inside Redis, ``usec_per_call``),
then N bare LPUSH round trips from redis-py (what huey's enqueue is). The difference
between a save and an LPUSH, less the script's time, is the client's own work.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kueatomic import Queue
from tests.redis_server import RedisServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/single_save.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saves", type=int, default=5000)
    n = parser.parse_args().saves
    server = RedisServer().start()
    try:
        queue, plain = Queue(redis=server.url), redis.Redis.from_url(server.url)
        for i in range(min(n, 500)):  # warm-up: scripts loaded, connections made
            queue.create("s", {"i": i}).save()
        rows = []
        for label, command, run in (
                ("create().save()", "evalsha", lambda i: queue.create("s", {"i": i}).save()),
                ("bare LPUSH (redis-py)", "lpush", lambda i: plain.lpush("plain", b"x" * 200))):
            plain.config_resetstat()
            start = time.perf_counter()
            for i in range(n):
                run(i)
            wall = (time.perf_counter() - start) / n * 1e6
            inside = plain.info("commandstats")[f"cmdstat_{command}"]["usec_per_call"]
            rows.append((label, 1e6 / wall, wall, inside))
        queue.close()
        plain.close()
    finally:
        server.cleanup()
    print(f"{n:,} calls each, one after another\n")
    print("| call | per second | wall us per call | inside Redis us per call |")
    print("|---|---:|---:|---:|")
    for label, rate, wall, inside in rows:
        print(f"| {label} | {rate:,.0f} | {wall:.0f} | {inside:.1f} |")


if __name__ == "__main__":
    main()
