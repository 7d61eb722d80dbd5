"""examples/: each runnable example runs against the session's private redis-server (never
6379) and leaves the queue in the state it says; the FastAPI/Starlette mount answers under
/admin/kue; the locustfile compiles (and runs headless for 2 s when locust is installed)."""

from __future__ import annotations

import importlib.util
import os
import py_compile
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kueatomic import Queue

from .redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str, redis_url: str, *args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], cwd=ROOT,
        env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True,
        timeout=timeout, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_examples_readme_lists_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for path in EXAMPLES.glob("*.py"):
        assert f"`{path.name}`" in readme, path.name
        assert f"examples/{path.name}" in readme or path.stem in readme


def test_sync_producer_then_worker_until_empty(real_redis_url: str) -> None:
    out = run_example("sync_producer.py", real_redis_url, "--jobs", "4", "--prefix", "ex")
    assert out.count("created job") == 5  # 4 one by one + 1 in create_bulk
    assert "inactive email jobs: 5" in out
    queue = Queue(prefix="ex", redis=real_redis_url)
    try:
        high = [queue.get_job(job_id) for job_id in queue.inactive("email")]
        assert {job.to_json()["priority"] for job in high} == {-10, 0, 10}
        assert high[0].to_json()["attempts"]["max"] == 3

        out = run_example("sync_worker.py", real_redis_url, "--until-empty", "--prefix", "ex")
        assert out.count("processed job") == 5, out
        assert "done: 5 jobs processed, 5 complete, 0 failed" in out
        assert queue.counts()["complete"] == 5
        assert queue.inactive_count() == queue.active_count() == 0
        job = queue.get_job(1)
        assert job.to_json()["result"] == {"sent": True}
        assert any("sending to user0@example.com" in line for line in job.logs())
    finally:
        queue.close()


def test_sync_worker_stops_after_n_jobs(real_redis_url: str) -> None:
    run_example("sync_producer.py", real_redis_url, "--jobs", "5", "--prefix", "ex")  # 6 jobs
    out = run_example("sync_worker.py", real_redis_url, "--jobs", "2", "--concurrency", "1",
                      "--prefix", "ex")
    assert out.count("processed job") == 2, out
    queue = Queue(prefix="ex", redis=real_redis_url)
    try:
        assert queue.complete_count() == 2
        assert queue.inactive_count() == 4
    finally:
        queue.close()


def test_asyncio_app(real_redis_url: str) -> None:
    out = run_example("asyncio_app.py", real_redis_url, "--jobs", "8", "--prefix", "aex")
    assert out.count("created job") == 4 and "created 4 jobs in one call" in out
    assert "done: 8 jobs processed, 8 complete" in out
    queue = Queue(prefix="aex", redis=real_redis_url)
    try:
        assert queue.counts()["complete"] == 8
        assert queue.inactive_count() == queue.active_count() == queue.failed_count() == 0
    finally:
        queue.close()


def load_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fastapi_mount(real_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    monkeypatch.setenv("REDIS_URL", real_redis_url)
    module = load_module("fastapi_mount")
    with TestClient(module.app, base_url="http://localhost") as client:
        assert client.post("/signup", json={"email": "tj@example.com"}).json() == {"job": 1}
        stats = client.get("/admin/kue/stats")
        assert stats.status_code == 200, stats.text
        assert stats.json()["inactiveCount"] == 1
        created = client.post("/admin/kue/job", json={"type": "email", "data": {"to": "x"}})
        assert created.json() == {"message": "job created", "id": 2}
        page = client.get("/admin/kue/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert client.get("/admin/kue/stats", headers={"host": "evil.example"}).status_code == 400
    queue = Queue(prefix="q", redis=real_redis_url)
    try:
        assert queue.inactive_count("email") == 2
    finally:
        queue.close()


def test_locustfile_compiles() -> None:
    py_compile.compile(str(EXAMPLES / "locustfile.py"), doraise=True)


@pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is not installed")
def test_locustfile_headless(real_redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "kueatomic.cli", "dashboard", "-p", str(port), "-r", real_redis_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "dashboard did not start"
                time.sleep(0.1)
        result = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(EXAMPLES / "locustfile.py"), "--headless",
             "-u", "5", "-r", "5", "-t", "2s", "--host", f"http://127.0.0.1:{port}",
             "--csv", str(tmp_path / "run")],
            capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        queue = Queue(prefix="q", redis=real_redis_url)
        try:
            assert queue.inactive_count("locust") > 0
        finally:
            queue.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
