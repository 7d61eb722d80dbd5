"""The asyncio client: ``AsyncQueue`` and its ``Job``, the same API as the sync ones with
``await``, over ``redis.asyncio``. The plans are the sync client's (``kueatomic.ops``); only
the driver that sends a batch differs. ``kueatomic.aio.Queue`` adds Kue's worker shorthand."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import redis

from . import lifecycle, ops, presence, repeats, scripts
from .coalesce import Pending, hand_out
from .codec import format_log
from .connection import ASYNC
from .driver import (
    CONNECTION_ERRORS,
    RESEND_ROUNDS,
    Replication,
    closed_socket,
    command_of,
    connection_failed,
    direct,
    merge_resent,
    needs_wait,
    not_replicated,
    packed,
    reraise_refused,
    settle,
    to_resend,
    unavailable,
)
from .errors import JobNotFound, KueError
from .events import Listener, call_on
from .job import (
    NOT_FINISHED,
    REMOVE_GRACE_S,
    JobBase,
    ended_outcome,
    final_event,
    finished_outcome,
    wait_timeout,
)
from .ops import Batch, Plan, Request, T, drive_async
from .queue_base import J, QueueBase, parse_job_id
from .routing import AsyncRoutedDriver, clients_of
from .states import parse_state


def wake_up(future: asyncio.Future[Any]) -> None:
    """Resolve a waiting caller's future, from any thread (its loop may be another; on the
    caller's own loop directly, as call_soon_threadsafe costs a wake-up write per caller)."""
    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    loop = future.get_loop()
    try:
        own = asyncio.get_running_loop() is loop
    except RuntimeError:
        own = False
    if own:
        resolve()
    else:
        loop.call_soon_threadsafe(resolve)


