"""What the web app asks of a queue, on either client, without blocking the event loop.

The app runs the engine's sans-I/O plans (``kueatomic.ops``): awaited directly on a
``kueatomic.aio.Queue``, or in Starlette's thread pool on a sync ``kueatomic.Queue``. Every
write is one Lua script call, exactly as when the Python API is used.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from .. import lifecycle, ops, presence
from .. import repeats as repeat_plans
from ..async_queue import AsyncQueue
from ..codec import to_text
from ..errors import InvalidPriority, InvalidRange, JobNotFound
from ..job import JobBase
from ..keyspace import Keys
from ..ops import Plan, Read, T
from ..queue_base import parse_job_id
from ..shards import type_counts
from ..states import parse_priority, parse_state

# Redis takes signed 64-bit range bounds; Lua scripts hold numbers as doubles, so a priority
# must stay an exact integer there.
_MAX_BOUND = 2**63 - 1
_MAX_PRIORITY = 2**53 - 1

# /stats keys in the order Kue answers them (docs/redis-layout.md §7).
_STATS_ORDER = ("inactive", "complete", "active", "failed", "delayed")


def parse_bound(text: str) -> int:
    """A range bound from the URL: an integer Redis accepts, else ``InvalidRange`` (400)."""
    try:
        value = int(text)
    except ValueError:
        raise InvalidRange(f"range bounds must be integers, got {text!r}") from None
    if abs(value) > _MAX_BOUND:
        raise InvalidRange(f"range bound {text} is out of range (at most {_MAX_BOUND})")
    return value


def parse_api_priority(text: str) -> int:
    """A priority from the URL: an integer or a name from Kue's map."""
    try:
        value = parse_priority(text)
    except InvalidPriority:
        raise InvalidPriority(
            f"invalid priority {text!r}; use an integer or low, normal, medium, high, critical"
        ) from None
    if abs(value) > _MAX_PRIORITY:
        raise InvalidPriority(f"invalid priority {text!r}; use an integer within ±{_MAX_PRIORITY}")
    return value


def parse_order(text: str | None) -> str:
    order = text or "asc"
    if order not in ("asc", "desc"):
        raise InvalidRange(f"order must be asc or desc, not {order!r}")
    return order


def job_number(text: str) -> int:
    """The id from a URL; an id that cannot exist is simply not found (404)."""
    number = parse_job_id(text)
    if number > _MAX_BOUND:
        raise JobNotFound(f'job "{text}" doesnt exist')
    return number


# --- read plans the API needs beyond kueatomic.ops (each one round trip) ------------------

def stats_plan(keys: Any) -> Plan[dict[str, Any]]:
    """Kue's /stats: the five counts and workTime, one pipelined round trip (summed over
    the shards of a sharded queue)."""
    layouts = keys.layouts
    replies = yield [*(Read(("ZCARD", k.state(s))) for s in _STATS_ORDER for k in layouts),
                     *(Read(("GET", k.work_time)) for k in layouts)]
    values = [ops.unwrap(r) for r in replies]
    out: dict[str, Any] = {}
    for index, state in enumerate(_STATS_ORDER):
        out[f"{state}Count"] = sum(int(v) for v in values[index * len(layouts):][:len(layouts)])
    works = [int(to_text(v)) for v in values[len(_STATS_ORDER) * len(layouts):] if v is not None]
    out["workTime"] = sum(works) if works else None
    return out


def job_log_plan(keys: Keys, job_id: int) -> Plan[list[str] | None]:
    """A job's log lines, or None when the job does not exist (one round trip)."""
    replies = yield [Read(("HGET", keys.job(job_id), "type")),
                     Read(("LRANGE", keys.log(job_id), 0, -1))]
    if not ops.unwrap(replies[0]):
        return None
    return [to_text(line) for line in ops.unwrap(replies[1])]


