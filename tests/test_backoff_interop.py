"""Backoff text between kueatomic and real Node Kue 0.11.6, which evaluates the field in
``Job.get``: a JavaScript backoff Node Kue stored survives a kueatomic re-save and still runs
in Node Kue; every backoff kueatomic writes is data that Node Kue reads and uses.

Marked ``interop`` like tests/test_worker_interop.py (skips without node and npm)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kueatomic import Queue, backoff_function
from kueatomic.web import create_app

from .kue_node import KueNode
from .web_helpers import client_for

pytestmark = [pytest.mark.interop, pytest.mark.real_redis]
PREFIX = "bkinterop"
NODE_SOURCE = "function (attempts, delay) { return 300; }"


@backoff_function
def slow(attempts: int, delay: int) -> int:
    return 1000 * attempts


@pytest.fixture
def queue(real_redis_url: str) -> Iterator[Queue]:
    q = Queue(PREFIX, real_redis_url)
    yield q
    q.close()


def test_a_node_backoff_survives_a_kueatomic_resave(node: KueNode, queue: Queue) -> None:
    created = node.run("create", jobs=[{"type": "bk", "data": {"fail_first": True},
                                        "attempts": 2, "backoff_source": NODE_SOURCE}])
    job_id = int(created[-1]["ids"][0])
    stored = queue.client.hget(queue.keys.job(job_id), "backoff")
    assert stored is not None and stored.startswith("function")  # Node Kue's fn.toString()
    job = queue.get_job(job_id)
    job.priority("high")
    job.save()
    with client_for(create_app(queue)) as client:
        assert client.put(f"/job/{job_id}/priority/critical").status_code == 200
    assert queue.client.hget(queue.keys.job(job_id), "backoff") == stored

    lines = node.run("process", type="bk", ids=[job_id], timeout=20000)
    assert not any(line.get("timeout") for line in lines), lines
    done = queue.get_job(job_id)
    assert done.state == "complete" and done.attempts_made == 2
    assert int(done.fields["promote_at"]) - int(done.fields["failed_at"]) == 300  # Node ran it
    assert done.fields["backoff"] == stored


def test_node_kue_reads_and_uses_every_backoff_kueatomic_writes(node: KueNode,
                                                                queue: Queue) -> None:
    retried = [queue.create("bk", {"fail_first": True}).attempts(2).backoff(spec).delay(1).save()
               for spec in (True, {"type": "fixed", "delay": 200},
                            {"type": "exponential", "delay": 200, "maxDelay": 900})]
    # A Python function's name is data to Node Kue's eval; the job runs (it never fails there:
    # only a kueatomic worker can compute that delay).
    named = queue.create("bk", {}).backoff(slow).save()
    jobs = [*retried, named]
    for job in jobs:
        text = queue.client.hget(queue.keys.job(job.id), "backoff")
        assert text is not None and not text.startswith("function")
    queue.watch_stuck_jobs(interval=100)  # promotes the delayed jobs alongside Node Kue
    lines = node.run("process", type="bk", ids=[j.id for j in jobs], timeout=20000)
    queue.shutdown()
    assert not any(line.get("timeout") or line.get("error") for line in lines), lines
    node_view = lines[-1]["jobs"]
    for job in jobs:
        assert node_view[str(job.id)]["state"] == "complete", node_view[str(job.id)]
    for job in retried:
        assert node_view[str(job.id)]["attempts"]["made"] == 2


def test_the_payload_never_reaches_node_kue(node: KueNode, queue: Queue, tmp_path: Any) -> None:
    marker = tmp_path / "pwned"
    payload = f"function(){{ require('child_process').execSync('touch {marker}') }}"
    with client_for(create_app(queue)) as client:
        refused = client.post("/job", json={"type": "bk", "options": {"backoff": payload}})
        assert refused.status_code == 400
        many = client.post("/job", json=[{"type": "bk", "data": {"n": 1}},
                                         {"type": "bk", "options": {"backoff": payload}}])
        assert many.status_code == 400
    (job_id,) = queue.state("inactive")  # the one valid job
    lines = node.run("process", type="bk", ids=[job_id], timeout=20000)
    assert lines[-1]["jobs"][str(job_id)]["state"] == "complete"
    assert not marker.exists()
