"""One virtualenv per system under bench/.venv/<name>, each from PyPI with exactly the
packages its adapter lists (PACKAGES), so every queue runs with the redis-py its own resolver
picks (arq pins redis<6, celery and bullmq want >=6: they cannot share one environment).

The kueatomic environment also holds the harness's own tools (matplotlib, locust, profilers)
and kueatomic itself, installed editable from this checkout with its hiredis extra.
"""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENVS = BENCH / ".venv"
SYSTEMS = ["kueatomic", "rq", "arq", "saq", "dramatiq", "huey", "celery", "bullmq",
           "bullmq_node"]
HARNESS_PACKAGES = ["matplotlib", "locust", "py-spy", "pyinstrument"]


def adapter_constants(name: str) -> dict[str, object]:
    """The literal constants of bench/peers/<name>.py, read without importing it (the
    queue library it imports is only installed in its own venv)."""
    tree = ast.parse((BENCH / "peers" / f"{name}.py").read_text())
    out: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id.isupper():
            try:
                out[target.id] = ast.literal_eval(value)
            except ValueError:
                pass
    return out


def is_node(name: str) -> bool:
    """A Node.js system (bench/peers/<name>.py holds only its constants, NODE = True)."""
    return bool(adapter_constants(name).get("NODE"))


def requirements(name: str) -> list[str]:
    if is_node(name):
        return list(adapter_constants(name)["NPM_PACKAGES"])  # type: ignore[call-overload]
    packages = list(adapter_constants(name)["PACKAGES"])  # type: ignore[call-overload]
    if name == "kueatomic":
        packages = [f"-e{ROOT}[hiredis]", *packages, *HARNESS_PACKAGES]
    return packages


def python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure(name: str, log=print) -> Path:
    """Create or refresh bench/.venv/<name>; a stamp of the requirements skips the work
    when nothing changed. Raises CalledProcessError when pip cannot install them."""
    venv = VENVS / name
    wanted = requirements(name)
    stamp = venv / "bench-requirements.sha1"
    digest = hashlib.sha1("\n".join(wanted).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and python(name).exists():
        return python(name)
    log(f"[env] {name}: installing {' '.join(wanted)}")
    if is_node(name):
        return _ensure_node(name, venv, wanted, stamp, digest)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python(name)), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True, capture_output=True)
    result = subprocess.run([*pip, "install", *wanted], capture_output=True, text=True, check=False)
    if result.returncode:
        errors = [line for line in result.stderr.splitlines() if "Location" not in line]
        raise RuntimeError(f"pip could not install {name}: " + "\n".join(errors[-15:]))
    stamp.write_text(digest)
    return python(name)


def installed_version(name: str, dist: str) -> str:
    out = subprocess.run(
        [str(python(name)), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


# The harness starts every child as ``<bin/python> -m bench.child SYSTEM STEP ...``; for a Node
# system bin/python is this stand-in, which runs bench/peers/node/child.js with the same
# arguments and the packages npm installed beside it.
NODE_STAND_IN = """#!/bin/sh
# Written by bench/envs.py: runs the Node child for bench/child.py's "-m bench.child" calls.
[ "$1" = "-m" ] && shift 2
NODE_PATH={modules} exec node {child} "$@"
"""


def _ensure_node(name: str, venv: Path, wanted: list[str], stamp: Path, digest: str) -> Path:
    venv.mkdir(parents=True, exist_ok=True)
    (venv / "package.json").write_text('{"private": true}\n')
    result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", *wanted],
                            cwd=venv, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"npm could not install {name}: {result.stderr[-1500:]}")
    stand_in = python(name)
    stand_in.parent.mkdir(parents=True, exist_ok=True)
    stand_in.write_text(NODE_STAND_IN.format(modules=venv / "node_modules",
                                             child=BENCH / "peers" / "node" / "child.js"))
    stand_in.chmod(0o755)
    stamp.write_text(digest)
    return stand_in
