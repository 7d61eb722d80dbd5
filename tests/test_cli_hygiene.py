"""The ``kueatomic`` command behaves like a well-made CLI: ``python -m kueatomic`` runs it,
``--version`` prints the installed version, a closed pipe ends it quietly, and ``--help`` is
plain text."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from kueatomic.states import DATA_FORMAT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kueatomic", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_python_m_kueatomic_and_version() -> None:
    done = run("--version")
    assert done.returncode == 0, done.stderr
    version = importlib.metadata.version("kueatomic")
    assert done.stdout == f"kueatomic {version} (data format {DATA_FORMAT})\n"
    assert done.stderr == ""
    listed = run("scripts")
    assert listed.returncode == 0 and "create_jobs" in listed.stdout


def test_a_closed_pipe_ends_quietly() -> None:
    """``kueatomic scripts | head -1``: the reader closes the pipe before the command writes
    (closed here at once, while the child is still importing), and the command exits 141
    (128 + SIGPIPE, as ``cat`` would) with nothing on stderr."""
    for args in (["scripts"], ["scripts", "--show", "create_jobs"]):
        child = subprocess.Popen([sys.executable, "-m", "kueatomic", *args],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()
        err = child.stderr.read()
        assert child.wait(timeout=60) == 141
        assert err == b"", err.decode()


def test_head_1_in_a_shell_prints_one_line_and_no_traceback() -> None:
    done = subprocess.run(
        ["sh", "-c", f"'{sys.executable}' -m kueatomic scripts --show create_jobs | head -1"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
