"""``kueatomic demo``: create a mix of jobs, process them with live progress, print a summary
and the dashboard URL.

Redis: ``--redis`` (or ``--redis-file PATH``), else ``REDIS_URL``, else a private
``redis-server`` the demo starts on a free port (no persistence, stopped when the demo ends)
when one is installed, else the embedded engine (``memory://``, in this process only). It never
picks a Redis you already run (people keep real data on 6379): name it with ``--redis`` to use
it. Everything lives under the prefix ``kueatomic-demo``; the demo removes its own earlier jobs
(through the remove_job script) and never touches keys outside that prefix.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from ..cluster import is_cluster_url
from ..errors import KueError
from .credentials import add_redis_options, redis_url, shown_url

PREFIX = "kueatomic-demo"
TITLE = "kueatomic demo"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a demo: jobs with priorities, delays, retries and progress, live",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--jobs", type=int, default=40, help="jobs to create (default 40)")
    add_redis_options(parser, default="see above")
    parser.add_argument("-p", "--port", type=int, default=3000,
                        help="dashboard port (default 3000, or a free one if taken)")
    parser.add_argument("--serve", action=argparse.BooleanOptionalAction, default=None,
                        help="keep serving the dashboard after the summary until Ctrl-C "
                             "(default: when run in a terminal)")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable mix")
    parser.set_defaults(func=run)


def choose_redis(option: str | None) -> tuple[str, str]:
    """(url, how it was chosen) per the rule in the module docstring (``option``: the URL from
    ``-r`` or ``--redis-file``); a private server it starts is stopped at exit."""
    if option:
        return option, "--redis"
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], "REDIS_URL"
    private = start_private_redis()
    if private is not None:
        return private, "a private redis-server started for the demo (stopped when it ends)"
    return "memory://kueatomic-demo", "the embedded engine (no redis-server installed; nothing persists)"


def start_private_redis() -> str | None:
    """Start ``redis-server`` on a free port in a temporary folder; None when it is not
    installed or does not come up."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = _free_port(0)
    folder = tempfile.mkdtemp(prefix="kueatomic-demo-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(stop)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _answers("127.0.0.1", port):
            return f"redis://127.0.0.1:{port}/0"
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop()
    return None


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3) as sock:
            sock.settimeout(0.5)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH", b"-ERR"))
    except OSError:
        return False


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port")


# --- the demo's handlers: a little of everything -------------------------------------------

def send_email(job: Any) -> dict[str, Any]:
    job.log("sending to %s", job.data["to"])
    time.sleep(random.uniform(0.05, 0.3))
    job.progress(1, 2, {"stage": "smtp"})
    time.sleep(random.uniform(0.05, 0.3))
    return {"sent": True, "to": job.data["to"]}


def encode_video(job: Any) -> dict[str, Any]:
    frames = job.data["frames"]
    for frame in range(1, frames + 1):
        time.sleep(0.15)
        job.progress(frame, frames, {"frame": frame})
        if job.data.get("glitch") and job.attempts_made == 0 and frame == frames // 2:
            raise RuntimeError(f"encoder crashed at frame {frame}")
    return {"frames": frames}


def build_report(job: Any) -> str:
    time.sleep(0.2)
    return f"report {job.data['name']} ready"


def flaky_call(job: Any) -> str:
    if job.attempts_made < 2:
        raise ConnectionError(f"upstream timed out (attempt {job.attempts_made + 1})")
    return "answered on the third try"


def doomed(job: Any) -> None:
    raise ValueError("smtp down: mailbox unavailable")


def create_jobs(queue: Any, count: int) -> list[Any]:
    specs: list[dict[str, Any]] = []
    for n in range(count):
        kind = n % 8
        if kind in (0, 1, 2):
            specs.append({"type": "email", "data": {"title": f"welcome #{n}", "to": f"user{n}@example.com"},
                          "options": {"priority": random.choice(["low", "normal", "high"])}})
        elif kind in (3, 4):
            specs.append({"type": "video", "data": {"title": f"clip #{n}", "frames": random.randint(4, 8),
                                                    "glitch": kind == 4},
                          "options": {"attempts": 3, "priority": "medium",
                                      "backoff": {"type": "exponential", "delay": 400}}})
        elif kind == 5:
            specs.append({"type": "report", "data": {"title": f"report #{n}", "name": f"weekly-{n}"},
                          "options": {"delay": random.randint(500, 3000), "priority": "critical"}})
        elif kind == 6:
            specs.append({"type": "flaky", "data": {"title": f"flaky call #{n}"},
                          "options": {"attempts": 3, "backoff": {"type": "fixed", "delay": 300}}})
        else:
            specs.append({"type": "email", "data": {"title": f"bounce #{n}", "to": "nobody@invalid"},
                          "options": {"attempts": 2}})
    jobs = queue.create_bulk(specs)
    return [job for job in jobs if not isinstance(job, KueError)]


def route(job: Any) -> Any:
    return doomed(job) if job.data.get("to") == "nobody@invalid" else send_email(job)


