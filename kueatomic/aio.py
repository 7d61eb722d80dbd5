"""``kueatomic.aio``: the asyncio queue and worker.

``Queue`` is ``AsyncQueue`` with Kue's worker shorthand, delegating to one ``Worker`` made on
first use (``queue.worker``). ``queue.process(...)`` called on a running event loop starts the
worker at once; called with no loop running (at import time, say) it logs one warning and the
handlers start at ``await queue.start_workers()``, ``await queue.run()`` or
``await queue.worker.start()`` — never silently not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .async_queue import AsyncDriver, AsyncQueue, Job
from .worker import control
from .worker.asyncio_runtime import Worker
from .worker.settings import WorkerSettings

log = logging.getLogger("kueatomic.worker")


class Queue(AsyncQueue):
    """``kueatomic.Queue`` for asyncio; same options, every I/O method awaited."""

    _worker: Worker | None = None
    _warned_unstarted = False

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            self._worker = Worker(self)
        return self._worker

    @property
    def worker_settings(self) -> WorkerSettings:
        return self.worker.settings

    def configure_workers(self, **settings: Any) -> WorkerSettings:
        return self.worker.configure(**settings)

    def process(self, job_type: str, concurrency: Any = 1, handler: Callable[..., Any] | None = None,
                *, lease_ms: int | None = None, batch: int | None = None,
                rate_limit: tuple[int, int] | None = None) -> Any:
        """As ``kueatomic.Queue.process``; starts at once on a running event loop."""
        return self.worker.process_then(lambda: self._start_soon(job_type), job_type,
                                        concurrency, handler, lease_ms=lease_ms, batch=batch,
                                   rate_limit=rate_limit)

    def _start_soon(self, job_type: str) -> None:
        worker = self.worker
        if worker.started or control.deferring(worker) or worker.start_soon():
            return
        if not self._warned_unstarted:
            self._warned_unstarted = True
            log.warning("handlers for %r registered with no event loop running: they start at "
                        "`await queue.start_workers()` or `await queue.run()`", job_type)

    async def start_workers(self) -> None:
        """Start handlers registered outside a running loop (or while starts were deferred)."""
        await self.worker.start()

    def watch_stuck_jobs(self, interval: int = 1000) -> None:
        self.worker.watch_stuck_jobs(interval)

    async def shutdown(self, timeout: float | None = None, job_type: str | None = None, *,
                       fail_running: bool = False) -> None:
        if self._worker is not None:
            await self._worker.shutdown(timeout, job_type, fail_running=fail_running)
        if job_type is None:
            self._stop_subscriber()

    async def abort_workers(self) -> None:
        if self._worker is not None:
            await self._worker.abort()

    async def run(self, shutdown_timeout: float | None = 10000) -> None:
        await self.worker.run(shutdown_timeout)

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.close()
        await super().close()


__all__ = ["AsyncDriver", "AsyncQueue", "Job", "Queue", "Worker"]
