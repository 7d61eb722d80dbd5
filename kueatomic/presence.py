"""The workers registry and the activity series: who works on a queue, and what they did in
each of the last minutes (README, "Operators"; docs/redis-layout.md).

Every worker process heartbeats through ``lua/register_worker.lua`` (kueatomic/worker/
heartbeat.py builds the call): its entry ``<prefix>:worker:<id>`` expires with its ttl and
``<prefix>:workers`` scores its id by that expiry, so a killed worker disappears by itself; the
same call adds the worker's counts since its previous heartbeat to the minute's bucket
``<prefix>:activity:<minute start ms>``. The job scripts do nothing more for it: the counts
travel with the heartbeat.

The plans here read them (``queue.workers()``, ``queue.activity()``, the web app's
``GET /workers`` and ``GET /stats/activity``, ``kueatomic workers``). A sharded queue keeps its
registry and its series in one place, shard 0's keys (``{q.0}:workers``...), so one read
answers for the whole queue.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from .codec import to_text
from .errors import InvalidArgument
from .keyspace import Keys
from .ops import Call, Plan, Read, decode_hash, unwrap

COUNT_FIELDS = ("completed", "failed", "wait_ms_sum", "wait_count", "run_ms_sum", "run_count")
MINUTE_MS = 60000
MAX_MINUTES = 1440  # what a read may ask for; buckets live 2 hours (register_worker.lua)
MAX_LISTED = 10000  # registry entries one read looks at
ENTRY_INTS = ("pid", "slots", "busy", "started_at", "heartbeat_at")


def home(keys: Any) -> Keys:
    """The layout holding a queue's registry and series: the queue's own, or shard 0's."""
    return keys.layouts[0]  # type: ignore[no-any-return]


def register_call(keys: Any, worker_id: str, ttl_ms: int, host: str, pid: int, slots: int,
                  busy: int, started_at: int, batch: str, counts: Sequence[int],
                  types: Sequence[str]) -> Call:
    """One heartbeat (``ttl_ms`` 0: the deregistration of a clean stop); ``counts`` in the
    order of ``COUNT_FIELDS``, since the previous batch."""
    at = home(keys)
    return Call("register_worker", (at.workers, at.worker(worker_id)),
                (at.prefix, worker_id, ttl_ms, host, pid, slots, busy, started_at, batch,
                 *counts, *types))


def entry(fields: dict[str, str]) -> dict[str, Any] | None:
    """A registry hash as ``queue.workers()`` answers it; None for one that is not a live
    entry (a deregistered worker's leftover batch token, or fields written by hand)."""
    try:
        out: dict[str, Any] = {"id": fields["id"], "host": fields["host"]}
        types = json.loads(fields["types"])
        for name in ENTRY_INTS:
            out[name] = int(fields[name])
    except (KeyError, ValueError):
        return None
    if not isinstance(types, list):
        return None
    out["types"] = [str(t) for t in types]
    return {key: out[key] for key in ("id", "host", "pid", "types", "slots", "busy",
                                      "started_at", "heartbeat_at")}


def workers(keys: Any) -> Plan[list[dict[str, Any]]]:
    """The live workers (their entry has not expired), ordered by host, pid and id: two
    round trips, the registry's ids then their hashes."""
    at = home(keys)
    replies = yield [Read(("ZRANGE", at.workers, 0, MAX_LISTED - 1))]
    ids = [to_text(member) for member in unwrap(replies[0])]
    if not ids:
        return []
    replies = yield [Read(("HGETALL", at.worker(worker_id))) for worker_id in ids]
    found = [entry(decode_hash(unwrap(raw))) for raw in replies]
    live = [e for e in found if e is not None]
    return sorted(live, key=lambda e: (e["host"], e["pid"], e["id"]))


def check_minutes(minutes: Any) -> int:
    if isinstance(minutes, bool) or not isinstance(minutes, int) or \
            not 1 <= minutes <= MAX_MINUTES:
        raise InvalidArgument(f"minutes must be an integer 1..{MAX_MINUTES}, not {minutes!r}")
    return minutes


def parse_minutes(text: str | None, default: int = 60) -> int:
    """``?minutes=`` of the web route: decimal digits only, 1..MAX_MINUTES."""
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        raise InvalidArgument(f"minutes must be an integer 1..{MAX_MINUTES}, not {text!r}")
    return check_minutes(int(text))


def activity(keys: Any, minutes: int = 60, now_ms: int | None = None) -> Plan[list[dict[str, Any]]]:
    """One entry per minute, oldest first, the current minute last, zero-filled: ``minute``
    (its start, ms), ``completed``, ``failed``, ``wait_ms_avg`` and ``run_ms_avg`` (None
    without a sample). One round trip. The buckets are named by the Redis clock; which
    minute is the current one is read from this host's clock (``now_ms``), so a host whose
    clock is off shows the window shifted by as much."""
    minutes = check_minutes(minutes)
    at = home(keys)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    last = now - now % MINUTE_MS
    starts = [last - MINUTE_MS * back for back in range(minutes - 1, -1, -1)]
    replies = yield [Read(("HMGET", at.activity(start), *COUNT_FIELDS)) for start in starts]
    series = []
    for start, raw in zip(starts, replies):
        values = [_count(v) for v in unwrap(raw)]
        completed, failed, wait_sum, wait_count, run_sum, run_count = values
        series.append({"minute": start, "completed": completed, "failed": failed,
                       "wait_ms_avg": _average(wait_sum, wait_count),
                       "run_ms_avg": _average(run_sum, run_count)})
    return series


def _count(value: Any) -> int:
    try:
        return max(0, int(to_text(value))) if value is not None else 0
    except ValueError:
        return 0


def _average(total: int, count: int) -> float | None:
    return round(total / count, 1) if count else None
