"""``SyncQueue``: the sync queue's producing and reading side (Kue's createQueue without the
workers). ``kueatomic.Queue`` adds Kue's worker shorthand on top; ``kueatomic.Worker`` uses this
class, so the worker never needs the class that refers to it.

Every write runs one Lua script (atomic); reads go straight to Redis. The asyncio twin is
``kueatomic.async_queue.AsyncQueue``; both run the plans of ``kueatomic.ops``.
"""

from __future__ import annotations

import threading
from typing import Any

from . import lifecycle, ops, presence, repeats
from .coalesce import Pending, hand_out
from .connection import SYNC
from .driver import SyncDriver
from .errors import JobNotFound, KueError
from .job import Job
from .ops import Plan, T
from .queue_base import J, QueueBase, parse_job_id
from .routing import SyncRoutedDriver, clients_of
from .states import parse_state


class SyncQueue(QueueBase):
    """A Kue queue on Redis, for producing and reading (see ``kueatomic.Queue``).

    ``redis`` is a URL (``redis://``, ``rediss://``, ``unix://``, ``memory://`` for the
    embedded engine), a dict of host/port/password/db/unix_socket_path/ssl options, a
    ``redis.Redis`` or a ``kueatomic.connection.Connection``; ``client_factory`` returns a
    client (for example a Sentinel master)."""

    job_class = Job

    def _connect(self) -> None:
        self._creates_lock = threading.Lock()
        self.driver: SyncDriver | SyncRoutedDriver = self.new_driver(
            SYNC, SyncDriver, SyncRoutedDriver, primary=True)
        self.client = self.driver.client

    def _run(self, plan: Plan[T]) -> T:
        if self._layout_unchecked:
            self.driver.run(self.plans.check_format(self.keys))
            self._layout_unchecked = False
        return self.driver.run(plan)

    def create(self, job_type: str, data: Any = None) -> Job:
        return Job(self, job_type, data)

    def _save(self, job: J) -> J:
        if self.test_mode.record(job):
            return job
        if job.id is None:
            job.id = self._create_one(self.create_block(job))
            self.saved_new(job)
        else:
            call = ops.job_call(self.keys.for_job(job.id), "update_job", job.id, *job.encode_update())
            job.state = self._run(ops.single(call))
        return job

    def _create_one(self, block: Any) -> int:
        """One new job's id; concurrent callers share create calls (kueatomic/coalesce.py)."""
        if not self.coalesce_creates:
            (job_id,) = self._run(self.plans.create(self.keys, [block]))
            return int(job_id)
        with self._creates_lock:
            entry = self._creates.arrive(block)
            if not entry.ready():
                # Released once, when it is done or leads. A held lock rather than an Event:
                # acquire() waits in C, without the Condition an Event builds per wait.
                entry.wake = threading.Lock()
                entry.wake.acquire()
        if entry.wake is not None:
            entry.wake.acquire()
        if not entry.done:  # this caller sends everything that waited
            with self._creates_lock:
                batch = self._creates.take()
            try:
                self._send_creates(batch)
            finally:
                with self._creates_lock:
                    woken = self._creates.finished(batch)
                for other in woken:  # only the callers of this call, and the next leader
                    if other is not entry and other.wake is not None:
                        other.wake.release()
        return entry.outcome()

    def _send_creates(self, batch: list[Pending]) -> None:
        try:
            ids, error = self._run(self.plans.create(self.keys, [e.block for e in batch])), None
        except BaseException as exc:  # noqa: BLE001 - every caller gets it (KeyboardInterrupt too)
            ids, error = None, exc
        if hand_out(batch, ids, error):
            for entry in batch:
                self._send_creates([entry])
        elif error is not None and not isinstance(error, Exception):
            raise error

    def create_bulk(self, specs: list[Any]) -> list[Job | KueError]:
        """Create many jobs in one round trip. Each element is a job from ``create()`` or a
        ``{"type", "data", "options"}`` dict; the answer has, in order, the saved job or the
        ``KueError`` that element raised (the others are still created)."""
        results, todo, encoded = self.prepare_bulk(specs)
        ids = self._run(self.plans.create(self.keys, encoded))
        return self.finish_bulk(results, todo, ids)

    def get_job(self, job_id: int | str, into: Job | None = None) -> Job:
        """Load a job; raises ``JobNotFound`` for an unknown id."""
        number = parse_job_id(job_id)
        fields = self._run(ops.get_hash(self.keys.for_job(number), number))
        if fields is None:
            raise JobNotFound(f'job "{job_id}" doesnt exist')
        return into.load_fields(number, fields) if into else Job.from_hash(self, number, fields)

    def _jobs(self, pairs: list[tuple[int, dict[str, str]]]) -> list[Job]:
        return [Job.from_hash(self, i, f) for i, f in pairs]

    # --- counts and ids -------------------------------------------------------------------
    def card(self, state: str, job_type: str | None = None) -> int:
        count: int = self._run(self.plans.card(self.keys, parse_state(state), job_type))
        return count

    def counts(self, job_type: str | None = None) -> dict[str, int]:
        """Every state's count in one round trip."""
        return self._run(self.plans.counts(self.keys, job_type))

    def inactive_count(self, job_type: str | None = None) -> int:
        return self.card("inactive", job_type)

    def active_count(self, job_type: str | None = None) -> int:
        return self.card("active", job_type)

    def complete_count(self, job_type: str | None = None) -> int:
        return self.card("complete", job_type)

    def failed_count(self, job_type: str | None = None) -> int:
        return self.card("failed", job_type)

    def delayed_count(self, job_type: str | None = None) -> int:
        return self.card("delayed", job_type)

    def state(self, state: str, job_type: str | None = None) -> list[int]:
        """Ids in a state, in zset order (priority, then FIFO)."""
        return self._run(self.plans.state_ids(self.keys, parse_state(state), job_type))

    def inactive(self, job_type: str | None = None) -> list[int]:
        return self.state("inactive", job_type)

    def active(self, job_type: str | None = None) -> list[int]:
        return self.state("active", job_type)

    def complete(self, job_type: str | None = None) -> list[int]:
        return self.state("complete", job_type)

    def failed(self, job_type: str | None = None) -> list[int]:
        return self.state("failed", job_type)

    def delayed(self, job_type: str | None = None) -> list[int]:
        return self.state("delayed", job_type)

    # --- ranges (Kue's ordering: slice by score, then sort the slice by id) ---------------
    def range(self, start: int, stop: int, order: str = "asc") -> list[Job]:
        return self._jobs(self._run(self.plans.ranged(self.keys, None, None, start, stop, order)))

    def range_by_state(self, state: str, start: int, stop: int, order: str = "asc") -> list[Job]:
        plan = self.plans.ranged(self.keys, parse_state(state), None, start, stop, order)
        return self._jobs(self._run(plan))

    def range_by_type(
        self, job_type: str, state: str, start: int, stop: int, order: str = "asc"
    ) -> list[Job]:
        plan = self.plans.ranged(self.keys, parse_state(state), job_type, start, stop, order)
        return self._jobs(self._run(plan))

    def types(self) -> list[str]:
        return self._run(self.plans.types(self.keys))

    # --- the workers registry and the activity series (kueatomic/presence.py) -------------
    def workers(self) -> list[dict[str, Any]]:
        """The queue's live workers, one dict per worker process (its heartbeat keeps the
        entry; a clean stop removes it, a killed worker's expires with its ttl): ``id``,
        ``host``, ``pid``, ``types``, ``slots``, ``busy``, ``started_at`` and
        ``heartbeat_at`` (ms, the Redis clock)."""
        return self._run(presence.workers(self.keys))

    def activity(self, minutes: int = 60) -> list[dict[str, Any]]:
        """The last ``minutes`` (1..1440) minutes, oldest first, the current one last: a
        dict each of ``minute`` (its start, ms), ``completed``, ``failed``, ``wait_ms_avg``
        and ``run_ms_avg`` (None without a sample), as the workers' heartbeats counted them."""
        return self._run(presence.activity(self.keys, minutes))

    def work_time(self) -> int | None:
        """Total ms spent by completed jobs (``<prefix>:stats:work-time``), None if none yet."""
        total: int | None = self._run(self.plans.work_time(self.keys))
        return total

    def search(self, query: str) -> list[str]:
        """Ids (strings, best match first) of jobs whose indexed text has every query word."""
        return self._run(self.plans.search(self.keys, query))

    def job_logs(self, job_id: int | str) -> list[str]:
        number = parse_job_id(job_id)
        return self._run(ops.logs(self.keys.for_job(number), number))

    # --- repeatable jobs (kueatomic/repeats.py) ------------------------------------------
    def repeat(self, job_type: str, every: int | None = None, cron: str | None = None,
               tz: str = "UTC", data: Any = None, name: str | None = None,
               options: dict[str, Any] | None = None,
               catch_up_ms: int = repeats.DEFAULT_CATCH_UP_MS) -> dict[str, Any]:
        """Create a ``job_type`` job every ``every`` ms (ticks at multiples of it since the
        epoch, >= 1000) or at each tick of ``cron`` in time zone ``tz``, with ``data`` and
        job ``options`` (priority, attempts, backoff, ttl, delay, remove_on_complete).
        Workers' upkeep fires it: exactly one job per tick, whatever the number of
        processes; ticks missed while no worker ran get their job when at most
        ``catch_up_ms`` old. The same ``name`` (default: from type and schedule) replaces
        the repeat; the same schedule again keeps its next tick. Returns it as ``repeats()``
        lists it. Bad arguments raise ``InvalidArgument`` and write nothing."""
        return self._run(self.repeat_plan(job_type, every, cron, tz, data, name, options,
                                          catch_up_ms))

    def repeats(self) -> list[dict[str, Any]]:
        """Every repeatable job, by name: name, type, every, cron, tz, data, options,
        catch_up_ms, next_at, last_at, created_at (times in ms)."""
        return self._run(repeats.listing(self.keys))

    def remove_repeat(self, name: str) -> bool:
        """Stop a repeatable job (jobs it created stay); False if there was none."""
        return self._run(repeats.remove(self.keys, name))

    # --- ending and tidying jobs, pausing types (kueatomic/lifecycle.py) -------------------
    def cancel(self, job_id: int | str, into: Job | None = None) -> Job:
        """Cancel a job that has not ended (see ``Job.cancel``); the job after it."""
        number = parse_job_id(job_id)
        self._run(lifecycle.cancel(self.keys, number))
        return self.get_job(number, into=into)

    def clean(self, state: str, older_than_ms: int = 0, limit: int = 1000,
              job_type: str | None = None) -> int:
        """Remove up to ``limit`` jobs in ``state`` (inactive, delayed, complete, failed) that
        entered it at least ``older_than_ms`` ago, of ``job_type`` or of every type; how many
        went. Runs in short script calls, however many jobs the state holds."""
        return self._run(lifecycle.clean(self.keys, state, older_than_ms, limit, job_type))

    def retry_failed(self, job_type: str | None = None, limit: int = 1000) -> int:
        """Put up to ``limit`` failed jobs back to inactive (the dashboard's restart, in
        bulk); how many went."""
        return self._run(lifecycle.retry_failed(self.keys, job_type, limit))

    def pause_type(self, job_type: str) -> bool:
        """Stop every worker of the queue from starting jobs of ``job_type`` (running ones
        finish) until ``resume_type``; whether it was running before."""
        return self._run(lifecycle.set_paused(self.keys, job_type, True))

    def resume_type(self, job_type: str) -> bool:
        return self._run(lifecycle.set_paused(self.keys, job_type, False))

    def paused_types(self) -> list[str]:
        return self._run(lifecycle.paused_types(self.keys))

    def dependents(self, job_id: int | str) -> list[int]:
        """Ids of the jobs created with ``depends_on`` this job."""
        return self._run(lifecycle.dependents(self.keys, parse_job_id(job_id)))

    def check_format(self) -> int:
        """The queue's data-format version (``<prefix>:meta``, recorded on first use); raises
        ``IncompatibleFormat`` when it is newer than this kueatomic reads."""
        stored: int = self._run(self.plans.check_format(self.keys))
        return stored

    def ping(self) -> bool:
        """Raise ``RedisUnavailable`` if Redis cannot be reached."""
        self._run(ops.single(ops.Read(("PING",))))
        return True

    def close(self) -> None:
        self._stop_subscriber()
        if isinstance(self.driver, SyncRoutedDriver):
            self.driver.close()
        for client in clients_of(self.driver):
            client.close()
