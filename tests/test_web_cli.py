"""``kueatomic dashboard``: the real command in a subprocess, over the session's redis-server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from kueatomic import Queue
from kueatomic.cli import build_parser

from .redis_server import free_port


class Run:
    """A running ``kueatomic dashboard``; ``output`` is filled in once it has exited."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process, self.port, self.output = process, port, ""


@contextmanager
def dashboard(*args: str) -> Iterator[Run]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kueatomic.cli", "dashboard", "-p", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "KUEATOMIC_DASHBOARD_AUTH": ""},
    )
    run = Run(process, port)
    try:
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            run.output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            run.output, _ = process.communicate()


def wait_until_up(url: str, run: Run, **options: object) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        if run.process.poll() is not None:
            raise AssertionError(f"dashboard exited with {run.process.returncode}")
        try:
            return httpx.get(url, timeout=2, **options)  # type: ignore[arg-type]
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_defaults_are_kue_dashboards() -> None:
    args = build_parser().parse_args(["dashboard"])
    assert (args.port, args.prefix, args.host, args.title, args.auth, args.search) == (
        3000, "q", "127.0.0.1", "Kue", None, False)
    args = build_parser().parse_args(["dashboard", "-p", "3050", "-r", "redis://h:1/2", "-q", "x"])
    assert (args.port, args.redis, args.prefix) == (3050, "redis://h:1/2", "x")


def test_serves_the_api_and_dashboard_with_auth(real_redis_url: str) -> None:
    queue = Queue("jobs", redis=real_redis_url)
    queue.create("email", {"title": "hello"}).save()
    with dashboard("-r", real_redis_url, "-q", "jobs", "--title", "Ops <queue>",
                   "--auth", "ops:pa:ss") as run:
        base = f"http://127.0.0.1:{run.port}"
        refused = wait_until_up(base + "/stats", run)
        assert refused.status_code == 401
        auth = ("ops", "pa:ss")
        assert httpx.get(base + "/stats", auth=auth).json()["inactiveCount"] == 1
        assert httpx.get(base + "/stats", auth=("ops", "wrong")).status_code == 401
        page = httpx.get(base + "/", auth=auth)
        assert "<title>Ops &lt;queue&gt;</title>" in page.text
        created = httpx.post(base + "/job", auth=auth, json={"type": "video"})
        assert created.json() == {"message": "job created", "id": 2}
        assert queue.get_job(2).type == "video"
    assert run.process.returncode == 0
    assert f"Running on http://127.0.0.1:{run.port}/" in run.output
    queue.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_serves_https(real_redis_url: str, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    with dashboard("-r", real_redis_url, "--certfile", str(cert), "--keyfile", str(key)) as run:
        response = wait_until_up(f"https://127.0.0.1:{run.port}/stats", run, verify=False)
        assert response.status_code == 200 and "inactiveCount" in response.json()


def test_refuses_half_a_tls_setup(real_redis_url: str, tmp_path: Path) -> None:
    with dashboard("-r", real_redis_url, "--certfile", str(tmp_path / "c.pem")) as run:
        assert run.process.wait(20) == 2
    assert "both --certfile and --keyfile" in run.output


def test_says_when_redis_is_unreachable() -> None:
    with dashboard("-r", f"redis://127.0.0.1:{free_port()}/0") as run:
        assert run.process.wait(20) == 2
    assert "unreachable" in run.output
