"""OpenTelemetry (the otel extra, kueatomic/tracing.py): a job created inside a span carries
its context, and the worker's run is a CONSUMER span, child of the PRODUCER create span, on
the threaded and the asyncio worker; a failing handler's span has status ERROR and the
exception. Captured with the SDK's in-memory exporter. Without opentelemetry nothing of it is
imported."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from kueatomic import Queue, Worker, aio, tracing
from kueatomic.worker.asyncio_runtime import Worker as AsyncWorker

from .test_worker_async import until
from .test_worker_sync import FAST, wait_for

ROOT = Path(__file__).resolve().parent.parent
EXPORTER = InMemorySpanExporter()


def _install_provider() -> None:
    """One SDK provider for the process (OpenTelemetry sets the global only once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))


TRACER = trace.get_tracer("tests.test_tracing")  # a proxy until the provider is set


@pytest.fixture(scope="module", autouse=True)
def provider() -> Iterator[None]:
    """Tracing on for this module's tests only: the provider stays (OpenTelemetry sets one
    once per process), so kueatomic's tracing is turned off again for the modules after."""
    _install_provider()
    tracing.set_enabled(True)
    yield
    tracing.set_enabled(False)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def one(exporter: InMemorySpanExporter, name: str, timeout: float = 10.0) -> ReadableSpan:
    """The one finished span called ``name`` (a consumer span ends just after the handler,
    before or after the job's state changes: wait for it)."""
    (span,) = wait_for(lambda: named(exporter, name), timeout, what=f"span {name!r}")
    return span


def traceparent(span: ReadableSpan) -> str:
    """W3C traceparent of ``span``: version-trace id-span id-flags."""
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def check_link(exporter: InMemorySpanExporter, parent: Any, job: Any, job_type: str,
               attempt: int = 1) -> tuple[ReadableSpan, ReadableSpan]:
    """The create span is the caller's span's child, the process span the create span's, in
    one trace; the job's hash holds the create span's W3C context."""
    producer = one(exporter, f"kueatomic.create {job_type}")
    consumer = one(exporter, f"kueatomic.process {job_type}")
    context = parent.get_span_context()
    assert producer.kind is SpanKind.PRODUCER and consumer.kind is SpanKind.CONSUMER
    assert producer.parent is not None and producer.parent.span_id == context.span_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert {producer.context.trace_id, consumer.context.trace_id} == {context.trace_id}
    assert consumer.parent.is_remote  # it came through the job's hash
    assert job.fields["traceparent"] == traceparent(producer)
    attributes = dict(consumer.attributes or {})
    assert attributes == {
        "messaging.system": "kueatomic", "messaging.operation.type": "process",
        "messaging.operation.name": "process", "messaging.destination.name": job_type,
        "messaging.message.id": str(job.id), "kueatomic.queue": job.queue.prefix,
        "kueatomic.job.id": job.id, "kueatomic.job.type": job_type,
        "kueatomic.job.attempt": attempt, "kueatomic.job.max_attempts": job.max_attempts}
    assert dict(producer.attributes or {})["messaging.destination.name"] == job_type
    return producer, consumer


def test_a_sync_worker_continues_the_producers_trace(
        make_queue: Callable[..., Queue], spans: InMemorySpanExporter) -> None:
    queue = make_queue()
    inner: list[Any] = []

    def send(job: Any) -> str:
        with TRACER.start_as_current_span("smtp") as span:  # the run's span is current
            inner.append(span)
        return "sent"

    with TRACER.start_as_current_span("signup") as parent:
        job = queue.create("email", {"to": "tj"}).save()
    worker = Worker(queue, **FAST)
    worker.process("email", send)
    worker.start()
    try:
        assert job.wait(10) == "sent"
        _producer, consumer = check_link(spans, parent, queue.get_job(job.id), "email")
        assert consumer.status.status_code is StatusCode.UNSET
        (smtp,) = named(spans, "smtp")
        assert smtp.parent is not None and smtp.parent.span_id == consumer.context.span_id
    finally:
        worker.shutdown(timeout=0)


def test_an_async_handler_on_a_sync_worker_is_traced_once(
        make_queue: Callable[..., Queue], spans: InMemorySpanExporter) -> None:
    """The sync worker hands ``async def`` handlers to an asyncio worker of its own: one span
    per run all the same."""
    queue = make_queue()

    async def render(job: Any) -> str:
        await asyncio.sleep(0)
        return "rendered"

    with TRACER.start_as_current_span("upload") as parent:
        job = queue.create("video", {}).save()
    worker = Worker(queue, **FAST)
    worker.process("video", render)
    worker.start()
    try:
        assert job.wait(10) == "rendered"
        check_link(spans, parent, queue.get_job(job.id), "video")
    finally:
        worker.shutdown(timeout=0)


