"""OpenTelemetry tracing (the ``otel`` extra): a producer's trace context travels in the job,
and the worker's run of the job is a span that continues that trace.

- Creating a job (``save()``, ``create_bulk``, ``POST /job``) opens and closes a PRODUCER span
  ``kueatomic.create <type>``, a child of the caller's current span, and stores its W3C
  context in the new job's hash (``traceparent``, ``tracestate``; create_jobs writes them). It
  is OpenTelemetry's messaging "create" span: one per job, also when many jobs share one
  script call, so its id is not known yet (the consumer span has it).
- Running a handler is a CONSUMER span ``kueatomic.process <type>``, a child of that producer
  span (a root span for a job created without one), current while the handler runs, with the
  handler's exception recorded and status ERROR when it raises.

Nothing of opentelemetry is imported here. Tracing is on once the application itself has
imported ``opentelemetry.trace`` and set a tracer provider (the SDK's ``TracerProvider``),
within RECHECK_S of that (``recheck()`` makes it at once); until then each hook costs a clock
read, and with the extra not installed the handlers are not even wrapped.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any

from . import extras
from .job import TRACE_FIELDS  # traceparent, tracestate: W3C Trace Context as job hash fields

TRACER_NAME = "kueatomic"
SYSTEM = "kueatomic"  # messaging.system

_tracer: Any = None  # set once a real provider is there (OpenTelemetry sets it only once)
_w3c: Any = None  # the W3C Trace Context propagator
# While tracing is off, whether a provider was set is asked at most every RECHECK_S: asking
# costs each job a few microseconds (redis-py itself imports opentelemetry when installed).
RECHECK_S = 1.0
_next_check = 0.0


_enabled = True


def recheck() -> None:
    """Look for a tracer provider at the next hook (call it after setting one, for tracing
    from the very next job on rather than within RECHECK_S)."""
    global _next_check
    _next_check = 0.0


def set_enabled(enabled: bool) -> None:
    """Turn kueatomic's spans (and the trace context stored in jobs) off, or back on, in this
    process, whatever tracer provider is set: OpenTelemetry sets one only once per process."""
    global _enabled, _tracer
    _enabled, _tracer = bool(enabled), None
    recheck()


def tracer() -> Any:
    """kueatomic's tracer, or None while tracing is off (opentelemetry not imported by the
    application, or no tracer provider set)."""
    global _tracer, _w3c, _next_check
    if _tracer is not None:
        return _tracer
    if not _enabled:
        return None
    now = time.monotonic()
    if now < _next_check:
        return None
    _next_check = now + RECHECK_S
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _w3c = TraceContextTextMapPropagator()
    _tracer = provider.get_tracer(TRACER_NAME, _version())
    return _tracer


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kueatomic")
    except PackageNotFoundError:
        return None


# --- producer -----------------------------------------------------------------------------

def on_create(job: Any) -> None:
    """Before a new job is encoded: a ``kueatomic.create <type>`` span, its context put in
    ``job.extra_fields`` (a context the caller set there itself is kept)."""
    spans = tracer()
    if spans is None or "traceparent" in job.extra_fields:
        return
    from opentelemetry.trace import SpanKind, set_span_in_context

    span = spans.start_span(f"kueatomic.create {job.type}", kind=SpanKind.PRODUCER, attributes={
        "messaging.system": SYSTEM, "messaging.operation.type": "create",
        "messaging.operation.name": "create", "messaging.destination.name": job.type,
        "kueatomic.queue": job.queue.prefix, "kueatomic.job.type": job.type})
    carrier: dict[str, str] = {}
    _w3c.inject(carrier, context=set_span_in_context(span))
    span.end()
    for name in TRACE_FIELDS:
        if carrier.get(name):
            job.extra_fields[name] = carrier[name]


# --- consumer -----------------------------------------------------------------------------

def traced(handler: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    """``handler`` run inside a ``kueatomic.process <type>`` span whenever tracing is on; the
    handler itself when the otel extra is not installed."""
    if extras.missing("otel"):
        return handler
    if is_async:
        @functools.wraps(handler)
        async def run_async(job: Any, *args: Any) -> Any:
            spans = tracer()
            if spans is None:
                return await handler(job, *args)
            with consumer_span(spans, job):
                return await handler(job, *args)
        return run_async

    @functools.wraps(handler)
    def run(job: Any, *args: Any) -> Any:
        spans = tracer()
        if spans is None:
            return handler(job, *args)
        with consumer_span(spans, job):
            return handler(job, *args)
    return run


def consumer_span(spans: Any, job: Any) -> Any:
    """The CONSUMER span of one run of ``job``, as a context manager that makes it current and
    records an exception (status ERROR) before letting it through; its parent is the context
    the producer stored in the job's hash."""
    from opentelemetry.trace import SpanKind

    fields = job.fields
    parent = _w3c.extract({name: fields[name] for name in TRACE_FIELDS if fields.get(name)})
    return spans.start_as_current_span(
        f"kueatomic.process {job.type}", context=parent, kind=SpanKind.CONSUMER,
        record_exception=True, set_status_on_exception=True, attributes={
            "messaging.system": SYSTEM, "messaging.operation.type": "process",
            "messaging.operation.name": "process", "messaging.destination.name": job.type,
            "messaging.message.id": str(job.id), "kueatomic.queue": job.queue.prefix,
            "kueatomic.job.id": job.id, "kueatomic.job.type": job.type,
            "kueatomic.job.attempt": job.attempts_made + 1,
            "kueatomic.job.max_attempts": job.max_attempts})
