"""Prometheus metrics (kueatomic.metrics): names and values after a known workload, on a
worker's registry and the web app's ``GET /metrics``; ``import kueatomic`` without
prometheus_client; ``kueatomic worker --metrics-port``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from kueatomic import LeaseLost, Queue, Worker
from kueatomic.metrics import JobsCollector, Metrics
from kueatomic.web import create_app

from .test_worker_sync import FAST, state_of, wait_for
from .web_helpers import client_for


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    """A private registry, counting the jobs the queues create while the test runs."""
    made = Metrics(CollectorRegistry()).track_created()
    yield made
    made.untrack_created()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def run_workload(queue: Queue, metrics: Metrics) -> Worker:
    """6 email jobs (bulk create) that complete; 4 video jobs (single saves), 2 of which
    fail (attempts 1): 8 completed, 2 failed."""
    queue.create_bulk([{"type": "email", "data": {"n": n}} for n in range(6)])
    video = [queue.create("video", {"fail": n < 2}).attempts(1).save() for n in range(4)]

    def encode(job: Any) -> str:
        if job.data["fail"]:
            raise RuntimeError("codec")
        time.sleep(0.01)
        return "ok"

    worker = Worker(queue, observer=metrics.worker(queue), **FAST)
    worker.process("email", 3, lambda job: job.data["n"])
    worker.process("video", 2, encode)
    worker.start()
    wait_for(lambda: queue.counts()["complete"] == 8 and queue.counts()["failed"] == 2,
             what="8 complete, 2 failed")
    assert {state_of(queue, job.id) for job in video[:2]} == {"failed"}
    return worker


def test_a_workers_metrics_after_a_known_workload(make_queue: Callable[..., Queue],
                                                   metrics: Metrics) -> None:
    queue = make_queue(prefix="mq")
    worker = run_workload(queue, metrics)
    try:
        reg = metrics.registry
        assert reg is not None
        q = {"queue": "mq"}
        assert value(reg, "kueatomic_jobs_created_total", type="email", **q) == 6
        assert value(reg, "kueatomic_jobs_created_total", type="video", **q) == 4
        assert value(reg, "kueatomic_jobs_started_total", type="email", **q) == 6
        assert value(reg, "kueatomic_jobs_started_total", type="video", **q) == 4
        assert value(reg, "kueatomic_jobs_completed_total", type="email", **q) == 6
        assert value(reg, "kueatomic_jobs_completed_total", type="video", **q) == 2
        assert value(reg, "kueatomic_jobs_failed_total", type="video", **q) == 2
        assert value(reg, "kueatomic_jobs_failed_total", type="email", **q) == 0
        for job_type, count in (("email", 6), ("video", 4)):
            labels = {"type": job_type, **q}
            assert value(reg, "kueatomic_job_run_seconds_count", **labels) == count
            assert value(reg, "kueatomic_job_wait_seconds_count", **labels) == count
            assert value(reg, "kueatomic_claim_batch_size_sum", **labels) == count
            assert 1 <= value(reg, "kueatomic_claim_batch_size_count", **labels) <= count
            assert value(reg, "kueatomic_job_run_seconds_bucket", le="+Inf", **labels) == count
        # The video handler sleeps 10 ms: every run is in a bucket above 5 ms.
        assert value(reg, "kueatomic_job_run_seconds_bucket", le="0.005", type="video", **q) <= 2
        assert value(reg, "kueatomic_job_run_seconds_sum", type="video", **q) >= 0.015
        # Waits are measured on the Redis clock: small, never negative.
        assert 0 <= value(reg, "kueatomic_job_wait_seconds_sum", type="email", **q) < 60
        assert value(reg, "kueatomic_jobs_released_total", type="email", **q) == 0
        assert value(reg, "kueatomic_jobs_stalled_total", type="email", **q) == 0
        # The scrape-time gauge, on a sync queue.
        collector = CollectorRegistry(auto_describe=True)
        collector.register(JobsCollector(queue))
        assert value(collector, "kueatomic_jobs", state="complete", type="email", **q) == 6
        assert value(collector, "kueatomic_jobs", state="complete", type="video", **q) == 2
        assert value(collector, "kueatomic_jobs", state="failed", type="video", **q) == 2
        assert value(collector, "kueatomic_jobs", state="inactive", type="video", **q) == 0
        assert collector.get_sample_value(
            "kueatomic_jobs", {"state": "delayed", "type": "email", **q}) == 0
    finally:
        worker.shutdown(timeout=0)


def test_the_web_apps_metrics_after_a_known_workload(make_queue: Callable[..., Queue],
                                                      metrics: Metrics) -> None:
    queue = make_queue(prefix="mw")
    worker = run_workload(queue, metrics)
    worker.shutdown(timeout=0)
    with client_for(create_app(queue)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    def jobs(state: str, job_type: str) -> float:
        key = ("kueatomic_jobs", (("queue", "mw"), ("state", state), ("type", job_type)))
        return found[key]

    assert jobs("complete", "email") == 6 and jobs("complete", "video") == 2
    assert jobs("failed", "video") == 2 and jobs("failed", "email") == 0
    for state in ("inactive", "active", "delayed"):
        assert jobs(state, "email") == jobs(state, "video") == 0


def test_metrics_follow_the_apps_auth_and_pass_the_cross_site_checks(
        make_queue: Callable[..., Queue]) -> None:
    queue = make_queue(prefix="ma")
    queue.create("email").save()
    app = create_app(queue, auth="ops:secret")
    with client_for(app) as client:
        assert client.get("/metrics").status_code == 401
        answer = client.get("/metrics", auth=("ops", "secret"),
                            headers={"Sec-Fetch-Site": "cross-site",
                                     "Origin": "https://elsewhere.example"})
    assert answer.status_code == 200
    assert 'kueatomic_jobs{queue="ma",state="inactive",type="email"} 1.0' in answer.text


def test_the_web_app_says_when_prometheus_client_is_missing(
        make_queue: Callable[..., Queue], monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(make_queue(prefix="mx"))
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with client_for(app) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 501 and "kueatomic[metrics]" in answer.json()["error"]


def test_releases_and_lost_leases_are_counted(make_queue: Callable[..., Queue],
                                              metrics: Metrics) -> None:
    queue = make_queue(prefix="ml")
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    go = threading.Event()
    moved = queue.create("email").save()
    held = queue.create("video").save()
    worker = Worker(queue, observer=metrics.worker(queue), **FAST)
    worker.process("email", lambda job: go.wait(10) and "late")
    worker.process("video", lambda job: go.wait(10) and "late")
    worker.start()
    try:
        wait_for(lambda: state_of(queue, moved.id) == state_of(queue, held.id) == "active")
        queue.get_job(moved.id).complete()  # by hand: the worker loses the lease
        wait_for(lambda: any(isinstance(e, LeaseLost) for e in errors), what="lease lost")
        reg = metrics.registry
        assert reg is not None
        wait_for(lambda: value(reg, "kueatomic_jobs_stalled_total", queue="ml",
                               type="email") == 1, what="stalled counted")
        worker.shutdown(timeout=0)
        assert state_of(queue, held.id) == "inactive"
        assert value(reg, "kueatomic_jobs_released_total", queue="ml", type="video") == 1
        assert value(reg, "kueatomic_jobs_completed_total", queue="ml", type="video") == 0
    finally:
        go.set()
        worker.shutdown(timeout=0)


def test_import_kueatomic_and_a_worker_need_no_prometheus_client(
        tmp_path: Path) -> None:
    script = textwrap.dedent('''
        import sys
        sys.modules["prometheus_client"] = None  # any import of it raises ImportError
        import kueatomic, kueatomic.aio, kueatomic.worker.core, kueatomic.commands.worker
        queue = kueatomic.Queue("nometrics", "memory://nometrics")
        job = queue.create("email").save()
        worker = kueatomic.Worker(queue, lease_ms=600, block_timeout_ms=100)
        worker.process("email", lambda job: "done")
        worker.start()
        import time
        deadline = time.monotonic() + 20
        while queue.get_job(job.id).state != "complete":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        worker.shutdown(timeout=0)
        try:
            import kueatomic.metrics
        except ImportError:
            pass
        else:
            raise AssertionError("kueatomic.metrics imported without prometheus_client")
        print("ok", "prometheus_client" in sys.modules and sys.modules["prometheus_client"])
    ''')
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok None"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(url: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return str(answer.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("flavor", ["sync", "asyncio"])
def test_the_worker_command_serves_metrics(tmp_path: Path, real_redis_url: str,
                                           flavor: str) -> None:
    prefix = f"mcli{flavor}"
    (tmp_path / "mtasks.py").write_text(textwrap.dedent(f'''
        import os
        from kueatomic import Queue, aio

        queue = ({"Queue" if flavor == "sync" else "aio.Queue"})("{prefix}",
                                                                 os.environ["REDIS_URL"])
        queue.configure_workers(block_timeout_ms=100)

        @queue.process("work", concurrency=2)
        {"def" if flavor == "sync" else "async def"} work(job):
            if job.data["fail"]:
                raise RuntimeError("no")
            return job.id
    '''))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kueatomic.cli", "worker", "mtasks:queue",
         "--metrics-port", str(port)],
        cwd=tmp_path, env={**os.environ, "REDIS_URL": real_redis_url},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    queue = Queue(prefix, real_redis_url)
    try:
        queue.create_bulk([{"type": "work", "data": {"fail": n == 0},
                            "options": {"attempts": 1}} for n in range(5)])
        wait_for(lambda: queue.counts()["complete"] == 4 and queue.counts()["failed"] == 1,
                 timeout=30, what="4 complete, 1 failed")
        url = f"http://127.0.0.1:{port}/metrics"

        def counted() -> dict[Any, float] | None:
            found = samples(scrape(url))
            key = ("kueatomic_jobs_completed_total", (("queue", prefix), ("type", "work")))
            return found if found.get(key) == 4 else None

        found = wait_for(counted, timeout=20, what="the completed counter")
        labels = (("queue", prefix), ("type", "work"))
        assert found[("kueatomic_jobs_failed_total", labels)] == 1
        assert found[("kueatomic_jobs_started_total", labels)] == 5
        assert found[("kueatomic_job_run_seconds_count", labels)] == 5
        assert found[("kueatomic_job_wait_seconds_count", labels)] == 5
        state = (("queue", prefix), ("state", "complete"), ("type", "work"))
        assert found[("kueatomic_jobs", state)] == 4
        assert ("process_cpu_seconds_total", ()) in found  # prometheus_client's default ones
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        queue.client.delete(*queue.client.keys(f"{prefix}:*") or ["-"])
        queue.close()


def test_an_outage_episode_is_counted_once_per_loop(metrics: Metrics) -> None:
    """Sans I/O: the core tells its observer when a loop's outage episode begins; more
    failures in the same episode, and a bug, are not outages."""
    from kueatomic.errors import RedisUnavailable
    from kueatomic.keyspace import Keys
    from kueatomic.worker.core import WorkerCore
    from kueatomic.worker.settings import WorkerSettings

    class Prefixed:
        prefix = "mo"

    now = [0.0]
    core = WorkerCore(Keys("mo"), WorkerSettings(), lambda *a: None, clock=lambda: now[0],
                      observer=metrics.worker(Prefixed()))
    down = RedisUnavailable("connection refused")
    core.loop_failed("flush", down)
    core.loop_failed("flush", down)
    core.loop_failed("housekeeping", RuntimeError("a bug"))
    reg = metrics.registry
    assert reg is not None
    assert value(reg, "kueatomic_redis_outages_total", queue="mo", loop="flush") == 1
    assert value(reg, "kueatomic_redis_outages_total", queue="mo", loop="housekeeping") == 0
    core.loop_ok("flush")
    core.loop_failed("flush", down)
    core.loop_failed("claim email", down)
    assert value(reg, "kueatomic_redis_outages_total", queue="mo", loop="flush") == 2
    assert value(reg, "kueatomic_redis_outages_total", queue="mo", loop="claim") == 1


def test_jobs_created_over_http_are_counted(make_queue: Callable[..., Queue],
                                            metrics: Metrics) -> None:
    queue = make_queue()
    with client_for(create_app(queue)) as client:
        assert client.post("/job", json=[{"type": "email"}, {"type": "email"},
                                         {"type": "sms"}]).status_code == 200
    registry = metrics.registry
    q = {"queue": queue.prefix}
    assert value(registry, "kueatomic_jobs_created_total", type="email", **q) == 2
    assert value(registry, "kueatomic_jobs_created_total", type="sms", **q) == 1