def test_a_failing_handler_records_the_exception_and_error_status(
        make_queue: Callable[..., Queue], spans: InMemorySpanExporter) -> None:
    queue = make_queue()

    def broken(job: Any) -> None:
        raise ValueError("smtp down")

    with TRACER.start_as_current_span("signup") as parent:
        job = queue.create("email", {}).attempts(2).save()
    worker = Worker(queue, **FAST)
    worker.process("email", broken)
    worker.start()
    try:
        wait_for(lambda: len(named(spans, "kueatomic.process email")) == 2, what="two runs")
        runs = sorted(named(spans, "kueatomic.process email"),
                      key=lambda s: dict(s.attributes or {})["kueatomic.job.attempt"])
        assert [dict(s.attributes or {})["kueatomic.job.attempt"] for s in runs] == [1, 2]
        (producer,) = named(spans, "kueatomic.create email")
        for run in runs:  # every attempt is a child of the one create span
            assert run.parent is not None and run.parent.span_id == producer.context.span_id
            assert run.context.trace_id == parent.get_span_context().trace_id
            assert run.status.status_code is StatusCode.ERROR
            assert run.status.description == "ValueError: smtp down"
            (event,) = [e for e in run.events if e.name == "exception"]
            assert dict(event.attributes or {})["exception.type"] == "ValueError"
            assert dict(event.attributes or {})["exception.message"] == "smtp down"
        wait_for(lambda: queue.get_job(job.id).state == "failed", what="failed")
    finally:
        worker.shutdown(timeout=0)


def test_create_bulk_gives_each_job_its_own_create_span(
        make_queue: Callable[..., Queue], spans: InMemorySpanExporter) -> None:
    queue = make_queue()
    with TRACER.start_as_current_span("import") as parent:
        jobs = queue.create_bulk([{"type": "video", "data": {"n": n}} for n in range(3)])
    creates = named(spans, "kueatomic.create video")
    assert len(creates) == 3 and len({s.context.span_id for s in creates}) == 3
    trace_id = parent.get_span_context().trace_id
    stored = {queue.get_job(j.id).fields["traceparent"] for j in jobs}  # type: ignore[union-attr]
    assert stored == {traceparent(s) for s in creates}
    assert {s.context.trace_id for s in creates} == {trace_id}


async def test_an_asyncio_worker_continues_the_producers_trace(
        make_aqueue: Callable[..., aio.Queue], spans: InMemorySpanExporter) -> None:
    queue = make_aqueue()

    async def render(job: Any) -> str:
        await asyncio.sleep(0)
        with TRACER.start_as_current_span("encode"):
            pass
        return "rendered"

    def broken(job: Any) -> None:  # a sync handler, in the asyncio worker's threads
        raise RuntimeError("codec missing")

    with TRACER.start_as_current_span("upload") as parent:
        job = await queue.create("video", {}).save()
        bad = await queue.create("thumb", {}).save()
    worker = AsyncWorker(queue, **FAST)
    worker.process("video", render)
    worker.process("thumb", broken)
    await worker.start()
    try:
        assert await job.wait(10) == "rendered"
        _producer, consumer = check_link(spans, parent, await queue.get_job(job.id), "video")
        (encode,) = named(spans, "encode")
        assert encode.parent is not None and encode.parent.span_id == consumer.context.span_id
        await until(lambda: _state(queue, bad.id, "failed"), what="thumb failed")
        _producer, failed = check_link(spans, parent, await queue.get_job(bad.id), "thumb")
        assert failed.status.status_code is StatusCode.ERROR
        assert failed.status.description == "RuntimeError: codec missing"
    finally:
        await worker.shutdown(timeout=0)
        await queue.close()


async def _state(queue: aio.Queue, job_id: int, state: str) -> bool:
    return (await queue.get_job(job_id)).state == state


def test_a_job_created_without_a_span_is_a_root_run(
        make_queue: Callable[..., Queue], spans: InMemorySpanExporter) -> None:
    queue = make_queue()
    job = queue.create("email", {}).save()
    worker = Worker(queue, **FAST)
    worker.process("email", lambda job: None)
    worker.start()
    try:
        job.wait(10)
        producer = one(spans, "kueatomic.create email")
        consumer = one(spans, "kueatomic.process email")
        assert producer.parent is None  # no caller span: the create span starts the trace
        assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    finally:
        worker.shutdown(timeout=0)


# --- without the extra, and without a provider --------------------------------------------

HIDE_OTEL = """
import sys

class HideOpenTelemetry:  # as if the otel extra were not installed
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideOpenTelemetry())
"""

CREATE_AND_PROCESS = """
import json, sys
from kueatomic import Queue, Worker

queue = Queue("t", "memory://tracing-off")
worker = Worker(queue, lease_ms=600, block_timeout_ms=100)
worker.process("email", lambda job: "sent")
worker.start()
job = queue.create("email", {}).save()
assert job.wait(10) == "sent"
worker.shutdown(timeout=0)
print(json.dumps({
    "stored": sorted(f for f in queue.get_job(job.id).fields if f.startswith("trace")),
    "otel": sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")}))
"""


def _python(code: str) -> Any:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_without_opentelemetry_nothing_of_it_is_imported() -> None:
    out = _python(HIDE_OTEL + "from kueatomic import extras\n"
                  "assert extras.missing('otel') == ['opentelemetry']\n" + CREATE_AND_PROCESS)
    assert out == {"stored": [], "otel": []}


def test_installed_but_without_a_provider_jobs_carry_no_context() -> None:
    """The application imported opentelemetry but set no tracer provider: the job stores no
    context, and kueatomic imports nothing of opentelemetry beyond what the application and
    redis-py (its own observability module, when opentelemetry is installed) did."""
    baseline = "import opentelemetry.trace, redis, redis.asyncio, fakeredis\n"
    before = _python(baseline + "import json, sys\n"
                     "print(json.dumps(sorted(m for m in sys.modules "
                     "if m.split('.')[0] == 'opentelemetry')))")
    out = _python(baseline + CREATE_AND_PROCESS)
    assert out == {"stored": [], "otel": before}
