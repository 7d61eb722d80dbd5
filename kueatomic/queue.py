"""``kueatomic.Queue``: the sync queue with Kue's worker shorthand.

``queue.process(...)``, ``queue.shutdown(...)``, ``queue.run()``, ``queue.watch_stuck_jobs()``
and ``queue.configure_workers(...)`` delegate to one ``kueatomic.Worker`` the queue makes on
first use (``queue.worker``); the queue itself inherits no worker machinery. Producing and
reading are ``SyncQueue``'s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .sync_queue import SyncQueue
from .worker.settings import WorkerSettings
from .worker.threaded import Worker, start_unless_deferred

_worker_lock = threading.Lock()


class Queue(SyncQueue):
    """A Kue queue on Redis (see ``SyncQueue`` for the options), with Kue's worker calls."""

    _worker: Worker | None = None

    @property
    def worker(self) -> Worker:
        """The worker behind Kue's shorthand, made on first use."""
        if self._worker is None:
            with _worker_lock:
                if self._worker is None:
                    self._worker = Worker(self)
        return self._worker

    @property
    def worker_settings(self) -> WorkerSettings:
        return self.worker.settings

    def configure_workers(self, **settings: Any) -> WorkerSettings:
        """Change worker settings (see ``WorkerSettings``) for workers started afterwards,
        e.g. ``queue.configure_workers(lease_ms=5000, max_stalls=2)``."""
        return self.worker.configure(**settings)

    def process(self, job_type: str, concurrency: Any = 1, handler: Callable[..., Any] | None = None,
                *, lease_ms: int | None = None, batch: int | None = None,
                rate_limit: tuple[int, int] | None = None) -> Any:
        """Kue's ``queue.process``: ``worker.process(...)`` and start now. Also
        ``process(type, handler)`` and ``@queue.process(type, concurrency=n)``."""
        worker = self.worker
        return worker.process_then(lambda: start_unless_deferred(worker), job_type, concurrency,
                                   handler, lease_ms=lease_ms, batch=batch,
                                   rate_limit=rate_limit)

    def start_workers(self) -> None:
        """Start the handlers registered while starts were deferred (the CLI defers them)."""
        self.worker.start()

    def watch_stuck_jobs(self, interval: int = 1000) -> None:
        """Kue's watchStuckJobs: upkeep in this process every ``interval`` ms."""
        self.worker.watch_stuck_jobs(interval)

    def shutdown(self, timeout: float | None = None, job_type: str | None = None, *,
                 fail_running: bool = False) -> None:
        """Kue's ``queue.shutdown``: see ``Worker.shutdown`` (running jobs are released after
        ``timeout`` ms, or failed with "Shutdown" with ``fail_running``)."""
        if self._worker is not None:
            self._worker.shutdown(timeout, job_type, fail_running=fail_running)
        if job_type is None:
            self._stop_subscriber()

    def abort_workers(self) -> None:
        if self._worker is not None:
            self._worker.abort()

    def run(self, shutdown_timeout: float | None = 10000) -> None:
        """Serve until SIGINT/SIGTERM: see ``Worker.run``."""
        self.worker.run(shutdown_timeout)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
        super().close()
