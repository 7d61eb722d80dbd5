"""``kueatomic demo``: picks its Redis as documented, runs its mix of jobs to the end, prints a
summary and the dashboard URL, and touches only its own prefix."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import redis

from kueatomic import Queue
from kueatomic.commands import demo


def run_demo(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "kueatomic.cli", "demo", "--jobs", "10", "--seed", "3",
         "--no-serve", "--port", "0", *args],
        env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120,
        check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_choose_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:1/0")
    assert demo.choose_redis("redis://given:2/0") == ("redis://given:2/0", "--redis")
    assert demo.choose_redis(None) == ("redis://example:1/0", "REDIS_URL")
    monkeypatch.delenv("REDIS_URL")
    # a Redis answering on 6379 is never picked: it may hold someone's real data
    monkeypatch.setattr(demo, "start_private_redis", lambda: "redis://127.0.0.1:40001/0")
    url, how = demo.choose_redis(None)
    assert url == "redis://127.0.0.1:40001/0" and how.startswith("a private redis-server")
    monkeypatch.setattr(demo, "start_private_redis", lambda: None)
    url, how = demo.choose_redis(None)
    assert url.startswith("memory://") and "embedded engine" in how


def test_the_demo_starts_its_own_redis_server() -> None:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    url = demo.start_private_redis()
    assert url is not None and not url.endswith(":6379/0")
    client = redis.Redis.from_url(url)
    assert client.ping() and client.dbsize() == 0
    client.close()


def test_demo_on_the_embedded_engine() -> None:
    out = run_demo("--redis", f"memory://demo-{uuid.uuid4().hex}")
    assert "using --redis: memory://" in out
    assert "summary" in out and "failed for good" in out
    assert "dashboard: http://127.0.0.1:" in out


def test_demo_touches_only_its_prefix(real_redis_url: str) -> None:
    other = redis.Redis.from_url(real_redis_url, decode_responses=True)
    Queue("q", real_redis_url).create("email", {"keep": True}).save()
    before = {k for k in other.keys("*")}
    out = run_demo(env={"REDIS_URL": real_redis_url})
    assert "using REDIS_URL" in out
    demo_queue = Queue(demo.PREFIX, real_redis_url)
    counts = demo_queue.counts()
    assert counts["complete"] + counts["failed"] == 10 and counts["active"] == 0
    run_demo(env={"REDIS_URL": real_redis_url})  # a second run clears the first one's jobs
    counts = demo_queue.counts()
    assert counts["complete"] + counts["failed"] == 10
    after = {k for k in other.keys("*")}
    assert {k for k in after if not k.startswith(demo.PREFIX + ":")} == before
    demo_queue.close()


def test_demo_on_a_cluster(cluster_url: str) -> None:
    out = run_demo("--redis", cluster_url)
    assert "using --redis: redis+cluster://" in out and "(prefix '{kueatomic-demo}')" in out
    assert "summary" in out and "dashboard: http://127.0.0.1:" in out
    queue = Queue("{" + demo.PREFIX + "}", cluster_url)
    counts = queue.counts()
    assert counts["complete"] + counts["failed"] == 10 and counts["active"] == 0
    queue.close()
