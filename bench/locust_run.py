#!/usr/bin/env python3
"""One command for the locust load test, headless, for a fixed time:

    python bench/locust_run.py [--users 30] [--spawn-rate 10] [--time 60s]

Starts a private redis-server on a free port (never 6379), serves Kue's JSON API on it with
``kueatomic dashboard`` (uvicorn), runs ``locust -f bench/locustfile.py --headless`` against
both, and writes locust's CSV files (bench/out/locust_*.csv) and HTML report
(bench/out/locust.html). Needs kueatomic and locust in the running Python (bench/.venv/kueatomic
has both; so has the [test] extra).
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
    p.add_argument("--users-classes", nargs="*", default=[],
                   help="only these user classes (default: all)")
    args = p.parse_args()
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


if __name__ == "__main__":
    sys.exit(main())
