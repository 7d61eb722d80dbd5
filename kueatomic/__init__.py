"""kueatomic: Kue's Redis priority job queue for Python, every state transition one Lua script."""

from __future__ import annotations

from typing import Any

from .backoff import backoff_function
from .errors import (
    ConfigError,
    InvalidArgument,
    InvalidAttempts,
    InvalidDelay,
    InvalidPriority,
    InvalidRange,
    InvalidState,
    JobNotFound,
    KueError,
    LeaseLost,
    NotSerializable,
    PayloadTooLarge,
    RedisUnavailable,
    ScriptError,
)
from .job import Job
from .queue import Queue
from .states import PRIORITIES, STATES
from .worker import WorkerContext, WorkerSettings

__version__ = "0.1.0"


def create_queue(**options: Any) -> Queue:
    """Kue's ``createQueue``: ``create_queue(prefix="q", redis="redis://...")``."""
    return Queue(**options)


__all__ = [
    "PRIORITIES",
    "STATES",
    "ConfigError",
    "InvalidArgument",
    "InvalidAttempts",
    "InvalidDelay",
    "InvalidPriority",
    "InvalidRange",
    "InvalidState",
    "Job",
    "JobNotFound",
    "KueError",
    "LeaseLost",
    "NotSerializable",
    "PayloadTooLarge",
    "Queue",
    "RedisUnavailable",
    "ScriptError",
    "WorkerContext",
    "WorkerSettings",
    "backoff_function",
    "create_queue",
]
