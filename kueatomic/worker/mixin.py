"""``process``, ``on``, ``shutdown``, ``watch_stuck_jobs`` and ``run`` for the queues.

``QueueWorkerMixin`` is a base of ``kueatomic.Queue`` and ``AsyncQueueWorkerMixin`` of
``kueatomic.aio.Queue``. They keep their state in one lazily created ``_WorkerState``, so the
queue classes need no constructor changes.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..driver import SyncDriver
from ..errors import InvalidArgument
from ..keyspace import Keys
from . import control
from .events import EventHub, Listener, Subscriber
from .registration import Registration, check_process_args
from .settings import WorkerSettings

if TYPE_CHECKING:
    from ..aio import AsyncDriver

_state_lock = threading.Lock()
_background: set[asyncio.Task[None]] = set()


class _WorkerState:
    def __init__(self) -> None:
        self.hub = EventHub()
        self.settings = WorkerSettings()
        self.runtime: Any = None  # ThreadedRuntime or AsyncRuntime
        self.bridge: Any = None  # AsyncBridge (sync queue, async handlers)
        self.subscriber: Subscriber | None = None
        self.pending: list[Registration] = []  # registered while starts are deferred
        self.registrations: list[Registration] = []
        self.sync_twin: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None


class _Common:
    """What both queue kinds share: settings, listeners, argument parsing."""

    prefix: str
    keys: Keys

    @property
    def _workers(self) -> _WorkerState:
        state = self.__dict__.get("_worker_state")
        if state is None:
            with _state_lock:
                state = self.__dict__.setdefault("_worker_state", _WorkerState())
        return state  # type: ignore[no-any-return]

    @property
    def worker_settings(self) -> WorkerSettings:
        return self._workers.settings

    def configure_workers(self, **settings: Any) -> WorkerSettings:
        """Change worker settings (see ``WorkerSettings``) for workers started afterwards,
        e.g. ``queue.configure_workers(lease_ms=5000, max_stalls=2)``."""
        state = self._workers
        state.settings = state.settings.updated(**settings)
        return state.settings

    def _register(self, job_type: Any, concurrency: Any, handler: Any,
                  lease_ms: int | None, batch: int | None) -> Any:
        """Kue's process() argument forms, for both queue kinds: ``(type, handler)``,
        ``(type, n, handler)``, or no handler yet (returns a decorator). With a handler the
        new registration is recorded and returned."""
        if callable(concurrency) and handler is None:
            concurrency, handler = 1, concurrency
        if handler is None:
            def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
                self.process(job_type, concurrency, fn,  # type: ignore[attr-defined]
                             lease_ms=lease_ms, batch=batch)
                return fn
            return decorate
        reg = self._registration(job_type, concurrency, handler, lease_ms, batch)
        self._workers.registrations.append(reg)
        return reg

    def _registration(self, job_type: Any, concurrency: Any, handler: Any,
                      lease_ms: int | None, batch: int | None) -> Registration:
        job_type, concurrency = check_process_args(job_type, concurrency)
        if not callable(handler):
            raise InvalidArgument(f"the handler must be callable, not {handler!r}")
        settings = self._workers.settings
        if lease_ms is not None:
            settings.updated(lease_ms=lease_ms)  # validates
        if batch is not None:
            settings.updated(claim_batch=batch)
        return Registration(job_type, concurrency, handler, lease_ms or settings.lease_ms,
                            min(batch or settings.claim_batch, concurrency))

    def on(self, event: str, listener: Listener | None = None) -> Any:
        """Listen to a queue event (Kue's names): ``"job complete"`` ``(id, result)``,
        ``"job failed"`` ``(id, message)``, ``"job failed attempt"`` ``(id, message, attempt)``,
        ``"job progress"`` ``(id, percent, data)``, ``"job enqueue"``, ``"job start"``,
        ``"job promotion"``, ``"job remove"``, ``"job error"``, ``"job ttl exceeded"``,
        ``"job stalled"``..., and ``"error"`` ``(exception)`` for worker problems. Events of
        every process on the queue's Redis arrive (they travel by pub/sub). Usable as a
        decorator."""
        if listener is None:
            def decorate(fn: Listener) -> Listener:
                self.on(event, fn)
                return fn
            return decorate
        self._workers.hub.on(event, listener)
        if event != "error":
            self._ensure_subscriber()
        return self

    def off(self, event: str, listener: Listener | None = None) -> Any:
        """Remove one listener, or all listeners of ``event``."""
        self._workers.hub.off(event, listener)
        return self

    def on_job(self, job: Any, event: str, listener: Listener | None = None) -> Any:
        """``job.on(event, listener)``: events of one job (``"progress"`` ``(percent,
        data)``, ``"complete"`` ``(result)``, ``"failed"``...) until it completes or fails."""
        if listener is None:
            def decorate(fn: Listener) -> Listener:
                self.on_job(job, event, fn)
                return fn
            return decorate
        self._workers.hub.on_job(job, event, listener)
        self._ensure_subscriber()
        return job

    def _ensure_subscriber(self) -> None:
        raise NotImplementedError

    def _stop_subscriber(self) -> None:
        state = self._workers
        if state.subscriber is not None:
            state.subscriber.stop()
            state.subscriber = None


class QueueWorkerMixin(_Common):
    """Workers for the sync ``kueatomic.Queue``: handlers run in threads (``async def``
    handlers on an asyncio loop in a background thread)."""

    client: Any
    driver: SyncDriver

    def process(self, job_type: str, concurrency: Any = 1, handler: Callable[..., Any] | None = None,
                *, lease_ms: int | None = None, batch: int | None = None) -> Any:
        """Run ``handler(job)`` or ``handler(job, ctx)`` for jobs of ``job_type``, up to
        ``concurrency`` at a time, starting now (Kue's ``queue.process``). Also
        ``process(type, handler)`` and ``@queue.process(type, concurrency=n)``.

        The handler's return value is stored as the job's result (JSON); an exception fails
        the attempt (retried per the job's attempts and backoff). Each claim, completion and
        failure is one atomic script; delivery is at least once (see README "Workers")."""
        reg = self._register(job_type, concurrency, handler, lease_ms, batch)
        if not isinstance(reg, Registration):
            return reg  # the decorator form: @queue.process(type, concurrency=n)
        state = self._workers
        if control.deferring(self):
            state.pending.append(reg)
        else:
            self._start(reg)
        return reg.handler

    def start_workers(self) -> None:
        """Start the workers registered while starts were deferred (the CLI defers them)."""
        state = self._workers
        pending, state.pending = state.pending, []
        for reg in pending:
            self._start(reg)

    def _runtime(self) -> Any:
        state = self._workers
        with _state_lock:
            if state.runtime is None:
                from .threaded import ThreadedRuntime

                state.runtime = ThreadedRuntime(self, state.hub, state.settings)
            return state.runtime

    def _start(self, reg: Registration) -> None:
        state = self._workers
        runtime = self._runtime()
        if reg.is_async:
            with _state_lock:
                if state.bridge is None:
                    from .bridge import AsyncBridge

                    state.bridge = AsyncBridge(self, state.hub, state.settings)
            runtime.enable_upkeep(state.settings.upkeep_interval_ms)
            state.bridge.add(reg)
        else:
            runtime.add(reg)

    def watch_stuck_jobs(self, interval: int = 1000) -> None:
        """Run upkeep in this process every ``interval`` ms, workers or not: promote due
        delayed jobs, recover jobs whose lease expired or whose ttl passed, and re-sync
        every type's wake-up tokens (Kue's watchStuckJobs)."""
        self._runtime().enable_upkeep(int(interval))

    def _ensure_subscriber(self) -> None:
        state = self._workers
        with _state_lock:
            if state.subscriber is not None:
                return
            state.subscriber = Subscriber(self.client, self.keys.events, state.hub,
                                          self.driver.where)
        state.subscriber.start()

    def shutdown(self, timeout: float | None = None, job_type: str | None = None) -> None:
        """Stop workers gracefully (Kue's ``queue.shutdown``): no new claims; running jobs
        get ``timeout`` ms (None: as long as they need), then fail with "Shutdown"; results
        are written before this returns. Without ``job_type`` upkeep and event delivery stop
        too. Idempotent; the queue stays usable for producing and reading. Called from a
        handler, it returns at once and stops in the background (it would wait for itself)."""
        state = self._workers
        runtime = getattr(threading.current_thread(), "kueatomic_runtime", None)
        if runtime is not None and runtime is state.runtime:
            threading.Thread(target=self.shutdown, args=(timeout, job_type), daemon=True,
                             name="kueatomic-shutdown").start()
            return
        bridge_stop = state.bridge.stop(timeout, job_type) if state.bridge else None
        if state.runtime is not None:
            state.runtime.stop(timeout, job_type)
        if bridge_stop is not None:
            bridge_stop.result()
        if job_type is None:
            if state.bridge is not None:
                state.bridge.close()
                state.bridge = None
            self._stop_subscriber()

    def abort_workers(self) -> None:
        """Fail every running job with "Shutdown" now (what a second SIGINT/SIGTERM does)."""
        state = self._workers
        future = state.bridge.abort() if state.bridge else None
        if state.runtime is not None:
            state.runtime.abort()
        if future is not None:
            future.result()

    def run(self, shutdown_timeout: float | None = 10000) -> None:
        """Block until SIGINT/SIGTERM, then shut down gracefully (``shutdown_timeout`` ms for
        running jobs); a second signal fails running jobs with "Shutdown" at once. Call it
        from the main thread after ``process()``."""
        from .signals import run_until_signalled

        self.start_workers()
        run_until_signalled(lambda: self.shutdown(shutdown_timeout), self.abort_workers)

    def close_workers(self) -> None:
        """Stop everything at once (``Queue.close()`` calls this)."""
        state = self.__dict__.get("_worker_state")
        if state is not None and (state.runtime or state.bridge or state.subscriber):
            self.shutdown(timeout=0)


class AsyncQueueWorkerMixin(_Common):
    """Workers for ``kueatomic.aio.Queue``: ``async def`` handlers run as tasks on the loop,
    sync handlers in a thread pool of ``concurrency`` threads."""

    redis_option: Any
    driver: AsyncDriver

    def process(self, job_type: str, concurrency: Any = 1, handler: Callable[..., Any] | None = None,
                *, lease_ms: int | None = None, batch: int | None = None) -> Any:
        """As ``kueatomic.Queue.process``; starts at once when called on a running event loop,
        else at ``await queue.start_workers()`` (or ``await queue.run()``)."""
        reg = self._register(job_type, concurrency, handler, lease_ms, batch)
        if not isinstance(reg, Registration):
            return reg  # the decorator form: @queue.process(type, concurrency=n)
        state = self._workers
        if not reg.is_async and state.sync_twin is None:
            from .twins import sync_twin

            state.sync_twin = sync_twin(self)
        loop = _running_loop()
        if loop is None or control.deferring(self):
            state.pending.append(reg)
        else:
            self._runtime_here().add(reg)
        return reg.handler

    async def start_workers(self) -> None:
        """Start workers registered outside a running loop (or while starts were deferred)."""
        state = self._workers
        pending, state.pending = state.pending, []
        for reg in pending:
            self._runtime_here().add(reg)

    def _runtime_here(self) -> Any:
        from .asyncio_runtime import AsyncRuntime

        state = self._workers
        loop = asyncio.get_running_loop()
        if state.runtime is None or state.runtime.loop is not loop:
            state.runtime = AsyncRuntime(self, state.hub, state.settings, sync_twin=state.sync_twin)
            self._bind_loop(loop)
        return state.runtime

    def watch_stuck_jobs(self, interval: int = 1000) -> None:
        """As ``kueatomic.Queue.watch_stuck_jobs``; call it on a running event loop."""
        self._runtime_here().enable_upkeep(int(interval))

    def _bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        state = self._workers
        state.loop = loop

        def call(fn: Listener, args: tuple[Any, ...]) -> None:
            def invoke() -> None:
                try:
                    result = fn(*args)
                    if inspect.isawaitable(result):
                        asyncio.ensure_future(result)
                except Exception as exc:  # noqa: BLE001 - a listener's bug
                    state.hub.emit("error", exc)

            if loop.is_closed():
                return
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                invoke()
            else:
                loop.call_soon_threadsafe(invoke)

        state.hub.set_caller(call)

    def _ensure_subscriber(self) -> None:
        state = self._workers
        loop = _running_loop()
        if loop is not None and state.loop is not loop:
            self._bind_loop(loop)
        with _state_lock:
            if state.subscriber is not None:
                return
            from .twins import sync_client_like

            state.subscriber = Subscriber(sync_client_like(self), self.keys.events, state.hub,
                                          self.driver.where, owns_client=True)
        state.subscriber.start()

    async def shutdown(self, timeout: float | None = None, job_type: str | None = None) -> None:
        """As ``kueatomic.Queue.shutdown``, awaited (from a handler: in the background)."""
        state = self._workers
        if state.runtime is not None and state.runtime.runs_current_task():
            task = asyncio.get_running_loop().create_task(self.shutdown(timeout, job_type))
            _background.add(task)  # keep a reference until it is done
            task.add_done_callback(_background.discard)
            return
        if state.runtime is not None:
            await state.runtime.stop(timeout, job_type)
        if job_type is None:
            self._stop_subscriber()
            if state.sync_twin is not None:
                state.sync_twin.close()
                state.sync_twin = None

    async def abort_workers(self) -> None:
        state = self._workers
        if state.runtime is not None:
            await state.runtime.abort()

    async def run(self, shutdown_timeout: float | None = 10000) -> None:
        """Start pending workers and serve until SIGINT/SIGTERM (graceful), a second signal
        failing running jobs with "Shutdown" at once."""
        from .signals import serve_until_signalled

        await self.start_workers()
        await serve_until_signalled(lambda: self.shutdown(shutdown_timeout), self.abort_workers)

    async def close_workers(self) -> None:
        state = self.__dict__.get("_worker_state")
        if state is not None and (state.runtime or state.subscriber):
            await self.shutdown(timeout=0)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
