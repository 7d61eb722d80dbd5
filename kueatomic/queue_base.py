"""What the sync and the asyncio Queue share: configuration, validation, bulk parsing, test
mode and event listeners. Nothing here does I/O except the events subscriber's thread."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from . import ops, repeats, tracing
from . import shards as shard_plans
from .cluster import require_hash_tag
from .coalesce import Coalescer
from .codec import dumps
from .connection import Connection
from .driver import Replication
from .errors import ConfigError, InvalidArgument, JobNotFound, KueError
from .events import EventHub, Listener, Subscriber
from .job import JobBase
from .keyspace import Keys, check_prefix
from .shards import ShardedKeys

DEFAULT_MAX_PAYLOAD = 1024 * 1024
J = TypeVar("J", bound=JobBase)
Q = TypeVar("Q", bound="QueueBase")


def replication(replicas: Any, timeout_ms: Any) -> Replication | None:
    """``wait_replicas`` / ``wait_timeout_ms``: None when no replica need acknowledge."""
    for name, value in (("wait_replicas", replicas), ("wait_timeout_ms", timeout_ms)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be an integer >= 0, not {value!r}")
    if timeout_ms == 0 and replicas:
        raise ConfigError("wait_timeout_ms=0 would wait forever for the replicas; give a limit")
    return Replication(replicas, timeout_ms) if replicas else None


def check_rate_limit(rate: Any) -> tuple[int, int] | None:
    """``rate_limit=(limit, window_ms)``: at most ``limit`` jobs started per ``window_ms``."""
    if rate is None:
        return None
    try:
        limit, window_ms = rate
    except (TypeError, ValueError):
        raise InvalidArgument(f"rate_limit must be (limit, window_ms), not {rate!r}") from None
    for name, value in (("limit", limit), ("window_ms", window_ms)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**53 - 1:
            raise InvalidArgument(f"rate_limit {name} must be an integer >= 1, not {value!r}")
    return limit, window_ms


def check_rate_limits(limits: Any) -> dict[str, tuple[int, int]]:
    """``Queue(rate_limits={"email": (100, 1000)})``: a rate limit per job type."""
    if limits is None:
        return {}
    if not isinstance(limits, dict) or not all(isinstance(t, str) and t for t in limits):
        raise InvalidArgument(f"rate_limits must map job types to (limit, window_ms), not {limits!r}")
    return {t: rate for t, r in limits.items() if (rate := check_rate_limit(r)) is not None}


def parse_job_id(value: int | str) -> int:
    """A job id from an int or its text; JobNotFound for anything else (Kue's message)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise JobNotFound(f'job "{value}" doesnt exist') from None
    if number < 1:
        raise JobNotFound(f'job "{value}" doesnt exist')
    return number


class TestMode:
    """Kue's queue.testMode: saved jobs are recorded in ``jobs`` instead of written to Redis
    (``enter(process=True)`` records them and also saves them for real)."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.active = False
        self.process = False
        self.jobs: list[Any] = []
        self._ids = itertools.count(1)

    def enter(self, process: bool = False) -> None:
        self.active = True
        self.process = process

    def exit(self) -> None:
        self.active = False
        self.process = False

    def clear(self) -> None:
        self.jobs.clear()

    def record(self, job: JobBase) -> bool:
        """Record a job being saved; True when the real save must be skipped."""
        if not self.active:
            return False
        self.jobs.append(job)
        if self.process:
            return False
        if job.id is None:
            job.id = str(next(self._ids))  # type: ignore[assignment]  # Kue: lodash uniqueId
            job.state = "delayed" if job.delay_ms else "inactive"
        return True


# Called with (prefix, type, count) for jobs this process created (kueatomic.metrics adds
# its counter here); empty unless metrics are used.
CREATED_HOOKS: list[Callable[[str, str, int], None]] = []


class QueueBase:
    """Configuration shared by ``kueatomic.Queue`` and ``kueatomic.aio.Queue``."""

    job_class: type[JobBase] = JobBase

    def __init__(
        self,
        prefix: str = "q",
        redis: Any = None,
        *,
        client_factory: Callable[[], Any] | None = None,
        disable_search: bool = True,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
        shards: int | None = None,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        coalesce_creates: bool = True,
        rate_limits: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        check_prefix(prefix)
        # Per type (limit, window_ms): what every worker of this queue starts at most, unless
        # its process() call gives its own (lua/activate_jobs.lua counts it in Redis).
        self.rate_limits = check_rate_limits(rate_limits)
        self.replication = replication(wait_replicas, wait_timeout_ms)
        # Concurrent save() calls of new jobs share create calls (kueatomic/coalesce.py).
        self.coalesce_creates = bool(coalesce_creates)
        self._creates = Coalescer()
        self.connection = Connection(redis, client_factory)
        on_cluster = self.connection.route is not None
        # The plans the queue runs: one layout's (kueatomic.ops), or merged over the shards.
        self.plans: Any = ops
        self.keys: Any
        if shards is not None:
            self.keys = ShardedKeys(prefix, shards, cluster=on_cluster)  # hash-tagged names
            self.plans = shard_plans
        else:
            if on_cluster:
                require_hash_tag(prefix)
            self.keys = Keys(prefix, cluster=on_cluster)
        self._layout_unchecked = shards is not None  # N is recorded and checked on first use
        self.prefix = prefix
        self.disable_search = disable_search
        self.max_payload_bytes = max_payload_bytes
        self.test_mode = TestMode()
        self.events = EventHub()
        self._subscriber: Subscriber | None = None
        self._subscriber_lock = threading.Lock()
        self._connect()

    def _connect(self) -> None:
        """Set ``self.client`` and ``self.driver`` (sync or asyncio) from ``self.connection``."""
        raise NotImplementedError

    @property
    def shards(self) -> int | None:
        """How many shards the queue is spread over; None for a queue of one layout."""
        return self.keys.count if isinstance(self.keys, ShardedKeys) else None

    def shard_connections(self) -> dict[str, Connection]:
        """Each shard prefix's connection: on a cluster each follows its own slot."""
        return {keys.prefix: self.connection.with_new_route() for keys in self.keys.shards}

    def new_driver(self, kind: str, driver_class: Any, routed_class: Any, *,
                   primary: bool = False, socket_timeout: float | None = None) -> Any:
        """A driver of ``kind`` for this queue (``primary``: on the queue's own client).
        A sharded queue's is a routed driver over one driver per shard on a cluster (each
        following its own slot), or over one shared driver on a single Redis."""
        def make(connection: Connection) -> Any:
            client = connection.client(kind, primary=primary, socket_timeout=socket_timeout)
            return driver_class(client, connection.where, self.replication)

        own = make(self.connection)
        if self.shards is None:
            return own
        if self.connection.route is None:
            drivers = {keys.prefix: own for keys in self.keys.shards}
        else:
            drivers = {prefix: make(c) for prefix, c in self.shard_connections().items()}
        return routed_class(drivers, self.connection.where, own.client)

    def like(self, cls: type[Q]) -> Q:
        """A queue of class ``cls`` (the other kind) on the same Redis, prefix and options."""
        wait = self.replication or Replication(0, 1000)
        return cls(self.prefix, self.connection, disable_search=self.disable_search,
                   max_payload_bytes=self.max_payload_bytes, shards=self.shards,
                   wait_replicas=wait.replicas, wait_timeout_ms=wait.timeout_ms,
                   coalesce_creates=self.coalesce_creates, rate_limits=self.rate_limits)

    # --- events (Kue's queue.on / job.on) --------------------------------------------------
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
        self.events.on(event, listener)
        if event != "error":
            self._ensure_subscriber()
        return self

    def off(self, event: str, listener: Listener | None = None) -> Any:
        """Remove one listener, or all listeners of ``event``."""
        self.events.off(event, listener)
        return self

    def on_job(self, job: Any, event: str, listener: Listener | None = None) -> Any:
        """``job.on(event, listener)``: events of one job (``"progress"`` ``(percent,
        data)``, ``"complete"`` ``(result)``, ``"failed"``...) until it completes or fails."""
        if listener is None:
            def decorate(fn: Listener) -> Listener:
                self.on_job(job, event, fn)
                return fn
            return decorate
        self.events.on_job(job, event, listener)
        self._ensure_subscriber()
        return job

    def _ensure_subscriber(self) -> None:
        """Start the thread that SUBSCRIBEs to ``<prefix>:events``, on a client of its own
        made from the queue's connection description."""
        with self._subscriber_lock:
            if self._subscriber is not None:
                return
            self._subscriber = Subscriber(self.connection.sync_client(), self.keys.events,
                                          self.events, self.connection.where, owns_client=True)
        self._subscriber.start()

    def _stop_subscriber(self) -> None:
        with self._subscriber_lock:
            subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            subscriber.stop()

    def create(self, job_type: str, data: Any = None) -> Any:
        """A new unsaved job; chain the builder methods, then ``save()``."""
        return self.job_class(self, job_type, data)

    def job_from_spec(self, spec: Any) -> JobBase:
        """A job from a ``{"type", "data", "options"}`` mapping (Kue's POST /job body) or
        an unsaved job object."""
        if isinstance(spec, JobBase):
            return spec
        if not isinstance(spec, dict):
            raise InvalidArgument(f"a job must be an object with a type, not {spec!r}")
        if not spec.get("type"):
            raise InvalidArgument("Must provide job type")
        job = self.job_class(self, spec["type"], spec.get("data"))
        job.apply_options(spec.get("options") or {})
        return job

    def prepare_bulk(
        self, specs: list[Any]
    ) -> tuple[list[Any], list[int], Iterator[list[Any]]]:
        """Validate and encode the jobs lazily: returns (results, indexes to create, an
        iterator of their encoded argument blocks). Consuming the iterator fills ``results``
        (the job, or the ``KueError`` its spec raised) and ``todo``, so a driver can send
        the first chunk while the next ones are still being encoded."""
        results: list[Any] = [None] * len(specs)
        todo: list[int] = []

        def encoded() -> Iterator[list[Any]]:
            for index, spec in enumerate(specs):
                try:
                    job = self.job_from_spec(spec)
                    block = self.create_block(job)
                except KueError as exc:
                    results[index] = exc
                    continue
                results[index] = job
                todo.append(index)
                yield block

        return results, todo, encoded()

    def create_block(self, job: JobBase) -> Any:
        """A new job's arguments for ``plans.create``; on a sharded queue, with its shard."""
        tracing.on_create(job)  # the trace context it carries, with the otel extra
        block = job.encode_create()
        if isinstance(self.keys, ShardedKeys):
            return self._shard_of_new(job), block
        return block

    def _shard_of_new(self, job: JobBase) -> int:
        """A new job's shard: its dependencies' (which must share one: a script sees one
        slot), else by its shard key or unique key (one key, one shard), else round robin."""
        keys = self.keys
        assert isinstance(keys, ShardedKeys)
        if job.depends_ids:
            shards = {(i - 1) % keys.count for i in job.depends_ids}
            if len(shards) > 1:
                raise InvalidArgument(
                    "on a sharded queue a job's dependencies must be in one shard: create them "
                    "with the same shard_key")
            return shards.pop()
        return keys.pick(job.shard_key_value or job.unique_key)

    def finish_bulk(self, results: list[Any], todo: list[int], ids: list[int]) -> list[Any]:
        for index, job_id in zip(todo, ids):
            job = results[index]
            job.id = job_id
            self._created_state(job)
        if CREATED_HOOKS and ids:
            self._count_created([results[index].type for index in todo[:len(ids)]
                                 if not results[index].existing])
        return results

    def saved_new(self, job: JobBase) -> None:
        """A new job's create call answered (``job.id`` set): its state, and the count."""
        self._created_state(job)
        if CREATED_HOOKS and not job.existing:
            self._count_created([job.type])

    @staticmethod
    def _created_state(job: JobBase) -> None:
        """After create_jobs answered ``job.id``: minus an id means a live job held the unique
        key (its state is not known here; ``refresh()`` reads it)."""
        assert job.id is not None
        if job.id < 0:
            job.id, job.existing, job.state = -job.id, True, None
        elif job.depends_ids:
            job.state = "delayed"  # waiting (or, had a dependency failed, already failed)
        else:
            job.state = "delayed" if job.delay_ms else "inactive"

    def _count_created(self, job_types: list[str]) -> None:
        counts: dict[str, int] = {}
        for job_type in job_types:
            counts[job_type] = counts.get(job_type, 0) + 1
        for hook in CREATED_HOOKS[:]:  # a copy: a hook may be removed meanwhile
            for job_type, count in counts.items():
                hook(self.prefix, job_type, count)

    def repeat_plan(self, job_type: str, every: int | None, cron: str | None, tz: str,
                    data: Any, name: str | None, options: dict[str, Any] | None,
                    catch_up_ms: int) -> ops.Plan[dict[str, Any]]:
        """``repeat()``'s plan, its arguments checked first (kueatomic/repeats.py)."""
        spec = repeats.build_spec(job_type, every=every, cron=cron, tz=tz, data=data, name=name,
                                  options=options, catch_up_ms=catch_up_ms,
                                  max_payload_bytes=self.max_payload_bytes)
        return repeats.save(self.keys, spec)

    @staticmethod
    def _progress_args(completed: Any, total: Any, data: Any) -> tuple[Any, Any, str]:
        for name, value in (("completed", completed), ("total", total)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidArgument(f"progress {name} must be a number, not {value!r}")
        if total <= 0:
            raise InvalidArgument(f"progress total must be > 0, not {total!r}")
        if completed < 0:
            raise InvalidArgument(f"progress completed must be >= 0, not {completed!r}")
        return completed, total, "" if data is None else dumps(data, "progress data")
