"""The ``ctx`` a handler receives: Kue's workerCtx (pause, resume, shutdown)."""

from __future__ import annotations

from typing import Any


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
