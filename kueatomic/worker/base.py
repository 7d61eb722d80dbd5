"""What ``kueatomic.Worker`` and ``kueatomic.aio.Worker`` share: settings, ``process()``'s
argument forms, the registrations and their contexts. The runtimes add threads or tasks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from ..events import EventHub, Subscriber
from ..queue_base import check_rate_limit
from . import control
from .context import WorkerContext
from .core import Observer, WorkerCore
from .heartbeat import Heartbeat, worker_entry_id
from .registration import Registration, check_process_args
from .settings import WorkerSettings

log = logging.getLogger("kueatomic.worker")


class WorkerBase:
    """Runs handlers for jobs of ``queue`` (composition: the queue knows nothing of it).

    ``settings`` are ``WorkerSettings`` fields (``lease_ms=5000, max_stalls=2``...).
    ``events`` is the EventHub that gets "error" events (default: the queue's); ``upkeep``
    False leaves promotion and recovery to another worker. ``observer`` (a
    ``kueatomic.worker.core.Observer``, e.g. ``kueatomic.metrics.WorkerMetrics``) watches
    claims, runs and outcomes; set it (or the attribute) before ``start()``."""

    def __init__(self, queue: Any, *, events: Any = None, upkeep: bool = True,
                 observer: Observer | None = None, **settings: Any) -> None:
        self.observer = observer
        self.queue = queue
        self.keys = queue.keys
        self.events = events if events is not None else queue.events
        self.upkeep = upkeep
        self.settings = WorkerSettings().updated(**settings)
        self.registrations: list[Registration] = []
        self.core: WorkerCore | None = None  # made at start, with the settings of that time
        self.started = False
        # This worker's id in the workers registry (queue.workers(); worker/heartbeat.py).
        self.registry_id = worker_entry_id()
        self._cancels: Subscriber | None = None

    def _listen_for_cancels(self, deliver: Callable[..., None]) -> None:
        """Tell the core of every cancel (lua/cancel_job.lua publishes it on
        ``<prefix>:cancels``), through ``deliver`` (the runtime's way of calling into the core
        from another thread), so a cancelled job this worker runs is stopped at once rather
        than at its next lease renewal. A channel of its own: the queue's events channel
        carries two messages per job, which every worker would have to read."""
        if self._cancels is not None:
            return
        hub = EventHub()

        def seen(job_id: Any, *args: Any) -> None:
            core = self.core
            if core is not None and isinstance(job_id, int):
                deliver(core.cancel_seen, job_id)

        hub.on("job cancel", seen)
        connection = self.queue.connection
        self._cancels = Subscriber(connection.sync_client(), [k.cancels for k in self.keys.layouts],
                                   hub, connection.where, owns_client=True)
        self._cancels.start(wait=0)  # a cancel sent before it listens is seen at the renewal

    def _stop_listening_for_cancels(self) -> None:
        cancels, self._cancels = self._cancels, None
        if cancels is not None:
            cancels.stop()

    def _heartbeat(self) -> Heartbeat | None:
        """A new core's heartbeat (None with ``heartbeat_interval_ms=0``)."""
        return Heartbeat.from_settings(self.settings, self.registry_id)

    def configure(self, **settings: Any) -> WorkerSettings:
        """Change settings (see ``WorkerSettings``) for registrations started afterwards."""
        self.settings = self.settings.updated(**settings)
        return self.settings

    def process(self, job_type: str, concurrency: Any = 1,
                handler: Callable[..., Any] | None = None, *, lease_ms: int | None = None,
                batch: int | None = None, rate_limit: tuple[int, int] | None = None) -> Any:
        """Run ``handler(job)`` or ``handler(job, ctx)`` for jobs of ``job_type``, up to
        ``concurrency`` at a time. Also ``process(type, handler)`` and, as a decorator,
        ``@worker.process(type, concurrency=n)``. Returns the handler. Registered before
        ``start()``, it starts then; registered on a started worker, it starts at once.

        The handler's return value is stored as the job's result (JSON); an exception — any
        BaseException — fails the attempt (retried per the job's attempts and backoff). Each
        claim, completion and failure is one atomic script; delivery is at least once."""
        if callable(concurrency) and handler is None:
            concurrency, handler = 1, concurrency
        if handler is None:
            def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
                self.process(job_type, concurrency, fn, lease_ms=lease_ms, batch=batch,
                             rate_limit=rate_limit)
                return fn
            return decorate
        reg = self._registration(job_type, concurrency, handler, lease_ms, batch)
        # The process() call's limit, else the queue's for the type (Queue(rate_limits=...)).
        reg.rate_limit = (check_rate_limit(rate_limit)
                          or getattr(self.queue, "rate_limits", {}).get(reg.job_type))
        reg.ctx = WorkerContext(self, reg)
        self.registrations.append(reg)
        control.deferring(self)  # the CLI finds the workers a module registers handlers on
        self._registered(reg)
        return handler

    def process_then(self, start: Callable[[], None], job_type: str, concurrency: Any = 1,
                     handler: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Kue's shorthand ``queue.process(...)``: ``process()``, then ``start()`` once the
        handler is registered (also in the decorator form)."""
        if handler is not None or callable(concurrency):
            result = self.process(job_type, concurrency, handler, **options)
            start()
            return result

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.process(job_type, concurrency, fn, **options)
            start()
            return fn
        return decorate

    def _registration(self, job_type: Any, concurrency: Any, handler: Any,
                      lease_ms: int | None, batch: int | None) -> Registration:
        job_type, concurrency = check_process_args(job_type, concurrency)
        if not callable(handler):
            raise InvalidArgument(f"the handler must be callable, not {handler!r}")
        settings = self.settings
        if lease_ms is not None:
            settings.updated(lease_ms=lease_ms)  # validates
        if batch is not None:
            settings.updated(claim_batch=batch)
        return Registration(job_type, concurrency, handler, lease_ms or settings.lease_ms,
                            min(batch or settings.claim_batch, concurrency))

    def _registered(self, reg: Registration) -> None:
        """A new registration: start it now if the worker runs."""
        raise NotImplementedError

    def _matching(self, job_type: str | None) -> list[Registration]:
        """The registrations a shutdown stops and waits for: closed ones too, since one a
        handler closed with ``ctx.shutdown()`` may still run a job whose outcome must be
        written before the shutdown returns (stopping an idle one again costs nothing)."""
        return [r for r in self.registrations if job_type in (None, r.job_type)]

    @property
    def error(self) -> BaseException | None:
        """The error that made this worker refuse to run, logged and emitted as an "error"
        event when it happened and raised by ``join()`` and ``run()``: ``IncompatibleFormat``
        when the queue's data format (checked by the first housekeeping pass, before any
        claim) is newer than this version reads. None while it works (or never started)."""
        core = self.core
        return core.fatal if core is not None else None

    def _raise_error(self) -> None:
        error = self.error
        if error is not None:
            raise error

    @property
    def block_ms(self) -> int:
        """How long a claim loop blocks on the wake-up list: shorter than the reply timeout
        of the worker's connection, so an idle wait never looks like a lost reply."""
        driver = getattr(self, "driver", None)
        return block_ms(driver.client if driver is not None else None,
                        self.settings.block_timeout_ms)

    def _log_start(self) -> None:
        served = ", ".join(f"{r.job_type} x{r.concurrency}" for r in self.registrations) or \
            "upkeep only"
        log.info("worker started: %s on %s (prefix %s)", served, self.queue.connection.where,
                 self.queue.prefix)

    def __repr__(self) -> str:
        return (f"<{type(self).__module__}.{type(self).__name__} {self.queue.prefix} "
                f"{len(self.registrations)} registrations{' running' if self.started else ''}>")


def block_ms(client: Any, wanted_ms: int) -> int:
    """``wanted_ms``, but 200 ms shorter than the client's socket timeout (if it has one)."""
    pool = getattr(client, "connection_pool", None)
    timeout = (getattr(pool, "connection_kwargs", None) or {}).get("socket_timeout")
    if isinstance(timeout, (int, float)) and timeout > 0:
        return max(10, min(wanted_ms, int(timeout * 1000) - 200))
    return wanted_ms
