"""job.wait(timeout): the result, JobFailed for a job that failed for good, JobNotFound when it
is removed, TimeoutError; from another process's worker, and for a job that finished before
the call (issue 13, item 2)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

import kueatomic
from kueatomic import JobFailed, JobNotFound, Queue, aio


def test_wait_returns_the_result_and_raises_for_failures(make_queue: Any) -> None:
    queue = make_queue()
    ok = queue.create("t", {"n": 2}).save()
    bad = queue.create("t", {"fail": True}).attempts(2).backoff(True).save()
    queue.process("t", 2, lambda job: 1 / 0 if job.data.get("fail") else {"double": 4})
    try:
        assert ok.wait(timeout=10) == {"double": 4}
        with pytest.raises(JobFailed) as failed:
            bad.wait(timeout=10)  # not raised after the first attempt: a retry follows
        assert failed.value.job_id == bad.id and "ZeroDivisionError" in (failed.value.error or "")
        assert queue.get_job(bad.id).attempts_made == 2
        assert ok.wait(timeout=0.1) == {"double": 4}  # finished before the call: at once
    finally:
        queue.shutdown(timeout=2000)


def test_wait_times_out_and_sees_a_removal(make_queue: Any) -> None:
    queue = make_queue()
    job = queue.create("nobody-runs-this").save()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        job.wait(timeout=0.3)
    assert 0.25 < time.monotonic() - started < 5
    threading.Timer(0.2, job.remove).start()
    with pytest.raises(JobNotFound):
        job.wait(timeout=10)


def test_wait_on_a_job_removed_on_complete_gets_the_result_from_the_event(
        make_queue: Any) -> None:
    queue = make_queue()
    job = queue.create("t").remove_on_complete(True).save()
    waiter: list[Any] = []
    thread = threading.Thread(target=lambda: waiter.append(job.wait(timeout=10)))
    thread.start()
    time.sleep(0.3)  # subscribed and waiting before the job runs
    queue.process("t", lambda j: {"kept": "in the event"})
    try:
        thread.join(10)
        assert waiter == [{"kept": "in the event"}]
    finally:
        queue.shutdown(timeout=2000)


@pytest.mark.parametrize("backend", ["real"], indirect=True)
def test_wait_for_a_job_run_by_another_process(backend: str) -> None:
    worker = textwrap.dedent(f'''
        from kueatomic import Queue
        queue = Queue("wait", {backend!r})
        queue.configure_workers(block_timeout_ms=200)
        queue.process("t", lambda job: {{"by": "the other process", "n": job.data["n"]}})
        import time; time.sleep(30)
    ''')
    proc = subprocess.Popen([sys.executable, "-c", worker])
    queue = Queue("wait", backend)
    try:
        jobs = [queue.create("t", {"n": n}).save() for n in range(5)]
        assert [job.wait(timeout=20)["n"] for job in jobs] == list(range(5))
    finally:
        proc.kill()
        proc.wait(10)
        queue.close()


def test_the_asyncio_wait(backend: str) -> None:
    async def scenario() -> None:
        queue = aio.Queue(redis=backend)
        ok = await queue.create("t", {"n": 3}).save()
        bad = await queue.create("t", {"fail": True}).save()

        async def handler(job: Any) -> Any:
            if job.data.get("fail"):
                raise ValueError("no")
            return job.data["n"] * 2

        worker = kueatomic.aio.Worker(queue)
        worker.process("t", 2, handler)
        await worker.start()
        try:
            assert await ok.wait(timeout=10) == 6
            with pytest.raises(JobFailed, match="no"):
                await bad.wait(timeout=10)
            late = await queue.create("never").save()
            with pytest.raises(TimeoutError):
                await late.wait(timeout=0.2)
        finally:
            await worker.shutdown(timeout=2000)
            await queue.close()

    asyncio.run(scenario())
