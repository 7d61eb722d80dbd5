"""The ``kueatomic`` command behaves like a well-made CLI: ``python -m kueatomic`` runs it,
``--version`` prints the installed version, a closed pipe ends it quietly, and ``--help`` is
plain text."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys

from kueatomic.cli import build_parser, plain_text
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


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_help_is_plain_text() -> None:
    """Every subcommand's ``--help`` (descriptions are the modules' docstrings) and the top
    level's carry no reStructuredText: no ``x``, no :func:`x` roles."""
    subcommands = _subcommands()
    assert set(subcommands) >= {"demo", "worker", "dashboard", "scripts", "stats"}
    texts = {"": build_parser().format_help()}
    texts.update({name: sub.format_help() for name, sub in subcommands.items()})
    for name, text in texts.items():
        assert "``" not in text, (name, text)
        assert not re.search(r":[a-z]+:`", text), (name, text)
    assert "kueatomic worker MODULE:ATTR: run" in texts["worker"]
    done = run("worker", "--help")  # the real command, as a user runs it
    assert done.returncode == 0 and "``" not in done.stdout and "MODULE:ATTR" in done.stdout


def test_plain_text() -> None:
    text = "use ``--redis`` or :func:`kueatomic.cli.main` and :class:`~a.B`::"
    assert plain_text(text) == "use --redis or kueatomic.cli.main and B:"
    assert plain_text("a ``multi\nline`` literal") == "a multi\nline literal"
