#!/usr/bin/env python3
"""One command for the locust load test, headless, for a fixed time:

    python bench/locust_run.py [--users 30] [--spawn-rate 10] [--time 60s]
    python bench/locust_run.py --scenario coalescing [--users 200] [--time 30s]

Starts a private redis-server on a free port (never 6379), serves Kue's JSON API on it with
``kueatomic dashboard`` (uvicorn), runs ``locust -f bench/locustfile.py --headless`` against
both, and writes locust's CSV files (bench/out/locust_*.csv) and HTML report
(bench/out/locust.html). Needs kueatomic and locust in the running Python (bench/.venv/kueatomic
has both; so has the [test] extra).

``--scenario coalescing`` runs only SharedQueueProducerUser twice, the same users for the same
time, with coalesced creates (the default) and without (KUEATOMIC_COALESCE=0), and prints
requests/s, failures and latency percentiles of each, with the create_jobs calls Redis ran
(INFO commandstats), as a markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from tests.redis_server import RedisServer, free_port


def wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not answer at {url}") from None
            time.sleep(0.1)


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/locust_run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=30)
    p.add_argument("--spawn-rate", type=float, default=10)
    p.add_argument("--time", default="60s", help="locust --run-time (e.g. 30s, 2m)")
    p.add_argument("--out", type=Path, default=BENCH / "out")
    p.add_argument("--users-classes", nargs="*",
                   default=["ProducerUser", "BulkProducerUser", "ConsumerUser", "ApiUser"],
                   help="the user classes of the mix")
    p.add_argument("--scenario", choices=["mix", "coalescing"], default="mix")
    args = p.parse_args()
    if args.scenario == "coalescing":
        return coalescing(args)
    args.out.mkdir(parents=True, exist_ok=True)
    redis = RedisServer().start()
    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "kueatomic.cli", "dashboard", "-p", str(port),
                            "-r", redis.url, "--log-level", "warning"])
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/stats", api)
        env = {**os.environ, "KUEATOMIC_REDIS_URL": redis.url}
        cmd = [sys.executable, "-m", "locust", "-f", str(BENCH / "locustfile.py"), "--headless",
               "--host", base, "-u", str(args.users), "-r", str(args.spawn_rate),
               "--run-time", args.time, "--stop-timeout", "5",
               "--csv", str(args.out / "locust"), "--html", str(args.out / "locust.html"),
               "--only-summary", *args.users_classes]
        print("$", " ".join(cmd), flush=True)
        code = subprocess.run(cmd, env=env, check=False).returncode
        print(f"CSV: {args.out}/locust_stats.csv ...  HTML: {args.out / 'locust.html'}")
        return code
    finally:
        api.terminate()
        api.wait(10)
        redis.cleanup()


def coalescing(args: argparse.Namespace) -> int:
    """The same single-job producers with and without coalesced creates; a markdown table."""
    import csv

    import redis as redis_py

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for coalesce in ("1", "0"):
        server = RedisServer().start()
        try:
            env = {**os.environ, "KUEATOMIC_REDIS_URL": server.url, "KUEATOMIC_COALESCE": coalesce}
            prefix = args.out / f"locust_coalescing_{'on' if coalesce == '1' else 'off'}"
            cmd = [sys.executable, "-m", "locust", "-f", str(BENCH / "locustfile.py"),
                   "--headless", "--host", "http://127.0.0.1:1", "-u", str(args.users),
                   "-r", str(args.spawn_rate), "--run-time", args.time, "--stop-timeout", "5",
                   "--csv", str(prefix), "--only-summary", "SharedQueueProducerUser"]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, env=env, check=False, stdout=subprocess.DEVNULL)
            client = redis_py.Redis.from_url(server.url)
            calls = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
            jobs = int(client.get("q:ids") or 0)
            client.close()
        finally:
            server.cleanup()
        with open(f"{prefix}_stats.csv", newline="") as f:
            stats = next(r for r in csv.DictReader(f) if r["Name"] == "shared create().save()")
        rows.append((coalesce == "1", stats, calls, jobs))
    print(f"\n{args.users} users, {args.time}, one shared kueatomic.Queue per locust process\n")
    print("| coalescing | requests/s | failures | p50 ms | p95 ms | p99 ms | jobs created | "
          "script calls (EVALSHA) | jobs per call |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for on, st, calls, jobs in rows:
        print(f"| {'on' if on else 'off'} | {float(st['Requests/s']):,.0f} | "
              f"{st['Failure Count']} | {st['50%']} | {st['95%']} | {st['99%']} | {jobs:,} | "
              f"{calls:,} | {jobs / max(calls, 1):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