class AsyncDriver:
    """Runs plans on one ``redis.asyncio.Redis`` client; see ``kueatomic.driver``."""

    def __init__(self, client: Any, where: str, replication: Replication | None = None) -> None:
        self.client = client
        self.where = where
        self.replication = replication

    async def run(self, plan: Plan[T]) -> T:
        return await drive_async(plan, self.execute)

    async def execute(self, batch: Batch) -> list[Any]:
        try:
            if self.replication is not None and needs_wait(batch):
                return await self._stream(iter(batch), waited=True)
            if not isinstance(batch, Sequence) or direct(batch):
                return await self._stream(iter(batch))
            if len(batch) == 1:
                return [await self._one(batch[0])]
            return await self._many(batch)
        except CONNECTION_ERRORS as exc:
            raise connection_failed(self.client, self.where, exc) from exc
        except redis.ResponseError as exc:  # raised by connecting: SELECT of a missing database
            reraise_refused(self.client, self.where, exc)
            raise
        except ValueError as exc:
            if not closed_socket(exc):
                raise
            raise unavailable(self.client, self.where, exc) from exc

    async def _one(self, request: Request) -> Any:
        """``SyncDriver._one``: a lone read."""
        try:
            reply = await self.client.execute_command(*command_of(request))
        except redis.ResponseError as exc:
            reraise_refused(self.client, self.where, exc)
            reply = exc
        return (await self._settle([request], [reply]))[0]

    async def _many(self, batch: Sequence[Request]) -> list[Any]:
        if not batch:
            return []
        return await self._settle(batch, await self._pipelined(batch))

    async def _pipelined(self, batch: Sequence[Request]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for request in batch:
            pipe.execute_command(*command_of(request))
        return list(await pipe.execute(raise_on_error=False))

    async def _stream(self, requests: Iterator[Request], waited: bool = False) -> list[Any]:
        """``SyncDriver._stream``: send each request as soon as it is built, read at the end
        (``waited``: then WAIT, on the same connection)."""
        acks: list[Any] | None = [] if waited else None
        sent, replies = await self._send(requests, acks)
        settled = await self._settle(sent, replies, acks)
        if acks is not None and self.replication is not None:
            error = not_replicated(acks, self.replication, self.where)
            if error is not None:
                await self.client.connection_pool.disconnect(inuse_connections=False)  # ask again
                raise error
        return settled

    async def _send(self, requests: Iterator[Request],
                    acks: list[Any] | None = None) -> tuple[list[Request], list[Any]]:
        """``SyncDriver._send``: one pooled connection, never resent."""
        pool = getattr(self.client, "connection_pool", None)
        if pool is None:
            batch = list(requests)
            return batch, await self._pipelined(batch)
        conn = await pool.get_connection()
        sent: list[Request] = []
        replies: list[Any] = []
        try:
            for request in requests:
                await conn.send_packed_command(packed(conn, command_of(request)))
                sent.append(request)
            if acks is not None and self.replication is not None:
                await conn.send_packed_command(packed(conn, self.replication.request().command))
            for _ in sent:
                try:
                    replies.append(await conn.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
            if acks is not None and self.replication is not None:
                try:
                    acks.append(await conn.read_response())
                except redis.ResponseError as exc:
                    acks.append(exc)
        except BaseException:
            await conn.disconnect()  # replies left unread would reach the next user
            raise
        finally:
            await pool.release(conn)
        return sent, replies

    async def _settle(self, batch: Sequence[Request], replies: list[Any],
                      acks: list[Any] | None = None) -> list[Any]:
        """``SyncDriver._settle``: refused requests sent again (``driver.to_resend``)."""
        for _ in range(RESEND_ROUNDS):
            again_at, load = to_resend(batch, replies, self.client)
            if not again_at:
                break
            for name in load:
                await self.client.script_load(scripts.get(name).text)
            _, again = await self._send(iter([batch[i] for i in again_at]), acks)
            replies = merge_resent(replies, again_at, again)
        return [settle(reply) for reply in replies]

    async def load(self, request: Request) -> None:
        if isinstance(request, ops.Call):
            await self.client.script_load(scripts.get(request.script).text)

    async def load_all(self) -> None:
        try:
            for script in scripts.registry().values():
                await self.client.script_load(script.text)
        except CONNECTION_ERRORS as exc:
            raise connection_failed(self.client, self.where, exc) from exc
        except redis.ResponseError as exc:
            reraise_refused(self.client, self.where, exc)
            raise


class Job(JobBase):
    """A job bound to an asyncio ``Queue``; I/O methods are coroutines."""

    queue: AsyncQueue

    async def save(self) -> Job:
        return await self.queue._save(self)

    async def update(self) -> Job:
        self._require_id()
        return await self.queue._save(self)

    async def remove(self) -> Job:
        await self.queue._run(ops.remove(*self._located()))
        return self

    async def cancel(self) -> Job:
        """See ``kueatomic.Job.cancel``."""
        return await self.queue.cancel(self._require_id(), into=self)

    async def log(self, message: Any, *args: Any) -> Job:
        line = format_log(message, *args)
        await self.queue._run(ops.add_log(*self._located(), [line]))
        return self

    async def logs(self) -> list[str]:
        return await self.queue._run(ops.logs(*self._located()))

    async def progress(self, completed: float, total: float, data: Any = None) -> Job:
        args = self.queue._progress_args(completed, total, data)
        keys, job_id = self._located()
        plan = ops.set_progress(keys, job_id, *args)
        self.progress_percent = await self.queue._run(plan)
        self.progress_data = data
        return self

    async def set_state(self, state: str, *, job_method: bool = False) -> Job:
        """Kue's ``job.state(state)``; ``job_method`` as in ``ops.set_state``."""
        plan = ops.set_state(*self._located(), state, job_method)
        await self.queue._run(plan)
        self.state = state
        return self

    async def set_priority(self, level: str | int) -> Job:
        self.priority(level)
        plan = ops.set_priority(*self._located(), self.priority_value)
        await self.queue._run(plan)
        return self

    async def refresh(self) -> Job:
        return await self.queue.get_job(self._require_id(), into=self)

    async def wait(self, timeout: float | None = None) -> Any:
        """``kueatomic.Job.wait``, awaited: the result, or ``JobFailed`` / ``JobNotFound`` /
        ``TimeoutError``."""
        job_id = self._require_id()
        loop = asyncio.get_running_loop()
        ended: list[tuple[str, tuple[Any, ...]]] = []
        first, final = loop.create_future(), loop.create_future()

        def notify(event: str, args: tuple[Any, ...]) -> None:  # on the events thread
            def resolve() -> None:
                ended.append((event, args))
                for future in (first,) if event == "remove" else (first, final):
                    if not future.done():
                        future.set_result(None)
            call_on(loop, resolve)

        self.queue.events.watch_end(job_id, notify)
        try:
            await asyncio.to_thread(self.queue._ensure_subscriber)
            current = await self.queue.get_job(job_id)
            outcome = finished_outcome(current)
            if outcome is not NOT_FINISHED:
                return outcome
            try:
                await asyncio.wait_for(first, timeout)
            except TimeoutError:
                raise wait_timeout(job_id, timeout) from None
            with contextlib.suppress(TimeoutError):  # a remove may be followed by its complete
                await asyncio.wait_for(asyncio.shield(final), REMOVE_GRACE_S)
            event, args = final_event(ended)
            try:
                after: Job | None = await self.queue.get_job(job_id)
            except JobNotFound:
                after = None
            return ended_outcome(job_id, event, args, after)
        finally:
            self.queue.events.unwatch_end(job_id, notify)

    async def inactive(self) -> Job:
        return await self.set_state("inactive")

    async def active(self) -> Job:
        return await self.set_state("active")

    async def complete(self) -> Job:
        return await self.set_state("complete", job_method=True)

    async def failed(self) -> Job:
        return await self.set_state("failed", job_method=True)

    async def delayed(self) -> Job:
        return await self.set_state("delayed")


class AsyncQueue(QueueBase):
    """The sync queue's producing and reading side for asyncio; same options, every I/O
    method awaited. Event listeners run on the event loop that was running when the first
    was added (``async def`` listeners are scheduled as tasks there)."""

    job_class = Job

    def _connect(self) -> None:
        self._creates_lock = threading.Lock()
        self.driver: AsyncDriver | AsyncRoutedDriver = self.new_driver(
            ASYNC, AsyncDriver, AsyncRoutedDriver, primary=True)
        self.client = self.driver.client
        self._listener_loop: asyncio.AbstractEventLoop | None = None

    def on(self, event: str, listener: Listener | None = None) -> Any:
        self._bind_listeners()
        return super().on(event, listener)

    def on_job(self, job: Any, event: str, listener: Listener | None = None) -> Any:
        self._bind_listeners()
        return super().on_job(job, event, listener)

    def _bind_listeners(self) -> None:
        """Run listeners on the running loop (events arrive on the subscriber's thread)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop is self._listener_loop:
            return
        self._listener_loop = loop
        hub = self.events

        def call(fn: Listener, args: tuple[Any, ...]) -> None:
            def invoke() -> None:
                try:
                    result = fn(*args)
                    if inspect.isawaitable(result):
                        asyncio.ensure_future(result)
                except Exception as exc:  # noqa: BLE001 - a listener's bug
                    hub.emit("error", exc)

            call_on(loop, invoke)

        hub.set_caller(call)

    async def _run(self, plan: Plan[T]) -> T:
        if self._layout_unchecked:
            await self.driver.run(self.plans.check_format(self.keys))
            self._layout_unchecked = False
        return await self.driver.run(plan)

    def create(self, job_type: str, data: Any = None) -> Job:
        return Job(self, job_type, data)

    async def _save(self, job: J) -> J:
        if self.test_mode.record(job):
            return job
        if job.id is None:
            job.id = await self._create_one(self.create_block(job))
            self.saved_new(job)
        else:
            call = ops.job_call(self.keys.for_job(job.id), "update_job", job.id, *job.encode_update())
            job.state = await self._run(ops.single(call))
        return job

    async def _create_one(self, block: Any) -> int:
        """``SyncQueue._create_one``: concurrent callers share create calls. The bookkeeping
        is under a thread lock (never held across an await), and a waiting caller sleeps on a
        future of its own loop, so callers on several loops mix safely."""
        if not self.coalesce_creates:
            (job_id,) = await self._run(self.plans.create(self.keys, [block]))
            return int(job_id)
        with self._creates_lock:
            entry = self._creates.arrive(block)
            if not entry.ready():
                entry.wake = asyncio.get_running_loop().create_future()
        if entry.wake is not None:
            await entry.wake
        if not entry.done:  # this caller sends everything that waited
            with self._creates_lock:
                batch = self._creates.take()
            try:
                await self._send_creates(batch)
            finally:
                with self._creates_lock:
                    woken = self._creates.finished(batch)
                for other in woken:
                    if other is not entry and other.wake is not None:
                        wake_up(other.wake)
        return entry.outcome()

    async def _send_creates(self, batch: list[Pending]) -> None:
        try:
            plan = self.plans.create(self.keys, [e.block for e in batch])
            ids, error = await self._run(plan), None
        except BaseException as exc:  # noqa: BLE001 - every caller gets it (a cancellation too)
            ids, error = None, exc
        if hand_out(batch, ids, error):
            for entry in batch:
                await self._send_creates([entry])
        elif error is not None and not isinstance(error, Exception):
            raise error

    async def create_bulk(self, specs: list[Any]) -> list[Job | KueError]:
        results, todo, encoded = self.prepare_bulk(specs)
        ids = await self._run(self.plans.create(self.keys, encoded))
        return self.finish_bulk(results, todo, ids)

    async def get_job(self, job_id: int | str, into: Job | None = None) -> Job:
        number = parse_job_id(job_id)
        fields = await self._run(ops.get_hash(self.keys.for_job(number), number))
        if fields is None:
            raise JobNotFound(f'job "{job_id}" doesnt exist')
        return into.load_fields(number, fields) if into else Job.from_hash(self, number, fields)

    def _jobs(self, pairs: list[tuple[int, dict[str, str]]]) -> list[Job]:
        return [Job.from_hash(self, i, f) for i, f in pairs]

    async def card(self, state: str, job_type: str | None = None) -> int:
        return await self._run(self.plans.card(self.keys, parse_state(state), job_type))

    async def counts(self, job_type: str | None = None) -> dict[str, int]:
        return await self._run(self.plans.counts(self.keys, job_type))

    async def inactive_count(self, job_type: str | None = None) -> int:
        return await self.card("inactive", job_type)

    async def active_count(self, job_type: str | None = None) -> int:
        return await self.card("active", job_type)

    async def complete_count(self, job_type: str | None = None) -> int:
        return await self.card("complete", job_type)

    async def failed_count(self, job_type: str | None = None) -> int:
        return await self.card("failed", job_type)

    async def delayed_count(self, job_type: str | None = None) -> int:
        return await self.card("delayed", job_type)

    async def state(self, state: str, job_type: str | None = None) -> list[int]:
        return await self._run(self.plans.state_ids(self.keys, parse_state(state), job_type))

    async def inactive(self, job_type: str | None = None) -> list[int]:
        return await self.state("inactive", job_type)

    async def active(self, job_type: str | None = None) -> list[int]:
        return await self.state("active", job_type)

    async def complete(self, job_type: str | None = None) -> list[int]:
        return await self.state("complete", job_type)

    async def failed(self, job_type: str | None = None) -> list[int]:
        return await self.state("failed", job_type)

    async def delayed(self, job_type: str | None = None) -> list[int]:
        return await self.state("delayed", job_type)

    async def range(self, start: int, stop: int, order: str = "asc") -> list[Job]:
        plan = self.plans.ranged(self.keys, None, None, start, stop, order)
        return self._jobs(await self._run(plan))

    async def range_by_state(self, state: str, start: int, stop: int, order: str = "asc") -> list[Job]:
        plan = self.plans.ranged(self.keys, parse_state(state), None, start, stop, order)
        return self._jobs(await self._run(plan))

    async def range_by_type(
        self, job_type: str, state: str, start: int, stop: int, order: str = "asc"
    ) -> list[Job]:
        plan = self.plans.ranged(self.keys, parse_state(state), job_type, start, stop, order)
        return self._jobs(await self._run(plan))

    async def types(self) -> list[str]:
        return await self._run(self.plans.types(self.keys))

    async def workers(self) -> list[dict[str, Any]]:
        """As ``kueatomic.Queue.workers``: the live workers (kueatomic/presence.py)."""
        return await self._run(presence.workers(self.keys))

    async def activity(self, minutes: int = 60) -> list[dict[str, Any]]:
        """As ``kueatomic.Queue.activity``: the last ``minutes`` minutes' counts."""
        return await self._run(presence.activity(self.keys, minutes))

    async def work_time(self) -> int | None:
        return await self._run(self.plans.work_time(self.keys))

    async def search(self, query: str) -> list[str]:
        return await self._run(self.plans.search(self.keys, query))

    async def job_logs(self, job_id: int | str) -> list[str]:
        number = parse_job_id(job_id)
        return await self._run(ops.logs(self.keys.for_job(number), number))

    # --- repeatable jobs (kueatomic/repeats.py) ------------------------------------------
    async def repeat(self, job_type: str, every: int | None = None, cron: str | None = None,
                     tz: str = "UTC", data: Any = None, name: str | None = None,
                     options: dict[str, Any] | None = None,
                     catch_up_ms: int = repeats.DEFAULT_CATCH_UP_MS) -> dict[str, Any]:
        """As ``kueatomic.Queue.repeat``."""
        return await self._run(self.repeat_plan(job_type, every, cron, tz, data, name, options,
                                                catch_up_ms))

    async def repeats(self) -> list[dict[str, Any]]:
        return await self._run(repeats.listing(self.keys))

    async def remove_repeat(self, name: str) -> bool:
        return await self._run(repeats.remove(self.keys, name))

    # --- ending and tidying jobs, pausing types (kueatomic/lifecycle.py) -------------------
    async def cancel(self, job_id: int | str, into: Job | None = None) -> Job:
        """Cancel a job that has not ended (see ``Job.cancel``); the job after it."""
        number = parse_job_id(job_id)
        await self._run(lifecycle.cancel(self.keys, number))
        return await self.get_job(number, into=into)

    async def clean(self, state: str, older_than_ms: int = 0, limit: int = 1000,
              job_type: str | None = None) -> int:
        """Remove up to ``limit`` jobs in ``state`` (inactive, delayed, complete, failed) that
        entered it at least ``older_than_ms`` ago, of ``job_type`` or of every type; how many
        went. Runs in short script calls, however many jobs the state holds."""
        return await self._run(lifecycle.clean(self.keys, state, older_than_ms, limit, job_type))

    async def retry_failed(self, job_type: str | None = None, limit: int = 1000) -> int:
        """Put up to ``limit`` failed jobs back to inactive (the dashboard's restart, in
        bulk); how many went."""
        return await self._run(lifecycle.retry_failed(self.keys, job_type, limit))

    async def pause_type(self, job_type: str) -> bool:
        """Stop every worker of the queue from starting jobs of ``job_type`` (running ones
        finish) until ``resume_type``; whether it was running before."""
        return await self._run(lifecycle.set_paused(self.keys, job_type, True))

    async def resume_type(self, job_type: str) -> bool:
        return await self._run(lifecycle.set_paused(self.keys, job_type, False))

    async def paused_types(self) -> list[str]:
        return await self._run(lifecycle.paused_types(self.keys))

    async def dependents(self, job_id: int | str) -> list[int]:
        """Ids of the jobs created with ``depends_on`` this job."""
        return await self._run(lifecycle.dependents(self.keys, parse_job_id(job_id)))

    async def check_format(self) -> int:
        """The queue's data-format version (``<prefix>:meta``, recorded on first use); raises
        ``IncompatibleFormat`` when it is newer than this kueatomic reads."""
        return await self._run(self.plans.check_format(self.keys))

    async def ping(self) -> bool:
        await self._run(ops.single(ops.Read(("PING",))))
        return True

    async def close(self) -> None:
        self._stop_subscriber()
        for client in clients_of(self.driver):
            await client.aclose()


__all__ = ["AsyncDriver", "AsyncQueue", "Job"]
