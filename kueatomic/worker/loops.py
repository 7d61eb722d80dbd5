"""The worker's loops, written once as generators that yield actions to their runtime.

A loop never does I/O itself: it yields ``Send(batch)`` and receives the replies (or has the
error thrown in), yields ``Wait(topic, timeout)`` to sleep until the core signals ``topic`` or
the timeout passes, ``Run(records)`` to hand claimed jobs to slots, and ``Abandon(records)``
when running jobs were given up (the runtime stops waiting for them). The threaded runtime
drives these generators in threads, the asyncio runtime in tasks (``drive`` in each), so the
claim, flush, housekeeping and shutdown logic exists once.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from ..ops import Request, unwrap
from . import core as c
from .core import WorkerCore
from .housekeeping import Housekeeping
from .registration import InFlight, Registration


@dataclass(slots=True)
class Send:
    batch: list[Request]


@dataclass(slots=True)
class Wait:
    topic: Any
    timeout: float


@dataclass(slots=True)
class Run:
    records: list[InFlight]


@dataclass(slots=True)
class Abandon:
    records: list[InFlight]


Action = Send | Wait | Run | Abandon
Loop = Generator[Action, Any, None]
MakeJob = Callable[[Registration, int, dict[str, str]], Any]


def claim_loop(core: WorkerCore, reg: Registration, generation: int, make_job: MakeJob,
               block_ms: int) -> Loop:
    """Claim up to the free slots, hand the jobs over; block on the wake-up list when the
    queue is empty. Ends when the registration is paused or stopped."""
    name = f"claim {reg.job_type}"
    while True:
        claim = core.next_claim(reg, generation)
        if claim is False:
            return
        if claim is True:
            yield Wait(c.slots(reg), 1.0)
            continue
        assert isinstance(claim, c.Claim)
        try:
            replies = yield Send([claim.call])
            reply = unwrap(replies[0])
        except Exception as exc:  # noqa: BLE001 - every fault: classified by the core
            yield Wait(c.STOP, core.claim_failed(claim, exc))
            continue
        try:
            records = core.claimed(claim, reply, make_job)
        except Exception as exc:  # noqa: BLE001 - a reply we cannot read: the claim ran
            yield Wait(c.STOP, core.claim_failed(claim, exc, ran=True))
            continue
        core.loop_ok(name)
        if records:
            yield Run(records)
            continue
        pause = core.rate_pause(reg)
        if pause > 0:  # the type's rate window is full: sleep until it reopens
            yield Wait(c.STOP, pause)
            continue
        if claim.reclaim or len(reply) > 1:
            continue  # claimed jobs that did not run (load errors): claim again
        wait = core.wait_call(reg, block_ms)
        if wait is None:
            continue  # a sharded queue: the next shard's turn
        try:
            replies = yield Send([wait])
            unwrap(replies[0])
        except Exception as exc:  # noqa: BLE001
            if not reg.claiming:
                return  # stopped meanwhile (the blocking connection was closed)
            yield Wait(c.STOP, core.loop_failed(name, exc))


def flush_loop(core: WorkerCore) -> Loop:
    """Write outcomes as they pile up: complete/fail/release calls in one pipeline. Through
    an outage the outcomes are kept and retried with backoff. Ends after a stop, once every
    outcome is written or given up (a stop gives up the ones an outage holds back, and
    ends the backoff at once)."""
    while True:
        flush = core.next_flush()
        if flush is None:
            if core.stopped:
                return
            yield Wait(c.RESULTS, 0.5)
            continue
        try:
            replies = yield Send(list(flush.requests))
        except Exception as exc:  # noqa: BLE001
            yield Wait(c.STOP, core.flush_failed(flush, exc))
            continue
        pause = core.flushed(flush, replies)
        if pause:
            yield Wait(c.STOP, pause)


def housekeeping_loop(core: WorkerCore) -> Loop:
    """Renew leases (and check ttls) at a third of the lease; promote delayed jobs and
    recover expired ones every upkeep interval. Ends at stop."""
    while not core.stopped:
        due = core.next_housekeeping()
        if not isinstance(due, Housekeeping):
            yield Wait(c.WAKE, due)
            continue
        try:
            replies = yield Send(list(due.requests))
        except Exception as exc:  # noqa: BLE001
            yield Wait(c.STOP, core.housekeeping_failed(due, exc))
            continue
        abandoned = core.housekept(due, replies)
        if abandoned:
            yield Abandon(abandoned)
    yield from farewell(core)


FAREWELL_TRIES = 2


def farewell(core: WorkerCore) -> Loop:
    """At a clean stop: remove the worker's registry entry, with its last counts
    (worker/heartbeat.py); an outage or a lost reply is tried again, a few times."""
    heartbeat = core.heartbeat
    for _ in range(FAREWELL_TRIES):
        beat = heartbeat.farewell(core) if heartbeat is not None else None
        if beat is None:
            return
        try:
            replies = yield Send([beat.call])
            reply = replies[0]
        except Exception as exc:  # noqa: BLE001 - read as the call's error
            reply = exc
        if heartbeat.farewell_read(beat, reply):
            return
        yield Wait(c.NEVER, 0.1)


def stop_loop(core: WorkerCore, regs: list[Registration], timeout_ms: float | None,
              fail_running: bool, final: bool) -> Loop:
    """Graceful stop of ``regs`` (a pause when not ``final``): no new claims, running jobs get
    ``timeout_ms`` (None: as long as they take), then the rest are released (or failed with
    "Shutdown"), and every outcome is written before this ends."""
    paused = core.stop_claiming(regs, final)
    deadline = None if timeout_ms is None else core.clock() + max(0.0, timeout_ms) / 1000
    while not core.idle(paused):
        left = 0.25 if deadline is None else deadline - core.clock()
        if left <= 0:
            break
        yield Wait(c.IDLE, min(left, 0.25))
    running = core.settle(paused, fail_running)
    if running:
        yield Abandon(running)
    flush_deadline = core.clock() + c.FLUSH_WAIT_S
    while not core.drained() and core.clock() < flush_deadline:
        yield Wait(c.FLUSHED, 0.05)
