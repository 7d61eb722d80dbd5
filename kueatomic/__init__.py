"""kueatomic: Kue's Redis priority job queue for Python, every state transition one Lua script."""

from __future__ import annotations

from typing import Any

from .backoff import backoff_function
from .connection import Connection
from .errors import (
    AuthenticationFailed,
    ConfigError,
    IncompatibleFormat,
    InvalidArgument,
    InvalidAttempts,
    InvalidDelay,
    InvalidPriority,
    InvalidRange,
    InvalidState,
    InvalidTransition,
    JobFailed,
    JobNotFound,
    KueError,
    LeaseLost,
    NotReplicated,
    NotSerializable,
    PayloadTooLarge,
    RedisRefused,
    RedisUnavailable,
    ScriptError,
)
from .job import Job
from .queue import Queue
from .states import PRIORITIES, STATES
from .sync_queue import SyncQueue
from .worker import WorkerContext, WorkerSettings
from .worker.threaded import Worker


def _installed_version() -> str:
    """The version pyproject.toml gives (one home for it), as the installed metadata says."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kueatomic")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


__version__ = _installed_version()


def create_queue(**options: Any) -> Queue:
    """Kue's ``createQueue``: ``create_queue(prefix="q", redis="redis://...")``."""
    return Queue(**options)


__all__ = [
    "PRIORITIES",
    "STATES",
    "AuthenticationFailed",
    "ConfigError",
    "Connection",
    "IncompatibleFormat",
    "InvalidArgument",
    "InvalidAttempts",
    "InvalidDelay",
    "InvalidPriority",
    "InvalidRange",
    "InvalidState",
    "InvalidTransition",
    "Job",
    "JobFailed",
    "JobNotFound",
    "KueError",
    "LeaseLost",
    "NotReplicated",
    "NotSerializable",
    "PayloadTooLarge",
    "Queue",
    "RedisRefused",
    "RedisUnavailable",
    "ScriptError",
    "SyncQueue",
    "Worker",
    "WorkerContext",
    "WorkerSettings",
    "backoff_function",
    "create_queue",
]
