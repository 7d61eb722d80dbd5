"""Plans for ending and tidying jobs by hand: cancel, clean, bulk retry, and pausing a type for
every worker (lua/cancel_job.lua, clean_jobs.lua, retry_jobs.lua, set_type_paused.lua).

Each plan works on one queue or a sharded one (``keys.layouts``: a call per shard), and is run
by the sync and the asyncio queue alike.
"""

from __future__ import annotations

from typing import Any

from .codec import encodable, to_text
from .errors import InvalidArgument
from .keyspace import Keys
from .ops import Call, Plan, Read, single, unwrap
from .shards import ShardedKeys

CLEANABLE = ("inactive", "delayed", "complete", "failed")
WAITING_PROMOTE_AT = 2**53 - 1  # promote_at of a job waiting for dependencies (never due)
CLEAN_BUDGET = 1000  # members one clean_jobs call scans: a short script, whatever the set's size
MAX_PER_CALL = 10_000  # clean_jobs' and retry_jobs' limit per call


def cancel(keys: Keys | ShardedKeys, job_id: int) -> Plan[str | None]:
    """Cancel a job that has not ended; its previous state (see lua/cancel_job.lua)."""
    k = keys.for_job(job_id)
    previous = yield from single(Call("cancel_job", (k.job(job_id), *k.end_keys),
                                      (k.prefix, str(job_id))))
    return to_text(previous) if previous else None


def _count(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgument(f"{what} must be an integer >= {low}, not {value!r}")
    return value


def _job_type(job_type: Any) -> str:
    if job_type is None:
        return ""
    if not isinstance(job_type, str) or not job_type or encodable(job_type) != job_type:
        raise InvalidArgument(f"job type must be a non-empty string, not {job_type!r}")
    return job_type


def clean(keys: Keys | ShardedKeys, state: str, older_than_ms: int = 0, limit: int = 1000,
          job_type: str | None = None) -> Plan[int]:
    """Remove up to ``limit`` jobs in ``state`` (of ``job_type``, or of every type) that
    entered it at least ``older_than_ms`` ago; how many went. Each call scans a bounded part
    of the state's set, so Redis is never blocked for long."""
    if state not in CLEANABLE:
        raise InvalidArgument(f"clean takes a state among {', '.join(CLEANABLE)}, not {state!r} "
                              "(active jobs are held by workers: cancel them)")
    older_than_ms = _count(older_than_ms, "older_than_ms", 0)
    limit = _count(limit, "limit", 1)
    jtype = _job_type(job_type)
    removed = 0
    for k in keys.layouts:
        cursor = 0
        while cursor >= 0 and removed < limit:
            zset = k.type_state(jtype, state) if jtype else k.state(state)
            call = Call("clean_jobs", (zset, *k.end_keys),
                        (k.prefix, state, jtype, older_than_ms,
                         min(limit - removed, MAX_PER_CALL), cursor, CLEAN_BUDGET))
            count, cursor = (int(v) for v in (yield from single(call)))
            removed += count
    return removed


def retry_failed(keys: Keys | ShardedKeys, job_type: str | None = None,
                 limit: int = 1000) -> Plan[int]:
    """Put up to ``limit`` failed jobs (of ``job_type``, or of every type) back to inactive,
    as the dashboard's restart does; how many went."""
    limit = _count(limit, "limit", 1)
    jtype = _job_type(job_type)
    retried = 0
    for k in keys.layouts:
        while retried < limit:
            want = min(limit - retried, MAX_PER_CALL)
            failed = k.type_state(jtype, "failed") if jtype else k.state("failed")
            count = int((yield from single(Call("retry_jobs", (failed,), (k.prefix, jtype, want)))))
            retried += count
            if count < want:
                break
    return retried


def set_paused(keys: Keys | ShardedKeys, job_type: str, paused: bool) -> Plan[bool]:
    """Pause (or resume) a type for every worker of the queue; whether its flag changed."""
    if not job_type:
        raise InvalidArgument("pause_type needs a job type")
    jtype = _job_type(job_type)
    replies = yield [Call("set_type_paused", (k.paused,), (k.prefix, jtype, "1" if paused else ""))
                     for k in keys.layouts]
    return any(int(unwrap(r)) for r in replies)


def paused_types(keys: Keys | ShardedKeys) -> Plan[list[str]]:
    replies = yield [Read(("SMEMBERS", k.paused)) for k in keys.layouts]
    return sorted({to_text(t) for r in replies for t in unwrap(r)})


def dependents(keys: Keys | ShardedKeys, job_id: int) -> Plan[list[int]]:
    """The jobs still waiting for ``job_id`` (its children), by id."""
    k = keys.for_job(job_id)
    replies = yield [Read(("SMEMBERS", k.dependents(job_id)))]
    return sorted(int(to_text(i)) for i in unwrap(replies[0]))
