"""Redis-side cost of the hot scripts in CPU instructions per job: repeatable, unlike seconds.

    python3 bench/lua_cost.py            # about 20 s; needs valgrind and redis-server
    python3 bench/lua_cost.py --jobs 200 --singles 20   # smaller (the smoke test's size)

Starts its own redis-server under ``valgrind --tool=callgrind`` on a free port (never 6379),
runs the job life through kueatomic's own client — bulk create, claim (activate_jobs, 100 per
call), complete (complete_jobs, 100 per call), then single creates — and has callgrind dump its
counters between the phases (``callgrind_control -d``). The count covers everything
redis-server does in user space for the phase: reading the commands, the Lua interpreter and
its garbage collector, the writes, the replies; not the kernel's socket work. The same
binary and inputs give the same counts whatever else the machine is doing, so a change to a
script can be judged by a difference of a few per cent, which timing on a shared 2-core box
cannot show (bench/ANALYSIS.md has the figures before and after each engine change).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kueatomic import Queue
from kueatomic.ops import unwrap
from kueatomic.worker import calls
from tests.redis_server import free_port

T = TypeVar("T")
JOBS = 2_000  # bulk-created, claimed and completed (a multiple of 100)
SINGLES = 200  # single creates
PER_CALL = 100  # jobs per claim and per complete call, as the worker sends them


def dump(pid: int, label: str) -> None:
    subprocess.run(["callgrind_control", "-d", label, str(pid)], check=True, capture_output=True)


def claim_all(queue: Queue, jobs_n: int, per_call: int) -> list[tuple[int, str, int, str]]:
    """Claim ``jobs_n`` jobs of type "w", ``per_call`` per activate_jobs call; returns what
    complete_jobs takes for them: (id, claim token, attempts, result)."""
    claimed: list[tuple[int, str, int, str]] = []
    while len(claimed) < jobs_n:
        token = calls.claim_token()
        call = calls.activate(queue.keys, "w", per_call, "bench", token, 15_000)
        jobs = calls.parse_claimed(unwrap(queue.driver.execute([call])[0]), "bench", token)
        if not jobs:
            raise SystemExit("nothing left to claim: the queue was not filled as expected")
        claimed += [(job_id, token, 0, "") for job_id, _ in jobs]
    return claimed


def run_phases(url: str, pid: int, jobs_n: int, singles: int) -> dict[str, int]:
    """The job life, one phase per dump; returns jobs per phase."""
    queue = Queue(redis=url)
    queue.driver.load_all()
    execute = queue.driver.execute
    dump(pid, "warm-up")
    for start in range(0, jobs_n, 1000):
        end = min(start + 1000, jobs_n)
        queue.create_bulk([{"type": "w", "data": {"i": i}} for i in range(start, end)])
    dump(pid, "create_bulk")
    claimed = claim_all(queue, jobs_n, PER_CALL)
    dump(pid, "claim")
    for start in range(0, jobs_n, PER_CALL):
        execute([calls.complete(queue.keys, claimed[start : start + PER_CALL])])
    dump(pid, "complete")
    for i in range(singles):
        queue.create("s", {"i": i}).save()
    dump(pid, "single_create")
    queue.close()
    return {"create_bulk": jobs_n, "claim": jobs_n, "complete": jobs_n, "single_create": singles}


def read_dumps(prefix: Path) -> dict[str, int]:
    """Instructions per dump label, from callgrind's output files."""
    out: dict[str, int] = {}
    for path in prefix.parent.glob(prefix.name + ".*"):
        label = total = None
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("desc: Trigger: dump "):  # callgrind_control -d <label>
                label = line.rsplit(" ", 1)[-1]
            elif line.startswith("summary: "):
                total = int(line.split()[1])
        if label and total is not None:
            out[label] = total
    return out


def under_callgrind(work: Callable[[str, int], T]) -> tuple[T, dict[str, int]]:
    """Start a redis-server under callgrind on a free port (never 6379), run ``work(url,
    pid)`` (which dumps the counters with ``dump(pid, label)``), shut the server down and
    return what work returned and the instructions per dump label."""
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed (apt-get install valgrind redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "callgrind.out"
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}",
             "redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        try:
            for _ in range(300):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.1)
            result = work(url, server.pid)
            try:
                client.shutdown(nosave=True)
            except redis.ConnectionError:
                pass  # SHUTDOWN closes the connection it came on
        finally:
            client.close()
            server.wait(60)
        return result, read_dumps(prefix)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/lua_cost.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=JOBS, help="jobs per bulk/claim/complete phase")
    parser.add_argument("--singles", type=int, default=SINGLES, help="single creates")
    args = parser.parse_args()
    if args.jobs < PER_CALL or args.jobs % PER_CALL or args.singles < 1:
        parser.error(f"--jobs must be a multiple of {PER_CALL}, --singles at least 1")
    jobs, counts = under_callgrind(
        lambda url, pid: run_phases(url, pid, args.jobs, args.singles))
    print("| phase | instructions per job |\n|---|---:|")
    for phase, n in jobs.items():
        print(f"| {phase} | {counts[phase] / n:,.0f} |")


if __name__ == "__main__":
    main()