# --- terminal output -----------------------------------------------------------------------

def bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + "]"


def status_line(queue: Any, total: int, started: float) -> tuple[str, dict[str, int]]:
    counts = queue.counts()
    finished = counts["complete"] + counts["failed"]
    active = queue.range_by_state("active", 0, 3)
    running = " ".join(f"{j.type}#{j.id} {j.progress_percent or 0}%" for j in active)
    line = (f"{time.monotonic() - started:5.1f}s {bar(finished, total)} {finished}/{total}  "
            f"queued {counts['inactive']} active {counts['active']} delayed {counts['delayed']} "
            f"complete {counts['complete']} failed {counts['failed']}  {running}")
    return line, counts


def start_dashboard(queue: Any, port: int) -> tuple[str | None, Any]:
    try:
        import uvicorn

        from ..web import create_app
    except ImportError as exc:  # the dashboard is optional for the demo
        print(f"(dashboard unavailable: {exc})")
        return None, None
    port = _free_port(port)
    config = uvicorn.Config(create_app(queue, title=TITLE), host="127.0.0.1", port=port,
                            log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="kueatomic-demo-dashboard", daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}/", server


def quiet_worker_logs() -> None:
    """The demo's screen is its own: at the CLI's default level (INFO) the worker's start,
    stop and release lines would break the live progress line, so they are kept to warnings
    (``--log-level DEBUG`` still shows everything)."""
    if logging.getLogger("kueatomic").getEffectiveLevel() == logging.INFO:
        logging.getLogger("kueatomic.worker").setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    from ..queue import Queue

    if args.seed is not None:
        random.seed(args.seed)
    quiet_worker_logs()
    url, how = choose_redis(redis_url(args, env=False))
    prefix = f"{{{PREFIX}}}" if is_cluster_url(url) else PREFIX  # one slot on a cluster
    print(f"kueatomic demo: using {how}: {shown_url(url)} (prefix {prefix!r})", flush=True)
    queue = Queue(prefix, url)
    queue.ping()
    earlier = queue.state("complete") + queue.state("failed") + queue.state("inactive") + \
        queue.state("delayed") + queue.state("active")
    for job_id in earlier:
        try:
            queue.get_job(job_id).remove()
        except KueError:
            pass
    if earlier:
        print(f"removed {len(earlier)} jobs left by an earlier demo run (prefix {prefix!r} only)")
    dashboard, server = start_dashboard(queue, args.port)
    if dashboard:
        print(f"dashboard (live): {dashboard}", flush=True)

    queue.configure_workers(upkeep_interval_ms=200)
    queue.process("email", 4, route)
    queue.process("video", 2, encode_video)
    queue.process("report", 1, build_report)
    queue.process("flaky", 1, flaky_call)
    started = time.monotonic()
    jobs = create_jobs(queue, max(1, args.jobs))
    total = len(jobs)
    print(f"created {total} jobs: emails (some bound to fail), videos with progress (some crash "
          "once and retry with exponential backoff), delayed critical reports, flaky calls "
          "(fixed backoff)", flush=True)
    tty = sys.stdout.isatty()
    last_print = 0.0
    counts: dict[str, int] = {}
    try:
        while True:
            line, counts = status_line(queue, total, started)
            if tty:
                sys.stdout.write("\r\x1b[K" + line[:200])
                sys.stdout.flush()
            elif time.monotonic() - last_print >= 1.0:
                print(line, flush=True)
                last_print = time.monotonic()
            if counts["complete"] + counts["failed"] >= total or time.monotonic() - started > 120:
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    if tty:
        print()
    elapsed = time.monotonic() - started
    queue.shutdown(timeout=2000)
    print_summary(queue, jobs, elapsed)
    if dashboard:
        print(f"\ndashboard: {dashboard}", flush=True)
    serve = args.serve if args.serve is not None else (tty and sys.stdin.isatty())
    if dashboard and serve:
        print("serving the dashboard; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            print()
    if server is not None:
        server.should_exit = True
        time.sleep(0.2)
    queue.close()
    return 0


def print_summary(queue: Any, jobs: list[Any], elapsed: float) -> None:
    print(f"\nsummary ({elapsed:.1f}s):")
    by_type: dict[str, dict[str, int]] = {}
    retried = 0
    failures: list[str] = []
    for job in jobs:
        loaded = queue.get_job(job.id)
        row = by_type.setdefault(loaded.type, {})
        row[loaded.state or "?"] = row.get(loaded.state or "?", 0) + 1
        if loaded.attempts_made > 1:
            retried += 1
        if loaded.state == "failed" and loaded.error:
            failures.append(f"  #{loaded.id} {loaded.type}: {loaded.error.splitlines()[0]} "
                            f"(after {loaded.attempts_made} attempts)")
    for jtype, states in sorted(by_type.items()):
        print(f"  {jtype:7} " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())))
    print(f"  {retried} jobs needed more than one attempt; total work time "
          f"{queue.work_time() or 0} ms")
    if failures:
        print("failed for good:")
        print("\n".join(failures[:10]))
