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
