"""The threaded worker runtime of a sync ``Queue``.

Threads, per queue: one claimer per ``process()`` call (activate_jobs for up to its free
slots, BLPOP on the type's wake-up list when nothing is there), ``concurrency`` slot threads
per call running the handler, one flusher (complete_jobs / fail_jobs for every result that
piled up, in one pipeline) and one housekeeper (lease renewal; promotion and recovery). The
claimer and the flusher have their own connections, so the next claim overlaps the current
completions, and slots are freed when a handler returns, not when its result is written.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from queue import SimpleQueue
from typing import Any

from ..errors import KueError, RedisUnavailable
from ..ops import unwrap
from . import calls, core
from .context import WorkerContext
from .events import EventHub
from .registration import ABANDONED, FINISHED, LOST, QUEUED, RUNNING, InFlight, Registration
from .settings import WorkerSettings


class _Backoff:
    """Retry pacing for a loop that lost Redis: reports the outage once, sleeps 50 ms
    doubling to 1 s, and stops sleeping when told to stop."""

    def __init__(self, hub: EventHub, stop: threading.Event) -> None:
        self.hub = hub
        self.stop = stop
        self.pause = 0.05
        self.reported = False

    def failed(self, exc: BaseException) -> None:
        if not self.reported:
            self.hub.emit("error", exc)
            self.reported = True
        self.stop.wait(self.pause)
        self.pause = min(self.pause * 2, 1.0)

    def ok(self) -> None:
        self.pause = 0.05
        self.reported = False


class ThreadedRuntime:
    """Runs the handlers of one sync queue; created by the queue on its first ``process()``."""

    def __init__(self, queue: Any, hub: EventHub, settings: WorkerSettings) -> None:
        self.queue = queue
        self.keys = queue.keys
        self.execute: Callable[[list[Any]], list[Any]] = queue.driver.execute
        self.hub = hub
        self.settings = settings
        self.registrations: list[Registration] = []
        self.inflight: dict[int, InFlight] = {}
        self.results: deque[core.Result] = deque()
        self.results_ready = threading.Event()
        self.flushed = threading.Condition()
        self.flushing = False
        self.wake = threading.Event()
        self.stopped = threading.Event()
        self.upkeep_interval_ms: int | None = None
        self._poke_upkeep = False
        self._threads_started = False
        self._epoch = 0  # background threads of an earlier start exit when this changes
        self._lock = threading.Lock()

    # --- starting -------------------------------------------------------------------------
    def add(self, reg: Registration) -> None:
        reg.ctx = WorkerContext(self, reg)
        reg.cond = threading.Condition()
        reg.jobs = SimpleQueue()
        with self._lock:
            self.registrations.append(reg)
            if self.upkeep_interval_ms is None:
                self.upkeep_interval_ms = self.settings.upkeep_interval_ms
        self._ensure_threads()
        for _ in range(reg.concurrency):
            self._spawn_slot(reg)
        self.resume(reg)

    def enable_upkeep(self, interval_ms: int) -> None:
        """watch_stuck_jobs: promotion and recovery in this process, workers or not."""
        with self._lock:
            self.upkeep_interval_ms = interval_ms
        self._ensure_threads()
        self.wake.set()

    def _ensure_threads(self) -> None:
        with self._lock:
            if self._threads_started:
                return
            self._threads_started = True
            self._epoch += 1
            self.stopped.clear()
        for target, name in ((self._flush_loop, "flush"), (self._housekeeping_loop, "upkeep")):
            threading.Thread(target=target, args=(self._epoch,), name=f"kueatomic-{name}",
                             daemon=True).start()

    def _spawn_slot(self, reg: Registration) -> None:
        threading.Thread(target=self._slot_loop, args=(reg,), daemon=True,
                         name=f"kueatomic-{reg.job_type}-slot").start()

    def resume(self, reg: Registration) -> None:
        with reg.cond:
            if reg.running or reg.closed:
                return
            reg.running = True
            reg.generation += 1
            generation = reg.generation
        threading.Thread(target=self._claim_loop, args=(reg, generation), daemon=True,
                         name=f"kueatomic-{reg.job_type}-claim").start()

    # --- claiming -------------------------------------------------------------------------
    def _claim_loop(self, reg: Registration, generation: int) -> None:
        cond: threading.Condition = reg.cond
        retry = _Backoff(self.hub, self.stopped)
        keys, execute = self.keys, self.execute
        block = core.block_ms(self.queue.client, self.settings.block_timeout_ms)

        def current() -> bool:
            return reg.running and reg.generation == generation

        def give_back(count: int) -> None:
            with cond:
                reg.free += count
                cond.notify_all()

        while True:
            with cond:
                while current() and reg.free <= 0:
                    cond.wait()
                if not current():
                    return
                # Reserve the slots for the claim in flight, so a stop waits for its jobs.
                want = min(reg.free, reg.batch)
                reg.free -= want
            token = calls.claim_token()
            try:
                call = calls.activate(keys, reg.job_type, want, reg.worker_id, token, reg.lease_ms)
                claimed = calls.parse_claimed(unwrap(execute([call])[0]), reg.worker_id, token)
            except KueError as exc:  # RedisUnavailable included
                give_back(want)
                if not current():
                    return  # stopped meanwhile
                retry.failed(exc)
                continue
            retry.ok()
            if len(claimed) < want:
                give_back(want - len(claimed))
            if claimed:
                self._dispatch(reg, token, claimed)
                continue
            try:
                execute([calls.wait_for_token(keys, (reg.job_type,), block)])
            except KueError as exc:
                if not current():
                    return  # stopped meanwhile (close() cut the blocking connection)
                retry.failed(exc)

    def _dispatch(self, reg: Registration, token: str,
                  claimed: list[tuple[int, dict[str, str]]]) -> None:
        """Hand claimed jobs (their slots already reserved) to the slot threads."""
        queue = self.queue
        make = queue.job_class.from_hash
        inflight = self.inflight
        put = reg.jobs.put
        for job_id, fields in claimed:
            job = make(queue, job_id, fields)
            record = InFlight(job_id, job, token, reg, fields)
            inflight[job_id] = record
            put(record)

    # --- running handlers -----------------------------------------------------------------
    def _slot_loop(self, reg: Registration) -> None:
        jobs: SimpleQueue[InFlight | None] = reg.jobs
        cond: threading.Condition = reg.cond
        handler, ctx, wants_ctx = reg.handler, reg.ctx, reg.wants_ctx
        results, ready = self.results, self.results_ready
        encode = calls.encode_result
        clock = time.perf_counter
        me = threading.current_thread()
        me.kueatomic_runtime = self  # type: ignore[attr-defined]  # lets shutdown() see us
        while True:
            record = jobs.get()
            if record is None:
                return
            with cond:
                if record.stage != QUEUED:  # lost (slot still held) or shut down (freed)
                    if record.stage == LOST:
                        reg.free += 1
                        cond.notify()
                    continue
                record.stage = RUNNING
                record.thread = me
            start = clock()
            payload: Any
            try:
                value = handler(record.job, ctx) if wants_ctx else handler(record.job)
                ok, payload = True, encode(value)
            except Exception as exc:  # noqa: BLE001 - any handler error fails the attempt
                ok, payload = False, calls.describe_failure(exc)
            except SystemExit as exc:
                ok, payload = False, calls.describe_failure(exc)
            duration = int((clock() - start) * 1000)
            with cond:
                if record.stage == ABANDONED:
                    return  # a replacement thread owns this slot now
                record.stage = FINISHED
                reg.free += 1
                cond.notify()
            results.append((record, ok, payload, duration))
            if not ready.is_set():
                ready.set()

    # --- flushing results -----------------------------------------------------------------
    def _flush_loop(self, epoch: int) -> None:
        retry = _Backoff(self.hub, self.stopped)
        limit = self.settings.flush_batch
        while True:
            self.results_ready.wait(0.5)
            self.results_ready.clear()
            if not self.results:
                if self.stopped.is_set() or epoch != self._epoch:
                    return
                continue
            batch: list[core.Result] = []
            with self.flushed:
                self.flushing = True
            try:
                while self.results and len(batch) < 2 * limit:
                    batch.append(self.results.popleft())
                self._flush(batch)
                retry.ok()
            except RedisUnavailable as exc:
                self.results.extendleft(reversed(batch))
                retry.failed(exc)
            finally:
                with self.flushed:
                    self.flushing = False
                    self.flushed.notify_all()
            if self.results:
                self.results_ready.set()

    def _flush(self, batch: list[core.Result]) -> None:
        requests, ordered = core.flush_requests(self.keys, self.settings.flush_batch, batch, self.hub)
        replies = self.execute(list(requests))
        if core.flush_outcomes(requests, replies, ordered, self.hub, self.inflight):
            self._poke_upkeep = True
            self.wake.set()

    def _wait_flushed(self, timeout: float) -> bool:
        self.results_ready.set()
        with self.flushed:
            return self.flushed.wait_for(lambda: not self.results and not self.flushing, timeout)

    # --- housekeeping: leases, promotion, recovery -----------------------------------------
    def _housekeeping_loop(self, epoch: int) -> None:
        retry = _Backoff(self.hub, self.stopped)
        clock = time.monotonic
        next_renew = clock() + self._renew_every()
        next_upkeep = clock()
        while not self.stopped.is_set() and epoch == self._epoch:
            now = clock()
            try:
                ttl_check = core.next_ttl_check(list(self.inflight.values()))
                if now >= next_renew or (ttl_check is not None and now >= ttl_check):
                    self._renew()
                    core.push_ttl_checks(list(self.inflight.values()), now)
                    next_renew = now + self._renew_every()
                interval = self.upkeep_interval_ms
                if interval is not None and (now >= next_upkeep or self._poke_upkeep):
                    self._poke_upkeep = False
                    next_upkeep = now + self._upkeep(interval)
                retry.ok()
            except RedisUnavailable as exc:
                retry.failed(exc)
                continue
            except KueError as exc:
                retry.failed(exc)
                continue
            until = next_renew if self.upkeep_interval_ms is None else min(next_renew, next_upkeep)
            ttl_check = core.next_ttl_check(list(self.inflight.values()))
            if ttl_check is not None:
                until = min(until, ttl_check)
            self.wake.wait(max(0.0, until - clock()))
            self.wake.clear()

    def _renew_every(self) -> float:
        return core.renew_every((r.lease_ms for r in self.registrations), self.settings.lease_ms)

    def _renew(self) -> None:
        requests, groups = core.renew_requests(self.keys, list(self.inflight.values()))
        if requests:
            for record in core.lost_records(groups, self.execute(list(requests))):
                self._lost(record)

    def _lost(self, record: InFlight) -> None:
        """The job is no longer ours: free its slot now (a hung handler keeps its thread, which
        exits when the handler returns) and never write its result."""
        reg = record.reg
        cond: threading.Condition = reg.cond
        with cond:
            stage = record.stage
            if stage == RUNNING:
                record.stage = ABANDONED
                reg.free += 1
                cond.notify()
            elif stage == QUEUED:
                record.stage = LOST
        if stage == RUNNING and not reg.closed:
            self._spawn_slot(reg)
        if stage in (RUNNING, QUEUED):
            if self.inflight.get(record.id) is record:
                del self.inflight[record.id]
            self.hub.emit("error", core.lost_message(record, stage == RUNNING))

    def _upkeep(self, interval_ms: int) -> float:
        """Promote due delayed jobs and recover stalled/ttl-exceeded ones; returns seconds
        until the next pass is useful."""
        replies = self.execute(list(core.upkeep_requests(self.keys, self.settings)))
        return core.upkeep_wait(replies, self.settings, interval_ms)

    # --- stopping -------------------------------------------------------------------------
    def pause(self, reg: Registration, timeout: float | None, final: bool = False) -> None:
        """Stop claiming for ``reg`` now; in the background, give running jobs ``timeout`` ms
        and fail the rest with "Shutdown"."""
        paused = self._stop_claiming([reg], final)
        threading.Thread(target=self._drain, args=(paused, timeout, final), daemon=True,
                         name=f"kueatomic-{reg.job_type}-pause").start()

    def stop(self, timeout: float | None, job_type: str | None = None) -> None:
        """Graceful stop (blocking): no new claims, running jobs get ``timeout`` ms (None =
        as long as they take), then fail with "Shutdown"; results are flushed. Without a
        type everything stops, upkeep included."""
        regs = [r for r in self.registrations if job_type in (None, r.job_type) and not r.closed]
        self._drain(self._stop_claiming(regs, True), timeout, True)
        if job_type is None:
            self.stopped.set()
            self.wake.set()
            self.results_ready.set()
            with self._lock:
                self._threads_started = False
                self.upkeep_interval_ms = None

    def abort(self) -> None:
        """Fail every running or waiting job with "Shutdown" now (a second signal)."""
        self._drain({r: r.generation for r in self.registrations}, 0, False)

    def _stop_claiming(self, regs: Iterable[Registration], final: bool) -> dict[Registration, int]:
        """Stop the claim loops; returns each registration's generation at that moment."""
        paused = {}
        for reg in regs:
            cond: threading.Condition = reg.cond
            with cond:
                reg.running = False
                if final:
                    reg.closed = True
                paused[reg] = reg.generation
                cond.notify_all()
        return paused

    def _drain(self, paused: dict[Registration, int], timeout: float | None, final: bool) -> None:
        """Wait for the paused registrations' jobs, then fail the leftovers with "Shutdown".
        A registration resumed meanwhile is left alone."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout) / 1000

        def settled(reg: Registration) -> Callable[[], bool]:
            return lambda: reg.free >= reg.concurrency or reg.generation != paused[reg]

        for reg in paused:
            cond: threading.Condition = reg.cond
            with cond:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                cond.wait_for(settled(reg), remaining)
        failure = calls.plain_failure("Shutdown")
        for record in list(self.inflight.values()):
            reg = record.reg
            if reg not in paused or reg.generation != paused[reg]:
                continue
            cond = reg.cond
            with cond:
                stage = record.stage
                if stage not in (QUEUED, RUNNING):
                    continue
                record.stage = ABANDONED
                reg.free += 1
                cond.notify()
            if stage == RUNNING and not final and not reg.closed:
                self._spawn_slot(reg)  # the hung handler keeps its thread
            self.results.append((record, False, failure, 0))
        if final:
            for reg in paused:
                for _ in range(reg.concurrency):
                    reg.jobs.put(None)
        self._wait_flushed(10.0)
