"""``kueatomic.aio.Worker``: the asyncio runtime, the threaded one's design on one event loop.

Tasks: one claim loop per ``process()`` call, one task per running job, one flusher and one
housekeeper, each driving a loop of ``loops.py``. ``async def`` handlers are awaited on the
loop; sync handlers run in a thread pool of ``concurrency`` threads with a job of a sync
``SyncQueue`` made from the same connection description (their ``job.log()`` and
``job.progress()`` are then ordinary blocking calls). A job given up while running (lease
lost, released at shutdown) has its task cancelled; a sync handler's thread cannot be
stopped, so its registration moves on to a new thread pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..async_queue import AsyncDriver
from ..connection import ASYNC
from ..events import call_on
from ..routing import AsyncRoutedDriver, clients_of
from ..sync_queue import SyncQueue
from . import calls, loops
from .base import WorkerBase, log
from .context import RUNNING_JOB
from .core import ENDED, STICKY, STOP, WorkerCore
from .registration import ABANDONED, InFlight, Registration

_background: set[asyncio.Task[Any]] = set()


class Worker(WorkerBase):
    """Runs handlers for a ``kueatomic.aio.Queue`` on the running event loop.

    ``w = Worker(queue)``; ``w.process("email", handler, concurrency=20)`` (or as a
    decorator); ``await w.start()``; ``await w.shutdown(timeout=10000)``; ``await w.run()``;
    ``await w.join()``. It checks the queue's data format as ``kueatomic.Worker`` does."""

    def __init__(self, queue: Any, **options: Any) -> None:
        super().__init__(queue, **options)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[Any, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sync_twin: SyncQueue | None = None
        self.driver: AsyncDriver | AsyncRoutedDriver | None = None
        self._loops: set[asyncio.Task[Any]] = set()

    # --- starting -------------------------------------------------------------------------
    async def start(self) -> Worker:
        """Start every registration (and upkeep) on the running loop; idempotent. Raises the
        error of a running worker that refused to run, as ``kueatomic.Worker.start``."""
        if self.started and self.loop is asyncio.get_running_loop():
            self._raise_error()
        await self._start()
        return self

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.started and self.loop is not loop:
            await self._stop_all()  # a new loop (asyncio.run again): start over on it
        if not self.started:
            self._start_core(loop)
        for reg in [r for r in self.registrations if not r.closed and not r.started]:
            self._start_registration(reg)

    def _start_core(self, loop: asyncio.AbstractEventLoop) -> None:
        self.started = True
        self.loop = loop
        self._events = {}
        self.core = WorkerCore(self.keys, self.settings, self.events.emit, signal=self._signal,
                               upkeep=self.upkeep, check_format=True, observer=self.observer,
                               heartbeat=self._heartbeat())
        if self.upkeep:
            self.core.enable_upkeep(self.settings.upkeep_interval_ms)
        self.driver = self.queue.new_driver(ASYNC, AsyncDriver, AsyncRoutedDriver,
                                            socket_timeout=self.settings.reply_timeout_ms / 1000)
        self._spawn(self._drive("flush", loops.flush_loop, (self.core,)), self._loops)
        self._spawn(self._drive("upkeep", loops.housekeeping_loop, (self.core,)), self._loops)
        self._listen_for_cancels(self._on_loop)  # its signals are the loop's asyncio.Events
        self._log_start()

    def _registered(self, reg: Registration) -> None:
        if not reg.is_async and self._sync_twin is None:
            self._sync_twin = self.queue.like(SyncQueue)
        if self.started:
            self._on_loop(self._start_registration, reg)

    def start_soon(self) -> bool:
        """Kue's shorthand: start on the running loop (False when none runs)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        task = loop.create_task(self._start())  # a refusal shows in the log, join(), run()
        _background.add(task)
        task.add_done_callback(_background.discard)
        return True

    def _start_registration(self, reg: Registration) -> None:
        core = self.core
        assert core is not None
        if reg.started:
            return
        reg.started = True
        if not reg.is_async and reg.slots is None:  # its own threads: the default pool is small
            reg.slots = self._pool(reg)
        core.add(reg)
        self._resume_here(reg)

    @staticmethod
    def _pool(reg: Registration) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(reg.concurrency, f"kueatomic-{reg.job_type}")

    def watch_stuck_jobs(self, interval: int = 1000) -> None:
        """As ``kueatomic.Worker.watch_stuck_jobs``; call it on a running event loop."""
        self.upkeep = True
        if not self.started:
            self._start_core(asyncio.get_running_loop())
        assert self.core is not None
        self.core.upkeep_allowed = True
        self.core.enable_upkeep(int(interval))

    def resume(self, reg: Registration) -> None:
        self._on_loop(self._resume_here, reg)

    def _resume_here(self, reg: Registration) -> None:
        core = self.core
        generation = core.resume(reg) if core is not None else None
        if core is None or generation is None:
            return
        owner = self.queue if reg.is_async else self._sync_twin
        job = owner.job_class.from_hash  # type: ignore[union-attr]

        def make_job(reg: Registration, job_id: int, fields: dict[str, str]) -> Any:
            return calls.load_job(job, owner, job_id, fields)

        self._spawn(self._drive(f"claim {reg.job_type}", loops.claim_loop,
                                (core, reg, generation, make_job, self.block_ms)), self._loops)

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """ctx.pause()/resume() may come from a sync handler's thread."""
        if self.loop is not None:
            call_on(self.loop, fn, *args)

    # --- carrying out the loops' actions --------------------------------------------------
    def _spawn(self, coro: Any, group: set[asyncio.Task[Any]] | None = None) -> asyncio.Task[Any]:
        """A task kept referenced until done: in ``group`` (the loops) or the handlers'."""
        assert self.loop is not None
        tasks = self._tasks if group is None else group
        task = self.loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def _drive(self, name: str, loop: Callable[..., loops.Loop], args: tuple[Any, ...]) -> None:
        """As the threaded ``_drive``: a crashed loop is logged, backed off and restarted."""
        core = self.core
        assert core is not None
        while True:
            try:
                await self._carry_out(loop(*args))
                return
            except Exception as exc:  # noqa: BLE001 - the loop must outlive every fault
                if core.stopped:
                    return
                await self._wait(STOP, core.loop_failed(name, exc))

    async def _carry_out(self, gen: loops.Loop) -> None:
        driver = self.driver
        assert driver is not None
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                action = gen.throw(error) if error is not None else gen.send(value)
            except StopIteration:
                return
            value = error = None
            kind = type(action)
            if kind is loops.Send:
                try:
                    value = await driver.execute(action.batch)  # type: ignore[union-attr]
                except Exception as exc:  # noqa: BLE001 - thrown into the loop, which decides
                    error = exc
            elif kind is loops.Wait:
                await self._wait(action.topic, action.timeout)  # type: ignore[union-attr]
            elif kind is loops.Run:
                for record in action.records:  # type: ignore[union-attr]
                    record.handle = self._spawn(self._run(record))
            else:
                self._abandon(action.records)  # type: ignore[union-attr]

    def _abandon(self, records: list[InFlight]) -> None:
        """Running jobs were given up: an ``async def`` handler's task is cancelled; a sync
        handler's thread cannot be, so its registration gets a new pool (the old one is left
        to finish, not waited for) and its next job does not queue behind the hung one."""
        replaced: set[Registration] = set()
        for record in records:
            reg = record.reg
            if reg.is_async:
                if isinstance(record.handle, asyncio.Task):
                    record.handle.cancel()
            elif isinstance(reg.slots, ThreadPoolExecutor) and reg not in replaced:
                replaced.add(reg)
                old, reg.slots = reg.slots, self._pool(reg)
                old.shutdown(wait=False)

    def _signal(self, topic: Any) -> None:
        event = self._events.get(topic)
        if event is None:
            event = self._events.setdefault(topic, asyncio.Event())
        event.set()

    async def _wait(self, topic: Any, timeout: float) -> None:
        event = self._events.get(topic)
        if event is None:
            event = self._events.setdefault(topic, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), max(0.0, timeout))
        except TimeoutError:
            pass
        if topic not in STICKY:
            event.clear()

    # --- running handlers -----------------------------------------------------------------
    async def _run(self, record: InFlight) -> None:
        core = self.core
        assert core is not None
        if not core.start(record):
            return
        reg = record.reg
        args = (record.job, reg.ctx) if reg.wants_ctx else (record.job,)
        if reg.wants_ctx:
            RUNNING_JOB.set(record)  # ctx.cancelled's job; this task's context, copied below
        start = time.perf_counter()
        payload: Any
        try:
            if reg.is_async:
                value = await reg.handler(*args)
            else:
                loop = asyncio.get_running_loop()
                if reg.wants_ctx:  # in this task's context, where ctx.cancelled finds its job
                    run = contextvars.copy_context().run
                    value = await loop.run_in_executor(reg.slots, run, reg.handler, *args)
                else:
                    value = await loop.run_in_executor(reg.slots, reg.handler, *args)
            ok, payload = True, calls.encode_result(value)
        except asyncio.CancelledError:
            if record.stage == ABANDONED:
                return  # given up (lease lost, released): the cancel was ours
            ok, payload = False, calls.describe_failure(asyncio.CancelledError("cancelled"))
        except BaseException as exc:  # noqa: BLE001 - SystemExit too: fails the attempt
            ok, payload = False, calls.describe_failure(exc)
        try:
            core.finished(record, ok, payload, int((time.perf_counter() - start) * 1000))
        except Exception as exc:  # noqa: BLE001 - logged, never a lost task exception
            core.loop_failed(f"slot {reg.job_type}", exc)

    # --- stopping -------------------------------------------------------------------------
    def pause(self, reg: Registration, timeout: float | None, final: bool = False) -> None:
        def begin() -> None:
            if self.core is not None:
                self._spawn(self._carry_out(loops.stop_loop(self.core, [reg], timeout, False,
                                                            final)))
        self._on_loop(begin)

    def runs_current_task(self) -> bool:
        """Whether the calling task is one of this worker's handlers."""
        task = asyncio.current_task()
        return task is not None and task in self._tasks

    async def shutdown(self, timeout: float | None = None, job_type: str | None = None, *,
                       fail_running: bool = False) -> None:
        """As ``kueatomic.Worker.shutdown``, awaited (from a handler: in the background)."""
        if self.runs_current_task():
            task = asyncio.get_running_loop().create_task(
                self.shutdown(timeout, job_type, fail_running=fail_running))
            _background.add(task)  # keep a reference until it is done
            task.add_done_callback(_background.discard)
            return
        core = self.core
        regs = self._matching(job_type)
        if core is not None and self.loop is asyncio.get_running_loop():
            await self._carry_out(loops.stop_loop(core, regs, timeout, fail_running, True))
        for reg in regs:
            if isinstance(reg.slots, ThreadPoolExecutor):
                reg.slots.shutdown(wait=False)  # a hung sync handler keeps its thread
                reg.slots = None
        if job_type is None:
            await self._stop_all()

    async def abort(self) -> None:
        """Release every running job now (a second SIGINT/SIGTERM)."""
        if self.core is not None:
            await self._carry_out(loops.stop_loop(self.core, list(self.registrations), 0, False,
                                                  False))

    async def _stop_all(self) -> None:
        core = self.core
        if not self.started or core is None:
            return
        self.started = False
        core.stop()
        current = asyncio.current_task()
        pending = [t for t in self._loops if t is not current]
        if pending:  # claim loops end within a block timeout, the others at once
            _, still = await asyncio.wait(pending, timeout=5)
            for task in still:
                task.cancel()
        for reg in self.registrations:
            reg.started = False
            reg.free = reg.concurrency
        # Stopped registrations are done, as after Kue's shutdown; process() adds new ones.
        self.registrations = [r for r in self.registrations if not r.closed]
        await asyncio.to_thread(self._stop_listening_for_cancels)  # joins its thread
        if self.driver is not None:
            for client in clients_of(self.driver):
                await client.aclose()
        if self._sync_twin is not None:
            self._sync_twin.close()
            self._sync_twin = None
        log.info("worker stopped (prefix %s)", self.queue.prefix)

    async def join(self, timeout: float | None = None) -> bool:
        """As ``kueatomic.Worker.join``: wait until stopped (``timeout`` ms), raising the
        error that made the worker refuse to run."""
        ended = True
        if self.core is not None and self.started:
            event = self._events.setdefault(ENDED, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(),
                                       None if timeout is None else max(0.0, timeout) / 1000)
            except TimeoutError:
                ended = False
        self._raise_error()
        return ended

    async def run(self, shutdown_timeout: float | None = 10000) -> None:
        """Start and serve until SIGINT/SIGTERM (graceful), a second signal releasing running
        jobs at once; a worker that refuses to run is shut down and its error raised."""
        from .signals import serve_until_signalled

        await self._start()  # an error is raised below, after the shutdown
        await serve_until_signalled(lambda: self.shutdown(shutdown_timeout), self.abort,
                                    lambda: self.error is not None)
        self._raise_error()

    async def close(self) -> None:
        if self.started:
            await self.shutdown(timeout=0)
