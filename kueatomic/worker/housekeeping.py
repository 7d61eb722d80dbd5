"""Lease renewal, ttl checks, promotion and recovery, and the data-format check that comes
before all of them: the housekeeping half of the worker core's decisions, sans I/O.
``WorkerCore`` (core.py) is built on ``HousekeepingRules``; the state it reads (in-flight
records, registrations, the lock, the clock) is the core's."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import IncompatibleFormat, KueError, LeaseLost, is_outage
from ..keyspace import Keys
from ..ops import Plan, Request, unwrap
from ..repeats import Scheduler
from ..shards import format_plan
from . import calls
from .registration import (
    ABANDONED,
    FINISHED,
    LOST,
    QUEUED,
    RUNNING,
    TTL_CHECK_SLACK,
    InFlight,
    Registration,
    ttl_seconds,
)
from .settings import WorkerSettings

log = logging.getLogger("kueatomic.worker")
RENEW_CHUNK = 1000


class Housekeeping:
    """Lease renewals (grouped like their calls), then the data-format check (``check``, the
    plan whose requests follow the renewals) or, when due, the upkeep calls."""

    __slots__ = ("check", "renew_groups", "repeats", "requests", "upkeep")

    def __init__(self, requests: list[Request], renew_groups: list[list[InFlight]],
                 upkeep: bool, check: Plan[int] | None = None, repeats: int = 0) -> None:
        self.requests, self.renew_groups, self.upkeep = requests, renew_groups, upkeep
        self.check = check
        self.repeats = repeats  # the scheduler's calls, after the renewals (upkeep passes)


class HousekeepingRules:
    """When to renew which leases, when upkeep is due, and what their replies mean."""

    # the core's state (WorkerCore.__init__)
    keys: Any  # Keys, or a sharded queue's ShardedKeys
    layouts: tuple[Keys, ...]
    settings: WorkerSettings
    clock: Callable[[], float]
    lock: Any
    regs: list[Registration]
    inflight: dict[int, InFlight]
    upkeep_interval_ms: int | None
    next_upkeep: float
    poke_upkeep: bool
    next_renew: float
    renewals_failing: bool
    format_due: float | None
    fatal: BaseException | None
    heartbeat: Any  # worker/heartbeat.py's Heartbeat, or None
    scheduler: Scheduler | None  # fires repeatable jobs in upkeep passes

    def loop_ok(self, name: str) -> None:
        raise NotImplementedError

    def loop_failed(self, name: str, exc: BaseException) -> float:
        raise NotImplementedError

    def _signal_slots(self, reg: Registration) -> None:
        raise NotImplementedError

    def _report(self, exc: BaseException, context: str = "", level: int = logging.ERROR) -> None:
        raise NotImplementedError

    def refuse(self, exc: BaseException) -> None:
        raise NotImplementedError

    def format_ok(self) -> None:
        raise NotImplementedError

    def renew_every(self) -> float:
        """Renew at a third of the shortest lease, in seconds."""
        leases = [r.lease_ms for r in self.regs]
        return (min(leases) if leases else self.settings.lease_ms) / 3000

    def _renewable(self, now: float) -> list[InFlight]:
        """Jobs whose lease we keep: claimed or running, and finished ones whose outcome is
        still being written, up to result_retry_ms after they finished."""
        bound = self.settings.result_retry_ms / 1000
        return [r for r in self.inflight.values()
                if r.stage in (QUEUED, RUNNING)
                or (r.stage == FINISHED and now - r.finished_at <= bound)]

    def next_housekeeping(self) -> Housekeeping | float:
        """The calls due now, or the seconds until something is due. Upkeep waits for the
        data-format check (never on a queue of a newer format); the check goes alone."""
        now = self.clock()
        with self.lock:
            records = list(self.inflight.values())
            ttl_due = [r.check_at for r in records if r.check_at and r.stage in (QUEUED, RUNNING)]
            renew = now >= self.next_renew or (bool(ttl_due) and now >= min(ttl_due))
            format_due = self.format_due
            check = format_due is not None and now >= format_due
            known = format_due is None and self.fatal is None  # a format this version reads
            interval = self.upkeep_interval_ms if known else None
            upkeep = interval is not None and (now >= self.next_upkeep or self.poke_upkeep)
            heartbeat = self.heartbeat if known else None  # none before the format check
            beat = heartbeat is not None and heartbeat.due(now)
            if not renew and not upkeep and not check and not beat:
                until = self.next_renew
                if heartbeat is not None and not heartbeat.done:
                    until = min(until, heartbeat.next_at)
                if interval is not None:
                    until = min(until, self.next_upkeep)
                if format_due is not None:
                    until = min(until, format_due)
                if ttl_due:
                    until = min(until, min(ttl_due))
                return max(0.0, until - now)
            requests: list[Request] = []
            groups: list[list[InFlight]] = []
            beating = heartbeat.beat(self, now) if heartbeat is not None and beat else None
            if renew:
                self.next_renew = now + self.renew_every()
                for record in records:
                    if record.check_at and record.check_at <= now:
                        record.check_at = now + ttl_seconds(record.fields) + TTL_CHECK_SLACK
                by_lease: dict[tuple[int, str], list[InFlight]] = {}
                for record in self._renewable(now):  # a call per lease and shard
                    shard = self.keys.for_job(record.id).prefix
                    by_lease.setdefault((record.reg.lease_ms, shard), []).append(record)
                for (lease_ms, _), group in by_lease.items():
                    keys = self.keys.for_job(group[0].id)
                    for start in range(0, len(group), RENEW_CHUNK):
                        part = group[start : start + RENEW_CHUNK]
                        requests.append(calls.renew(keys, lease_ms,
                                                    [(r.id, r.token) for r in part]))
                        groups.append(part)
            repeat_calls: list[Request] = []
            if upkeep:  # repeats due, then promotion and recovery: a pair of calls per shard
                self.poke_upkeep = False
                s = self.settings
                if self.scheduler is not None:
                    repeat_calls = self.scheduler.requests()
                    requests.extend(repeat_calls)
                for keys in self.layouts:
                    requests.append(calls.promote(keys, s.promote_batch))
                    requests.append(calls.recover(keys, s.recover_batch, s.max_stalls,
                                                  s.foreign_ttl_grace_ms, s.rebalance_tokens))
        plan = None
        if check:  # a fresh plan each time: one that raised cannot be sent again
            plan = format_plan(self.keys)
            requests.extend(next(plan))
        if beating is not None:  # the heartbeat goes last (Heartbeat.split reads it)
            requests.append(beating.call)
        if not requests:  # nothing to renew: no claimed job can stall
            self._renewals_ok(True)
            return self.next_housekeeping()
        return Housekeeping(requests, groups, upkeep, plan, len(repeat_calls))

    def housekept(self, hk: Housekeeping, replies: Sequence[Any]) -> list[InFlight]:
        """Read renewals and upkeep; returns the running jobs whose lease was lost (the
        runtime frees their slots: a new thread, or the task cancelled)."""
        abandoned: list[InFlight] = []
        failure: BaseException | None = None
        renew_failure = False
        if self.heartbeat is not None:  # its reply, if it was sent, is the last one
            replies, failure = self.heartbeat.split(hk.requests, replies)
        for group, reply in zip(hk.renew_groups, replies):
            if isinstance(reply, BaseException):
                failure = reply
                renew_failure = renew_failure or is_outage(reply)  # a bug must not stop claims
                continue
            for record, status in zip(group, reply):
                if status == 0 and self._lost(record):
                    abandoned.append(record)
        if hk.check is not None:
            failure = self._format_read(hk.check, replies[len(hk.renew_groups):]) or failure
        if hk.upkeep:
            now = self.clock()
            interval = (self.upkeep_interval_ms or self.settings.upkeep_interval_ms) / 1000
            wait = interval
            if hk.repeats and self.scheduler is not None:
                first = len(hk.renew_groups)
                failure = self.scheduler.read(replies[first:first + hk.repeats]) or failure
                soonest = self.scheduler.wait_s()
                if soonest is not None:
                    wait = min(wait, soonest)
            pairs = replies[len(replies) - 2 * len(self.layouts):]
            for promoted, recovered in zip(pairs[::2], pairs[1::2]):
                wait, failure = self._upkeep_read(promoted, recovered, interval, wait, failure)
            with self.lock:
                self.next_upkeep = now + wait
        if renew_failure:
            self._renewals_ok(False)
        elif failure is None:  # Redis takes writes again (or there was nothing to renew)
            self._renewals_ok(True)
        if failure is not None:
            delay = self.loop_failed("housekeeping", failure)
            self._retry_after(hk, delay)
        else:
            self.loop_ok("housekeeping")
        return abandoned

    def _upkeep_read(self, promoted: Any, recovered: Any, interval: float, wait: float,
                     failure: BaseException | None) -> tuple[float, BaseException | None]:
        """One shard's promotion and recovery replies: the next upkeep's wait (sooner when
        more delayed jobs are due) and the failure to back off from, if any."""
        if isinstance(promoted, BaseException):
            failure = promoted
        else:
            count, wait_ms = (int(v) for v in promoted)
            if count >= self.settings.promote_batch:
                wait = 0.0
            elif wait_ms >= 0:
                wait = min(wait, interval, wait_ms / 1000)
        if isinstance(recovered, BaseException):
            failure = recovered
        else:
            requeued, stalled_failed, ttl_failed = (int(v) for v in unwrap(recovered))
            if requeued or stalled_failed:
                log.info("recovered %d stalled jobs (%d back to inactive, %d failed the "
                         "attempt: stalled too often)", requeued + stalled_failed, requeued,
                         stalled_failed)
            if ttl_failed:
                log.info("%d jobs exceeded their ttl and failed the attempt", ttl_failed)
        return wait, failure

    def _format_read(self, check: Plan[int], replies: Sequence[Any]) -> BaseException | None:
        """The format check's reply: None once it is known (a format this version reads, or
        a newer one, which makes the core refuse); else the error to back off from and
        retry, as any upkeep call (an outage, a bug)."""
        try:
            check.send(list(replies))
        except StopIteration:
            self.format_ok()
            return None
        except IncompatibleFormat as exc:
            self.refuse(exc)
            return None
        except Exception as exc:  # noqa: BLE001 - reported and retried by the caller
            return exc
        check.close()
        return KueError("the data-format check asked for a second round trip")

    def _retry_after(self, hk: Housekeeping, delay: float) -> None:
        """Try the failed calls again after the backoff, not one interval later."""
        with self.lock:
            now = self.clock()
            self.next_renew = min(self.next_renew, now + delay)
            if hk.upkeep:
                self.next_upkeep = min(self.next_upkeep, now + delay)
            if hk.check is not None and self.format_due is not None:
                self.format_due = now + delay

    def _renewals_ok(self, ok: bool) -> None:
        was, self.renewals_failing = self.renewals_failing, not ok
        if was and ok:
            for reg in self.regs:
                self._signal_slots(reg)

    def housekeeping_failed(self, hk: Housekeeping, exc: BaseException) -> float:
        if self.heartbeat is not None:
            self.heartbeat.split(hk.requests, [exc] * len(hk.requests))
        if hk.renew_groups and is_outage(exc):
            self._renewals_ok(False)
        delay = self.loop_failed("housekeeping", exc)
        self._retry_after(hk, delay)
        return delay

    def _lost(self, record: InFlight) -> bool:
        """A renewal said the job is no longer ours; True when it was running (its slot is
        freed now, and the runtime must stop waiting for its handler)."""
        with self.lock:
            stage = record.stage
            if stage == RUNNING:
                record.stage = ABANDONED
                record.reg.free += 1
            elif stage == QUEUED:
                record.stage = LOST
                record.reg.free += 1
            else:
                return False  # finished: the flush tells whether it was written
            if self.inflight.get(record.id) is record:
                del self.inflight[record.id]
            cancelled = record.cancel_event
        if cancelled is not None:
            cancelled.set()  # the handler's ctx.cancelled: the job is no longer ours
        self._signal_slots(record.reg)
        self._report(LeaseLost(
            f"job {record.id} ({record.reg.job_type}): the lease was lost while "
            f"{'running' if stage == RUNNING else 'waiting to run'} (ttl exceeded, recovered "
            "after a stall, or moved by hand); its result will not be recorded"),
            level=logging.WARNING)
        return stage == RUNNING
