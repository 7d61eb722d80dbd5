"""Drivers of a sharded queue (kueatomic/shards.py): each batch is split by the shard its
requests name, each part goes to that shard's driver (the shard's node on a cluster), and
the replies come back in request order. On one Redis every shard shares one driver, so a
batch stays one pipeline.

A part that fails (its node unreachable) fails the whole batch, as a lost connection does
on one Redis, although the other parts ran: a bulk create then reports an error for jobs
that other shards created, the same "maybe created" a lost reply means everywhere.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .ops import Batch, Call, Plan, Request, T, drive, drive_async


def prefix_of(request: Request) -> str:
    """The queue prefix a request is for: its first key's first segment (prefixes hold no
    ':'), or a script's prefix argument when it declares no key."""
    if isinstance(request, Call):
        name = request.keys[0] if request.keys else request.args[0]
    else:
        name = request.command[1]
    return str(name).split(":", 1)[0]


def split(batch: Sequence[Request], drivers: dict[str, Any]) -> list[tuple[Any, list[int]]]:
    """(driver, positions in the batch) for each driver the batch needs, in first-use order."""
    parts: dict[int, tuple[Any, list[int]]] = {}
    for position, request in enumerate(batch):
        driver = drivers[prefix_of(request)]
        parts.setdefault(id(driver), (driver, []))[1].append(position)
    return list(parts.values())


def join(size: int, parts: list[tuple[list[int], list[Any]]]) -> list[Any]:
    replies: list[Any] = [None] * size
    for positions, answers in parts:
        for position, reply in zip(positions, answers):
            replies[position] = reply
    return replies


def clients_of(driver: Any) -> list[Any]:
    """Every client a driver sends on (a routed driver's shards may have their own)."""
    drivers = getattr(driver, "drivers", None)
    if drivers is None:
        return [driver.client]
    found = {id(driver.client): driver.client}
    for each in drivers.values():
        found.setdefault(id(each.client), each.client)
    return list(found.values())


class SyncRoutedDriver:
    """Runs plans over the shards' sync drivers (``{shard prefix: SyncDriver}``);
    ``client`` is the queue's own (its settings, and what ``close()`` closes)."""

    def __init__(self, drivers: dict[str, Any], where: str, client: Any) -> None:
        self.drivers = drivers
        self.where = where
        self.client = client
        self._pool: ThreadPoolExecutor | None = None  # sends the parts of a batch at once
        self._pool_lock = threading.Lock()

    def run(self, plan: Plan[T]) -> T:
        return drive(plan, self.execute)

    def execute(self, batch: Batch) -> list[Any]:
        requests = list(batch)
        parts = split(requests, self.drivers)
        if len(parts) <= 1:
            return parts[0][0].execute(requests) if parts else []
        pool = self._parts_pool()
        sent = [(positions, pool.submit(driver.execute, [requests[p] for p in positions]))
                for driver, positions in parts]
        return join(len(requests), [(positions, future.result()) for positions, future in sent])

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    def _parts_pool(self) -> ThreadPoolExecutor:
        """Threads that send a batch's parts to their shards' nodes at the same time."""
        with self._pool_lock:
            if self._pool is None:
                distinct = len({id(d) for d in self.drivers.values()})
                self._pool = ThreadPoolExecutor(max_workers=min(distinct, 16),
                                                thread_name_prefix="kueatomic-shards")
            return self._pool

    def load_all(self) -> None:
        for driver in {id(d): d for d in self.drivers.values()}.values():
            driver.load_all()


class AsyncRoutedDriver:
    """``SyncRoutedDriver`` over asyncio drivers; the parts are sent concurrently."""

    def __init__(self, drivers: dict[str, Any], where: str, client: Any) -> None:
        self.drivers = drivers
        self.where = where
        self.client = client

    async def run(self, plan: Plan[T]) -> T:
        return await drive_async(plan, self.execute)

    async def execute(self, batch: Batch) -> list[Any]:
        requests = list(batch)
        parts = split(requests, self.drivers)
        if len(parts) <= 1:
            return await parts[0][0].execute(requests) if parts else []
        answers = await asyncio.gather(*(driver.execute([requests[p] for p in positions])
                                         for driver, positions in parts))
        return join(len(requests), [(positions, replies)
                                    for (_, positions), replies in zip(parts, answers)])

    async def load_all(self) -> None:
        for driver in {id(d): d for d in self.drivers.values()}.values():
            await driver.load_all()
