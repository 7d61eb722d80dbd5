"""``kueatomic.Worker``: the threaded runtime for a sync queue.

Threads: one claimer per ``process()`` call, ``concurrency`` slot threads per call running the
handler, one flusher, one housekeeper; each drives a loop of ``loops.py`` and carries out its
actions, under the core's lock for every decision. The worker has its own connections (made
from the queue's connection description, with a reply timeout), so the next claim overlaps
the current completions. ``async def`` handlers run on an ``aio.Worker`` on an event loop in
a background thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from queue import SimpleQueue
from typing import Any

from ..connection import SYNC
from ..driver import SyncDriver
from ..routing import SyncRoutedDriver, clients_of
from . import calls, control, loops
from .base import WorkerBase, log
from .context import RUNNING_JOB
from .core import ENDED, STICKY, STOP, WorkerCore
from .registration import InFlight, Registration


class Worker(WorkerBase):
    """Runs handlers for a sync ``kueatomic.Queue`` (or ``SyncQueue``) in threads.

    ``w = Worker(queue, lease_ms=5000)``; ``w.process("email", handler, concurrency=20)`` or
    ``@w.process("email", concurrency=20)``; ``w.start()``; ``w.shutdown(timeout=10000)``;
    ``w.run()`` blocks until SIGINT/SIGTERM. Kue's ``queue.process(...)`` is this, started.
    Before its first claim the worker checks the queue's data format: on a queue a newer
    kueatomic wrote it claims nothing, logs why and ``join()`` / ``run()`` raise
    ``IncompatibleFormat``."""

    def __init__(self, queue: Any, **options: Any) -> None:
        super().__init__(queue, **options)
        self._lock = threading.Lock()  # guards starting and stopping, not the core
        self._events: dict[Any, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self._slot_threads: dict[Registration, list[threading.Thread]] = {}
        self._bridge: _AsyncBridge | None = None
        self.driver: SyncDriver | SyncRoutedDriver | None = None

    # --- starting -------------------------------------------------------------------------
    def start(self) -> Worker:
        """Start every registration (and upkeep); idempotent. On a running worker that
        refused to run (see ``error``) it raises that error (until the worker is shut down);
        a refusal found after it returned is raised by ``join()`` and ``run()``."""
        if self.started:
            self._raise_error()
        self._start()
        return self

    def _start(self) -> None:
        with self._lock:
            if not self.started:
                self._start_core()
            pending = [r for r in self.registrations if not r.closed and not r.started]
        for reg in pending:
            self._start_registration(reg)

    def _start_core(self) -> None:
        self.started = True
        self._events = {}
        self.core = WorkerCore(self.keys, self.settings, self.events.emit, lock=threading.Lock(),
                               signal=self._signal, upkeep=self.upkeep, check_format=True,
                               observer=self.observer, heartbeat=self._heartbeat())
        if self.upkeep:
            self.core.enable_upkeep(self.settings.upkeep_interval_ms)
        self.driver = self.queue.new_driver(SYNC, SyncDriver, SyncRoutedDriver,
                                            socket_timeout=self.settings.reply_timeout_ms / 1000)
        self._threads = [self._thread("flush", loops.flush_loop, self.core),
                         self._thread("upkeep", loops.housekeeping_loop, self.core)]
        self._listen_for_cancels(lambda fn, *args: fn(*args))  # the core takes its own lock
        self._log_start()

    def _registered(self, reg: Registration) -> None:
        if self.started:
            self._start_registration(reg)

    def _start_registration(self, reg: Registration) -> None:
        if reg.is_async:  # the bridge's worker starts it (and marks it started)
            with self._lock:
                if self._bridge is None:
                    self._bridge = _AsyncBridge(self)
            self._bridge.add(reg)
            return
        with self._lock:
            if reg.started:
                return
            reg.started = True
        core = self.core
        assert core is not None
        reg.slots = SimpleQueue()
        core.add(reg)
        for _ in range(reg.concurrency):
            self._spawn_slot(reg)
        self.resume(reg)

    def watch_stuck_jobs(self, interval: int = 1000) -> None:
        """Run upkeep in this process every ``interval`` ms, handlers or not: promote due
        delayed jobs, recover expired leases and ttls, re-sync wake-up tokens (Kue's
        watchStuckJobs)."""
        self.upkeep = True
        self.start()
        assert self.core is not None
        self.core.upkeep_allowed = True
        self.core.enable_upkeep(int(interval))

    def resume(self, reg: Registration) -> None:
        if reg.is_async and self._bridge is not None:
            self._bridge.call(self._bridge.worker.resume, reg)
            return
        core = self.core
        generation = core.resume(reg) if core is not None else None
        if core is None or generation is None:
            return
        job, queue = self.queue.job_class.from_hash, self.queue

        def make_job(reg: Registration, job_id: int, fields: dict[str, str]) -> Any:
            return calls.load_job(job, queue, job_id, fields)

        self._thread(f"{reg.job_type}-claim", loops.claim_loop, core, reg, generation, make_job,
                     self.block_ms)

    # --- carrying out the loops' actions --------------------------------------------------
    def _thread(self, name: str, loop: Callable[..., loops.Loop], *args: Any) -> threading.Thread:
        thread = threading.Thread(target=self._drive, args=(name, loop, args), daemon=True,
                                  name=f"kueatomic-{name}")
        thread.start()
        return thread

    def _drive(self, name: str, loop: Callable[..., loops.Loop], args: tuple[Any, ...]) -> None:
        """Run a loop to its end; a crash of the loop itself is logged, backed off, and the
        loop started again, so no fault stops a worker thread."""
        core = self.core
        assert core is not None
        while True:
            try:
                self._carry_out(loop(*args))
                return
            except Exception as exc:  # noqa: BLE001 - the loop must outlive every fault
                if core.stopped:
                    return
                self._wait(STOP, core.loop_failed(name, exc))

    def _carry_out(self, gen: loops.Loop) -> None:
        execute = self.driver.execute if self.driver else None
        assert execute is not None
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
                    value = execute(action.batch)  # type: ignore[union-attr]
                except Exception as exc:  # noqa: BLE001 - thrown into the loop, which decides
                    error = exc
            elif kind is loops.Wait:
                self._wait(action.topic, action.timeout)  # type: ignore[union-attr]
            elif kind is loops.Run:
                put = action.records[0].reg.slots.put  # type: ignore[union-attr]
                for record in action.records:  # type: ignore[union-attr]
                    put(record)
            else:
                self._abandon(action.records)  # type: ignore[union-attr]

    def _signal(self, topic: Any) -> None:
        event = self._events.get(topic)
        if event is None:
            event = self._events.setdefault(topic, threading.Event())
        event.set()

    def _wait(self, topic: Any, timeout: float) -> None:
        event = self._events.get(topic)
        if event is None:
            event = self._events.setdefault(topic, threading.Event())
        event.wait(max(0.0, timeout))
        if topic not in STICKY:
            event.clear()

    # --- running handlers -----------------------------------------------------------------
    def _spawn_slot(self, reg: Registration) -> None:
        thread = threading.Thread(target=self._slot_loop, args=(reg,), daemon=True,
                                  name=f"kueatomic-{reg.job_type}-slot")
        alive = [t for t in self._slot_threads.get(reg, ()) if t.is_alive()]
        self._slot_threads[reg] = [*alive, thread]
        thread.start()

    def _slot_loop(self, reg: Registration) -> None:
        core = self.core
        assert core is not None
        jobs: SimpleQueue[InFlight | None] = reg.slots
        handler, ctx, wants_ctx = reg.handler, reg.ctx, reg.wants_ctx
        encode, clock = calls.encode_result, time.perf_counter
        me = threading.current_thread()
        me.kueatomic_worker = self  # type: ignore[attr-defined]  # lets shutdown() see us
        me.kueatomic_replaced = False  # type: ignore[attr-defined]
        while True:
            record = jobs.get()
            if record is None:
                return
            if not core.start(record):
                continue
            record.handle = me
            if wants_ctx:
                RUNNING_JOB.set(record)  # ctx.cancelled's job
            start = clock()
            payload: Any
            try:
                value = handler(record.job, ctx) if wants_ctx else handler(record.job)
                ok, payload = True, encode(value)
            except BaseException as exc:  # noqa: BLE001 - SystemExit too: fails the attempt
                ok, payload = False, calls.describe_failure(exc)
            try:
                core.finished(record, ok, payload, int((clock() - start) * 1000))
            except Exception as exc:  # noqa: BLE001 - a bug must not cost the slot its thread
                core.loop_failed(f"slot {reg.job_type}", exc)
            if me.kueatomic_replaced:  # type: ignore[attr-defined]
                return  # given up while running: a new thread took this slot

    def _abandon(self, records: list[InFlight]) -> None:
        """Running jobs were given up: their threads finish the handler and exit; a new
        thread takes each slot (a hung handler must not cost a slot), unless the registration
        is closed (a final stop: no job comes any more)."""
        for record in records:
            thread = record.handle
            if isinstance(thread, threading.Thread) and thread.is_alive():
                thread.kueatomic_replaced = True  # type: ignore[attr-defined]
                if not record.reg.closed:
                    self._spawn_slot(record.reg)

    # --- stopping -------------------------------------------------------------------------
    def pause(self, reg: Registration, timeout: float | None, final: bool = False) -> None:
        """Stop claiming for ``reg`` now; in the background give running jobs ``timeout`` ms,
        then release the rest (ctx.pause / ctx.shutdown)."""
        if reg.is_async and self._bridge is not None:
            self._bridge.call(self._bridge.worker.pause, reg, timeout, final)
            return
        core = self.core
        if core is not None:
            threading.Thread(target=self._stop, args=(core, [reg], timeout, False, final),
                             daemon=True, name=f"kueatomic-{reg.job_type}-pause").start()

    def _stop(self, core: WorkerCore, regs: list[Registration], timeout: float | None,
              fail_running: bool, final: bool) -> None:
        self._carry_out(loops.stop_loop(core, regs, timeout, fail_running, final))
        if final:  # end the slot threads: one stop per live thread, not per slot, since a
            # handler that returned just as it was given up can be back at its slot while its
            # replacement waits there too (a stop too many is harmless)
            for reg in regs:
                alive = sum(t.is_alive() for t in self._slot_threads.pop(reg, ()))
                if reg.slots is not None:
                    for _ in range(max(alive, reg.concurrency)):
                        reg.slots.put(None)

    def shutdown(self, timeout: float | None = None, job_type: str | None = None, *,
                 fail_running: bool = False) -> None:
        """Stop gracefully: no new claims; running jobs get ``timeout`` ms (None: as long as
        they take); then the jobs still running are released back to inactive with no attempt
        used ("Released at shutdown"; their late results are discarded), or, with
        ``fail_running``, failed with "Shutdown" as Kue does. Outcomes are written before this
        returns. Without ``job_type`` upkeep stops too and ``start()`` may be called again.
        Idempotent. Called from a handler — a sync one in its slot thread, or an ``async def``
        one on the background event loop, which a blocking wait would freeze — it returns at
        once and stops in a background thread."""
        if self._in_own_thread():
            self._in_background("shutdown", self.shutdown, timeout, job_type,
                                fail_running=fail_running)
            return
        bridge = self._bridge
        bridged: Future[None] | None = None
        if bridge is not None:
            bridged = bridge.call(bridge.worker.shutdown, timeout, job_type,
                                  fail_running=fail_running)
        core = self.core
        regs = [r for r in self._matching(job_type) if not r.is_async]
        if core is not None:
            self._stop(core, regs, timeout, fail_running, True)
        if bridged is not None:
            bridged.result()
        if job_type is None:
            self._stop_all()

    def abort(self) -> None:
        """Release every running job now (what a second SIGINT/SIGTERM does); from a
        handler, in a background thread (see ``shutdown``)."""
        if self._in_own_thread():
            self._in_background("abort", self.abort)
            return
        bridge = self._bridge
        bridged = bridge.call(bridge.worker.abort) if bridge is not None else None
        core = self.core
        if core is not None:
            regs = [r for r in self.registrations if not r.is_async]
            self._carry_out(loops.stop_loop(core, regs, 0, False, False))
        if bridged is not None:
            bridged.result()

    def _in_own_thread(self) -> bool:
        """Whether the caller is one of this worker's slot threads or its event loop's."""
        return getattr(threading.current_thread(), "kueatomic_worker", None) is self

    @staticmethod
    def _in_background(name: str, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        threading.Thread(target=fn, args=args, kwargs=kwargs, daemon=True,
                         name=f"kueatomic-{name}").start()

    def _stop_all(self) -> None:
        with self._lock:
            core, threads, self._threads = self.core, self._threads, []
            bridge, self._bridge = self._bridge, None
            if not self.started:
                return
            self.started = False
        if core is not None:
            core.stop()
        for reg in self.registrations:
            reg.started = False
            reg.free = reg.concurrency
        # Stopped registrations are done, as after Kue's shutdown; process() adds new ones.
        self.registrations = [r for r in self.registrations if not r.closed]
        for thread in threads:
            thread.join(5)
        self._stop_listening_for_cancels()
        if bridge is not None:
            bridge.close()
        if self.driver is not None:
            if isinstance(self.driver, SyncRoutedDriver):
                self.driver.close()
            for client in clients_of(self.driver):
                client.close()
        log.info("worker stopped (prefix %s)", self.queue.prefix)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the worker has stopped: True once shut down (or never started), False
        when ``timeout`` ms passed first. Raises the error that made it refuse to run, such
        as ``IncompatibleFormat`` (it claims nothing then; ``shutdown()`` still ends it)."""
        core = self.core
        ended = True
        if core is not None and self.started:
            event = self._events.setdefault(ENDED, threading.Event())
            ended = event.wait(None if timeout is None else max(0.0, timeout) / 1000)
        self._raise_error()
        return ended

    def run(self, shutdown_timeout: float | None = 10000) -> None:
        """Start, block until SIGINT/SIGTERM, then shut down gracefully (``shutdown_timeout``
        ms for running jobs); a second signal releases running jobs at once. A worker that
        refuses to run (``IncompatibleFormat``) is shut down and its error raised. Call it
        from the main thread."""
        from .signals import run_until_signalled

        self._start()  # an error is raised below, after the shutdown
        run_until_signalled(lambda: self.shutdown(shutdown_timeout), self.abort,
                            lambda: self.error is not None)
        self._raise_error()

    def close(self) -> None:
        """Stop at once, releasing running jobs (``queue.close()`` calls this)."""
        if self.started:
            self.shutdown(timeout=0)


