"""One step of a measurement, run by the orchestrator inside one system's own venv:
``python -m bench.child SYSTEM STEP [options]``; prints one JSON line with the result.

Steps: ``single N`` and ``bulk N --batch B`` (timed enqueue), ``fill N`` (untimed, fastest
path), ``paced --rate R --seconds S`` (create-to-start latency producer), ``worker
--concurrency C`` (serve until killed), ``version``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import json
import os
import time
from types import ModuleType
from typing import Any

WARM_JOBS = 20  # sent before timing: connects, loads scripts, warms caches


def load(system: str) -> ModuleType:
    return importlib.import_module(f"bench.peers.{system}")


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- sync systems -------------------------------------------------------------------------

def sync_step(mod: ModuleType, url: str, args: argparse.Namespace) -> dict[str, Any]:
    producer = mod.Producer(url)
    try:
        for i in range(WARM_JOBS if args.step in ("single", "bulk") else 0):
            producer.send({"i": -1})
        payloads = [{"i": i} for i in range(args.n)]
        if args.step == "single":
            start = time.perf_counter()
            for payload in payloads:
                producer.send(payload)
            return {"seconds": time.perf_counter() - start, "jobs": args.n}
        if args.step in ("bulk", "fill"):
            batches = chunks(payloads, args.batch)
            start = time.perf_counter()
            for batch in batches:
                producer.send_many(batch)
            return {"seconds": time.perf_counter() - start, "jobs": args.n}
        if args.step == "paced":
            return paced_sync(producer, args.rate, args.seconds, args.warm)
    finally:
        producer.close()
    raise SystemExit(f"unknown step {args.step}")


def paced_payload(i: int, rate: float, warm: float) -> dict[str, Any]:
    """Jobs of the first `warm` seconds carry no create time, so no latency is recorded."""
    return {"i": i, "t": time.time()} if i >= warm * rate else {"i": i}


def paced_sync(producer: Any, rate: float, seconds: float, warm: float) -> dict[str, Any]:
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        producer.send(paced_payload(i, rate, warm))
    elapsed = time.perf_counter() - start
    return {"sent": total, "rate": total / elapsed}


# --- asyncio systems ------------------------------------------------------------------------

async def async_step(mod: ModuleType, url: str, args: argparse.Namespace) -> dict[str, Any]:
    producer = mod.Producer(url)
    await producer.start()
    try:
        for i in range(WARM_JOBS if args.step in ("single", "bulk") else 0):
            await producer.send({"i": -1})
        payloads = [{"i": i} for i in range(args.n)]
        if args.step == "single":
            start = time.perf_counter()
            for payload in payloads:
                await producer.send(payload)
            return {"seconds": time.perf_counter() - start, "jobs": args.n}
        if args.step in ("bulk", "fill"):
            batches = chunks(payloads, args.batch)
            start = time.perf_counter()
            for batch in batches:
                await producer.send_many(batch)
            return {"seconds": time.perf_counter() - start, "jobs": args.n}
        if args.step == "paced":
            total = int(args.rate * args.seconds)
            start = time.perf_counter()
            for i in range(total):
                delay = start + i / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await producer.send(paced_payload(i, args.rate, args.warm))
            return {"sent": total, "rate": total / (time.perf_counter() - start)}
    finally:
        await producer.close()
    raise SystemExit(f"unknown step {args.step}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    parser.add_argument("system")
    parser.add_argument("step", choices=["single", "bulk", "fill", "paced", "worker", "version"])
    parser.add_argument("n", type=int, nargs="?", default=0)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warm", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=0)
    args = parser.parse_args()
    url = os.environ["BENCH_REDIS_URL"]
    mod = load(args.system)
    if args.step == "version":
        print(json.dumps({"version": importlib.metadata.version(mod.DIST)}))
        return
    if args.step == "worker":
        concurrency = args.concurrency or mod.CONCURRENCY
        if getattr(mod, "ASYNC", False):
            asyncio.run(mod.work(url, concurrency))
        else:
            mod.work(url, concurrency)
        return
    if getattr(mod, "ASYNC", False):
        result = asyncio.run(async_step(mod, url, args))
    else:
        result = sync_step(mod, url, args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
