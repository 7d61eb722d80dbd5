"""Measurement 7, the ceiling: kueatomic's own scripts driven by C clients with deep
pipelines, so the figure is what the Redis server itself can do with them.

- create (1 job and 100 jobs per call) and claim (100 per call) by ``redis-benchmark``
  (EVALSHA with fixed arguments, SCRIPT LOAD first);
- complete (100 per call) and the whole cycle (create 100, claim 100, complete 100) by
  ``redis-cli --pipe``: completing needs each job's own id and claim token, which
  redis-benchmark cannot vary. The stream is generated up front; the clock covers sending it
  and reading every reply.
Every call is built by kueatomic's own call builders (ops.create, worker.calls), so the
arguments are exactly those the client sends.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import Bench
from bench.measures import Sizes, rec

CLIENTS, PIPELINE = 4, 32  # redis-benchmark -c / -P (less -P for small runs)
BATCH = 100  # jobs per claim/complete call, kueatomic's default claim batch
TOKEN = "bench:1"  # a claim token as workers make them ("<letters>:<n>")


def _calls() -> Any:
    from kueatomic import ops
    from kueatomic.driver import command_of
    from kueatomic.keyspace import Keys
    from kueatomic.worker import calls

    keys = Keys("q")
    job = ["bench", '{"i":1}', 0, 1, 0, 0, "", "", 0, 0]  # JobBase.encode_create of a plain job

    def create(n: int) -> list[str]:
        plan = ops.create(keys, [job] * n, chunk=n)
        return [str(a) for a in command_of(next(plan)[0])]

    def claim(n: int) -> list[str]:
        return [str(a) for a in command_of(calls.activate(keys, "bench", n, "bench-worker",
                                                          TOKEN, 600_000))]

    def complete(ids: range) -> list[str]:
        call = calls.complete(keys, [(i, TOKEN, 0, "") for i in ids])
        return [str(a) for a in command_of(call)]

    return create, claim, complete


def resp(command: list[str]) -> bytes:
    out = [f"*{len(command)}\r\n".encode()]
    for arg in command:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def benchmark(bench: Bench, command: list[str], calls: int, pipeline: int) -> float:
    """redis-benchmark requests/s for one command."""
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(bench.server.port), "-c", str(CLIENTS),
         "-P", str(pipeline), "-n", str(calls), "--csv", *command],
        capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1].split('","')[1])


def pipe(bench: Bench, commands: list[list[str]]) -> float:
    """Seconds for redis-cli --pipe to send the commands and read every reply."""
    with tempfile.NamedTemporaryFile(suffix=".resp", delete=False) as f:
        for command in commands:
            f.write(resp(command))
        path = Path(f.name)
    try:
        with open(path, "rb") as stream:
            start = time.perf_counter()
            done = subprocess.run(["redis-cli", "-p", str(bench.server.port), "--pipe"],
                                  stdin=stream, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - start
        if done.returncode or "errors: 0" not in done.stdout:
            raise RuntimeError(f"redis-cli --pipe: {done.stdout[-500:]} {done.stderr[-500:]}")
        return seconds
    finally:
        path.unlink()


def load_scripts(bench: Bench) -> None:
    from kueatomic import scripts

    for script in scripts.registry().values():
        bench.data.script_load(script.text)


def measure(bench: Bench, sizes: Sizes, runs: int) -> list[dict[str, Any]]:
    create, claim, complete = _calls()
    jobs = max(BATCH * 40, sizes.ceiling_jobs // BATCH * BATCH)
    # redis-benchmark may send up to CLIENTS * pipeline calls more than asked: keep that
    # within a quarter of the calls
    pipeline = max(1, min(PIPELINE, jobs // BATCH // (4 * CLIENTS)))
    out = []
    for run in range(runs):
        bench.flush()
        load_scripts(bench)
        rate = benchmark(bench, create(1), min(jobs, 100_000), pipeline)
        out.append(rec("ceiling_create1", "kueatomic", rate, unit="jobs/s", run=run))
        bench.flush()
        load_scripts(bench)
        rate = benchmark(bench, create(BATCH), jobs // BATCH, pipeline) * BATCH
        out.append(rec("ceiling_create100", "kueatomic", rate, unit="jobs/s", run=run))
        # count what was created and leave some queued: then every claim got a full batch
        created = int(bench.data.zcard("q:jobs:inactive"))
        rate = benchmark(bench, claim(BATCH), created // BATCH - 2 * CLIENTS * pipeline,
                         pipeline)
        claimed = int(bench.data.zcard("q:jobs:active"))
        if not 0 < claimed < created:
            raise RuntimeError(f"claim ceiling: {claimed} of {created} jobs claimed")
        out.append(rec("ceiling_claim100", "kueatomic", rate * BATCH, unit="jobs/s", run=run))
        # FIFO: the claimed jobs are ids 1..claimed
        batches = [complete(range(i, min(i + BATCH, claimed + 1)))
                   for i in range(1, claimed + 1, BATCH)]
        seconds = pipe(bench, batches)
        if int(bench.data.zcard("q:jobs:complete")) != claimed:
            raise RuntimeError("complete ceiling: not every claimed job completed")
        out.append(rec("ceiling_complete100", "kueatomic", claimed / seconds, unit="jobs/s",
                       run=run))
        bench.flush()
        load_scripts(bench)
        cycle = []
        for i in range(1, jobs + 1, BATCH):
            cycle += [create(BATCH), claim(BATCH), complete(range(i, i + BATCH))]
        seconds = pipe(bench, cycle)
        if int(bench.data.zcard("q:jobs:complete")) != jobs:
            raise RuntimeError("cycle ceiling: not every job completed")
        out.append(rec("ceiling_cycle", "kueatomic", jobs / seconds, unit="jobs/s", run=run))
    bench.flush()
    return out
