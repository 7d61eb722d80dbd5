"""``kueatomic dashboard``: the real command in a subprocess, over the session's redis-server."""

from __future__ import annotations

import argparse
import json
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

from kueatomic import ConfigError, Queue
from kueatomic.cli import build_parser
from kueatomic.cli import main as cli_main
from kueatomic.commands.credentials import add_redis_options, redis_url, shown_url
from kueatomic.commands.dashboard import exposure_warnings

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


# --- credentials and exposure --------------------------------------------------------------

def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_every_command_taking_a_redis_url_can_read_it_from_a_file() -> None:
    with_redis = {name for name, p in subcommand_parsers().items() if "--redis" in options_of(p)}
    assert with_redis >= {"dashboard", "stats", "demo"}
    for name in with_redis:
        assert "--redis-file" in options_of(subcommand_parsers()[name]), name


def parse_redis(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_redis_options(parser)
    return parser.parse_args(list(argv))


def test_redis_url_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    secret_file = tmp_path / "redis-url"
    secret_file.write_text("redis://:s3cret@db.internal:6380/2\n")
    monkeypatch.setenv("REDIS_URL", "redis://from-env:1/0")
    assert redis_url(parse_redis("--redis-file", str(secret_file))) == \
        "redis://:s3cret@db.internal:6380/2"
    assert redis_url(parse_redis()) == "redis://from-env:1/0"
    assert redis_url(parse_redis(), env=False) is None
    assert redis_url(parse_redis("-r", "redis://h:1/0")) == "redis://h:1/0"
    assert capsys.readouterr().err == ""
    assert redis_url(parse_redis("-r", "redis://:pw@h:1/0")) == "redis://:pw@h:1/0"
    warning = capsys.readouterr().err
    assert "WARNING" in warning and "ps" in warning and "--redis-file" in warning
    redis_url(parse_redis("-r", "unix:///tmp/r.sock?password=pw"))
    assert "WARNING" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--redis-file"):
        redis_url(parse_redis("--redis-file", str(tmp_path / "missing")))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        redis_url(parse_redis("--redis-file", str(tmp_path / "empty")))
    with pytest.raises(SystemExit):
        parse_redis("-r", "redis://h", "--redis-file", str(secret_file))


def test_printed_urls_hide_the_password() -> None:
    assert shown_url("redis://user:p@ss@h:1/0") == "redis://user:***@h:1/0"
    assert shown_url("unix:///r.sock?db=1&password=pw") == "unix:///r.sock?db=1&password=***"
    assert shown_url("redis://h:1/0") == "redis://h:1/0"


def test_stats_reads_the_url_from_a_file(real_redis_url: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    queue = Queue("filed", redis=real_redis_url)
    queue.create("email").save()
    queue.close()
    (tmp_path / "url").write_text(real_redis_url)
    assert cli_main(["stats", "-q", "filed", "--redis-file", str(tmp_path / "url")]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["inactive"] == 1


@pytest.mark.parametrize("host, auth, tls, expected", [
    ("127.0.0.1", False, False, []),
    ("localhost", False, False, []),
    ("::1", False, False, []),
    ("0.0.0.0", False, False, ["WITHOUT authentication", "--allow-host"]),
    ("::", False, True, ["WITHOUT authentication", "--allow-host"]),
    ("192.168.1.5", True, False, ["plain HTTP", "--allow-host"]),
    ("kue.lan", True, True, ["--allow-host"]),
])
def test_exposure_warnings(host: str, auth: bool, tls: bool, expected: list[str]) -> None:
    warnings = exposure_warnings(host, 3000, auth, tls, ("localhost",))
    assert len(warnings) == len(expected)
    for warning, word in zip(warnings, expected):
        assert word in warning


def test_dashboard_auth_file_hosts_and_warning(real_redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "auth").write_text("ops:pa:ss\n")
    (tmp_path / "url").write_text(real_redis_url + "\n")
    with dashboard("--redis-file", str(tmp_path / "url"), "--auth-file", str(tmp_path / "auth"),
                   "--host", "0.0.0.0", "--allow-host", "kue.test") as run:
        base = f"http://127.0.0.1:{run.port}"
        assert wait_until_up(base + "/stats", run).status_code == 401
        auth = ("ops", "pa:ss")
        assert httpx.get(base + "/stats", auth=auth).status_code == 200
        named = httpx.get(base + "/stats", auth=auth, headers={"Host": f"kue.test:{run.port}"})
        assert named.status_code == 200
        evil = httpx.get(base + "/stats", auth=auth, headers={"Host": "evil.example"})
        assert evil.status_code == 400 and "--allow-host" in evil.json()["error"]
        assert evil.headers["x-frame-options"] == "DENY"
    assert "WARNING: basic auth over plain HTTP on 0.0.0.0" in run.output
    assert "kue.test" in run.output
    assert "pa:ss" not in run.output


def test_dashboard_warns_about_credentials_in_argv(real_redis_url: str) -> None:
    with dashboard("-r", real_redis_url, "--auth", "ops:secret") as run:
        wait_until_up(f"http://127.0.0.1:{run.port}/stats", run)
    assert "WARNING: --auth on the command line" in run.output
    assert "WITHOUT authentication" not in run.output  # loopback: no exposure warning
