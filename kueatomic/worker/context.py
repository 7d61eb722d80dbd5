"""The ``ctx`` a handler receives: Kue's workerCtx (pause, resume, shutdown)."""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Any

from .registration import ABANDONED, LOST

# The job the current handler runs (its InFlight record), set by the runtimes for handlers
# that take a ctx: ctx.cancelled is per job, while one ctx serves all of a registration's slots.
RUNNING_JOB: ContextVar[Any] = ContextVar("kueatomic_running_job", default=None)


class WorkerContext:
    """Controls the worker a handler runs in (all slots of one ``process()`` call).

    ``pause(timeout)`` stops taking new jobs at once and returns without waiting; jobs already
    running get ``timeout`` ms to finish, after which they are released back to inactive (no
    attempt used; Kue's ``ctx.pause``; the calling handler may simply return within that
    time). ``resume()`` takes jobs again. ``shutdown()`` stops this registration for good,
    letting running jobs finish."""

    __slots__ = ("_registration", "_worker")

    def __init__(self, worker: Any, registration: Any) -> None:
        self._worker = worker
        self._registration = registration

    @property
    def job_type(self) -> str:
        return str(self._registration.job_type)

    @property
    def worker_id(self) -> str:
        return str(self._registration.worker_id)

    @property
    def cancelled(self) -> threading.Event:
        """Set once the job this handler runs is no longer this worker's: cancelled
        (``job.cancel()``), or its lease lost otherwise. A long handler checks it (or waits on
        it) and returns early; its result would be discarded anyway."""
        record = RUNNING_JOB.get()
        if record is None:
            raise RuntimeError("ctx.cancelled is only available inside a handler")
        event = record.cancel_event
        if event is None:
            event = record.cancel_event = threading.Event()
            if record.stage in (ABANDONED, LOST):  # lost before the handler asked
                event.set()
        return event  # type: ignore[no-any-return]

    @property
    def paused(self) -> bool:
        return not self._registration.claiming

    def pause(self, timeout: float | None = 5000) -> None:
        self._worker.pause(self._registration, timeout)

    def resume(self) -> None:
        self._worker.resume(self._registration)

    def shutdown(self) -> None:
        self._worker.pause(self._registration, None, final=True)

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running"
        return f"<WorkerContext {self.worker_id} {state}>"
