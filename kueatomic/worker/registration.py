"""One ``queue.process(...)`` call: its type, handler, slots and claim state; and the
in-flight record of one claimed job. Shared by the threaded and the asyncio runtime."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from . import calls

# InFlight.stage values
QUEUED, RUNNING, FINISHED, ABANDONED, LOST = range(5)
TTL_CHECK_SLACK = 0.05  # s after a ttl deadline before asking whether the job was failed


def handler_wants_ctx(handler: Callable[..., Any]) -> bool:
    """``handler(job)`` or ``handler(job, ctx)``: decided once from the signature."""
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def is_async_handler(handler: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    # an object whose __call__ is a coroutine function
    return not inspect.isroutine(handler) and inspect.iscoroutinefunction(type(handler).__call__)


def check_process_args(job_type: Any, concurrency: Any) -> tuple[str, int]:
    if not isinstance(job_type, str) or not job_type or ":" in job_type:
        raise InvalidArgument(f"job type must be a non-empty string without ':', not {job_type!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgument(f"concurrency must be an integer >= 1, not {concurrency!r}")
    return job_type, concurrency


class Registration:
    """The worker of one ``process()`` call: ``concurrency`` slots for one job type.

    ``free`` counts slots without a claimed job; the runtime guards it (a lock or the loop).
    ``generation`` changes on every resume so a claim loop left over from before a pause
    knows to stop."""

    def __init__(self, job_type: str, concurrency: int, handler: Callable[..., Any],
                 lease_ms: int, batch: int) -> None:
        self.job_type = job_type
        self.concurrency = concurrency
        self.handler = handler
        self.wants_ctx = handler_wants_ctx(handler)
        self.is_async = is_async_handler(handler)
        self.lease_ms = lease_ms
        self.batch = batch
        self.worker_id = calls.worker_id(job_type)
        self.free = concurrency
        self.running = False
        self.closed = False
        self.generation = 0
        self.ctx: Any = None
        # set by the runtime that runs it
        self.cond: Any = None  # threading.Condition guarding free/running (threaded)
        self.jobs: Any = None  # SimpleQueue of InFlight for the slot threads (threaded)
        self.slot_freed: Any = None  # asyncio.Event (asyncio)
        self.executor: Any = None  # ThreadPoolExecutor for a sync handler (asyncio)

    def __repr__(self) -> str:
        return (f"<Registration {self.job_type} x{self.concurrency} "
                f"{'running' if self.running else 'paused'}>")


class InFlight:
    """A claimed job from claim until its result is flushed (or it is given up)."""

    __slots__ = ("check_at", "fields", "id", "job", "reg", "stage", "task", "thread", "token")

    def __init__(self, job_id: int, job: Any, token: str, reg: Registration,
                 fields: dict[str, str]) -> None:
        self.id = job_id
        self.job = job
        self.token = token
        self.reg = reg
        self.fields = fields
        self.stage = QUEUED
        self.thread: Any = None
        self.task: Any = None
        # For a job with a ttl: when (time.monotonic()) to ask Redis whether it still holds the
        # job, so a handler hung past its ttl frees its slot soon after recovery fails it.
        ttl = fields.get("ttl")
        self.check_at = time.monotonic() + int(ttl) / 1000 + TTL_CHECK_SLACK if ttl else 0.0
