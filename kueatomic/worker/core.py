"""The worker's decisions, sans I/O: every rule lives here once.

``WorkerCore`` takes events — a claim to send, its reply or error, a handler that finished, a
flush reply or error, a housekeeping tick, a stop — and answers with what to do next: which
script calls to send, which jobs to run, which slots to free, how long to back off. It never
touches a socket, a thread or a sleep; time comes from ``clock``. The threaded and asyncio
runtimes drive it through the loops of ``kueatomic.worker.loops`` and only carry out I/O.

The threaded runtime passes a ``threading.Lock`` as ``lock``: every change of shared state
happens under it, so the claim, slot, flush and housekeeping threads may call in at once.
``signal(topic)`` tells the runtime that a waiter on ``topic`` may go on (see loops.py).

With ``check_format`` (both runtimes) nothing is claimed before the first housekeeping pass
has checked the queue's data format (``ops.check_format``); a newer format than this version
reads makes the core refuse for good (``fatal``), which the runtimes raise from ``join()``
and ``run()``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..codec import to_text
from ..errors import KueError, LeaseLost, RedisRefused, is_outage
from ..keyspace import Keys
from ..ops import Call
from ..repeats import Scheduler
from . import calls
from .episodes import Episode
from .housekeeping import HousekeepingRules
from .registration import (
    ABANDONED,
    FINISHED,
    QUEUED,
    RUNNING,
    InFlight,
    Registration,
)
from .settings import WorkerSettings

log = logging.getLogger("kueatomic.worker")

COMPLETE, FAIL, RELEASE = "complete", "fail", "release"
FLUSH_ORDER = {COMPLETE: 0, FAIL: 1, RELEASE: 2}  # the order a flush sends its calls in
FLUSH_WAIT_S = 10.0  # how long a stop waits for outcomes to be written


def slots(reg: Registration) -> Registration:
    """The topic a claim loop waits on for a free slot: the registration itself."""
    return reg


# Topics a loop waits on (loops.Wait); the core signals them. STOP is signalled only when the
# worker stops (it stays set), NEVER never: a Wait on it is a plain sleep. ENDED (it stays
# set too) when the worker stops or refuses to run: what the runtimes' join() waits for.
IDLE, RESULTS, WAKE, FLUSHED, STOP, NEVER = "idle", "results", "wake", "flushed", "stop", "never"
ENDED = "ended"
STICKY = frozenset({STOP, ENDED})


# How long an idle claim loop of a sharded queue blocks on one shard's wake-up list before
# it looks at the others again (a job on another shard waits at most this long).
SHARD_WAIT_MS = 200


class Observer:
    """The one hook for watching a worker (``kueatomic.metrics`` implements it): the core
    calls these, outside its decisions and never expecting an answer. The default does
    nothing. A method must be quick and must not raise (it may run under the core's lock)."""

    def claimed(self, job_type: str, records: Sequence[InFlight]) -> None:
        """A claim reply came back with ``records`` (possibly none)."""

    def started(self, record: InFlight) -> None:
        """A slot starts the job's handler."""

    def finished(self, record: InFlight, ok: bool, duration_ms: int | None) -> None:
        """The attempt ended: the handler returned (``ok``) or raised; ``duration_ms`` None
        when the job could not even be loaded (it fails without running)."""

    def released(self, job_type: str, count: int) -> None:
        """``count`` jobs were given back to inactive (a shutdown), no attempt used."""

    def lost(self, record: InFlight) -> None:
        """The job's lease was lost (stalled past its lease or ttl, or moved by hand)."""

    def outage(self, loop: str) -> None:
        """A loop's outage episode began (Redis unavailable); ``loop`` is its kind: claim,
        flush, housekeeping, slot..."""


NO_OBSERVER = Observer()


class Observers(Observer):
    """Several observers as one (the user's and the heartbeat's), called in turn."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = tuple(o for o in observers if o is not NO_OBSERVER)

    def claimed(self, job_type: str, records: Sequence[InFlight]) -> None:
        for observer in self.observers:
            observer.claimed(job_type, records)

    def started(self, record: InFlight) -> None:
        for observer in self.observers:
            observer.started(record)

    def finished(self, record: InFlight, ok: bool, duration_ms: int | None) -> None:
        for observer in self.observers:
            observer.finished(record, ok, duration_ms)

    def released(self, job_type: str, count: int) -> None:
        for observer in self.observers:
            observer.released(job_type, count)

    def lost(self, record: InFlight) -> None:
        for observer in self.observers:
            observer.lost(record)

    def outage(self, loop: str) -> None:
        for observer in self.observers:
            observer.outage(loop)


class Claim:
    """One activate_jobs (or, after a lost reply, reclaim_jobs) call for a registration, on
    ``keys``: the queue's layout (a sharded queue's shard whose turn it was)."""

    __slots__ = ("call", "cancelled", "keys", "reclaim", "reg", "since", "token", "want")

    def __init__(self, reg: Registration, token: str, want: int, call: Call, since: float,
                 keys: Keys, reclaim: bool = False) -> None:
        self.reg, self.token, self.want, self.call = reg, token, want, call
        self.since, self.keys, self.reclaim = since, keys, reclaim
        self.cancelled = False  # a stop gave its slots back while it was on its way


class Outcome:
    """What a job's claim ended in, waiting to be written: a result, a failure or a release."""

    __slots__ = ("duration", "kind", "payload", "record")

    def __init__(self, record: InFlight, kind: str, payload: Any, duration: int) -> None:
        self.record, self.kind, self.payload, self.duration = record, kind, payload, duration


