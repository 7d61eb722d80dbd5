"""The optional extras (pyproject.toml's ``[project.optional-dependencies]``) and the modules
each brings. A worker needs only redis-py; a feature that needs more checks here first, so a
missing extra is a :class:`ConfigError` naming what to install, not an ImportError traceback."""

from __future__ import annotations

import importlib.util

from .errors import ConfigError

# extra -> the top-level modules it installs (tests/test_packaging.py checks the extras exist)
MODULES: dict[str, tuple[str, ...]] = {
    "web": ("starlette", "uvicorn"),
    "embedded": ("fakeredis", "lupa"),
    "metrics": ("prometheus_client",),
    "otel": ("opentelemetry",),
    "cron": ("cronsim",),
}


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (found without importing them)."""
    return [name for name in MODULES[extra] if not _findable(name)]


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # an import hook refusing it, a broken half-install
        return False


def require(extra: str, feature: str) -> None:
    """Raise ConfigError("<feature> needs <modules> ...: pip install 'kueatomic[<extra>]'") unless
    every module of ``extra`` is importable."""
    absent = missing(extra)
    if absent:
        raise ConfigError(f"{feature} needs {' and '.join(absent)} (not installed): "
                          f"pip install 'kueatomic[{extra}]'")