class _AsyncBridge:
    """``async def`` handlers of a sync worker: an ``aio.Worker`` on an ``AsyncQueue`` made
    from the same connection description, on an event loop in a background thread. Upkeep
    stays with the threaded worker; "error" events go to the sync queue's listeners."""

    def __init__(self, owner: Worker) -> None:
        import asyncio

        from ..async_queue import AsyncQueue
        from .asyncio_runtime import Worker as AsyncWorker

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kueatomic-asyncio",
                                       daemon=True)
        # Handlers run on this thread: the owner's shutdown() and abort() must not block it.
        self.thread.kueatomic_worker = owner  # type: ignore[attr-defined]
        self.thread.start()
        twin = owner.queue.like(AsyncQueue)
        settings = {f: getattr(owner.settings, f) for f in owner.settings.__dataclass_fields__}
        self.worker = AsyncWorker(twin, events=owner.events, upkeep=False, **settings)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        import asyncio
        import inspect

        async def invoke() -> Any:
            result = fn(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(invoke(), self.loop)

    def add(self, reg: Registration) -> None:
        async def start() -> None:
            if reg not in self.worker.registrations:
                self.worker.registrations.append(reg)
            await self.worker._start()  # a refusal: the owner's start()/join() raise it

        started = self.call(start)
        if threading.current_thread() is not self.thread:  # on the loop: it starts next
            started.result(10)

    def close(self) -> None:
        try:
            self.call(self.worker.queue.close).result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def start_unless_deferred(worker: Worker) -> None:
    """Kue's shorthand starts at once, except while the CLI imports a module (a refusal to
    run shows in the log and is raised by ``join()`` / ``run()``, not by ``process()``)."""
    if not control.deferring(worker):
        worker._start()
