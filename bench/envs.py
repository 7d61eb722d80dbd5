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
SYSTEMS = ["kueatomic", "rq", "arq", "saq", "dramatiq", "huey", "celery", "bullmq"]
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


def requirements(name: str) -> list[str]:
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
