"""``kueatomic demo``: create a mix of jobs, process them with live progress, print a summary
and the dashboard URL.

Redis: ``--redis`` (or ``--redis-file PATH``), else ``REDIS_URL``, else the embedded engine
(``memory://``, in this process only: nothing to install or start, nothing persists). It never
picks a Redis you already run (people keep real data on 6379): name it to use it. The first
line says which it uses. Everything lives under the prefix ``kueatomic-demo``; the demo removes
the jobs of that prefix (through the remove_job script) when it starts and again when it ends,
and never touches keys outside it.

The dashboard: its URL is printed when the jobs start. In a terminal it keeps serving after the
summary until Ctrl-C. Without a terminal (output to a file or a pipe) the URL says it lives
until the demo ends, and the end says it stopped: no URL is printed after the summary, so none
is printed dead; ``--serve`` keeps it serving there too, until SIGINT or SIGTERM, and
``--no-serve`` starts none.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from typing import Any

from .. import extras
from ..cluster import is_cluster_url
from ..errors import ConfigError, KueError
from .credentials import add_redis_options, redis_url, shown_url

PREFIX = "kueatomic-demo"
TITLE = "kueatomic demo"
EMBEDDED = "memory://kueatomic-demo"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a demo: jobs with priorities, delays, retries and progress, live",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--jobs", type=int, default=40, help="jobs to create (default 40)")
    add_redis_options(parser, default="see above")
    parser.add_argument("-p", "--port", type=int, default=3000,
                        help="dashboard port (default 3000, or a free one if taken)")
    parser.add_argument("--serve", action=argparse.BooleanOptionalAction, default=None,
                        help="serve the dashboard and keep serving it after the summary until "
                             "Ctrl-C or SIGTERM (default: only in a terminal; without one it lives "
                             "until the demo ends); --no-serve starts no dashboard")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable mix")
    parser.set_defaults(func=run)


def choose_redis(option: str | None) -> tuple[str, str]:
    """(url, how it was chosen) per the rule in the module docstring (``option``: the URL from
    ``-r`` or ``--redis-file``)."""
    if option:
        return option, "--redis"
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], "REDIS_URL"
    return EMBEDDED, ("the embedded engine (in this process only, nothing persists; "
                      "-r URL or REDIS_URL for a Redis of your own)")


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
    try:  # the dashboard is optional for the demo
        extras.require("web", "the dashboard")
    except ConfigError as exc:
        print(f"(no dashboard: {exc})")
        return None, None
    import uvicorn

    from ..web import create_app

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


def remove_jobs(queue: Any) -> int:
    """Remove every job of the demo's queue, each through the remove_job script (its hash, log
    and zset entries); the prefix's other keys are not touched. Returns how many went."""
    ids: list[int] = []
    for state in ("complete", "failed", "inactive", "delayed", "active"):
        ids += queue.state(state)
    removed = 0
    for job_id in ids:
        try:
            queue.get_job(job_id).remove()
            removed += 1
        except KueError:
            pass
    return removed


def wants_serving(option: bool | None) -> bool:
    """--serve / --no-serve, else serve only when both ends are a terminal (someone can open the
    URL and press Ctrl-C)."""
    return option if option is not None else (sys.stdout.isatty() and sys.stdin.isatty())


def serve_until_stopped() -> None:
    """Block until Ctrl-C (SIGINT) or SIGTERM."""
    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print()
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    earlier = remove_jobs(queue)
    if earlier:
        print(f"removed {earlier} job{'' if earlier == 1 else 's'} left by an earlier demo run "
              f"(prefix {prefix!r} only)")
    tty = sys.stdout.isatty()
    serve = wants_serving(args.serve)
    wanted = args.serve is not False  # --no-serve: no dashboard at all
    dashboard, server = start_dashboard(queue, args.port) if wanted else (None, None)
    if dashboard:
        lasts = "live" if serve else "live until the demo ends"
        print(f"dashboard ({lasts}): {dashboard}", flush=True)
    try:
        jobs, elapsed = run_jobs(queue, args.jobs, tty)
        print_summary(queue, jobs, elapsed)
        if dashboard and serve:
            print(f"\ndashboard: {dashboard}\nserving the dashboard; Ctrl-C to stop (the demo's "
                  "jobs are removed then)", flush=True)
            serve_until_stopped()
        elif dashboard:  # never a URL that is already dead
            print("the dashboard stopped with the demo (run it in a terminal, or with --serve, "
                  "to keep it serving)", flush=True)
    finally:
        if server is not None:
            server.should_exit = True
            time.sleep(0.2)
        queue.shutdown(timeout=2000)
        removed = remove_jobs(queue)
        queue.close()
        print(f"removed the demo's {removed} jobs (prefix {prefix!r} only)", flush=True)
    return 0


def run_jobs(queue: Any, count: int, tty: bool) -> tuple[list[Any], float]:
    """Register the handlers, create the jobs and show progress until they are all finished
    (or 120 s, or Ctrl-C); the workers are shut down on return."""
    queue.configure_workers(upkeep_interval_ms=200)
    queue.process("email", 4, route)
    queue.process("video", 2, encode_video)
    queue.process("report", 1, build_report)
    queue.process("flaky", 1, flaky_call)
    started = time.monotonic()
    jobs = create_jobs(queue, max(1, count))
    total = len(jobs)
    print(f"created {total} jobs: emails (some bound to fail), videos with progress (some crash "
          "once and retry with exponential backoff), delayed critical reports, flaky calls "
          "(fixed backoff)", flush=True)
    last_print = 0.0
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
    return jobs, elapsed


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
