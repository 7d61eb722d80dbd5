"""Workers as real processes on a real redis-server: the ``kueatomic worker`` command,
graceful and immediate stops, several processes sharing a queue, SIGKILL mid-job (the job
is recovered once the lease expires and runs again elsewhere), Redis restarting under a
running worker, and an idle worker waking on the wake-up list."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from kueatomic import Queue

from .test_worker_sync import wait_for

pytestmark = pytest.mark.real_redis

TASKS = textwrap.dedent('''
    import os, pathlib, time
    from kueatomic import Queue

    queue = Queue(os.environ["QUEUE_PREFIX"], os.environ["REDIS_URL"])
    queue.configure_workers(lease_ms=900, upkeep_interval_ms=100, block_timeout_ms=200)
    MARKS = pathlib.Path(os.environ["MARKS"])

    @queue.process("work", concurrency=2)
    def work(job, ctx):
        mark = MARKS / str(job.id)
        first_run = not mark.exists()
        mark.write_text(str(os.getpid()))
        if job.data.get("hang_first") and first_run:
            time.sleep(60)
        time.sleep(job.data.get("sleep", 0))
        return {"pid": os.getpid()}
''')


class Workers:
    """Start ``kueatomic worker tasks:queue`` processes against the test's Redis."""

    def __init__(self, folder: Path, url: str, prefix: str = "wp") -> None:
        self.folder = folder
        self.env = {**os.environ, "REDIS_URL": url, "MARKS": str(folder / "marks"),
                    "PYTHONUNBUFFERED": "1", "QUEUE_PREFIX": prefix}
        (folder / "marks").mkdir()
        (folder / "tasks.py").write_text(TASKS)
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kueatomic.cli", "worker", "tasks:queue", *extra],
            cwd=self.folder, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "kueatomic worker" in line, line
        if "--processes" not in extra:
            assert "work x" in line, line
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture(params=["real", "cluster"])
def target(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(URL, prefix): the session's redis-server, or its Redis Cluster with {wp}."""
    if request.param == "cluster":
        return str(request.getfixturevalue("cluster_url")), "{wp}"
    return str(request.getfixturevalue("real_redis_url")), "wp"


@pytest.fixture
def workers(tmp_path: Path, target: tuple[str, str]) -> Iterator[Workers]:
    started = Workers(tmp_path, *target)
    yield started
    started.stop_all()


@pytest.fixture
def queue(target: tuple[str, str]) -> Iterator[Queue]:
    url, prefix = target
    q = Queue(prefix, url)
    yield q
    q.close()


def state_of(queue: Queue, job_id: int) -> str | None:
    return queue.client.hget(queue.keys.job(job_id), "state")


def exit_code(proc: subprocess.Popen[str], timeout: float = 20) -> int:
    proc.wait(timeout)
    return proc.returncode


def handler_started(workers: Workers, job_id: int) -> None:
    """Wait for the handler to run (its mark file), not only for the job to read active: a
    claim whose reply is still on its way when the worker stops is given back, not run."""
    wait_for(lambda: (workers.folder / "marks" / str(job_id)).exists(), what="the handler")


def test_sigterm_lets_the_running_job_finish(workers: Workers, queue: Queue) -> None:
    proc = workers.start()
    job = queue.create("work", {"sleep": 0.6}).save()
    handler_started(workers, job.id)
    proc.send_signal(signal.SIGTERM)
    assert exit_code(proc) == 0
    assert state_of(queue, job.id) == "complete"
    assert queue.get_job(job.id).result == {"pid": proc.pid}


def test_a_second_signal_stops_at_once(workers: Workers, queue: Queue) -> None:
    proc = workers.start("--shutdown-timeout", "60000")
    job = queue.create("work", {"sleep": 60}).save()
    handler_started(workers, job.id)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert proc.poll() is None  # still waiting for the job
    proc.send_signal(signal.SIGINT)
    assert exit_code(proc) == 0
    done = queue.get_job(job.id)  # released at once: back to inactive, no attempt used
    assert done.state == "inactive" and done.attempts_made == 0
    assert any(line.startswith("Released at shutdown") for line in done.logs())


def test_processes_share_the_queue(workers: Workers, queue: Queue) -> None:
    supervisor = workers.start("--processes", "2", "--concurrency", "1")
    jobs = queue.create_bulk([{"type": "work", "data": {"sleep": 0.05}} for _ in range(30)])
    wait_for(lambda: queue.complete_count() == 30, timeout=30)
    pids = {queue.get_job(job.id).result["pid"] for job in jobs}
    assert len(pids) == 2 and supervisor.pid not in pids
    supervisor.send_signal(signal.SIGTERM)
    assert exit_code(supervisor) == 0


def test_sigkill_mid_job_the_job_runs_again_elsewhere(workers: Workers, queue: Queue) -> None:
    doomed = workers.start()
    job = queue.create("work", {"hang_first": True}).save()
    others = queue.create_bulk([{"type": "work", "data": {"sleep": 0.01}} for _ in range(10)])
    wait_for(lambda: (workers.folder / "marks" / str(job.id)).exists())
    doomed.kill()  # SIGKILL: no clean-up at all
    doomed.wait(10)
    survivor = workers.start()
    wait_for(lambda: state_of(queue, job.id) == "complete", timeout=30, what="recovery")
    done = queue.get_job(job.id)
    assert done.result == {"pid": survivor.pid}
    assert done.fields["stalls"] == "1" and done.attempts_made == 1
    assert done.logs()[0].startswith("Stalled: the lease expired")
    wait_for(lambda: queue.complete_count() == 11, timeout=30)
    assert queue.active_count() == 0 and queue.failed_count() == 0
    assert all(state_of(queue, j.id) == "complete" for j in others)


def test_many_jobs_survive_killing_one_of_two_workers(workers: Workers, queue: Queue) -> None:
    first, second = workers.start("--concurrency", "4"), workers.start("--concurrency", "4")
    queue.create_bulk([{"type": "work", "data": {"sleep": 0.02}} for _ in range(200)])
    wait_for(lambda: queue.complete_count() >= 40, timeout=30)
    first.kill()
    wait_for(lambda: queue.complete_count() == 200, timeout=60, what="all 200 complete")
    assert queue.counts() == {"inactive": 0, "active": 0, "complete": 200, "failed": 0,
                              "delayed": 0}
    second.send_signal(signal.SIGTERM)
    assert exit_code(second) == 0


def test_redis_restart_under_a_running_worker(redis_server: Any, real_redis_url: str) -> None:
    queue = Queue("restart", real_redis_url)
    queue.configure_workers(lease_ms=3000, upkeep_interval_ms=100, block_timeout_ms=200)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.process("work", 2, lambda job: time.sleep(0.05) or job.data["n"])
    before = queue.create_bulk([{"type": "work", "data": {"n": n}} for n in range(20)])
    wait_for(lambda: queue.complete_count() >= 5)
    admin = redis.Redis.from_url(real_redis_url)
    admin.save()  # keep the data across the restart (the test server runs without persistence)
    admin.close()
    try:
        redis_server.restart(down_for=0.5)
    finally:
        (redis_server.dir / "dump.rdb").unlink(missing_ok=True)
    after = queue.create_bulk([{"type": "work", "data": {"n": n}} for n in range(20, 30)])
    wait_for(lambda: all(state_of(queue, j.id) == "complete" for j in after), timeout=30)
    wait_for(lambda: all(state_of(queue, j.id) in ("complete", "inactive") for j in before),
             timeout=30)
    wait_for(lambda: queue.active_count() == 0 and queue.inactive_count() == 0, timeout=30)
    assert queue.complete_count() == 30
    assert any("unreachable" in str(e) for e in errors)
    queue.close()


def test_an_idle_worker_wakes_on_the_token(real_redis_url: str) -> None:
    queue = Queue("wake", real_redis_url)
    queue.configure_workers(block_timeout_ms=10000, upkeep_interval_ms=10000)
    started: list[float] = []
    queue.process("work", lambda job: started.append(time.monotonic()))
    time.sleep(0.3)  # let the claimer block on BLPOP
    created = time.monotonic()
    queue.create("work").save()
    wait_for(lambda: started, timeout=20)
    # far below the 10 s block timeout: the wake-up token, not the timeout, woke it
    assert started[0] - created < 5
    queue.close()


def test_workers_write_only_through_scripts(redis_server: Any, real_redis_url: str) -> None:
    """Engine rule 1 for workers: MONITOR sees scripts, reads, BLPOP and pub/sub only."""
    from .monitor import sent_commands
    from .test_no_direct_writes import ALLOWED_SENT

    with sent_commands(real_redis_url) as sent:
        queue = Queue("mon", real_redis_url)
        queue.configure_workers(lease_ms=600, upkeep_interval_ms=50, block_timeout_ms=100)
        queue.on("job complete", lambda *args: None)

        def work(job: Any) -> str:
            job.log("working").progress(1, 2)
            if job.attempts_made == 0 and job.data.get("flaky"):
                raise RuntimeError("again")
            return "ok"

        queue.process("work", 2, work)
        queue.create("work", {"flaky": True}).attempts(2).backoff({"type": "fixed", "delay": 50}).save()
        queue.create("work").delay(100).save()
        queue.create("work").ttl(5000).save()
        wait_for(lambda: queue.complete_count() == 3)
        queue.shutdown(timeout=1000)
        queue.close()
    assert {"evalsha", "blpop", "subscribe"} <= set(sent)
    assert set(sent) <= ALLOWED_SENT, sorted(set(sent) - ALLOWED_SENT)
