"""The asyncio worker runtime: the threaded runtime's design on one event loop.

Tasks, per queue: one claim loop per ``process()`` call, one task per running job, one
flusher and one housekeeper. ``async def`` handlers are awaited on the loop; sync handlers
run in a thread pool of ``concurrency`` threads with a job of a sync twin queue (their ``job.log()`` and
``job.progress()`` are then ordinary blocking calls). A job whose lease is lost has its task
cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import KueError, RedisUnavailable
from ..ops import unwrap
from . import calls, core
from .context import WorkerContext
from .events import EventHub
from .registration import ABANDONED, FINISHED, LOST, QUEUED, RUNNING, InFlight, Registration
from .settings import WorkerSettings


class _Backoff:
    def __init__(self, hub: EventHub, stopped: asyncio.Event) -> None:
        self.hub = hub
        self.stopped = stopped
        self.pause = 0.05
        self.reported = False

    async def failed(self, exc: BaseException) -> None:
        if not self.reported:
            self.hub.emit("error", exc)
            self.reported = True
        try:
            await asyncio.wait_for(self.stopped.wait(), self.pause)
        except TimeoutError:
            pass
        self.pause = min(self.pause * 2, 1.0)

    def ok(self) -> None:
        self.pause = 0.05
        self.reported = False


class AsyncRuntime:
    """Runs the handlers of one asyncio queue on the loop it was created in. Every method
    must be called on that loop (``ctx.pause()``/``resume()`` from other threads are
    forwarded to it)."""

    def __init__(self, queue: Any, hub: EventHub, settings: WorkerSettings,
                 sync_twin: Any = None, upkeep: bool = True) -> None:
        self.queue = queue
        self.keys = queue.keys
        self.driver = queue.driver
        self.hub = hub
        self.settings = settings
        self.sync_twin = sync_twin
        self.loop = asyncio.get_running_loop()
        self.registrations: list[Registration] = []
        self.inflight: dict[int, InFlight] = {}
        self.results: deque[core.Result] = deque()
        self.results_ready = asyncio.Event()
        self.wake = asyncio.Event()
        self.stopped = asyncio.Event()
        self.upkeep_interval_ms: int | None = settings.upkeep_interval_ms if upkeep else None
        self._upkeep_allowed = upkeep
        self._poke_upkeep = False
        self.flushing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- starting -------------------------------------------------------------------------
    def add(self, reg: Registration) -> None:
        reg.ctx = WorkerContext(self, reg)
        reg.slot_freed = asyncio.Event()
        if not reg.is_async:  # its own threads: the loop's default pool may be smaller
            reg.executor = ThreadPoolExecutor(reg.concurrency, f"kueatomic-{reg.job_type}")
        self.registrations.append(reg)
        self._ensure_tasks()
        self._resume_here(reg)

    def enable_upkeep(self, interval_ms: int) -> None:
        self.upkeep_interval_ms = interval_ms
        self._ensure_tasks()
        self.wake.set()

    def _ensure_tasks(self) -> None:
        if self._started:
            return
        self._started = True
        self.stopped.clear()
        self._spawn(self._flush_loop())
        self._spawn(self._housekeeping_loop())

    def resume(self, reg: Registration) -> None:
        self._on_loop(self._resume_here, reg)

    def _resume_here(self, reg: Registration) -> None:
        if reg.running or reg.closed:
            return
        reg.running = True
        reg.generation += 1
        self._spawn(self._claim_loop(reg, reg.generation))

    def _on_loop(self, fn: Any, *args: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    # --- claiming -------------------------------------------------------------------------
    async def _claim_loop(self, reg: Registration, generation: int) -> None:
        freed: asyncio.Event = reg.slot_freed
        retry = _Backoff(self.hub, self.stopped)
        keys, driver = self.keys, self.driver
        block = core.block_ms(self.queue.client, self.settings.block_timeout_ms)

        def current() -> bool:
            return reg.running and reg.generation == generation

        while True:
            while current() and reg.free <= 0:
                freed.clear()
                await freed.wait()
            if not current():
                return
            # Reserve the slots for the claim in flight, so a stop waits for its jobs.
            want = min(reg.free, reg.batch)
            reg.free -= want
            token = calls.claim_token()
            try:
                call = calls.activate(keys, reg.job_type, want, reg.worker_id, token, reg.lease_ms)
                claimed = calls.parse_claimed(unwrap((await driver.execute([call]))[0]),
                                               reg.worker_id, token)
            except KueError as exc:  # RedisUnavailable included
                self._release(reg, want)
                if not current():
                    return
                await retry.failed(exc)
                continue
            except asyncio.CancelledError:
                self._release(reg, want)
                raise
            retry.ok()
            if len(claimed) < want:
                self._release(reg, want - len(claimed))
            if claimed:
                self._dispatch(reg, token, claimed)
                continue
            try:
                await driver.execute([calls.wait_for_token(keys, (reg.job_type,), block)])
            except KueError as exc:
                if not current():
                    return
                await retry.failed(exc)

    def _dispatch(self, reg: Registration, token: str,
                  claimed: list[tuple[int, dict[str, str]]]) -> None:
        owner = self.queue if reg.is_async else self.sync_twin
        make = owner.job_class.from_hash
        for job_id, fields in claimed:
            job = make(owner, job_id, fields)
            record = InFlight(job_id, job, token, reg, fields)
            self.inflight[job_id] = record
            record.task = self._spawn(self._run(record))

    # --- running handlers -----------------------------------------------------------------
    async def _run(self, record: InFlight) -> None:
        reg = record.reg
        if record.stage != QUEUED:
            if record.stage == LOST:
                self._release(reg)
            return
        record.stage = RUNNING
        start = time.perf_counter()
        payload: Any
        try:
            if reg.is_async:
                args = (record.job, reg.ctx) if reg.wants_ctx else (record.job,)
                value = await reg.handler(*args)
            else:
                args = (record.job, reg.ctx) if reg.wants_ctx else (record.job,)
                value = await self.loop.run_in_executor(reg.executor, reg.handler, *args)
            ok, payload = True, calls.encode_result(value)
        except asyncio.CancelledError:
            if record.stage == ABANDONED:
                return
            raise
        except Exception as exc:  # noqa: BLE001 - any handler error fails the attempt
            ok, payload = False, calls.describe_failure(exc)
        if record.stage == ABANDONED:
            return
        record.stage = FINISHED
        self._release(reg)
        self.results.append((record, ok, payload, int((time.perf_counter() - start) * 1000)))
        self.results_ready.set()

    def _release(self, reg: Registration, count: int = 1) -> None:
        reg.free += count
        reg.slot_freed.set()

    # --- flushing results -----------------------------------------------------------------
    async def _flush_loop(self) -> None:
        retry = _Backoff(self.hub, self.stopped)
        limit = self.settings.flush_batch
        while True:
            await self.results_ready.wait()
            self.results_ready.clear()
            if not self.results:
                if self.stopped.is_set():
                    return
                continue
            batch: list[core.Result] = []
            while self.results and len(batch) < 2 * limit:
                batch.append(self.results.popleft())
            self.flushing = True
            try:
                requests, ordered = core.flush_requests(self.keys, limit, batch, self.hub)
                replies = await self.driver.execute(list(requests))
                if core.flush_outcomes(requests, replies, ordered, self.hub, self.inflight):
                    self._poke_upkeep = True
                    self.wake.set()
                retry.ok()
            except RedisUnavailable as exc:
                self.results.extendleft(reversed(batch))
                await retry.failed(exc)
            finally:
                self.flushing = False
            if self.results or self.stopped.is_set():
                self.results_ready.set()

    async def _wait_flushed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self.results_ready.set()
        while (self.results or self.flushing) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    # --- housekeeping ---------------------------------------------------------------------
    async def _housekeeping_loop(self) -> None:
        retry = _Backoff(self.hub, self.stopped)
        clock = time.monotonic
        next_renew = clock() + self._renew_every()
        next_upkeep = clock()
        while not self.stopped.is_set():
            now = clock()
            try:
                ttl_check = core.next_ttl_check(list(self.inflight.values()))
                if now >= next_renew or (ttl_check is not None and now >= ttl_check):
                    await self._renew()
                    core.push_ttl_checks(list(self.inflight.values()), now)
                    next_renew = now + self._renew_every()
                interval = self.upkeep_interval_ms
                if interval is not None and (now >= next_upkeep or self._poke_upkeep):
                    self._poke_upkeep = False
                    replies = await self.driver.execute(core.upkeep_requests(self.keys, self.settings))
                    next_upkeep = now + core.upkeep_wait(replies, self.settings, interval)
                retry.ok()
            except (RedisUnavailable, KueError) as exc:
                await retry.failed(exc)
                continue
            until = next_renew if self.upkeep_interval_ms is None else min(next_renew, next_upkeep)
            ttl_check = core.next_ttl_check(list(self.inflight.values()))
            if ttl_check is not None:
                until = min(until, ttl_check)
            try:
                await asyncio.wait_for(self.wake.wait(), max(0.0, until - clock()))
            except TimeoutError:
                pass
            self.wake.clear()

    def _renew_every(self) -> float:
        return core.renew_every((r.lease_ms for r in self.registrations), self.settings.lease_ms)

    async def _renew(self) -> None:
        requests, groups = core.renew_requests(self.keys, list(self.inflight.values()))
        if requests:
            replies = await self.driver.execute(list(requests))
            for record in core.lost_records(groups, replies):
                self._lost(record)

    def _lost(self, record: InFlight) -> None:
        stage = record.stage
        if stage == RUNNING:
            record.stage = ABANDONED
            self._release(record.reg)
            if record.task is not None:
                record.task.cancel()
        elif stage == QUEUED:
            record.stage = LOST
        if stage in (RUNNING, QUEUED):
            if self.inflight.get(record.id) is record:
                del self.inflight[record.id]
            self.hub.emit("error", core.lost_message(record, stage == RUNNING))

    # --- stopping -------------------------------------------------------------------------
    def pause(self, reg: Registration, timeout: float | None, final: bool = False) -> None:
        def start() -> None:
            paused = self._stop_claiming([reg], final)
            self._spawn(self._drain(paused, timeout))
        self._on_loop(start)

    async def stop(self, timeout: float | None, job_type: str | None = None) -> None:
        regs = [r for r in self.registrations if job_type in (None, r.job_type) and not r.closed]
        await self._drain(self._stop_claiming(regs, True), timeout)
        for reg in regs:
            if reg.executor is not None:
                reg.executor.shutdown(wait=False)  # a hung sync handler keeps its thread
        if job_type is None:
            self.stopped.set()
            self.wake.set()
            self.results_ready.set()
            self._started = False
            self.upkeep_interval_ms = self.settings.upkeep_interval_ms if self._upkeep_allowed else None
            for task in list(self._tasks):
                task.cancel()

    def runs_current_task(self) -> bool:
        """Whether the calling task is one of this runtime's handlers."""
        task = asyncio.current_task()
        return any(record.task is task for record in list(self.inflight.values()))

    async def abort(self) -> None:
        """Fail every running job with "Shutdown" now (a second SIGINT/SIGTERM)."""
        await self._drain({r: r.generation for r in self.registrations}, 0)

    def _stop_claiming(self, regs: list[Registration], final: bool) -> dict[Registration, int]:
        paused = {}
        for reg in regs:
            reg.running = False
            if final:
                reg.closed = True
            paused[reg] = reg.generation
            reg.slot_freed.set()
        return paused

    async def _drain(self, paused: dict[Registration, int], timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout) / 1000

        def settled() -> bool:
            return all(r.free >= r.concurrency or r.generation != g for r, g in paused.items())

        while not settled() and (deadline is None or time.monotonic() < deadline):
            await asyncio.sleep(0.01)
        failure = calls.plain_failure("Shutdown")
        for record in list(self.inflight.values()):
            reg = record.reg
            if reg not in paused or reg.generation != paused[reg]:
                continue
            if record.stage in (QUEUED, RUNNING):
                stage = record.stage
                record.stage = ABANDONED
                self._release(reg)
                if stage == RUNNING and record.task is not None and reg.is_async:
                    record.task.cancel()
                self.results.append((record, False, failure, 0))
        self.results_ready.set()
        await self._wait_flushed(10.0)
