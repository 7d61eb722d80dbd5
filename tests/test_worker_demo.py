"""``kueatomic demo``: picks its Redis as documented (the embedded engine by default), runs its
mix of jobs to the end, prints a summary (a dashboard URL only when it keeps serving), removes
its jobs when it ends, and touches only its own prefix."""

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


def demo_keys_left(client: redis.Redis, prefix: str) -> set[str]:
    """The demo prefix's keys other than the queue's counters and records (the id counter, the
    type list, the work time, the format record) and those that expire: the claim records, the
    workers registry's entries (a stopped worker's batch token, 60 s) and the activity series
    (2 hours)."""
    kept = {f"{prefix}:{name}" for name in ("ids", "job:types", "stats:work-time", "meta")}
    registry = (f"{prefix}:worker:", f"{prefix}:activity:")

    def left(key: str) -> bool:
        if key in kept or key.startswith(f"{prefix}:claim:"):
            return False
        return not key.startswith(registry) or client.pttl(key) == -1  # -1: would never expire

    return {key for key in client.keys(f"{prefix}:*") if left(key)}


def test_choose_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:1/0")
    assert demo.choose_redis("redis://given:2/0") == ("redis://given:2/0", "--redis")
    assert demo.choose_redis(None) == ("redis://example:1/0", "REDIS_URL")
    monkeypatch.delenv("REDIS_URL")
    # with neither, the embedded engine: a Redis answering on 6379 may hold someone's real data
    url, how = demo.choose_redis(None)
    assert url.startswith("memory://") and "embedded engine" in how


def test_demo_defaults_to_the_embedded_engine_and_prints_no_dead_url_without_a_terminal() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "kueatomic.cli", "demo", "--jobs", "10", "--seed", "3"],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "using the embedded engine" in out.splitlines()[0]
    assert "summary" in out and "failed for good" in out
    before, _, after = out.partition("summary")
    assert "dashboard (live until the demo ends): http://127.0.0.1:" in before
    assert "http://" not in after and "the dashboard stopped with the demo" in after
    assert "removed the demo's 10 jobs" in out


def test_demo_on_the_embedded_engine() -> None:
    out = run_demo("--redis", f"memory://demo-{uuid.uuid4().hex}")
    assert "using --redis: memory://" in out
    assert "summary" in out and "failed for good" in out
    assert "http://" not in out and "removed the demo's 10 jobs" in out


def test_demo_touches_only_its_prefix(real_redis_url: str) -> None:
    other = redis.Redis.from_url(real_redis_url, decode_responses=True)
    Queue("q", real_redis_url).create("email", {"keep": True}).save()
    before = {k: other.type(k) for k in other.keys("*")}
    kept_job = other.hgetall("q:job:1")
    out = run_demo(env={"REDIS_URL": real_redis_url})
    assert "using REDIS_URL" in out
    assert "removed the demo's 10 jobs (prefix 'kueatomic-demo' only)" in out
    demo_queue = Queue(demo.PREFIX, real_redis_url)
    assert sum(demo_queue.counts().values()) == 0  # every job it made is gone again
    assert demo_keys_left(other, demo.PREFIX) == set()
    out = run_demo(env={"REDIS_URL": real_redis_url})  # a second run: the same, nothing to clear
    assert "left by an earlier demo run" not in out and "removed the demo's 10 jobs" in out
    assert sum(demo_queue.counts().values()) == 0
    after = {k: other.type(k) for k in other.keys("*")}
    assert {k: t for k, t in after.items() if not k.startswith(demo.PREFIX + ":")} == before
    assert other.hgetall("q:job:1") == kept_job
    demo_queue.close()
    other.close()


def test_demo_clears_jobs_an_earlier_run_left(real_redis_url: str) -> None:
    left = Queue(demo.PREFIX, real_redis_url)
    left.create("email", {"title": "from a killed run"}).save()
    out = run_demo(env={"REDIS_URL": real_redis_url})
    assert "removed 1 job left by an earlier demo run" in out
    assert sum(left.counts().values()) == 0
    left.close()


def test_demo_serve_without_a_terminal_until_sigterm(real_redis_url: str) -> None:
    import signal
    import time
    import urllib.request

    process = subprocess.Popen(
        [sys.executable, "-m", "kueatomic.cli", "demo", "--jobs", "8", "--seed", "3", "--serve",
         "--port", "0"], env={**os.environ, "REDIS_URL": real_redis_url},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("serving the dashboard"):
                break
        url = next(line.split()[-1] for line in lines if line.startswith("dashboard: http://"))
        with urllib.request.urlopen(url + "stats", timeout=5) as reply:
            assert b'"completeCount"' in reply.read()
        client = redis.Redis.from_url(real_redis_url, decode_responses=True)
        assert client.exists(f"{demo.PREFIX}:job:1")  # still there while serving
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, "".join(lines) + rest
    assert "removed the demo's 8 jobs" in rest
    assert demo_keys_left(client, demo.PREFIX) == set()
    client.close()


def test_demo_on_a_cluster(cluster_url: str) -> None:
    out = run_demo("--redis", cluster_url)
    assert "using --redis: redis+cluster://" in out and "(prefix '{kueatomic-demo}')" in out
    assert "summary" in out and "failed for good" in out and "http://" not in out
    assert "removed the demo's 10 jobs (prefix '{kueatomic-demo}' only)" in out
    queue = Queue("{" + demo.PREFIX + "}", cluster_url)
    assert sum(queue.counts().values()) == 0
    queue.close()
