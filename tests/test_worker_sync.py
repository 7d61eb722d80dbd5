"""The threaded worker of ``kueatomic.Queue`` on fakeredis and a real redis-server: results,
retries and backoff, delays, ttl, concurrency, priority order, events, pause/resume,
shutdown, lost leases and bad handler output."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kueatomic import InvalidArgument, LeaseLost, Queue, backoff_function

from .invariants import check_invariants

ON_CLUSTER = True  # the backend fixture also runs these tests on a Redis Cluster

FAST = {"lease_ms": 600, "upkeep_interval_ms": 50, "block_timeout_ms": 100}


def wait_for(fn: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def wq(make_queue: Callable[..., Queue]) -> Iterator[Queue]:
    """A queue with fast worker timings, shut down after the test."""
    queue = make_queue()
    queue.configure_workers(**FAST)
    yield queue
    queue.shutdown(timeout=0)


def state_of(queue: Queue, job_id: int) -> str | None:
    return queue.client.hget(queue.keys.job(job_id), "state")


def test_a_job_runs_and_completes_like_kue(wq: Queue) -> None:
    def send(job: Any, ctx: Any) -> dict[str, Any]:
        job.log("sending to %s", job.data["to"])
        job.progress(1, 2, {"stage": "smtp"})
        return {"sent": True}

    job = wq.create("email", {"to": "tj"}).save()
    wq.process("email", 2, send)
    wait_for(lambda: state_of(wq, job.id) == "complete", what="complete")
    done = wq.get_job(job.id)
    assert done.result == {"sent": True} and done.progress_percent == 100
    assert done.progress_data == {"stage": "smtp"} and done.logs() == ["sending to tj"]
    assert done.attempts_made == 1 and done.duration is not None and done.started_at
    host, pid, jtype, n = done.worker_id.split(":")[1:]
    assert (host, int(pid), jtype) == (socket.gethostname(), __import__("os").getpid(), "email")
    assert int(n) >= 1
    assert "lease" not in done.fields and wq.work_time() == done.duration
    check_invariants(wq.client, wq.prefix)


def test_process_forms_and_bad_arguments(wq: Queue) -> None:
    seen: list[str] = []

    @wq.process("a", concurrency=2)
    def first(job: Any) -> None:
        seen.append("a")

    wq.process("b", lambda job: seen.append("b"))
    wq.create("a").save()
    wq.create("b").save()
    wait_for(lambda: sorted(seen) == ["a", "b"])
    for bad in (0, -1, "2", True):
        with pytest.raises(InvalidArgument, match="concurrency"):
            wq.process("c", bad, lambda job: None)
    with pytest.raises(InvalidArgument, match="type"):
        wq.process("x:y", lambda job: None)
    with pytest.raises(InvalidArgument, match="callable"):
        wq.process("c", 1, "not a function")  # type: ignore[arg-type]


def test_priority_order_then_fifo_with_one_slot(wq: Queue) -> None:
    order: list[str] = []
    specs = [("low", "low"), ("n1", "normal"), ("n2", "normal"), ("crit", "critical"),
             ("high", "high"), ("n3", "normal")]
    for name, priority in specs:
        wq.create("email", {"name": name}).priority(priority).save()
    wq.process("email", 1, lambda job: order.append(job.data["name"]))
    wait_for(lambda: len(order) == len(specs))
    assert order == ["crit", "high", "n1", "n2", "n3", "low"]


def test_concurrency_is_respected(wq: Queue) -> None:
    running, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def work(job: Any) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1

    wq.create_bulk([{"type": "email"} for _ in range(10)])
    wq.process("email", 3, work)
    wait_for(lambda: running[0] == 3)
    assert wq.active_count() == 3 and wq.inactive_count() == 7
    release.set()
    wait_for(lambda: wq.complete_count() == 10)
    assert peak[0] == 3


def test_retries_with_backoff_then_success(wq: Queue) -> None:
    calls: list[int] = []
    attempts: list[tuple[Any, ...]] = []
    wq.on("job failed attempt", lambda *args: attempts.append(args))

    def flaky(job: Any) -> str:
        calls.append(job.attempts_made)
        if len(calls) < 3:
            raise RuntimeError(f"try {len(calls)}")
        return "ok"

    job = wq.create("email").attempts(3).backoff({"type": "fixed", "delay": 50}).save()
    wq.process("email", flaky)
    wait_for(lambda: state_of(wq, job.id) == "complete")
    done = wq.get_job(job.id)
    assert calls == [0, 1, 2] and done.attempts_made == 3 and done.result == "ok"
    assert done.logs() == ["RuntimeError: try 1", "RuntimeError: try 2"]
    wait_for(lambda: len(attempts) == 2)
    assert attempts == [(job.id, "try 1", 1), (job.id, "try 2", 2)]


def test_exhausted_attempts_end_failed_with_the_traceback(wq: Queue) -> None:
    failed: list[tuple[Any, ...]] = []
    wq.on("job failed", lambda job_id, message: failed.append((job_id, message)))

    def broken(job: Any) -> None:
        raise ValueError("smtp down")

    job = wq.create("email").attempts(2).save()
    wq.process("email", broken)
    wait_for(lambda: state_of(wq, job.id) == "failed")
    done = wq.get_job(job.id)
    assert done.attempts_made == 2
    assert done.error.startswith("ValueError: smtp down\nTraceback")
    assert "in broken" in done.error and done.logs() == ["ValueError: smtp down"] * 2
    wait_for(lambda: failed == [(job.id, "smtp down")])


def test_a_delayed_job_waits_for_its_time(wq: Queue) -> None:
    started: list[float] = []
    wq.process("email", lambda job: started.append(time.monotonic()))
    created = time.monotonic()
    job = wq.create("email").delay(300).save()
    wait_for(lambda: state_of(wq, job.id) == "complete")
    assert started[0] - created >= 0.29
    assert started[0] - created < 2.0


def test_ttl_exceeded_fails_the_attempt_and_frees_the_slot(wq: Queue) -> None:
    hang = threading.Event()
    errors: list[BaseException] = []
    wq.on("error", errors.append)

    def work(job: Any) -> str:
        if job.data.get("hang"):
            hang.wait(20)
        return "done"

    stuck = wq.create("email", {"hang": True}).ttl(200).save()
    after = wq.create("email").save()
    wq.process("email", 1, work)
    wait_for(lambda: state_of(wq, stuck.id) == "failed", what="ttl failure")
    assert wq.get_job(stuck.id).error == "TTL exceeded"
    wait_for(lambda: state_of(wq, after.id) == "complete", what="slot freed")
    assert any(isinstance(e, LeaseLost) for e in errors)
    hang.set()
    time.sleep(0.05)
    assert state_of(wq, stuck.id) == "failed"  # the late return wrote nothing


def test_a_result_that_is_not_json_fails_the_attempt(wq: Queue) -> None:
    job = wq.create("email").save()
    wq.process("email", lambda job: {"when": object()})
    wait_for(lambda: state_of(wq, job.id) == "failed")
    error = wq.get_job(job.id).error
    assert error.startswith("NotSerializable: the handler's result must be JSON-serialisable")


def test_progress_with_total_zero_fails_with_a_clear_error(wq: Queue) -> None:
    job = wq.create("email").save()
    wq.process("email", lambda job: job.progress(1, 0))
    wait_for(lambda: state_of(wq, job.id) == "failed")
    assert "progress total must be > 0" in wq.get_job(job.id).error


def test_queue_and_job_events(wq: Queue) -> None:
    queue_events: list[tuple[Any, ...]] = []
    job_events: list[tuple[Any, ...]] = []
    for name in ("job enqueue", "job start", "job progress", "job complete"):
        wq.on(name, lambda *args, name=name: queue_events.append((name, *args)))
    job = wq.create("email", {"n": 1})
    job.on("progress", lambda pct, data: job_events.append(("progress", pct, data)))
    job.on("complete", lambda result: job_events.append(("complete", result)))
    job.save()

    def work(j: Any) -> dict[str, int]:
        j.progress(1, 3, {"step": 1})
        return {"n": 2}

    wq.process("email", work)
    wait_for(lambda: len(job_events) == 2)
    assert job_events == [("progress", 33, {"step": 1}), ("complete", {"n": 2})]
    wait_for(lambda: len(queue_events) == 4)
    assert queue_events == [("job enqueue", job.id, "email"), ("job start", job.id, "email", None),
                            ("job progress", job.id, 33, {"step": 1}),
                            ("job complete", job.id, {"n": 2}, None)]


def test_on_as_decorator_and_off(wq: Queue) -> None:
    seen: list[Any] = []

    @wq.on("job complete")
    def done(job_id: int, result: Any) -> None:
        seen.append(result)

    wq.process("email", lambda job: job.data["n"])
    wq.create("email", {"n": 1}).save()
    wait_for(lambda: seen == [1])
    wq.off("job complete", done)
    job = wq.create("email", {"n": 2}).save()
    wait_for(lambda: state_of(wq, job.id) == "complete")
    time.sleep(0.1)
    assert seen == [1]


def test_shutdown_waits_then_releases_running_jobs(wq: Queue) -> None:
    release = threading.Event()
    job = wq.create("email").attempts(1).save()
    wq.process("email", lambda j: release.wait(20) and "late")
    wait_for(lambda: state_of(wq, job.id) == "active")
    started = time.monotonic()
    wq.shutdown(timeout=200)
    assert 0.15 < time.monotonic() - started < 5
    done = wq.get_job(job.id)
    assert done.state == "inactive" and done.attempts_made == 0 and not done.error
    assert any(line.startswith("Released at shutdown") for line in done.logs())
    assert "lease" not in done.fields
    release.set()
    time.sleep(0.2)
    assert state_of(wq, job.id) == "inactive"  # its late result was discarded
    later = wq.create("email").save()
    time.sleep(0.3)
    assert state_of(wq, later.id) == "inactive"  # nothing claims after shutdown
    wq.shutdown(timeout=0)  # idempotent


def test_shutdown_with_fail_running_keeps_kues_shutdown_failure(wq: Queue) -> None:
    release, running = threading.Event(), threading.Event()
    job = wq.create("email").attempts(1).save()
    wq.process("email", lambda j: (running.set(), release.wait(20)))
    assert running.wait(10)  # running, not only claimed (a claimed job is released)
    wq.shutdown(timeout=100, fail_running=True)
    done = wq.get_job(job.id)
    assert done.state == "failed" and done.error == "Shutdown" and done.logs() == ["Shutdown"]
    release.set()


def test_graceful_shutdown_lets_running_jobs_finish(wq: Queue) -> None:
    job = wq.create("email").save()
    running = threading.Event()

    def work(j: Any) -> str:
        running.set()
        time.sleep(0.2)
        return "finished"

    wq.process("email", work)
    assert running.wait(10)
    wq.shutdown()
    assert wq.get_job(job.id).result == "finished"


def test_pause_and_resume(wq: Queue) -> None:
    contexts: list[Any] = []
    seen: list[int] = []

    def work(job: Any, ctx: Any) -> None:
        seen.append(job.data["n"])
        if job.data["n"] == 0:
            contexts.append(ctx)
            ctx.pause(timeout=5000)

    wq.create("email", {"n": 0}).save()
    wq.process("email", 1, work)
    wait_for(lambda: contexts)
    ctx = contexts[0]
    assert ctx.paused and ctx.job_type == "email"
    wait_for(lambda: wq.complete_count() == 1)
    wq.create("email", {"n": 1}).save()
    time.sleep(0.3)
    assert seen == [0] and wq.inactive_count() == 1
    ctx.resume()
    wait_for(lambda: seen == [0, 1])
    assert not ctx.paused


def test_a_job_moved_by_hand_while_running_keeps_its_new_state(wq: Queue) -> None:
    errors: list[BaseException] = []
    wq.on("error", errors.append)
    moved = threading.Event()

    def work(job: Any) -> str:
        moved.wait(10)
        return "late"

    job = wq.create("email").save()
    wq.process("email", work)
    wait_for(lambda: state_of(wq, job.id) == "active")
    wq.get_job(job.id).complete()  # by hand (the dashboard): drops the lease
    moved.set()
    wait_for(lambda: any(isinstance(e, LeaseLost) for e in errors))
    assert "result" not in wq.get_job(job.id).fields


def test_remove_on_complete_through_the_worker(wq: Queue) -> None:
    job = wq.create("email").remove_on_complete().save()
    wq.process("email", lambda j: "x")
    wait_for(lambda: not wq.client.exists(wq.keys.job(job.id)))
    assert wq.counts()["complete"] == 0


def test_watch_stuck_jobs_recovers_a_dead_workers_job(make_queue: Callable[..., Queue]) -> None:
    from kueatomic.worker import calls

    queue = make_queue()
    job = queue.create("email").save()
    token = calls.claim_token()
    queue._run(__import__("kueatomic.ops", fromlist=["single"]).single(
        calls.activate(queue.keys, "email", 1, "kue:dead:1:email:1", token, 100)))
    assert state_of(queue, job.id) == "active"
    queue.configure_workers(upkeep_interval_ms=50)
    queue.watch_stuck_jobs(interval=50)
    try:
        wait_for(lambda: state_of(queue, job.id) == "inactive", what="recovery")
        assert queue.client.hget(queue.keys.job(job.id), "stalls") == "1"
    finally:
        queue.shutdown()


def test_many_jobs_many_types(wq: Queue) -> None:
    wq.create_bulk([{"type": t, "data": {"n": n}} for n in range(60) for t in ("a", "b")])
    wq.process("a", 5, lambda job: job.data["n"])
    wq.process("b", 1, lambda job: job.data["n"] * 2)
    wait_for(lambda: wq.complete_count() == 120)
    assert wq.complete_count("a") == 60 and wq.work_time() is not None
    check_invariants(wq.client, wq.prefix)
    tokens = [wq.client.llen(wq.keys.tokens(t)) for t in ("a", "b")]
    assert tokens == [0, 0]


def test_close_stops_the_workers(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue()
    queue.configure_workers(**FAST)
    queue.process("email", lambda job: None)
    queue.create("email").save()
    wait_for(lambda: queue.complete_count() == 1)
    queue.close()
    other = make_queue()
    job = other.create("email").save()
    time.sleep(0.3)
    assert state_of(other, job.id) == "inactive"


def test_shutdown_from_inside_a_handler_does_not_wait_for_itself(wq: Queue) -> None:
    returned = threading.Event()

    def work(job: Any) -> str:
        wq.shutdown()
        returned.set()
        return "stopped the worker"

    first = wq.create("email").save()
    wq.process("email", 1, work)
    assert returned.wait(10)
    wait_for(lambda: state_of(wq, first.id) == "complete")
    later = wq.create("email").save()
    time.sleep(0.3)
    assert state_of(wq, later.id) == "inactive"


def test_a_hung_handler_frees_its_slot_soon_after_its_ttl(wq: Queue) -> None:
    """Not only at the next lease renewal (every lease_ms / 3 = 10 s here)."""
    wq.configure_workers(lease_ms=30000, upkeep_interval_ms=50)
    hang = threading.Event()
    stuck = wq.create("email", {"hang": True}).ttl(200).save()
    after = wq.create("email").save()
    wq.process("email", 1, lambda job: hang.wait(20) if job.data.get("hang") else "done")
    wait_for(lambda: state_of(wq, after.id) == "complete", timeout=5, what="slot freed")
    assert wq.get_job(stuck.id).error == "TTL exceeded"
    hang.set()


@backoff_function
def quick_backoff(attempts: int, delay: int) -> int:
    return 50 * attempts


def test_a_python_backoff_function_sets_the_retry_delay(wq: Queue) -> None:
    runs: list[float] = []

    def flaky(job: Any) -> str:
        runs.append(time.monotonic())
        if len(runs) < 3:
            raise RuntimeError("again")
        return "third time"

    job = wq.create("email").attempts(3).backoff(quick_backoff).save()
    wq.process("email", flaky)
    wait_for(lambda: state_of(wq, job.id) == "complete")
    done = wq.get_job(job.id)
    assert done.attempts_made == 3 and done.delay_ms == 100  # 50 * attempts, after the 2nd
    assert runs[1] - runs[0] >= 0.045 and runs[2] - runs[1] >= 0.095


def test_workers_start_again_after_a_full_shutdown(wq: Queue) -> None:
    wq.process("email", lambda job: "first")
    first = wq.create("email").save()
    wait_for(lambda: state_of(wq, first.id) == "complete")
    first_threads = list(wq.worker._threads)  # the first start's flusher and housekeeper
    assert [t.name for t in first_threads] == ["kueatomic-flush", "kueatomic-upkeep"]
    wq.shutdown()
    wq.process("email", lambda job: "second")
    second = wq.create("email").save()
    wait_for(lambda: state_of(wq, second.id) == "complete")
    assert wq.get_job(second.id).result == "second"
    # the first start's threads exit; the new start has its own
    wait_for(lambda: not any(t.is_alive() for t in first_threads), timeout=5)
    assert all(t.is_alive() for t in wq.worker._threads)