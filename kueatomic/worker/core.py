"""What both runtimes do between sending requests: batching results into complete/fail calls,
grouping lease renewals, reading upkeep replies. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import KueError, LeaseLost
from ..keyspace import Keys
from ..ops import Call, unwrap
from . import calls
from .events import EventHub
from .registration import ABANDONED, TTL_CHECK_SLACK, InFlight
from .settings import WorkerSettings

# (record, ok, payload, duration_ms): payload is the result JSON when ok, else
# (error, summary, message) from calls.describe_failure / calls.plain_failure.
Result = tuple[InFlight, bool, Any, int]
RENEW_CHUNK = 1000


def flush_requests(keys: Keys, limit: int, batch: Sequence[Result],
                   hub: EventHub) -> tuple[list[Call], list[Result]]:
    """complete_jobs / fail_jobs calls for a batch of results (``limit`` jobs per call), and
    the results in the order the replies will report them."""
    done = [item for item in batch if item[1]]
    failed = [item for item in batch if not item[1]]
    requests: list[Call] = []
    for start in range(0, len(done), limit):
        part = done[start : start + limit]
        requests.append(calls.complete(keys, [(r.id, r.token, d, p) for r, _, p, d in part]))
    for start in range(0, len(failed), limit):
        items = []
        for record, _, (error, summary, message), _ in failed[start : start + limit]:
            delay, problem = calls.backoff_delay(record.fields)
            if problem:
                hub.emit("error", KueError(f"job {record.id}: {problem}"))
            items.append((record.id, record.token, error, summary, message, delay))
        requests.append(calls.fail(keys, items))
    return requests, [*done, *failed]


def flush_outcomes(requests: Sequence[Call], replies: Sequence[Any], ordered: Sequence[Result],
                   hub: EventHub, inflight: dict[int, InFlight]) -> bool:
    """Report lost leases, forget the flushed records; True when a job went to delayed (so
    upkeep should look at the delayed set sooner)."""
    statuses: list[Any] = []
    for request, reply in zip(requests, replies):
        if isinstance(reply, KueError):  # a bug, not an outage: the leases will expire
            hub.emit("error", reply)
            statuses.extend([None] * int(request.args[1]))
        else:
            statuses.extend(reply)
    delayed = False
    for (record, ok, _, _), status in zip(ordered, statuses):
        if status == 0 or status == "":
            what = "result" if ok else "failure"
            hub.emit("error", LeaseLost(
                f"job {record.id} ({record.reg.job_type}): the lease was lost before its {what} "
                "was recorded (expired and recovered, or moved by hand); nothing was written"))
        elif status == "delayed":
            delayed = True
        if inflight.get(record.id) is record:
            del inflight[record.id]
    return delayed


def renew_requests(keys: Keys, records: Iterable[InFlight]) -> tuple[list[Call], list[list[InFlight]]]:
    """renew_leases calls for every live record, grouped by lease length."""
    by_lease: dict[int, list[InFlight]] = {}
    for record in records:
        if record.stage != ABANDONED:
            by_lease.setdefault(record.reg.lease_ms, []).append(record)
    requests, groups = [], []
    for lease_ms, group in by_lease.items():
        for start in range(0, len(group), RENEW_CHUNK):
            part = group[start : start + RENEW_CHUNK]
            requests.append(calls.renew(keys, lease_ms, [(r.id, r.token) for r in part]))
            groups.append(part)
    return requests, groups


def next_ttl_check(records: Iterable[InFlight]) -> float | None:
    """The earliest ``check_at`` among live records with a ttl (monotonic seconds)."""
    due = [r.check_at for r in records if r.check_at and r.stage != ABANDONED]
    return min(due) if due else None


def push_ttl_checks(records: Iterable[InFlight], now: float) -> None:
    """After a renewal pass, check again one ttl later (progress may have moved the deadline)."""
    for record in records:
        if record.check_at and record.check_at <= now:
            record.check_at = now + int(record.fields.get("ttl") or 0) / 1000 + TTL_CHECK_SLACK


def lost_records(groups: Sequence[list[InFlight]], replies: Sequence[Any]) -> list[InFlight]:
    lost = []
    for part, reply in zip(groups, replies):
        for record, status in zip(part, unwrap(reply)):
            if status == 0:
                lost.append(record)
    return lost


def lost_message(record: InFlight, running: bool) -> LeaseLost:
    return LeaseLost(
        f"job {record.id} ({record.reg.job_type}): the lease was lost while "
        f"{'running' if running else 'waiting to run'} (ttl exceeded, recovered after a stall, "
        "or moved by hand); its result will not be recorded")


def upkeep_requests(keys: Keys, s: WorkerSettings) -> list[Call]:
    return [calls.promote(keys, s.promote_batch),
            calls.recover(keys, s.recover_batch, s.max_stalls, s.foreign_ttl_grace_ms,
                          s.rebalance_tokens)]


def upkeep_wait(replies: Sequence[Any], s: WorkerSettings, interval_ms: int) -> float:
    """Seconds until the next upkeep pass is useful."""
    promoted, wait_ms = (int(v) for v in unwrap(replies[0]))
    unwrap(replies[1])
    if promoted >= s.promote_batch:
        return 0.0
    return (interval_ms if wait_ms < 0 else min(interval_ms, wait_ms)) / 1000


def block_ms(client: Any, wanted_ms: int) -> int:
    """How long a BLPOP may block: ``wanted_ms``, but shorter than the client's socket timeout
    (if it has one), so an idle wait never looks like a broken connection."""
    pool = getattr(client, "connection_pool", None)
    timeout = (getattr(pool, "connection_kwargs", None) or {}).get("socket_timeout")
    if isinstance(timeout, (int, float)) and timeout > 0:
        return max(10, min(wanted_ms, int(timeout * 1000) - 200))
    return wanted_ms


def renew_every(lease_ms: Iterable[int], default: int) -> float:
    """Renew at a third of the shortest lease, in seconds."""
    values = list(lease_ms)
    return (min(values) if values else default) / 3000
