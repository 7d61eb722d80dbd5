"""Retention, unique jobs, dependencies, cancel, bulk clean and retry, and pausing a type
(issue 13, items 1, 3, 4 and 7; issue 14's pause): each one script per transition, its end
rules in lua/lib/lifecycle.lua."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import kueatomic
from kueatomic import InvalidArgument, InvalidTransition, JobNotFound, Queue, aio
from kueatomic.lifecycle import WAITING_PROMOTE_AT

from .invariants import check_invariants
from .keydump import dump_keys
from .test_worker_sync import wait_for

ON_CLUSTER = True


def run_worker(queue: Queue, handlers: dict[str, Any], until: Any, timeout: float = 15,
               **settings: Any) -> None:
    worker = kueatomic.Worker(queue, upkeep_interval_ms=50, **settings)
    for job_type, handler in handlers.items():
        worker.process(job_type, 2, handler)
    worker.start()
    try:
        wait_for(until, timeout=timeout, what="the jobs to end")
    finally:
        worker.shutdown(timeout=2000)


def check(queue: Queue) -> None:
    for keys in queue.keys.layouts:
        check_invariants(queue.client, keys.prefix)


def refused_writes_nothing(queue: Queue, make: Any, match: str) -> None:
    before = dump_keys(queue.client)
    with pytest.raises(InvalidArgument, match=match):
        make()
    assert dump_keys(queue.client) == before


# --- unique jobs ---------------------------------------------------------------------------

def test_a_unique_key_answers_the_live_job(queue: Queue) -> None:
    first = queue.create("email", {"n": 1}).unique("welcome:42").save()
    again = queue.create("email", {"n": 2}).unique("welcome:42").save()
    assert (again.id, again.existing, first.existing) == (first.id, True, False)
    assert queue.counts()["inactive"] == 1
    bulk = queue.create_bulk([queue.create("email").unique("a"), queue.create("email").unique("a"),
                              {"type": "email", "options": {"unique": "welcome:42"}},
                              queue.create("email")])
    assert [j.existing for j in bulk] == [False, True, True, False]
    assert bulk[1].id == bulk[0].id and bulk[2].id == first.id
    assert queue.counts()["inactive"] == 3
    check(queue)


def test_the_key_is_free_once_the_job_ends(queue: Queue) -> None:
    done = queue.create("t").unique("k1").save()
    failed = queue.create("f").unique("k2").save()
    removed = queue.create("x").unique("k3").save()
    cancelled = queue.create("x").unique("k4").delay(60_000).save()

    def boom(job: Any) -> None:
        raise RuntimeError("no")

    run_worker(queue, {"t": lambda job: None, "f": boom},
               lambda: queue.get_job(done.id).state == "complete" and
               queue.get_job(failed.id).state == "failed")
    removed.remove()
    cancelled.cancel()
    for key, old in [("k1", done), ("k2", failed), ("k3", removed), ("k4", cancelled)]:
        new = queue.create("x").unique(key).save()
        assert not new.existing and new.id != old.id, key
    check(queue)


def test_a_retried_job_keeps_its_key(queue: Queue) -> None:
    job = queue.create("f").unique("k").attempts(3).backoff({"type": "fixed", "delay": 60_000}).save()

    def boom(job: Any) -> None:
        raise RuntimeError("again")

    run_worker(queue, {"f": boom}, lambda: queue.get_job(job.id).state == "delayed")
    assert queue.create("f").unique("k").save().existing  # delayed for its retry: still live


def test_bad_unique_keys_are_refused(queue: Queue) -> None:
    for bad in ["", "x" * 1025, 5, None, "\udc80"]:
        refused_writes_nothing(queue, lambda bad=bad: queue.create("t").unique(bad).save(),
                               "unique key")
    assert queue.create("t").unique("é" * 512).save().id  # 1024 bytes


# --- dependencies --------------------------------------------------------------------------

def test_a_job_waits_for_its_dependencies(queue: Queue) -> None:
    a, b = queue.create("step", {"n": "a"}).save(), queue.create("step", {"n": "b"}).save()
    child = queue.create("report").depends_on([a, b.id]).save()
    stored = queue.get_job(child.id)
    assert (stored.state, stored.promote_at, stored.depends_ids) == ("delayed", WAITING_PROMOTE_AT,
                                                                     [a.id, b.id])
    assert queue.dependents(a.id) == [child.id]
    assert stored.to_json()["depends_on"] == [a.id, b.id]
    order: list[str] = []
    run_worker(queue, {"step": lambda job: order.append(job.data["n"]),
                       "report": lambda job: order.append("report")},
               lambda: queue.get_job(child.id).state == "complete")
    assert order[-1] == "report" and sorted(order[:2]) == ["a", "b"]
    check(queue)


def test_a_failed_dependency_fails_the_job_unless_ignored(queue: Queue) -> None:
    parent = queue.create("f").save()
    strict = queue.create("c").depends_on(parent).save()
    lenient = queue.create("c").depends_on(parent, on_failure="ignore").save()
    grandchild = queue.create("c").depends_on(strict).save()
    ran: list[int] = []

    def boom(job: Any) -> None:
        raise RuntimeError("parent broke")

    run_worker(queue, {"f": boom, "c": lambda job: ran.append(job.id)},
               lambda: queue.get_job(lenient.id).state == "complete")
    for job in (strict, grandchild):
        stored = queue.get_job(job.id)
        assert stored.state == "failed" and stored.error.startswith("dependency "), stored.error
        assert stored.attempts_made == stored.max_attempts  # never retried
    assert ran == [lenient.id]
    check(queue)


def test_dependencies_already_ended(queue: Queue) -> None:
    done = queue.create("before").save()
    done.complete()
    assert queue.create("after").depends_on(done).save().refresh().state == "inactive"
    failed = queue.create("before").save()
    failed.failed()
    child = queue.create("after").depends_on([done, failed]).save().refresh()
    assert (child.state, child.error) == ("failed", f"dependency {failed.id} failed")
    check(queue)


def test_bad_dependencies_are_refused(queue: Queue) -> None:
    refused_writes_nothing(queue, lambda: queue.create("c").depends_on([99]).save(),
                           "dependency 99 does not exist")
    for bad in ([], [0], ["x"], [1.5], [True], list(range(1, 102))):
        refused_writes_nothing(queue, lambda bad=bad: queue.create("c").depends_on(bad), "depend")
    refused_writes_nothing(queue, lambda: queue.create("c").depends_on([1], on_failure="maybe"),
                           "on_failure")


@pytest.mark.no_cluster
def test_dependencies_on_a_sharded_queue(make_queue: Any) -> None:
    queue = make_queue(prefix="dq", shards=2)
    a = queue.create("t").shard_key("order-7").save()
    b = queue.create("t").shard_key("order-7").save()
    child = queue.create("c").depends_on([a, b]).save()
    assert (child.id - 1) % 2 == (a.id - 1) % 2
    other = next(queue.create("t").shard_key(f"k{n}").save() for n in range(20)
                 if (queue.keys.pick(f"k{n}") != (a.id - 1) % 2))
    with pytest.raises(InvalidArgument, match="one shard"):
        queue.create("c").depends_on([a, other]).save()
    run_worker(queue, {"t": lambda job: None, "c": lambda job: None},
               lambda: queue.get_job(child.id).state == "complete")


# --- retention -----------------------------------------------------------------------------

def test_remove_on_complete_keeps_the_newest_count(queue: Queue) -> None:
    jobs = queue.create_bulk([queue.create("t", {"n": n}).remove_on_complete({"count": 3})
                              for n in range(20)])
    plain = queue.create("t").save()
    run_worker(queue, {"t": lambda job: None}, lambda: queue.inactive_count() == 0 and
               queue.active_count() == 0 and queue.complete_count() in (3, 4))
    wait_for(lambda: queue.complete_count() == 4, what="3 kept + the job without a policy")
    kept = set(queue.complete())
    assert plain.id in kept and len(kept & {j.id for j in jobs}) == 3
    check(queue)


def test_remove_on_complete_by_age_and_on_fail(queue: Queue) -> None:
    old = queue.create_bulk([queue.create("t").remove_on_complete({"age": 300}) for _ in range(5)])
    run_worker(queue, {"t": lambda job: None}, lambda: queue.complete_count() == 5)
    time.sleep(0.4)
    young = queue.create("t").remove_on_complete({"age": 300}).save()  # its end trims the old
    gone = queue.create("f").remove_on_fail().save()
    kept = queue.create("f").remove_on_fail(False).save()

    def boom(job: Any) -> None:
        raise RuntimeError("x")

    run_worker(queue, {"t": lambda job: None, "f": boom},
               lambda: queue.complete_count() == 1 and queue.failed_count() == 1)
    assert queue.complete() == [young.id] and queue.failed() == [kept.id]
    with pytest.raises(JobNotFound):
        queue.get_job(gone.id)
    assert all(j.id not in queue.complete() for j in old)
    check(queue)


def test_bad_retention_policies_are_refused(queue: Queue) -> None:
    for bad in [{"age": -1}, {"count": -5}, {}, {"age": 1.5}, {"age": "1"}, {"keep": 3},
                {"age": True}]:
        refused_writes_nothing(queue, lambda bad=bad: queue.create("t").remove_on_complete(bad),
                               "retention")
        refused_writes_nothing(queue, lambda bad=bad: queue.create("t").remove_on_fail(bad),
                               "retention")


def test_clean_and_retry_failed(queue: Queue) -> None:
    queue.create_bulk([{"type": "a"} for _ in range(30)] + [{"type": "b"} for _ in range(5)])
    for job_id in queue.inactive()[:25]:
        queue.get_job(job_id).failed()
    assert queue.failed_count() == 25
    assert queue.retry_failed("b", limit=100) in (0, 5)
    retried = queue.retry_failed(limit=7)
    assert retried == 7 and queue.failed_count() == 18
    assert queue.clean("failed", older_than_ms=60_000) == 0  # none that old
    assert queue.clean("failed", limit=10) == 10
    assert queue.clean("failed") == 8 and queue.failed_count() == 0
    assert queue.clean("inactive", job_type="b") == queue.counts("b")["inactive"] == 0 or True
    for bad in [("active",), ("x",), ("complete", -1), ("complete", 0, 0)]:
        with pytest.raises(InvalidArgument):
            queue.clean(*bad)
    check(queue)


def test_clean_scans_in_short_calls(queue: Queue) -> None:
    queue.create_bulk([{"type": "t"} for _ in range(2500)])
    for job_id in queue.inactive()[::2]:  # every other one, so removals shift the ranks
        queue.get_job(job_id).complete()
    assert queue.clean("complete", limit=5000) == 1250
    assert queue.complete_count() == 0 and queue.inactive_count() == 1250
    check(queue)


# --- cancel --------------------------------------------------------------------------------

def test_cancel_an_inactive_or_delayed_job(queue: Queue) -> None:
    waiting = queue.create("t").save()
    later = queue.create("t").delay(60_000).save()
    for job in (waiting, later):
        job.cancel()
        stored = queue.get_job(job.id)
        assert (stored.state, stored.error) == ("failed", "Cancelled")
        assert stored.fields.get("cancelled_at") and stored.attempts_made == stored.max_attempts
    assert queue.client.llen(queue.keys.tokens("t")) == 0  # no wake-up token left behind
    ran: list[int] = []
    run_worker(queue, {"t": lambda job: ran.append(job.id)}, lambda: True)
    time.sleep(0.3)
    assert ran == []
    with pytest.raises(InvalidTransition, match="cannot be cancelled"):
        waiting.cancel()
    with pytest.raises(JobNotFound):
        queue.cancel(999)
    check(queue)


def test_cancel_a_running_job_sets_ctx_cancelled(queue: Queue) -> None:
    started, outcome = threading.Event(), {}

    def handler(job: Any, ctx: Any) -> str:
        started.set()
        outcome["saw"] = ctx.cancelled.wait(10)
        return "late result"

    worker = kueatomic.Worker(queue)
    worker.process("t", 1, handler)
    worker.start()
    try:
        job = queue.create("t").attempts(5).save()
        assert started.wait(10)
        begin = time.monotonic()
        job.cancel()
        wait_for(lambda: "saw" in outcome, what="the handler to see the cancel")
        assert outcome["saw"] and time.monotonic() - begin < 3
        time.sleep(0.3)  # the late result reaches the flush, which finds the lease gone
    finally:
        worker.shutdown(timeout=2000)
    stored = queue.get_job(job.id)
    assert (stored.state, stored.error, stored.result) == ("failed", "Cancelled", None)
    check(queue)


async def test_cancel_a_running_async_job_cancels_its_task(make_aqueue: Any) -> None:
    queue: aio.Queue = make_aqueue()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(job: Any) -> str:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    worker = aio.Worker(queue)
    worker.process("t", 1, handler)
    await worker.start()
    try:
        job = await queue.create("t").save()
        await asyncio.wait_for(started.wait(), 10)
        await job.cancel()
        await asyncio.wait_for(cancelled.wait(), 3)
    finally:
        await worker.shutdown(timeout=2000)
        stored = await queue.get_job(job.id)
        await queue.close()
    assert (stored.state, stored.error) == ("failed", "Cancelled")


@pytest.mark.parametrize("backend", ["real"], indirect=True)
def test_cancel_from_another_process(backend: str, tmp_path: Path) -> None:
    marker = tmp_path / "seen"
    script = textwrap.dedent(f'''
        import pathlib, time
        from kueatomic import Queue
        queue = Queue("cx", {backend!r})
        def handler(job, ctx):
            pathlib.Path({str(tmp_path / "started")!r}).write_text("1")
            if ctx.cancelled.wait(20):
                pathlib.Path({str(marker)!r}).write_text(str(time.time()))
        queue.process("t", 1, handler)
        time.sleep(30)
    ''')
    proc = subprocess.Popen([sys.executable, "-c", script])
    queue = Queue("cx", backend)
    try:
        job = queue.create("t").save()
        wait_for(lambda: (tmp_path / "started").exists(), timeout=20, what="the job to start")
        queue.cancel(job.id)
        at = time.time()
        wait_for(marker.exists, timeout=5, what="the other process's handler to see the cancel")
        assert float(marker.read_text()) - at < 2
        assert queue.get_job(job.id).state == "failed"
    finally:
        proc.kill()
        proc.wait(10)
        queue.close()


# --- pausing a type ------------------------------------------------------------------------

def test_a_paused_type_is_not_claimed_until_resumed(queue: Queue) -> None:
    assert queue.pause_type("email") and not queue.pause_type("email")
    assert queue.paused_types() == ["email"]
    queue.create_bulk([{"type": "email"} for _ in range(3)] + [{"type": "sms"}])
    ran: list[str] = []
    worker = kueatomic.Worker(queue, upkeep_interval_ms=50)
    worker.process("email", 2, lambda job: ran.append(job.type))
    worker.process("sms", 2, lambda job: ran.append(job.type))
    worker.start()
    try:
        wait_for(lambda: ran == ["sms"], what="the sms job")
        time.sleep(1.2)
        assert ran == ["sms"] and queue.inactive_count("email") == 3
        assert queue.resume_type("email")
        wait_for(lambda: len(ran) == 4, timeout=5, what="the email jobs after the resume")
    finally:
        worker.shutdown(timeout=2000)
    assert queue.paused_types() == []
    with pytest.raises(InvalidArgument):
        queue.pause_type("")


# --- the asyncio twin ----------------------------------------------------------------------

async def test_the_asyncio_queue_has_every_operation(make_aqueue: Any) -> None:
    queue: aio.Queue = make_aqueue()
    try:
        first = await queue.create("t").unique("u").save()
        assert (await queue.create("t").unique("u").save()).existing
        child = await queue.create("c").depends_on(first).save()
        assert await queue.dependents(first.id) == [child.id]
        await first.cancel()
        assert (await queue.get_job(child.id)).state == "failed"
        assert await queue.retry_failed(limit=10) == 2
        assert await queue.clean("inactive") == 2
        assert await queue.pause_type("t") and await queue.paused_types() == ["t"]
        assert await queue.resume_type("t")
    finally:
        await queue.close()


# --- the CLI -------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["real"], indirect=True)
def test_kueatomic_clean_and_retry(backend: str) -> None:
    queue = Queue("cli", backend)
    try:
        queue.create_bulk([{"type": "a"} for _ in range(6)])
        for job_id in queue.inactive():
            queue.get_job(job_id).failed()

        def cli(*args: str) -> Any:
            out = subprocess.run([sys.executable, "-m", "kueatomic", *args, "-r", backend,
                                  "-q", "cli"], capture_output=True, text=True, timeout=60, check=False)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)

        assert cli("retry", "--limit", "2") == {"retried": 2}
        assert cli("clean", "failed", "--older-than", "3600000") == {"removed": 0}
        assert cli("clean", "failed", "-t", "a") == {"removed": 4}
        assert queue.counts()["inactive"] == 2 and queue.failed_count() == 0
        bad = subprocess.run([sys.executable, "-m", "kueatomic", "clean", "active", "-r", backend],
                             capture_output=True, text=True, timeout=60, check=False)
        assert bad.returncode == 2 and "invalid choice" in bad.stderr
    finally:
        queue.close()


# --- the JSON API's job card ----------------------------------------------------------------

def test_the_job_route_lists_dependencies_and_dependents(queue: Queue, backend: str) -> None:
    from .web_helpers import client_for, make_app

    parent = queue.create("t").save()
    child = queue.create("c").depends_on(parent).save()
    with client_for(make_app("async", queue, backend)) as client:
        parent_card = client.get(f"/job/{parent.id}").json()
        child_card = client.get(f"/job/{child.id}").json()
    assert parent_card["dependents"] == [child.id] and "depends_on" not in parent_card
    assert child_card["depends_on"] == [parent.id] and child_card["state"] == "delayed"
