"""``kueatomic worker --processes N`` supervises its children: a child that dies is logged and
replaced (backing off when they keep dying), SIGTERM stops them all gracefully and a second
one at once, a refused configuration ends the supervisor with status 2; and the CLI's
``--log-level`` with its one timestamped handler, passed on to the children."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kueatomic import Queue
from kueatomic.cli import build_parser, configure_logging, unconfigure_logging

TASKS = textwrap.dedent('''
    import os, time
    from kueatomic import Queue

    queue = Queue("sup", os.environ["REDIS_URL"])
    queue.configure_workers(lease_ms=900, upkeep_interval_ms=100, block_timeout_ms=200)

    @queue.process("work", concurrency=2)
    def work(job):
        time.sleep(job.data.get("sleep", 0.005))
        return os.getpid()
''')

CRASH = textwrap.dedent('''
    import logging, os
    print("LEVEL", logging.getLogger("kueatomic").getEffectiveLevel(), flush=True)
    os._exit(3)
''')

SLOW = "import time\ntime.sleep(10)\n"  # still importing when the stop comes

STARTED = re.compile(r"INFO kueatomic\.supervisor: started child (\d+)$")
READY = re.compile(r"(?:kueatomic worker|worker process) (\d+): work x")  # a child serves


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def parent_of(pid: int) -> int | None:
    """The parent pid of a live (not zombie) process, else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return None if state in ("Z", "X") else int(ppid)