class Gateway:
    """The queue as the web app sees it: async methods returning plain JSON-ready values."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.keys: Any = queue.keys  # Keys, or ShardedKeys for a sharded queue
        self.plans: Any = queue.plans
        self.is_async = isinstance(queue, AsyncQueue)

    @property
    def search_enabled(self) -> bool:
        return not self.queue.disable_search

    async def run(self, plan: Plan[T]) -> T:
        if self.is_async:
            return await self.queue._run(plan)  # type: ignore[no-any-return]
        return await run_in_threadpool(self.queue._run, plan)

    def _job(self, job_id: int, fields: dict[str, str]) -> JobBase:
        return JobBase.from_hash(self.queue, job_id, fields)

    # --- reads ----------------------------------------------------------------------------
    async def stats(self) -> dict[str, Any]:
        return await self.run(stats_plan(self.keys))

    async def type_stats(self) -> dict[str, dict[str, int]]:
        return await self.run(type_counts(self.keys))

    async def workers(self) -> list[dict[str, Any]]:
        return await self.run(presence.workers(self.keys))

    async def activity(self, minutes: int) -> list[dict[str, Any]]:
        return await self.run(presence.activity(self.keys, minutes))

    async def types(self) -> list[str]:
        return await self.run(self.plans.types(self.keys))

    async def count(self, job_type: str, state: str) -> int:
        return await self.run(self.plans.card(self.keys, parse_state(state), job_type))

    async def range(self, state: str | None, job_type: str | None, start: int, stop: int,
                    order: str) -> list[dict[str, Any]]:
        """Kue's Job.range ordering (slice by score, sort the slice by id), as toJSON dicts,
        of every job (state None), a state's, or a type's in a state."""
        pairs = await self.run(self.plans.ranged(self.keys, state, job_type, start, stop, order))
        return [self._job(i, f).to_json() for i, f in pairs]

    async def job(self, job_id: int, as_text: str) -> dict[str, Any]:
        fields = await self.run(ops.get_hash(self.keys.for_job(job_id), job_id))
        if fields is None:
            raise JobNotFound(f'job "{as_text}" doesnt exist')
        body = self._job(job_id, fields).to_json(id_as_string=True)
        if fields.get("has_dependents"):  # kueatomic's addition: the jobs waiting for this one
            body["dependents"] = await self.run(lifecycle.dependents(self.keys, job_id))
        return body

    async def log(self, job_id: int, as_text: str) -> list[str]:
        lines = await self.run(job_log_plan(self.keys.for_job(job_id), job_id))
        if lines is None:
            raise JobNotFound(f'job "{as_text}" doesnt exist')
        return lines

    async def search(self, query: str) -> list[str]:
        return await self.run(self.plans.search(self.keys, query))

    # --- writes (one Lua script each) ------------------------------------------------------
    async def set_state(self, job_id: int, state: str) -> None:
        await self.run(ops.set_state(self.keys.for_job(job_id), job_id, state))

    async def set_priority(self, job_id: int, priority: int) -> None:
        await self.run(ops.set_priority(self.keys.for_job(job_id), job_id, priority))

    async def remove(self, job_id: int) -> None:
        await self.run(ops.remove(self.keys.for_job(job_id), job_id))

    async def create(self, specs: list[Any]) -> list[Any]:
        """Bulk create: each element the new id or the KueError it raised, in order; all the
        valid jobs are created in one round trip."""
        results: list[Any]
        results, todo, encoded = self.queue.prepare_bulk(specs)
        ids = await self.run(self.plans.create(self.keys, encoded))
        self.queue.finish_bulk(results, todo, ids)  # the jobs' ids, and the created count
        for index, job_id in zip(todo, ids):
            results[index] = job_id
        return results

    # --- operator actions (kueatomic/lifecycle.py, kueatomic/repeats.py) --------------------
    async def cancel(self, job_id: int, as_text: str) -> dict[str, Any]:
        """Cancel a job that has not ended (lua/cancel_job.lua); the job after it."""
        await self.run(lifecycle.cancel(self.keys, job_id))
        return await self.job(job_id, as_text)

    async def retry_failed(self, job_type: str | None, limit: int) -> int:
        return await self.run(lifecycle.retry_failed(self.keys, job_type, limit))

    async def clean(self, state: str, older_than_ms: int, limit: int,
                    job_type: str | None) -> int:
        return await self.run(lifecycle.clean(self.keys, state, older_than_ms, limit, job_type))

    async def set_paused(self, job_type: str, paused: bool) -> None:
        await self.run(lifecycle.set_paused(self.keys, job_type, paused))

    async def paused_types(self) -> list[str]:
        return await self.run(lifecycle.paused_types(self.keys))

    async def repeats(self) -> list[dict[str, Any]]:
        return await self.run(repeat_plans.listing(self.keys))

    async def repeat(self, job_type: Any, every: Any = None, cron: Any = None, tz: Any = "UTC",
                     data: Any = None, name: Any = None, options: Any = None,
                     catch_up_ms: Any = repeat_plans.DEFAULT_CATCH_UP_MS) -> dict[str, Any]:
        """``queue.repeat``: its arguments checked (InvalidArgument) before anything is
        written."""
        plan = self.queue.repeat_plan(job_type, every, cron, tz, data, name, options,
                                      catch_up_ms)
        return await self.run(plan)

    async def remove_repeat(self, name: str) -> bool:
        return await self.run(repeat_plans.remove(self.keys, name))
