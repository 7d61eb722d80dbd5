"""Workers: claim jobs with Lua scripts, run handlers in threads or on asyncio, write results
in batches, keep leases alive, promote delayed jobs and recover stalled ones.

``kueatomic.Worker`` (threads) and ``kueatomic.aio.Worker`` (asyncio) are objects of their own
that take a queue; every decision they make lives once in ``core.WorkerCore`` and the loops of
``loops.py``. See README "Workers" for the guarantees."""

from __future__ import annotations

from .context import WorkerContext
from .settings import WorkerSettings

__all__ = ["WorkerContext", "WorkerSettings"]
