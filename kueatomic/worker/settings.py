"""Worker tuning knobs, one frozen dataclass per worker (``Worker(queue, lease_ms=...)``,
``worker.configure(...)`` or Kue's shorthand ``queue.configure_workers(...)``)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import InvalidArgument

MAX_HEARTBEAT_TTL_MS = 86400000  # what lua/register_worker.lua takes


@dataclass(frozen=True)
class WorkerSettings:
    """How a queue's workers claim, renew and recover jobs. Times are in ms.

    ``lease_ms``: how long a claim lasts without renewal; workers renew every third of it, so
    a killed worker's jobs go back to inactive between ``lease_ms`` and ``lease_ms`` + one
    upkeep interval later. ``max_stalls``: lease expiries a job survives in one attempt; one
    more is a failed attempt ("Stalled: ..."), retried while attempts remain.
    ``claim_batch`` / ``flush_batch``: jobs per claim call / results per complete-or-fail call. ``block_timeout_ms``: how long an idle worker blocks on the wake-up
    list before claiming anyway. ``upkeep_interval_ms``: how often promotion of delayed jobs
    and recovery run (sooner when a delayed job is due sooner). ``foreign_ttl_grace_ms``: how
    long a Node Kue worker's job past its ttl is left to Kue's own sweeper.
    ``reply_timeout_ms``: how long the worker's own connections wait for a reply before they
    count it as lost (the worker then asks Redis what its call did; a blocking wait for new
    jobs is kept shorter than this). ``result_retry_ms``: how long a finished job's result is
    retried through an outage (its lease renewed meanwhile); after that the result is given up
    and the lease let go, so upkeep runs the job again. ``repeats``: whether upkeep also
    fires repeatable jobs (``queue.repeat``); any number of workers may: the scripts
    make one job per tick."""

    lease_ms: int = 15000
    max_stalls: int = 1
    claim_batch: int = 100
    flush_batch: int = 500
    block_timeout_ms: int = 1000
    upkeep_interval_ms: int = 1000
    promote_batch: int = 1000
    recover_batch: int = 1000
    foreign_ttl_grace_ms: int = 3000
    rebalance_tokens: bool = True
    reply_timeout_ms: int = 5000
    result_retry_ms: int = 60000
    # The workers registry (worker/heartbeat.py): the worker's entry is written every
    # heartbeat_interval_ms (0: never) and lives heartbeat_ttl_ms (0: three intervals)
    # without another; the activity counts travel with it.
    heartbeat_interval_ms: int = 5000
    heartbeat_ttl_ms: int = 0
    repeats: bool = True

    def __post_init__(self) -> None:
        minimum = {"lease_ms": 100, "max_stalls": 0, "claim_batch": 1, "flush_batch": 1,
                   "block_timeout_ms": 10, "upkeep_interval_ms": 10, "promote_batch": 1,
                   "recover_batch": 1, "foreign_ttl_grace_ms": 0,
                   "reply_timeout_ms": 100, "result_retry_ms": 0,
                   "heartbeat_interval_ms": 0, "heartbeat_ttl_ms": 0}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidArgument(f"worker setting {name} must be an integer >= {low}, "
                                      f"not {value!r}")
        if self.claim_batch > 1000:
            raise InvalidArgument("worker setting claim_batch must be <= 1000")
        beat, ttl = self.heartbeat_interval_ms, self.heartbeat_ttl_ms
        if beat and not (ttl or 3 * beat) <= MAX_HEARTBEAT_TTL_MS:
            raise InvalidArgument(f"worker setting heartbeat_ttl_ms (or 3 x heartbeat_interval_"
                                  f"ms) must be <= {MAX_HEARTBEAT_TTL_MS}")
        if beat and ttl and ttl <= beat:
            raise InvalidArgument("worker setting heartbeat_ttl_ms must be longer than "
                                  "heartbeat_interval_ms, or the entry would blink out")

    def updated(self, **changes: Any) -> WorkerSettings:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise InvalidArgument(
                f"unknown worker setting(s) {sorted(unknown)}; use {', '.join(sorted(known))}")
        return replace(self, **changes)
