"""The client's own cost in CPU instructions per job: repeatable, unlike seconds.

    python3 bench/py_cost.py             # about a minute; needs valgrind
    python3 bench/py_cost.py --small     # the smoke test's size

The Python twin of bench/lua_cost.py. Each phase runs kueatomic's real code for N jobs with
no Redis (replies are made up, requests are packed by redis-py as it would send them, but
go nowhere), once in a process under ``valgrind --tool=callgrind`` for N and once for 3N; the
difference over 2N is the instruction count per job, with interpreter start-up and imports
cancelled out. Phases:

- encode: what ``create_bulk`` does per job before the bytes leave: the spec checked and
  turned into a Job, its data JSON-encoded, the create_jobs call built and packed;
- worker: what the threaded worker does per job between Redis replies: the claim reply
  parsed, the Job built from its hash, the hand-off to a slot, the handler (a no-op) and its
  result, the complete_jobs call built and packed, the reply read back. It runs the worker
  core's ``claimed``, ``next_flush`` and ``flushed`` and the threaded ``Worker._slot_loop``
  in one thread, so thread switches are not counted: they cost the same whatever the code
  does.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from queue import SimpleQueue
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BATCH = 100  # jobs per claim/complete call and per create_jobs call, the defaults
COLLECTED = re.compile(r"Collected : (\d+)")


def packer() -> Any:
    """redis-py's own packing of a command (hiredis's when installed), offline."""
    from redis.connection import Connection

    return Connection().pack_command  # type: ignore[no-untyped-call]


def encode_phase(jobs: int) -> None:
    from kueatomic import Queue, ops
    from kueatomic.driver import command_of

    queue = Queue(redis="redis://127.0.0.1:1/0")  # never connected: nothing is sent
    pack = packer()
    created = 0
    for start in range(0, jobs, 1000):
        specs = [{"type": "bench", "data": {"i": i}} for i in range(start, min(start + 1000, jobs))]
        _results, _todo, encoded = queue.prepare_bulk(specs)
        for call in ops.create_calls(queue.keys, encoded, BATCH):
            pack(*command_of(call))
            created += int(call.args[1])
    if created != jobs:
        raise SystemExit(f"encode phase built {created} of {jobs} jobs")


def worker_phase(jobs: int) -> None:
    from kueatomic import Queue, Worker
    from kueatomic.driver import command_of
    from kueatomic.worker import calls
    from kueatomic.worker.context import WorkerContext
    from kueatomic.worker.core import WorkerCore

    queue = Queue(redis="redis://127.0.0.1:1/0")
    worker = Worker(queue)
    pack = packer()
    registration = worker._registration("bench", BATCH, lambda job: None, 15_000, BATCH)
    # What Worker.start() sets up, without its threads: this phase is the only thread.
    registration.ctx = WorkerContext(worker, registration)
    registration.slots = SimpleQueue()
    core = worker.core = WorkerCore(queue.keys, worker.settings, queue.events.emit,
                                    lock=threading.Lock(), signal=worker._signal)
    core.add(registration)
    generation = core.resume(registration)
    make = queue.job_class.from_hash

    def make_job(reg: Any, job_id: int, fields: dict[str, str]) -> Any:
        return calls.load_job(make, queue, job_id, fields)

    completed = 0
    hash_fields = ["max_attempts", "1", "type", "bench", "created_at", "1764300000000",
                   "promote_at", "1764300000000", "priority", "0", "updated_at",
                   "1764300000000", "state", "inactive"]
    for start in range(0, jobs, BATCH):
        reply: list[Any] = ["1764300000123"]
        for job_id in range(start + 1, start + BATCH + 1):
            fields = [*hash_fields, "data", f'{{"i":{job_id}}}']  # packed, as activate_jobs answers
            reply += [str(job_id), "\0".join([str(len(fields)), *fields])]
        claim = core.next_claim(registration, generation or 0)
        for record in core.claimed(claim, reply, make_job):  # type: ignore[arg-type]
            registration.slots.put(record)
        registration.slots.put(None)  # the slot loop returns after this batch
        worker._slot_loop(registration)
        flush = core.next_flush()
        assert flush is not None
        for request in flush.requests:  # what the driver would send and read
            pack(*command_of(request))
            completed += int(request.args[1])
        core.flushed(flush, [[1] * int(request.args[1]) for request in flush.requests])
    if completed != jobs or core.inflight:
        raise SystemExit(f"worker phase completed {completed} of {jobs} jobs")


PHASES = {"encode": encode_phase, "worker": worker_phase}


def count(phase: str, jobs: int) -> int:
    """Instructions of one child process running ``phase`` for ``jobs`` jobs."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--child", phase, "--jobs", str(jobs)],
        cwd=ROOT, capture_output=True, text=True, check=False)
    match = COLLECTED.search(done.stderr)
    if done.returncode != 0 or not match:
        raise SystemExit(f"{phase} x{jobs} failed:\n{done.stderr[-2000:]}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/py_cost.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="200 and 600 jobs (the smoke test)")
    parser.add_argument("--child", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        PHASES[args.child](args.jobs)
        return
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    low = 200 if args.small else 2000  # multiples of BATCH
    print("| phase | instructions per job |\n|---|---:|")
    for phase in PHASES:
        per_job = (count(phase, 3 * low) - count(phase, low)) / (2 * low)
        print(f"| {phase} | {per_job:,.0f} |")


if __name__ == "__main__":
    main()
