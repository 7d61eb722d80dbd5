"""Workers: claim jobs with Lua scripts, run handlers in threads or on asyncio, write results
in batches, keep leases alive, promote delayed jobs and recover stalled ones.

The queues get ``process``, ``on``, ``shutdown``, ``watch_stuck_jobs`` and ``run`` from the
mixins here; see README "Workers" for the guarantees."""

from __future__ import annotations

from .context import WorkerContext
from .mixin import AsyncQueueWorkerMixin, QueueWorkerMixin
from .settings import WorkerSettings

__all__ = ["AsyncQueueWorkerMixin", "QueueWorkerMixin", "WorkerContext", "WorkerSettings"]
