"""Real Node Kue 0.11.6 for the interop tests: finds node and npm, installs
``kue@0.11.6`` once into ``tests/.kue-node/`` (git-ignored), and runs
``tests/tools/kue_interop.js``. Without node/npm, or when the install fails (no network),
the tests skip and say why. ``KUE_NODE_MODULES=/path/to/node_modules`` uses an existing
install instead."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".kue-node"
TOOL = HERE / "tools" / "kue_interop.js"
VERSION = "0.11.6"


def _installed(modules: Path) -> bool:
    package = modules / "kue" / "package.json"
    return package.is_file() and json.loads(package.read_text()).get("version") == VERSION


def kue_node_modules() -> Path:
    """node_modules holding kue 0.11.6, installing it on first use; skips when impossible."""
    if shutil.which("node") is None:
        pytest.skip("interop tests need Node.js (node not on PATH; .ci/run installs it)")
    given = os.environ.get("KUE_NODE_MODULES")
    if given:
        if not _installed(Path(given)):
            pytest.fail(f"KUE_NODE_MODULES={given} holds no kue {VERSION}")
        return Path(given)
    modules = CACHE / "node_modules"
    if _installed(modules):
        return modules
    if shutil.which("npm") is None:
        pytest.skip("interop tests need npm to install kue@0.11.6 (npm not on PATH)")
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install even if several sessions start at once
        if not _installed(modules):
            result = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                 "--prefix", str(CACHE), f"kue@{VERSION}"],
                capture_output=True, text=True, timeout=600, check=False)
            if result.returncode != 0 or not _installed(modules):
                pytest.skip(f"npm install kue@{VERSION} failed (offline?): "
                            f"{(result.stderr or result.stdout).strip()[-300:]}")
    return modules


class KueNode:
    """Runs the Node helper against one Redis port and prefix."""

    def __init__(self, modules: Path, port: int, prefix: str) -> None:
        self.config = {"modules": str(modules), "port": port, "prefix": prefix}

    def _command(self, mode: str, **extra: Any) -> list[str]:
        return ["node", str(TOOL), mode, json.dumps({**self.config, **extra})]

    def run(self, mode: str, timeout: float = 60, **extra: Any) -> list[dict[str, Any]]:
        """Run to the end; the JSON lines it printed."""
        result = subprocess.run(self._command(mode, **extra), capture_output=True, text=True,
                                check=False,
                                timeout=timeout)
        assert result.returncode == 0, result.stderr[-2000:]
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    def start(self, mode: str, **extra: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(self._command(mode, **extra), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def lines(proc: subprocess.Popen[str], stdin: str = "", timeout: float = 60) -> list[dict[str, Any]]:
        stdout, stderr = proc.communicate(stdin, timeout=timeout)
        assert proc.returncode == 0, stderr[-2000:]
        return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
