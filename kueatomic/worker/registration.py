"""One ``process()`` call (its type, handler and slots) and the in-flight record of one
claimed job: the worker core's state, shared by the threaded and the asyncio runtime."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .. import tracing
from ..errors import InvalidArgument
from . import calls

# InFlight.stage: QUEUED (claimed, waiting for a slot), RUNNING, FINISHED (result waiting to be
# written), ABANDONED (its result will be discarded: released, failed at shutdown, or its
# lease was lost while running), LOST (lease lost before it started).
QUEUED, RUNNING, FINISHED, ABANDONED, LOST = range(5)
TTL_CHECK_SLACK = 0.05  # s after a ttl deadline before asking whether the job was failed


def handler_wants_ctx(handler: Callable[..., Any]) -> bool:
    """``handler(job)`` or ``handler(job, ctx)``: decided once from the signature."""
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def is_async_handler(handler: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    # an object whose __call__ is a coroutine function
    return not inspect.isroutine(handler) and inspect.iscoroutinefunction(type(handler).__call__)


def check_process_args(job_type: Any, concurrency: Any) -> tuple[str, int]:
    if not isinstance(job_type, str) or not job_type or ":" in job_type:
        raise InvalidArgument(f"job type must be a non-empty string without ':', not {job_type!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgument(f"concurrency must be an integer >= 1, not {concurrency!r}")
    return job_type, concurrency


class Registration:
    """The worker of one ``process()`` call: ``concurrency`` slots for one job type.

    ``free`` counts slots with no job and no claim reserved for them. ``claiming`` is false
    while paused or stopped; ``generation`` changes on every resume so a claim loop left over
    from before a pause knows to stop. ``reclaims`` are claims whose reply was lost: their
    slots stay reserved until Redis says which jobs they took."""

    def __init__(self, job_type: str, concurrency: int, handler: Callable[..., Any],
                 lease_ms: int, batch: int) -> None:
        self.job_type = job_type
        self.concurrency = concurrency
        self.wants_ctx = handler_wants_ctx(handler)
        self.is_async = is_async_handler(handler)
        self.handler = tracing.traced(handler, self.is_async)  # a span per run (otel extra)
        self.lease_ms = lease_ms
        self.batch = batch
        self.worker_id = calls.worker_id(job_type)
        self.free = concurrency
        self.claiming = False
        self.closed = False
        self.started = False  # handed to the runtime (slots made, claim loop started)
        self.generation = 0
        self.reclaims: list[Any] = []  # core.Claim
        # On a sharded queue: the shard the next claim goes to (claims take turns, so no
        # shard starves), and how many claims in a row found nothing.
        self.shard_cursor = 0
        self.empty_claims = 0
        # process(rate_limit=(limit, window_ms)), enforced by the claim script; and until
        # when (the core's clock) a full window holds the next claim back.
        self.rate_limit: tuple[int, int] | None = None
        self.rate_until = 0.0
        self.rate_full = 0  # claims in a row that found their shard's window full
        self.rate_wait_ms: int | None = None  # the soonest of their windows to reopen
        self.ctx: Any = None
        self.slots: Any = None  # the runtime's own (a SimpleQueue of records, an executor...)

    def resize(self, concurrency: int) -> None:
        """Change the slot count before the registration starts (the CLI's --concurrency)."""
        self.concurrency = self.free = concurrency
        self.batch = min(self.batch, concurrency)

    def __repr__(self) -> str:
        return (f"<Registration {self.job_type} x{self.concurrency} "
                f"{'claiming' if self.claiming else 'paused'}>")


class InFlight:
    """A claimed job from its claim until its outcome is written (or given up)."""

    __slots__ = ("cancel_event", "check_at", "claimed_at", "fields", "finished_at", "handle",
                 "id", "job", "load_error", "reg", "stage", "token")

    def __init__(self, job_id: int, token: str, reg: Registration, fields: dict[str, str],
                 now: float) -> None:
        self.id = job_id
        self.token = token
        self.reg = reg
        self.fields = fields
        self.job: Any = None
        self.load_error: BaseException | None = None
        self.stage = QUEUED
        self.claimed_at = now
        self.finished_at = 0.0
        self.handle: Any = None  # the runtime's: the thread or task running it
        self.cancel_event: Any = None  # ctx.cancelled's Event, made when a handler asks
        # For a job with a ttl: when (monotonic) to ask Redis whether it still holds the job,
        # so a handler hung past its ttl frees its slot soon after recovery fails it.
        ttl = ttl_seconds(fields) if "ttl" in fields else 0.0
        self.check_at = now + ttl + TTL_CHECK_SLACK if ttl else 0.0


def ttl_seconds(fields: dict[str, str]) -> float:
    """The job's ttl in seconds, 0 for none; Node Kue may store it as "1500.5" or junk."""
    try:
        value = float(fields.get("ttl") or 0)
    except ValueError:
        return 0.0
    return value / 1000 if 0 < value < float("inf") else 0.0  # NaN compares false
