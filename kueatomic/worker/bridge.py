"""``async def`` handlers on a sync ``Queue``: an asyncio runtime on a twin ``aio.Queue``,
running on an event loop in a background thread. Upkeep stays with the threaded runtime."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

from .asyncio_runtime import AsyncRuntime
from .events import EventHub
from .registration import Registration
from .settings import WorkerSettings
from .twins import async_twin


class AsyncBridge:
    def __init__(self, queue: Any, hub: EventHub, settings: WorkerSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kueatomic-asyncio",
                                       daemon=True)
        self.thread.start()

        async def make() -> AsyncRuntime:
            return AsyncRuntime(async_twin(queue), hub, settings, sync_twin=queue, upkeep=False)

        self.runtime: AsyncRuntime = asyncio.run_coroutine_threadsafe(make(), self.loop).result()

    def add(self, reg: Registration) -> None:
        self.loop.call_soon_threadsafe(self.runtime.add, reg)

    def stop(self, timeout: float | None, job_type: str | None = None) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(self.runtime.stop(timeout, job_type), self.loop)

    def abort(self) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(self.runtime.abort(), self.loop)

    def close(self) -> None:
        async def close_twin() -> None:
            await self.runtime.queue.close()

        try:
            asyncio.run_coroutine_threadsafe(close_twin(), self.loop).result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
