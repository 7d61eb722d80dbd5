"""Interop with real Node Kue 0.11.6 on one Redis: jobs created by Node Kue are run by a
kueatomic worker and jobs created by kueatomic are run by a Node Kue worker, with retries,
backoff and delays; both sides read the same states and fields and receive the same events.

Marked ``interop`` (select with ``-m interop``); they run in the normal suite whenever node
and npm are there (``kue@0.11.6`` is installed once into ``tests/.kue-node/``) and skip with
the reason otherwise."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from kueatomic import Queue

from .kue_node import KueNode
from .test_worker_sync import wait_for

pytestmark = [pytest.mark.interop, pytest.mark.real_redis]
PREFIX = "interop"


@pytest.fixture
def queue(real_redis_url: str) -> Iterator[Queue]:
    q = Queue(PREFIX, real_redis_url)
    q.configure_workers(upkeep_interval_ms=100, block_timeout_ms=200)
    yield q
    q.close()


class Recorder:
    """Every queue event kueatomic receives, in the shape the Node helper prints."""

    NAMES = ("enqueue", "start", "progress", "complete", "failed", "failed attempt",
             "promotion", "remove", "error")

    def __init__(self, queue: Queue) -> None:
        self.events: list[dict[str, Any]] = []
        for name in self.NAMES:
            queue.on(f"job {name}", lambda job_id, *args, name=name: self.events.append(
                {"id": job_id, "event": name, "args": list(args)}))

    def for_ids(self, ids: set[int]) -> list[dict[str, Any]]:
        return [e for e in self.events if e["id"] in ids]


def subscribers(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(dict(client.pubsub_numsub(f"{PREFIX}:events"))[f"{PREFIX}:events".encode()])
    finally:
        client.close()


def normalised(events: list[dict[str, Any]]) -> Counter[str]:
    """Events as comparable text. JavaScript's emit drops trailing undefined arguments the
    way JSON keeps them as null, so trailing nulls are ignored."""
    out: Counter[str] = Counter()
    for event in events:
        args = list(event["args"])
        while args and args[-1] is None:
            args.pop()
        out[f"{event['id']} {event['event']} {args!r}"] += 1
    return out


def names(events: list[dict[str, Any]], job_id: int) -> list[str]:
    return [e["event"] for e in events if e["id"] == job_id]


def python_handler(job: Any) -> dict[str, Any]:
    job.log("python handled %s", job.id)
    job.progress(1, 2, {"side": "python"})
    if job.data.get("fail_first") and job.attempts_made == 0:
        raise RuntimeError("python first try")
    if job.data.get("fail_always"):
        raise RuntimeError("python always fails")
    return {"by": "python", "n": job.data.get("n")}


def test_node_kue_jobs_run_on_a_kueatomic_worker(node: KueNode, queue: Queue,
                                                 real_redis_url: str) -> None:
    watcher = node.start("watch", timeout=60000)
    wait_for(lambda: subscribers(real_redis_url) >= 1, what="Node Kue subscribed")
    recorder = Recorder(queue)
    created = node.run("create", jobs=[
        {"type": "py", "data": {"n": 1}},
        {"type": "py", "data": {"n": 2, "fail_first": True}, "attempts": 3,
         "backoff": {"type": "fixed", "delay": 200}},
        {"type": "py", "data": {"n": 3}, "delay": 400, "priority": "high"},
        {"type": "py", "data": {"n": 4, "fail_always": True}, "attempts": 2},
        {"type": "py", "data": {"n": 5}, "removeOnComplete": True},
    ])
    ids = [int(i) for i in created[-1]["ids"]]
    queue.process("py", 2, python_handler)
    wait_for(lambda: all(queue.client.hget(queue.keys.job(i), "state") in ("complete", "failed")
                         or not queue.client.exists(queue.keys.job(i)) for i in ids),
             timeout=30, what="the jobs to finish")
    queue.shutdown(timeout=1000)
    seen_by_node = node.lines(watcher, stdin=str(ids[:4]))[-1]
    jobs = {int(k): v for k, v in seen_by_node["jobs"].items()}

    plain, retried, delayed, doomed = (jobs[i] for i in ids[:4])
    assert plain["state"] == "complete" and plain["result"] == {"by": "python", "n": 1}
    assert plain["progress"] == "100" and plain["attempts"] == {"made": 1, "remaining": 0, "max": 1}
    assert re.fullmatch(r"kue:[^:]+:\d+:py:\d+", plain["workerId"])
    assert int(plain["duration"]) >= 0 and plain["started_at"]
    assert retried["state"] == "complete" and retried["attempts"]["made"] == 2
    assert retried["error"].startswith("RuntimeError: python first try")
    assert delayed["state"] == "complete" and delayed["delay"] == "400"
    assert doomed["state"] == "failed" and doomed["attempts"] == {"made": 2, "remaining": 0, "max": 2}
    assert not queue.client.exists(queue.keys.job(ids[4]))  # removeOnComplete
    for job_id in ids[:4]:
        assert "lease" not in queue.client.hgetall(queue.keys.job(job_id))
    assert queue.job_logs(ids[1])[:2] == [f"python handled {ids[1]}", "RuntimeError: python first try"]

    ours = recorder.for_ids(set(ids))
    assert normalised(seen_by_node["events"]) == normalised(ours)
    assert names(ours, ids[1]) == ["start", "progress", "error", "failed attempt", "promotion",
                                   "enqueue", "start", "progress", "complete"]
    assert names(ours, ids[3])[-2:] == ["error", "failed"]
    assert names(ours, ids[4])[-2:] == ["remove", "complete"]


def test_kueatomic_jobs_run_on_a_node_kue_worker(node: KueNode, queue: Queue) -> None:
    from .invariants import check_invariants

    recorder = Recorder(queue)
    progress: list[Any] = []
    jobs = [
        queue.create("nd", {"n": 1, "steps": 2}).save(),
        queue.create("nd", {"n": 2, "fail_first": True}).attempts(3)
        .backoff({"type": "exponential", "delay": 200}).save(),
        queue.create("nd", {"n": 3}).delay(400).priority("high").save(),
        queue.create("nd", {"n": 4, "fail_always": True}).attempts(2).save(),
        queue.create("nd", {"n": 5, "result": "plain string result"}).save(),
    ]
    jobs[0].on("progress", lambda pct, data: progress.append((pct, data)))
    ids = [job.id for job in jobs]
    wait_for(lambda: len(recorder.events) == 4)  # the four "enqueue" of creation
    before_node = len(recorder.events)
    # kueatomic's upkeep runs meanwhile: both sides promote delayed jobs and re-sync tokens
    queue.watch_stuck_jobs(interval=100)
    lines = node.run("process", type="nd", ids=ids, concurrency=2, timeout=30000)
    # Node's shutdown pushes extra wake-up tokens (Kue's drift); kueatomic's upkeep re-syncs
    wait_for(lambda: queue.client.llen(queue.keys.tokens("nd")) == 0, what="tokens re-synced")
    queue.shutdown()
    assert not any(line.get("timeout") for line in lines), lines
    seen_by_node = lines[-1]

    loaded = {job.id: queue.get_job(job.id) for job in jobs}
    plain, retried, delayed, doomed, text = (loaded[i] for i in ids)
    assert plain.state == "complete" and plain.result == {"by": "node"}
    assert plain.progress_percent == 100 and plain.attempts_made == 1
    assert plain.worker_id.startswith("kue:") and ":nd:" in plain.worker_id
    assert plain.logs() == [f"node handled {plain.id}"]
    assert retried.state == "complete" and retried.attempts_made == 2
    assert retried.error.startswith("Error: node first try\n    at ")
    assert retried.logs() == [f"node handled {retried.id}", "Error: node first try",
                              f"node handled {retried.id}"]
    # Kue's exponential backoff: round(d/2 * (2^1 - 1)) = 100 after the first failure
    assert int(retried.fields["promote_at"]) - int(retried.fields["failed_at"]) == 100
    assert delayed.state == "complete"
    assert doomed.state == "failed" and doomed.attempts_made == 2
    assert text.result == "plain string result"
    for job in loaded.values():
        assert job.to_json() == {**seen_by_node["jobs"][str(job.id)], "id": job.id}

    wait_for(lambda: len([e for e in recorder.events if e["event"] in ("complete", "failed")]) >= 5)
    time.sleep(0.3)
    ours = [e for e in recorder.events[before_node:] if e["id"] in set(ids)]
    assert normalised(seen_by_node["events"]) == normalised(ours)
    assert names(ours, retried.id) == ["start", "error", "failed attempt", "promotion",
                                       "enqueue", "start", "complete"]
    assert names(ours, delayed.id)[:2] == ["promotion", "enqueue"]
    check_invariants(queue.client, PREFIX)
    assert progress == [(50, {"step": 1}), (100, {"step": 2})]


def test_node_kue_sees_valid_jobs_with_kueatomic_additions(node: KueNode, queue: Queue) -> None:
    """Unique keys, retention policies and dependencies are hash fields and keys Node Kue
    ignores: its worker runs such jobs, and its promoter leaves a job waiting for a dependency
    in delayed (promote_at is never due)."""
    from .invariants import check_invariants

    blocker = queue.create("held", {}).save()  # nobody processes "held"
    waiting = queue.create("nd", {"n": 0}).depends_on(blocker).save()
    unique = queue.create("nd", {"n": 1}).unique("only-one").remove_on_complete({"count": 5}).save()
    assert queue.create("nd", {"n": 2}).unique("only-one").save().existing
    lines = node.run("process", type="nd", ids=[unique.id], concurrency=1, timeout=30000)
    assert not any(line.get("timeout") for line in lines), lines
    done = queue.get_job(unique.id)
    assert done.state == "complete" and done.result == {"by": "node"}
    assert lines[-1]["jobs"][str(unique.id)]["state"] == "complete"
    # Node completed it (no end rules ran), yet the key is free: only a live holder counts.
    assert not queue.create("nd", {"n": 3}).unique("only-one").save().existing
    still = queue.get_job(waiting.id)
    assert still.state == "delayed" and still.promote_at == 2**53 - 1
    queue.watch_stuck_jobs(interval=100)
    check_invariants(queue.client, PREFIX)
