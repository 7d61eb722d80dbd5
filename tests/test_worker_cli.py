"""``kueatomic worker``: what it says for a bad target, and an asyncio queue served by it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kueatomic import Queue

from .test_worker_sync import wait_for


def worker(folder: Path, target: str, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kueatomic.cli", "worker", target],
                          cwd=folder, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize(("target", "message"), [
    ("no_colon", "must look like MODULE:ATTR"),
    ("no_such_module:queue", "cannot import 'no_such_module'"),
    ("mod:missing", "has no attribute 'missing'"),
    ("mod:NOT_A_QUEUE", "not a kueatomic queue"),
    ("mod:idle", "registers no handlers"),
])
def test_bad_targets_say_what_is_wrong(tmp_path: Path, target: str, message: str) -> None:
    (tmp_path / "mod.py").write_text(textwrap.dedent('''
        from kueatomic import Queue
        NOT_A_QUEUE = 42
        idle = Queue("idle", "memory://cli-idle")
    '''))
    result = worker(tmp_path, target)
    assert result.returncode == 2
    assert message in result.stderr


def test_an_asyncio_queue_is_served(tmp_path: Path, real_redis_url: str) -> None:
    (tmp_path / "atasks.py").write_text(textwrap.dedent('''
        import asyncio, os
        from kueatomic import aio

        queue = aio.Queue("cli-aio", os.environ["REDIS_URL"])

        @queue.process("work", concurrency=2)
        async def work(job):
            await asyncio.sleep(0.01)
            return {"async": job.id}
    '''))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kueatomic.cli", "worker", "atasks:queue", "--concurrency", "4"],
        cwd=tmp_path, env={**os.environ, "REDIS_URL": real_redis_url}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        assert "work x4" in proc.stdout.readline()  # the CLI's log line, on stderr
        queue = Queue("cli-aio", real_redis_url)
        job = queue.create("work").save()
        wait_for(lambda: queue.client.hget(queue.keys.job(job.id), "state") == "complete")
        assert queue.get_job(job.id).result == {"async": job.id}
        queue.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("kind", ["sync", "asyncio"])
def test_a_queue_a_newer_kueatomic_wrote_is_refused_with_a_clear_error(
        tmp_path: Path, real_redis_url: str, kind: str) -> None:
    """The workers' own check (before their first claim) stops the command: exit status 2
    and the error on stderr, with no job claimed."""
    (tmp_path / "fmt.py").write_text(textwrap.dedent(f'''
        import os
        from kueatomic import Queue, aio

        queue = {"Queue" if kind == "sync" else "aio.Queue"}("cli-format", os.environ["REDIS_URL"])

        @queue.process("work")
        {"def" if kind == "sync" else "async def"} work(job):
            return "ran"
    '''))
    queue = Queue("cli-format", real_redis_url)
    queue.client.hset(queue.keys.meta, "format", 99)
    job = queue.create("work").save()
    result = worker(tmp_path, "fmt:queue", {"REDIS_URL": real_redis_url})
    assert result.returncode == 2, result.stderr
    assert "kueatomic worker: IncompatibleFormat: queue 'cli-format' holds data format 99" \
        in result.stderr
    assert queue.client.hget(queue.keys.job(job.id), "state") == "inactive"
    queue.close()