class Supervisor:
    """``python -m kueatomic.cli ... worker MODULE:queue --processes N``, its merged output
    collected line by line in ``lines``."""

    def __init__(self, folder: Path, env: dict[str, str], *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kueatomic.cli", *args], cwd=folder, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def matching(self, pattern: re.Pattern[str]) -> list[int]:
        return [int(m.group(1)) for line in list(self.lines) if (m := pattern.search(line))]

    def started(self) -> list[int]:
        return self.matching(STARTED)

    def ready(self) -> set[int]:
        return set(self.matching(READY))

    def wait(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill_everything(self) -> None:
        """Clean-up after a failed test: the supervisor and every child it logged."""
        for pid in self.started():
            if parent_of(pid) == self.process.pid:
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def run_supervisor(tmp_path: Path) -> Iterator[Callable[..., Supervisor]]:
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "crash.py").write_text(CRASH)
    (tmp_path / "slow.py").write_text(SLOW)
    made: list[Supervisor] = []

    def run(*args: str, redis_url: str = "redis://127.0.0.1:1/0") -> Supervisor:
        env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
        made.append(Supervisor(tmp_path, env, *args))
        return made[-1]

    yield run
    for supervisor in made:
        supervisor.kill_everything()


@pytest.mark.real_redis
def test_a_killed_child_is_replaced_and_its_jobs_come_back(
        run_supervisor: Callable[..., Supervisor], real_redis_url: str) -> None:
    sup = run_supervisor("worker", "tasks:queue", "--processes", "2", redis_url=real_redis_url)
    wait_until(lambda: len(sup.ready()) == 2, 30, "two children serving")
    first = sup.started()
    assert len(first) == 2 and set(first) == sup.ready()
    assert all(parent_of(pid) == sup.process.pid for pid in first)
    assert "kueatomic worker" in sup.lines[0]  # the line tests/test_worker_processes.py reads

    queue = Queue("sup", real_redis_url)
    try:
        queue.create_bulk([{"type": "work"} for _ in range(300)])
        wait_until(lambda: queue.complete_count() >= 30, 30, "30 jobs complete")
        victim = first[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(sup.started()) == 3, 2, "a replacement child within 2 s")
        replacement = sup.started()[2]
        assert replacement not in first and parent_of(replacement) == sup.process.pid
        assert f"child {victim} exited with SIGKILL; starting a replacement" in sup.output
        wait_until(lambda: queue.complete_count() == 300, 60, "all 300 jobs complete")
        assert queue.counts()["failed"] == 0 and queue.active_count() == 0
        assert replacement in sup.ready()  # it did start serving
    finally:
        queue.close()

    sup.process.send_signal(signal.SIGTERM)
    assert sup.wait() == 0, sup.output
    for pid in [*first, replacement]:
        assert parent_of(pid) is None, f"child {pid} still runs"
    assert "SIGTERM: stopping 2 children gracefully" in sup.output
    assert "stopped: 2 children exited cleanly" in sup.output


@pytest.mark.real_redis
def test_a_second_signal_is_forwarded_and_stops_children_at_once(
        run_supervisor: Callable[..., Supervisor], real_redis_url: str) -> None:
    sup = run_supervisor("worker", "tasks:queue", "--processes", "2", "--shutdown-timeout",
                         "60000", redis_url=real_redis_url)
    wait_until(lambda: len(sup.ready()) == 2, 30, "two children serving")
    queue = Queue("sup", real_redis_url)
    try:
        job = queue.create("work", {"sleep": 60}).save()
        wait_until(lambda: queue.get_job(job.id).state == "active", 10, "the job active")
        sup.process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert sup.process.poll() is None  # the busy child waits for its job
        sup.process.send_signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.output  # long before the 60 s shutdown timeout
        # stopped at once: failed with "Shutdown", or released back to inactive
        assert queue.get_job(job.id).state in ("failed", "inactive")
    finally:
        queue.close()
    assert "SIGINT: stopping 2 children gracefully" in sup.output
    assert "SIGTERM again: telling" in sup.output
    assert sup.output.count("started child") == 2


def test_children_that_keep_dying_are_replaced_with_a_growing_delay(
        run_supervisor: Callable[..., Supervisor]) -> None:
    sup = run_supervisor("--log-level", "warning", "worker", "crash:queue", "--processes", "2")
    wait_until(lambda: "starting a replacement in 1.0 s" in sup.output, 30, "the back-off")
    sup.process.send_signal(signal.SIGTERM)
    assert sup.wait() == 1  # children had died: not a clean stop
    out = sup.output
    assert re.search(r"child \d+ exited with status 3; starting a replacement$", out, re.MULTILINE)
    assert "starting a replacement in 0.5 s (children keep dying)" in out
    assert out.index("in 0.5 s") < out.index("in 1.0 s")
    # --log-level WARNING reached the children, and the supervisor's INFO lines are hidden
    levels = set(re.findall(r"^LEVEL (\d+)$", out, re.MULTILINE))
    assert levels == {str(logging.WARNING)}
    assert "started child" not in out and " INFO " not in out


def test_a_stop_while_children_start_up_is_clean(
        run_supervisor: Callable[..., Supervisor]) -> None:
    sup = run_supervisor("worker", "slow:queue", "--processes", "2")
    wait_until(lambda: len(sup.started()) == 2, 30, "two children started")
    sup.process.send_signal(signal.SIGTERM)
    assert sup.wait() == 0, sup.output  # ended by the SIGTERM they were sent: clean
    assert re.search(r"INFO kueatomic\.supervisor: child \d+ exited with SIGTERM", sup.output)
    assert all(parent_of(pid) is None for pid in sup.started())


def test_a_refused_configuration_ends_the_supervisor(
        run_supervisor: Callable[..., Supervisor]) -> None:
    sup = run_supervisor("worker", "no_such_module:queue", "--processes", "2")
    assert sup.wait() == 2
    assert "cannot import 'no_such_module'" in sup.output
    assert "its configuration was refused" in sup.output
    assert "starting a replacement" not in sup.output


def test_log_level_before_or_after_the_subcommand() -> None:
    parser = build_parser()
    assert parser.parse_args(["worker", "m:q"]).log_level == "INFO"
    assert parser.parse_args(["--log-level", "debug", "worker", "m:q"]).log_level == "DEBUG"
    assert parser.parse_args(["worker", "m:q", "--log-level", "ERROR"]).log_level == "ERROR"
    assert parser.parse_args(["--log-level", "DEBUG", "worker", "m:q", "--log-level",
                              "WARNING"]).log_level == "WARNING"
    assert parser.parse_args(["--log-level", "ERROR", "scripts"]).log_level == "ERROR"
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-level", "LOUD", "scripts"])


def test_the_cli_handler_is_one_timestamped_stderr_handler(
        capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("kueatomic")
    before = list(logger.handlers)
    handler = configure_logging("DEBUG")
    again = configure_logging("DEBUG")  # replaces, never stacks
    try:
        assert [h for h in logger.handlers if h not in before] == [again]
        logging.getLogger("kueatomic.supervisor").debug("started child %d", 42)
        logging.getLogger("kueatomic.web").info("second")
    finally:
        unconfigure_logging(again)
    assert handler not in logger.handlers and logger.handlers == before
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} DEBUG kueatomic\.supervisor: "
                        r"started child 42", lines[0])
    assert lines[1].endswith(" INFO kueatomic.web: second") and len(lines) == 2