class Flush:
    """complete_jobs / fail_jobs / release_jobs calls and the outcomes each one carries."""

    __slots__ = ("groups", "requests")

    def __init__(self, requests: list[Call], groups: list[list[Outcome]]) -> None:
        self.requests, self.groups = requests, groups


class WorkerCore(HousekeepingRules):
    """See the module docstring; lease renewal and upkeep are ``HousekeepingRules``."""

    def __init__(self, keys: Any, settings: WorkerSettings, emit: Callable[..., None], *,
                 clock: Callable[[], float] = time.monotonic, lock: Any = None,
                 signal: Callable[[Any], None] | None = None, upkeep: bool = True,
                 check_format: bool = False, observer: Observer | None = None,
                 heartbeat: Any = None) -> None:
        self.keys = keys  # Keys, or a sharded queue's ShardedKeys
        self.layouts: tuple[Keys, ...] = keys.layouts
        self.settings = settings
        self.emit = emit  # the queue's EventHub.emit: "error" events
        self.clock = clock
        self.lock = lock if lock is not None else contextlib.nullcontext()
        self.signal = signal or (lambda topic: None)
        self.regs: list[Registration] = []
        self.inflight: dict[int, InFlight] = {}
        self.outcomes: deque[Outcome] = deque()
        self.flushing = 0  # outcomes in a flush whose reply has not come back
        self.upkeep_allowed = upkeep
        self.upkeep_interval_ms: int | None = None
        self.next_upkeep = 0.0
        self.poke_upkeep = False
        self.next_renew = clock() + self.renew_every()
        self.episodes: dict[str, Episode] = {}
        self.stopped = False
        # Topics a loop found nothing to do for and is about to wait on: only those are
        # signalled (under load, a wake-up per finished job would cost more than the job).
        self.waiting: set[Any] = set()
        self.debug = log.isEnabledFor(logging.DEBUG)  # per-job lines: decided at start
        self.renewals_failing = False
        # When to check the queue's data format (None: checked, or not asked for); the error
        # that made this core refuse to work, for good (IncompatibleFormat).
        self.format_due: float | None = 0.0 if check_format else None
        self.fatal: BaseException | None = None
        self.observer = observer or NO_OBSERVER
        # The workers registry entry and the activity counts (worker/heartbeat.py), if any.
        self.heartbeat = heartbeat
        if heartbeat is not None:  # the heartbeat alone needs no fan-out: the usual case
            self.observer = (heartbeat if self.observer is NO_OBSERVER
                             else Observers(self.observer, heartbeat))
        # Repeatable jobs are fired by upkeep passes (kueatomic/repeats.py).
        self.scheduler = Scheduler(keys, clock) if upkeep and settings.repeats else None

    # --- registrations ------------------------------------------------------------------
    def add(self, reg: Registration) -> None:
        """A registration starts: its lease joins the renewal schedule at once (WAKE makes a
        sleeping housekeeping loop look again, so a shorter lease is not renewed too late)."""
        with self.lock:
            self.regs.append(reg)
            if self.heartbeat is not None:  # the registry lists its type at once
                self.heartbeat.next_at = 0.0
            self.stopped = False
            if self.upkeep_allowed and self.upkeep_interval_ms is None:
                self.upkeep_interval_ms = self.settings.upkeep_interval_ms
            self.next_renew = min(self.next_renew, self.clock() + self.renew_every())
        self.signal(WAKE)

    def enable_upkeep(self, interval_ms: int) -> None:
        with self.lock:
            self.upkeep_interval_ms = interval_ms
            self.stopped = False
        self.signal(WAKE)

    def resume(self, reg: Registration) -> int | None:
        """Start claiming for ``reg``; the new claim loop's generation, None if it runs."""
        with self.lock:
            if reg.claiming or reg.closed or self.fatal is not None:
                return None
            reg.claiming = True
            reg.generation += 1
            return reg.generation

    def episode(self, name: str) -> Episode:
        found = self.episodes.get(name)
        if found is None:
            found = self.episodes[name] = Episode(name, self.emit)
        return found

    # --- claiming -------------------------------------------------------------------------
    def next_claim(self, reg: Registration, generation: int) -> Claim | bool:
        """The claim to send now (its slots reserved), True to wait for a free slot, or
        False when this claim loop is done (paused or stopped)."""
        with self.lock:
            if not reg.claiming or reg.generation != generation or self.fatal is not None:
                return False
            if reg.reclaims:
                return reg.reclaims[0]  # type: ignore[no-any-return]
            if reg.free <= 0 or self.renewals_failing or self.format_due is not None:
                # No new claims while leases cannot be renewed (Redis refusing writes, say):
                # jobs claimed then would stall. Scripts that start with a read still run
                # under OOM, so a claim could succeed where its renewal later fails. None
                # either before the data format is known to be one this version reads.
                self.waiting.add(reg)
                return True
            want = min(reg.free, reg.batch)
            reg.free -= want
            keys = self.layouts[reg.shard_cursor % len(self.layouts)]
            reg.shard_cursor += 1
        token = calls.claim_token()
        call = calls.activate(keys, reg.job_type, want, reg.worker_id, token, reg.lease_ms,
                              self._shard_rate(reg))
        return Claim(reg, token, want, call, self.clock(), keys)

    def _shard_rate(self, reg: Registration) -> tuple[int, int] | None:
        """The rate limit each shard enforces: the registration's, split over the shards
        (each counts its own window), so the queue's rate stays at or under it."""
        if reg.rate_limit is None or len(self.layouts) == 1:
            return reg.rate_limit
        limit, window_ms = reg.rate_limit
        return max(1, limit // len(self.layouts)), window_ms

    def rate_pause(self, reg: Registration) -> float:
        """Seconds a claim loop sleeps before claiming again: until a full rate window
        reopens (0 when none is full)."""
        with self.lock:
            return max(0.0, reg.rate_until - self.clock())

    def _rate_read(self, reg: Registration, reply: Sequence[Any], now: float) -> None:
        """A claim's reply says whether its shard's window was full; once every shard's was
        in a row, the registration sleeps until the soonest reopens (no spinning)."""
        wait_ms = calls.rate_wait_ms(reply)
        if wait_ms is None:
            reg.rate_full, reg.rate_wait_ms = 0, None
            return
        reg.rate_full += 1
        reg.rate_wait_ms = wait_ms if reg.rate_wait_ms is None else min(reg.rate_wait_ms, wait_ms)
        if reg.rate_full >= len(self.layouts):
            reg.rate_until = now + reg.rate_wait_ms / 1000
            reg.rate_full, reg.rate_wait_ms = 0, None

    def claimed(self, claim: Claim, reply: Sequence[Any],
                make_job: Callable[[Registration, int, dict[str, str]], Any]) -> list[InFlight]:
        """Records for the jobs a claim took; the ones to run now are returned. A job that
        cannot be loaded fails this attempt at once, saying why."""
        reg = claim.reg
        now = self.clock()
        records = []
        for job_id, fields in calls.parse_claimed(reply, reg.worker_id, claim.token):
            record = InFlight(job_id, claim.token, reg, fields, now)
            try:
                record.job = make_job(reg, job_id, fields)
            except Exception as exc:  # noqa: BLE001 - a field Node Kue wrote oddly, say
                record.load_error = exc
            records.append(record)
        run: list[InFlight] = []
        with self.lock:
            if claim.reclaim and claim in reg.reclaims:
                reg.reclaims.remove(claim)
                self.episode(f"claim {reg.job_type}").note(f"recovered {len(records)} jobs of a "
                                                          "claim whose reply was lost")
            if claim.cancelled:
                reg.free -= claim.want  # stop_claiming freed them: hold them again, as below
            reg.free += claim.want - len(records)
            reg.empty_claims = 0 if records else reg.empty_claims + 1
            self._rate_read(reg, reply, now)  # a full rate window, or a paused type
            for record in records:
                self.inflight[record.id] = record
                if record.load_error is not None:
                    record.stage = RUNNING
                    self._finish(record, FAIL, calls.load_failure(record.id, record.load_error), 0)
                    self.observer.finished(record, False, None)
                elif not reg.claiming:  # stopped while the claim was on its way: give it back
                    record.stage = ABANDONED
                    reg.free += 1
                    self.outcomes.append(Outcome(record, RELEASE, None, 0))
                else:
                    run.append(record)
            wake = self._waiters(reg, IDLE, RESULTS) if len(run) < claim.want else ()
        self.observer.claimed(reg.job_type, records)
        if self.debug:
            for record in run:
                log.debug("job %s (%s) claimed", record.id, reg.job_type)
        for topic in wake:
            self.signal(topic)
        return run

    def claim_failed(self, claim: Claim, exc: BaseException, ran: bool = False) -> float:
        """The claim call failed (or, ``ran``, its reply could not be read); returns the
        seconds to back off. A reply lost on the way (a broken connection, a timeout) may
        hide a claim that ran: its slots stay reserved and the next call asks Redis which
        jobs that claim took (reclaim_jobs), for up to two leases."""
        reg = claim.reg
        episode = self.episode(f"claim {reg.job_type}")
        maybe_ran = ran or (is_outage(exc) and not isinstance(exc, RedisRefused))
        with self.lock:
            expired = self.clock() - claim.since > 2 * reg.lease_ms / 1000
            retry = ran or is_outage(exc)
            keep = retry and (maybe_ran or claim.reclaim) and not expired and reg.claiming
            if keep and not claim.reclaim:
                reg.reclaims.append(Claim(reg, claim.token, claim.want,
                                          calls.reclaim(claim.keys, claim.token, reg.lease_ms),
                                          claim.since, claim.keys, reclaim=True))
            elif not keep:
                if claim in reg.reclaims:
                    reg.reclaims.remove(claim)
                if not claim.cancelled:
                    reg.free += claim.want
            wake = self._waiters(IDLE)
        for topic in wake:
            self.signal(topic)
        return self._failed(episode, exc)

    def _failed(self, episode: Episode, exc: BaseException) -> float:
        if episode.since is None and is_outage(exc):
            self.observer.outage(episode.loop.split(" ", 1)[0])
        return episode.failed(exc, self.clock())

    def loop_ok(self, name: str) -> None:
        episode = self.episodes.get(name)
        if episode is not None:
            episode.ok(self.clock())

    def loop_failed(self, name: str, exc: BaseException) -> float:
        """A loop's call (or the loop itself) failed: report once per episode, back off."""
        return self._failed(self.episode(name), exc)

    def wait_call(self, reg: Registration, block_ms: int) -> Any:
        """The blocking read an idle claim loop waits with, or None to claim again at once:
        on a sharded queue, until every shard had its turn and found nothing; then it blocks
        on the next shard's wake-up list, for at most SHARD_WAIT_MS."""
        if len(self.layouts) == 1:
            return calls.wait_for_token(self.keys, (reg.job_type,), block_ms)
        with self.lock:
            if reg.empty_claims < len(self.layouts):
                return None
            reg.empty_claims = 0
            keys = self.layouts[reg.shard_cursor % len(self.layouts)]
        return calls.wait_for_token(keys, (reg.job_type,), min(block_ms, SHARD_WAIT_MS))

    def cancel_seen(self, job_id: int) -> None:
        """A ``cancel`` event named a job (lua/cancel_job.lua): if this worker runs it, renew
        now, so its lost lease stops the handler at once instead of at the next renewal."""
        with self.lock:
            if job_id not in self.inflight:
                return
            self.next_renew = self.clock()
        self.signal(WAKE)

    # --- running handlers -----------------------------------------------------------------
    def start(self, record: InFlight) -> bool:
        """A slot picked the job up: False when it must not run (lost, released)."""
        with self.lock:
            if record.stage != QUEUED:
                return False
            record.stage = RUNNING
        self.observer.started(record)
        return True

    def finished(self, record: InFlight, ok: bool, payload: Any, duration_ms: int) -> None:
        """A handler returned (``payload`` = result JSON) or raised (``payload`` =
        calls.describe_failure). The late result of an abandoned job is discarded."""
        waiting = self.waiting
        with self.lock:
            if record.stage != RUNNING:
                return
            self._finish(record, COMPLETE if ok else FAIL, payload, duration_ms)
            wake = self._waiters(record.reg, IDLE, RESULTS) if waiting else ()
        self.observer.finished(record, ok, duration_ms)
        if self.debug:
            log.debug("job %s (%s) %s in %d ms", record.id, record.reg.job_type,
                      "completed" if ok else "failed", duration_ms)
        for topic in wake:
            self.signal(topic)

    def _finish(self, record: InFlight, kind: str, payload: Any, duration_ms: int) -> None:
        record.stage = FINISHED
        record.finished_at = self.clock()
        record.reg.free += 1
        self.outcomes.append(Outcome(record, kind, payload, duration_ms))

    def _waiters(self, *topics: Any) -> list[Any]:
        """Of ``topics``, those a loop waits on (no longer marked): call under the lock."""
        found = [topic for topic in topics if topic in self.waiting]
        self.waiting.difference_update(found)
        return found

    def _signal_slots(self, reg: Registration) -> None:
        with self.lock:
            wake = self._waiters(reg, IDLE)
        for topic in wake:
            self.signal(topic)

    # --- writing outcomes -----------------------------------------------------------------
    def next_flush(self) -> Flush | None:
        """Up to two calls' worth of outcomes as complete/fail/release calls, or None."""
        limit = self.settings.flush_batch
        with self.lock:
            if not self.outcomes:
                self.waiting.add(RESULTS)
                return None
            taken = [self.outcomes.popleft() for _ in range(min(len(self.outcomes), 2 * limit))]
            self.flushing += len(taken)
        by_kind: dict[tuple[str, str], list[Outcome]] = {}
        for outcome in taken:  # a call per kind and shard (the queue's layout, unsharded)
            keys = self.keys.for_job(outcome.record.id)
            by_kind.setdefault((outcome.kind, keys.prefix), []).append(outcome)
        requests: list[Call] = []
        groups: list[list[Outcome]] = []
        for (kind, _), items in sorted(by_kind.items(), key=lambda entry: FLUSH_ORDER[entry[0][0]]):
            keys = self.keys.for_job(items[0].record.id)
            for start in range(0, len(items), limit):
                part = items[start : start + limit]
                try:
                    requests.append(self._flush_call(kind, keys, part))
                except Exception as exc:  # noqa: BLE001 - one bad outcome must not stop flushing
                    with self.lock:
                        self.flushing -= len(part)
                        self._forget(part)
                    self._give_up(part, exc)
                    continue
                groups.append(part)
        if not requests:
            return self.next_flush()
        return Flush(requests, groups)

    def _flush_call(self, kind: str, keys: Keys, part: list[Outcome]) -> Call:
        if kind == COMPLETE:
            return calls.complete(keys, [(o.record.id, o.record.token, o.duration, o.payload)
                                         for o in part])
        if kind == RELEASE:
            return calls.release(keys, [(o.record.id, o.record.token) for o in part])
        items = []
        for outcome in part:
            record = outcome.record
            error, summary, message = outcome.payload
            delay, problem = calls.backoff_delay(record.fields)
            if problem:
                self._report(KueError(f"job {record.id}: {problem}"))
            items.append((record.id, record.token, error, summary, message, delay))
        return calls.fail(keys, items)

    def flushed(self, flush: Flush, replies: Sequence[Any]) -> float:
        """Read each call's statuses: lost leases are reported; a call Redis refused for now
        is retried (returns the seconds to back off first, else 0); a bug is reported and its
        outcomes given up (their leases run out)."""
        retry: list[Outcome] = []
        done: list[Outcome] = []
        delayed = False
        # A reply that cannot be read raises to the loop, which reports it; the outcomes not
        # read are given up in the finally, never left counted as on their way.
        read = 0  # groups fully read
        try:
            for group, reply in zip(flush.groups, replies):
                if isinstance(reply, BaseException):
                    if is_outage(reply):
                        retry.extend(group)
                    else:
                        self._give_up(group, reply)
                        done.extend(group)
                    read += 1
                    continue
                if group and group[0].kind == RELEASE:
                    back = [o.record for o, status in zip(group, reply) if status == 1]
                    released = [record.id for record in back]
                    for job_type in {record.reg.job_type for record in back}:
                        self.observer.released(
                            job_type, sum(r.reg.job_type == job_type for r in back))
                    if released:
                        log.info("Released at shutdown: jobs %s are back in inactive, no "
                                 "attempt used", ", ".join(map(str, released)))
                for outcome, status in zip(group, reply):
                    if status != 1:  # 1: completed or released, the usual case
                        status = to_text(status)  # a client without decode_responses: bytes
                        self._read_status(outcome, status)
                        delayed = delayed or status == "delayed"
                done.extend(group)
                read += 1
        finally:
            unread = [outcome for group in flush.groups[read:] for outcome in group]
            with self.lock:
                self.flushing -= len(retry) + len(done) + len(unread)
                self._forget(done + unread)
                self._retry(retry)
                if delayed:
                    self.poke_upkeep = True
            self.signal(FLUSHED)
        pause = 0.0
        if retry:
            pause = self.loop_failed("flush", next(r for r in replies if is_outage(r)))
        else:
            self.loop_ok("flush")
        if delayed:
            self.signal(WAKE)
        return pause

    def flush_failed(self, flush: Flush, exc: BaseException) -> float:
        """The whole flush failed: keep every outcome through an outage, else give up."""
        group = [outcome for part in flush.groups for outcome in part]
        with self.lock:
            self.flushing -= len(group)
            if is_outage(exc):
                self._retry(group)
            else:
                self._forget(group)
        self.signal(FLUSHED)
        if not is_outage(exc):
            self._give_up(group, exc)  # reported there; nothing is left to retry
            return 0.0
        return self.loop_failed("flush", exc)

    def _read_status(self, outcome: Outcome, status: Any) -> None:
        record = outcome.record
        if outcome.kind == RELEASE:
            return
        if status == 0 or status == "":  # 2 / a state again: a retry of a write that was done
            self.observer.lost(record)
            what = "result" if outcome.kind == COMPLETE else "failure"
            self._report(LeaseLost(
                f"job {record.id} ({record.reg.job_type}): the lease was lost before its {what} "
                "was recorded (expired and recovered, or moved by hand); nothing was written"),
                level=logging.WARNING)

    def _retry(self, group: list[Outcome]) -> None:
        """Put outcomes back in front, except those retried for longer than the bound, and
        all of them once the worker has stopped (see ``stop``). Call under the lock."""
        if self.stopped:
            self._let_go(group)
            return
        now = self.clock()
        bound = self.settings.result_retry_ms / 1000
        keep = []
        for outcome in group:
            record = outcome.record
            if outcome.kind != RELEASE and now - record.finished_at > bound:
                log.error("job %s (%s): gave up writing its %s after %.0f s of outage; its lease "
                          "is let go, so upkeep will run it again", record.id, record.reg.job_type,
                          outcome.kind, now - record.finished_at)
                self._forget([outcome])
            else:
                keep.append(outcome)
        self.outcomes.extendleft(reversed(keep))

    def _let_go(self, group: list[Outcome]) -> None:
        """Outcomes a stopped worker could not write: given up (their leases run out)."""
        if not group:
            return
        self._forget(group)
        ids = ", ".join(str(o.record.id) for o in group[:10])
        log.warning("stopped with %d outcomes unwritten (Redis unavailable; jobs %s%s): given "
                    "up, so their leases expire and lease recovery returns the jobs to inactive",
                    len(group), ids, "..." if len(group) > 10 else "")

    def _forget(self, group: Iterable[Outcome]) -> None:
        for outcome in group:
            if self.inflight.get(outcome.record.id) is outcome.record:
                del self.inflight[outcome.record.id]

    def _give_up(self, group: list[Outcome], exc: BaseException) -> None:
        ids = ", ".join(str(o.record.id) for o in group[:10])
        self._report(exc, f"writing outcomes of jobs {ids}{'...' if len(group) > 10 else ''} "
                          "failed with a bug (the jobs come back when their leases expire)")

    def _lost(self, record: InFlight) -> bool:
        before = record.stage
        running = super()._lost(record)
        if before in (QUEUED, RUNNING) and record.stage != before:
            self.observer.lost(record)
        return running

    def _report(self, exc: BaseException, context: str = "", level: int = logging.ERROR) -> None:
        log.log(level, "%s%s", f"{context}: " if context else "", exc,
                exc_info=exc if level >= logging.ERROR else None)
        self.emit("error", exc)

    def drained(self) -> bool:
        with self.lock:
            return not self.outcomes and self.flushing == 0

    # --- stopping -------------------------------------------------------------------------
    def stop_claiming(self, regs: Iterable[Registration], final: bool) -> dict[Registration, int]:
        """No new claims for ``regs``; returns each one's generation at this moment."""
        paused = {}
        with self.lock:
            for reg in regs:
                reg.claiming = False
                if final:
                    reg.closed = True
                for claim in reg.reclaims:  # their jobs come back when the leases expire
                    reg.free += claim.want
                    claim.cancelled = True
                reg.reclaims.clear()
                paused[reg] = reg.generation
        for reg in paused:
            self._signal_slots(reg)
        return paused

    def idle(self, paused: dict[Registration, int]) -> bool:
        """Whether the paused registrations have nothing running (or were resumed)."""
        with self.lock:
            done = all(reg.free >= reg.concurrency or reg.generation != generation
                       for reg, generation in paused.items())
            if not done:
                self.waiting.add(IDLE)
            return done

    def settle(self, paused: dict[Registration, int], fail_running: bool) -> list[InFlight]:
        """Give back every job the paused registrations still hold: released to inactive
        (no attempt used), or failed with "Shutdown" as Kue does when ``fail_running``.
        Returns the running ones, whose late results will be discarded."""
        running = []
        with self.lock:
            for record in list(self.inflight.values()):
                reg = record.reg
                if paused.get(reg) != reg.generation or record.stage not in (QUEUED, RUNNING):
                    continue
                if record.stage == RUNNING:
                    running.append(record)
                started = record.stage == RUNNING
                record.stage = ABANDONED
                reg.free += 1
                if fail_running and started:  # one that never started keeps its attempt
                    record.finished_at = self.clock()
                    self.outcomes.append(Outcome(record, FAIL, calls.plain_failure("Shutdown"), 0))
                else:
                    self.outcomes.append(Outcome(record, RELEASE, None, 0))
        for record in running:
            log.info("job %s (%s) still running at the end of the shutdown timeout: %s",
                     record.id, record.reg.job_type,
                     "failing it with \"Shutdown\"" if fail_running else "releasing it")
        if paused:
            with self.lock:
                self.waiting.discard(RESULTS)
            self.signal(RESULTS)
        return running

    def refuse(self, exc: BaseException) -> None:
        """The queue cannot be worked on (a newer data format): report it, claim nothing more
        and run no upkeep, for good; the claim loops end and ``join()`` raises ``exc``."""
        self._report(exc, "this worker claims no jobs and runs no upkeep")
        with self.lock:
            self.fatal = exc
            self.format_due = None
            self.upkeep_interval_ms = None
            regs = list(self.regs)
        for reg in regs:
            self._signal_slots(reg)
        self.signal(ENDED)

    def format_ok(self) -> None:
        """The data format is one this version reads: claims may begin."""
        with self.lock:
            self.format_due = None
            regs = list(self.regs)
        for reg in regs:
            self._signal_slots(reg)

    def stop(self) -> None:
        """Everything stops: upkeep and housekeeping end (call after the last settle). The
        outcomes a shutdown could not write within its wait (an outage) are given up now,
        and those of a flush on its way when it fails, so the flush loop ends too instead of
        retrying until Redis returns."""
        with self.lock:
            self.stopped = True
            self.upkeep_interval_ms = None
            left = list(self.outcomes)
            self.outcomes.clear()
            self._let_go(left)
        for topic in (WAKE, RESULTS, STOP, FLUSHED, ENDED):
            self.signal(topic)
