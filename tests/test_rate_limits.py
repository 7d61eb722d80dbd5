"""Rate limits per type (issue 13, item 5): at most N jobs of a type start per window, across
every worker and process; the claim script enforces it and workers sleep until the window
reopens instead of spinning."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

import kueatomic
from kueatomic import InvalidArgument, Queue

from .test_worker_sync import wait_for


def starts_of(queue: Queue, ids: list[int]) -> list[int]:
    return sorted(int(queue.get_job(i).fields["started_at"]) for i in ids)


def windows_hold(starts: list[int], limit: int, window_ms: int) -> bool:
    """Fixed windows, each opened by the first start after the previous one closed."""
    index = 0
    while index < len(starts):
        opened = starts[index]
        inside = [s for s in starts[index:] if s < opened + window_ms]
        if len(inside) > limit:
            return False
        index += len(inside)
    return True


def test_bad_rate_limits_are_refused(queue: Queue) -> None:
    for bad in [(0, 1000), (10, 0), (1.5, 10), "10/s", (1, 2, 3), (True, 10)]:
        with pytest.raises(InvalidArgument, match="rate_limit"):
            queue.process("t", 1, lambda job: None, rate_limit=bad)
    assert not queue.worker.registrations


def test_a_worker_keeps_to_the_limit_and_sleeps_between_windows(make_queue: Any) -> None:
    queue = make_queue()
    jobs = queue.create_bulk([{"type": "t", "data": {"n": n}} for n in range(90)])
    worker = kueatomic.Worker(queue, upkeep_interval_ms=100)
    worker.process("t", 20, lambda job: None, rate_limit=(30, 400))
    worker.start()
    try:
        wait_for(lambda: queue.complete_count() == 90, timeout=20, what="all 90 complete")
    finally:
        worker.shutdown(timeout=2000)
    starts = starts_of(queue, [j.id for j in jobs])
    assert windows_hold(starts, 30, 400), starts
    assert starts[-1] - starts[0] >= 2 * 400 * 0.95  # three windows at least


@pytest.mark.parametrize("backend", ["real"], indirect=True)
def test_two_processes_share_one_limit(backend: str, tmp_path: Any) -> None:
    script = textwrap.dedent(f'''
        import time
        from kueatomic import Queue
        queue = Queue("rl", {backend!r})
        queue.configure_workers(block_timeout_ms=200)
        queue.process("t", 10, lambda job: None, rate_limit=(25, 500))
        time.sleep(30)
    ''')
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    queue = Queue("rl", backend)
    try:
        jobs = queue.create_bulk([{"type": "t"} for _ in range(100)])
        wait_for(lambda: queue.complete_count() == 100, timeout=30, what="all 100 complete")
        starts = starts_of(queue, [j.id for j in jobs])
        assert windows_hold(starts, 25, 500), starts
        assert starts[-1] - starts[0] >= 3 * 500 * 0.95
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)
        queue.close()


def test_a_sharded_queue_splits_the_limit(shard_url: str) -> None:
    queue = Queue("rls", redis=shard_url, shards=2)
    jobs = queue.create_bulk([{"type": "t"} for _ in range(40)])
    worker = kueatomic.Worker(queue, upkeep_interval_ms=100)
    worker.process("t", 10, lambda job: None, rate_limit=(20, 400))
    worker.start()
    try:
        wait_for(lambda: queue.complete_count() == 40, timeout=20, what="all 40 complete")
        starts = starts_of(queue, [j.id for j in jobs])
    finally:
        worker.shutdown(timeout=2000)
        queue.close()
    assert windows_hold(starts, 20, 400), starts  # each shard allows 10 per window


@pytest.fixture(params=["fake", "real"])
def shard_url(request: pytest.FixtureRequest) -> str:
    if request.param == "fake":
        return f"memory://rl-{time.monotonic_ns()}"
    return str(request.getfixturevalue("real_redis_url"))


def test_a_queue_level_limit_applies_to_every_worker_of_the_queue(make_queue: Any) -> None:
    queue = make_queue(rate_limits={"t": (15, 400)})
    jobs = queue.create_bulk([{"type": "t"} for _ in range(45)])
    worker = kueatomic.Worker(queue, upkeep_interval_ms=100)
    worker.process("t", 10, lambda job: None)  # no rate_limit here: the queue's holds
    worker.process("u", 1, lambda job: None, rate_limit=(1, 10))
    assert [r.rate_limit for r in worker.registrations] == [(15, 400), (1, 10)]
    worker.start()
    try:
        wait_for(lambda: queue.complete_count() == 45, timeout=20, what="all 45 complete")
    finally:
        worker.shutdown(timeout=2000)
    assert windows_hold(starts_of(queue, [j.id for j in jobs]), 15, 400)


def test_bad_queue_level_limits_are_refused(backend: str) -> None:
    for bad in [{"t": (0, 10)}, {"": (1, 1)}, [("t", (1, 1))], {"t": "fast"}]:
        with pytest.raises(InvalidArgument, match="rate_limit"):
            Queue("q", backend, rate_limits=bad)
