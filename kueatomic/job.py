"""Jobs: the builder every producer uses, Kue's toJSON, and the sync I/O methods.

``JobBase`` holds the fields and the pure logic; ``Job`` (here) and ``kueatomic.aio.Job`` add
the methods that talk to Redis, each one line that runs a plan from ``kueatomic.ops``.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
from typing import TYPE_CHECKING, Any, Self

from . import backoff as _backoff
from . import ops
from .codec import MAX_MS, dumps, encodable, format_log, loads_or_raw
from .errors import InvalidArgument, InvalidAttempts, InvalidDelay, JobFailed, JobNotFound
from .states import MAX_PRIORITY as MAX_EXACT_INT  # the largest integer a Lua number holds exactly
from .states import parse_priority

if TYPE_CHECKING:
    from .sync_queue import SyncQueue


def _ms(value: Any, what: str) -> int:
    if isinstance(value, _dt.timedelta):
        return int(value.total_seconds() * 1000)
    if isinstance(value, _dt.datetime):
        now = _dt.datetime.now(value.tzinfo) if value.tzinfo else _dt.datetime.now()
        return max(0, int((value - now).total_seconds() * 1000))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidDelay(f"{what} must be ms (a number), a timedelta or a datetime, not {value!r}")
    if math.isnan(value) or abs(value) > MAX_MS:
        raise InvalidDelay(f"{what} must be a number of ms within ±{MAX_MS}, not {value!r}")
    return int(value)


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # int() refuses "²", which isdigit() accepts


def _int_or_none(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value)  # the usual case: Redis holds decimal integers
    except ValueError:
        pass
    try:
        return int(float(value))  # "1e3" or "12.5", as a person or Node may have written
    except (ValueError, OverflowError):
        return None


class JobBase:
    """A job's fields. Builder methods return the job so calls chain like Kue's."""

    existing = False  # saved with a unique key another live job held: that job is answered

    def __init__(self, queue: Any, job_type: str, data: Any = None) -> None:
        # New jobs get a type that keeps key names unambiguous (from_hash keeps whatever type
        # Node Kue gave a job).
        if (not isinstance(job_type, str) or not job_type or ":" in job_type
                or encodable(job_type) != job_type):
            raise InvalidArgument(
                f"job type must be a non-empty Unicode string without ':', not {job_type!r}"
            )
        self.queue = queue
        self.id: int | None = None
        self.type = job_type
        self.data: Any = {} if data is None else data
        self.priority_value = 0
        self.max_attempts = 1
        self.attempts_made = 0
        self.delay_ms = 0
        self.ttl_ms = 0
        self.backoff_spec: Any = None
        self.remove_on_complete_flag = False
        self.keep_complete: str | None = None  # retention policies: "age_ms,count" (see keep_policy)
        self.keep_failed: str | None = None
        self.unique_key: str | None = None
        self.depends_ids: list[int] = []
        self.on_dependency_failure = "fail"
        self.extra_fields: dict[str, str] = {}  # more hash fields create_jobs writes (TRACE_FIELDS)
        self.search_key_paths: list[str] | None = None
        self.shard_key_value: str | None = None
        self.state: str | None = None
        self.progress_percent: int | None = None
        self.progress_data: Any = None
        self.result: Any = None
        self.error: str | None = None
        self.worker_id: str | None = None
        self.created_at: int | None = None
        self.promote_at: int | None = None
        self.updated_at: int | None = None
        self.failed_at: int | None = None
        self.started_at: int | None = None
        self.duration: int | None = None
        self.fields: dict[str, str] = {}  # the raw hash, when loaded from Redis

    # --- builder ------------------------------------------------------------------------
    def priority(self, level: str | int) -> Self:
        """low|normal|medium|high|critical or an integer; lower runs first."""
        self.priority_value = parse_priority(level)
        return self

    def attempts(self, count: int) -> Self:
        if (isinstance(count, bool) or not isinstance(count, int) or count < 1
                or count > MAX_EXACT_INT):
            raise InvalidAttempts(
                f"attempts must be an integer in 1..{MAX_EXACT_INT}, not {count!r}")
        self.max_attempts = count
        return self

    def backoff(self, spec: Any) -> Self:
        _backoff.encode(spec)  # validate now, not at save time
        self.backoff_spec = spec
        return self

    def delay(self, value: Any) -> Self:
        """ms, a timedelta, or a datetime to run at (the past means now)."""
        ms = _ms(value, "delay")
        if ms < 0 or ms > MAX_EXACT_INT:
            raise InvalidDelay(f"delay must be 0..{MAX_EXACT_INT} ms, not {ms}")
        self.delay_ms = ms
        return self

    def ttl(self, value: Any) -> Self:
        ms = _ms(value, "ttl")
        if ms <= 0 or ms > MAX_EXACT_INT:
            raise InvalidArgument(f"ttl must be 1..{MAX_EXACT_INT} ms, not {ms}")
        self.ttl_ms = ms
        return self

    def shard_key(self, key: str) -> Self:
        """On a sharded queue, put this job in the shard of ``key``: jobs with the same key
        share a shard, so they keep their order (priority, then FIFO) among themselves.
        Without one, new jobs go round robin. Ignored by a queue of one shard."""
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"shard_key must be a non-empty string, not {key!r}")
        self.shard_key_value = key
        return self

    def remove_on_complete(self, policy: bool | dict[str, int] = True) -> Self:
        """True: remove the job once it completes (Kue's removeOnComplete); False: keep it;
        ``{"age": ms, "count": n}`` (either key or both): keep completed jobs that had such a
        policy for at most ``age`` ms and at most the newest ``count`` of them, trimmed as
        jobs complete (BullMQ's keep-jobs)."""
        if isinstance(policy, dict):
            self.remove_on_complete_flag, self.keep_complete = False, keep_policy(policy)
        else:
            self.remove_on_complete_flag, self.keep_complete = bool(policy), None
        return self

    def remove_on_fail(self, policy: bool | dict[str, int] = True) -> Self:
        """Like ``remove_on_complete`` for jobs that fail for good (True: removed at once)."""
        if isinstance(policy, dict):
            self.keep_failed = keep_policy(policy)
        else:
            self.keep_failed = "0," if policy else None
        return self

    def unique(self, key: str) -> Self:
        """While a job with this key is inactive, delayed or active, saving another with the
        same key creates nothing and answers the existing job (``job.existing`` is then True,
        and ``job.id`` that job's id). The key is free again once that job completes, fails
        for good or is removed."""
        if (not isinstance(key, str) or not key or encodable(key) != key
                or len(key.encode("utf-8")) > MAX_UNIQUE_KEY_BYTES):
            raise InvalidArgument(
                f"unique key must be a string of 1..{MAX_UNIQUE_KEY_BYTES} bytes, not {key!r}")
        self.unique_key = key
        return self

    def depends_on(self, jobs: Any, on_failure: str = "fail") -> Self:
        """Wait (in Kue's delayed state) until every one of ``jobs`` (ids or saved jobs)
        completed, then enter inactive. A dependency that fails for good, is cancelled or
        removed fails this job too (``on_failure="fail"``), or counts as done
        (``on_failure="ignore"``). The jobs must exist when this one is saved."""
        if isinstance(jobs, (int, str, JobBase)):
            jobs = [jobs]
        if not isinstance(jobs, (list, tuple)) or not 1 <= len(jobs) <= MAX_DEPENDENCIES:
            raise InvalidArgument(
                f"depends_on takes 1..{MAX_DEPENDENCIES} job ids or jobs, not {jobs!r}")
        ids: list[int] = []
        for item in jobs:
            job_id = item.id if isinstance(item, JobBase) else item
            if isinstance(job_id, str) and _ascii_digits(job_id):
                job_id = int(job_id)
            if (isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 1
                    or job_id > MAX_EXACT_INT):
                raise InvalidArgument(f"a dependency must be a saved job or its id, not {item!r}")
            if job_id not in ids:
                ids.append(job_id)
        if on_failure not in ("fail", "ignore"):
            raise InvalidArgument(f"on_failure must be 'fail' or 'ignore', not {on_failure!r}")
        self.depends_ids, self.on_dependency_failure = ids, on_failure
        return self

    def search_keys(self, paths: list[str]) -> Self:
        if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) for p in paths):
            raise InvalidArgument("search_keys takes a list of dotted paths into the data")
        self.search_key_paths = list(paths)
        return self

    def apply_options(self, options: dict[str, Any]) -> Self:
        """Kue's POST /job options: attempts, priority, delay, searchKeys, backoff,
        removeOnComplete, ttl (snake_case spellings accepted too)."""
        if not isinstance(options, dict):
            raise InvalidArgument(f"options must be an object, not {options!r}")
        for name, value in options.items():
            setter = _OPTION_SETTERS.get(name)
            if setter is None:
                raise InvalidArgument(
                    f"unknown job option {name!r}; use {', '.join(sorted(_OPTION_SETTERS))}"
                )
            if name == "attempts" and isinstance(value, str) and _ascii_digits(value.strip()):
                value = int(value)  # Kue parseInts attempts
            getattr(self, setter)(value)
        return self

    # --- encoding -----------------------------------------------------------------------
    def data_json(self) -> str:
        return dumps(self.data, "job data", self.queue.max_payload_bytes)

    def search_texts(self) -> list[str]:
        """What reds indexes: each search key's value (JSON for non-strings), else all data."""
        if self.queue.disable_search:
            return []
        if not self.search_key_paths:
            return [self.data_json()]
        texts = []
        for path in self.search_key_paths:
            value: Any = self.data
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                texts.append(value if isinstance(value, str) else dumps(value))
        return texts

    def encode_create(self) -> list[Any]:
        """This job's argument block for lua/create_jobs.lua (see its ARGV header)."""
        texts = self.search_texts()
        block = [self.type, self.data_json(), self.priority_value, self.max_attempts,
                 self.delay_ms, self.ttl_ms, _backoff.encode(self.backoff_spec),
                 "true" if self.remove_on_complete_flag else "", len(texts), *texts]
        extra = self.extra_create_fields()
        block.append(len(extra) // 2)
        block.extend(extra)
        return block

    def extra_create_fields(self) -> list[str]:
        """kueatomic's additions to the new job's hash, as create_jobs' name/value pairs."""
        if not (self.unique_key or self.depends_ids or self.keep_complete or self.keep_failed
                or self.extra_fields):
            return []
        pairs: list[str] = []
        if self.unique_key:
            pairs += ["unique_key", self.unique_key]
        if self.depends_ids:
            pairs += ["depends_on", ",".join(map(str, self.depends_ids))]
            if self.on_dependency_failure != "fail":
                pairs += ["on_dependency_failure", self.on_dependency_failure]
        if self.keep_complete:
            pairs += ["keep_complete", self.keep_complete]
        if self.keep_failed:
            pairs += ["keep_failed", self.keep_failed]
        for name, value in self.extra_fields.items():
            if name not in TRACE_FIELDS:
                raise InvalidArgument(f"extra field {name!r} is not one of {sorted(TRACE_FIELDS)}")
            pairs += [name, value]
        return pairs

    def encode_update(self) -> tuple[Any, ...]:
        return (self.data_json(), self.priority_value, self.max_attempts, self.delay_ms,
                self.ttl_ms, self.backoff_update(),
                "true" if self.remove_on_complete_flag else "", *self.search_texts())

    def backoff_update(self) -> str:
        """The backoff argument of a re-save: "" (leave the field as it is) while the backoff
        is the one loaded from Redis, so a job Node Kue stored keeps its JavaScript source,
        which kueatomic never writes; else the new spec, encoded (and checked) by ``encode``."""
        stored = self.fields.get("backoff")
        if stored and _backoff.decode(stored) == self.backoff_spec:
            return ""
        return _backoff.encode(self.backoff_spec)

    def _located(self) -> tuple[Any, int]:
        """(the keys this job lives under, its id): its shard's, on a sharded queue."""
        job_id = self._require_id()
        return self.queue.keys.for_job(job_id), job_id

    def _require_id(self) -> int:
        if self.id is None:
            raise InvalidArgument("save() the job first: it has no id yet")
        return self.id

    @classmethod
    def from_hash(cls, queue: Any, job_id: int, fields: dict[str, str]) -> Self:
        """A job read back from its Redis hash (which has a type: scripts treat a hash without
        one as no job). Skips ``__init__``: load_fields sets every field it would."""
        job = cls.__new__(cls)
        job.queue = queue
        job.search_key_paths = None
        job.shard_key_value = None
        return job.load_fields(job_id, fields)

    def load_fields(self, job_id: int, fields: dict[str, str]) -> Self:
        """Fill this job from its Redis hash (Kue's Job.get)."""
        # Workers load every claimed job through here: keep it to plain lookups.
        get = fields.get
        number = _int_or_none
        self.id = job_id
        self.type = fields["type"]
        self.fields = fields
        self.data = loads_or_raw(get("data")) if "data" in fields else {}
        self.priority_value = number(get("priority")) or 0
        self.max_attempts = number(get("max_attempts")) or 1
        self.attempts_made = number(get("attempts")) or 0
        self.delay_ms = number(get("delay")) or 0
        self.ttl_ms = number(get("ttl")) or 0
        self.backoff_spec = _backoff.decode(get("backoff"))
        self.remove_on_complete_flag = get("removeOnComplete") == "true"
        self.keep_complete = get("keep_complete")
        self.keep_failed = get("keep_failed")
        self.unique_key = get("unique_key")
        depends = get("depends_on")
        self.depends_ids = [int(i) for i in depends.split(",") if i.isdigit()] if depends else []
        self.on_dependency_failure = get("on_dependency_failure") or "fail"
        self.extra_fields = {}
        self.state = get("state")
        self.progress_percent = number(get("progress"))
        self.progress_data = loads_or_raw(get("progress_data"))
        self.result = loads_or_raw(get("result"))
        self.error = get("error")
        self.worker_id = get("workerId")
        self.created_at = number(get("created_at"))
        self.promote_at = number(get("promote_at"))
        self.updated_at = number(get("updated_at"))
        self.failed_at = number(get("failed_at"))
        self.started_at = number(get("started_at"))
        self.duration = number(get("duration"))
        return self

    def to_json(self, id_as_string: bool = False) -> dict[str, Any]:
        """Kue's toJSON (docs/redis-layout.md §2): timestamps, delay, ttl and progress as the strings
        Redis holds, priority a number, undefined keys left out."""
        made, max_attempts = self.attempts_made, self.max_attempts
        out: dict[str, Any] = {
            "id": str(self.id) if id_as_string else self.id,
            "type": self.type,
            "data": self.data,
            "result": self.result,
            "priority": self.priority_value,
            "progress": str(self.progress_percent) if self.progress_percent is not None else 0,
            "progress_data": self.progress_data,
            "state": self.state,
            "error": self.error,
        }
        for name in ("created_at", "promote_at", "updated_at", "failed_at", "started_at",
                     "duration"):
            value = getattr(self, name)
            out[name] = None if value is None else str(value)
        out["delay"] = str(self.delay_ms) if self.delay_ms else None
        out["workerId"] = self.worker_id
        if self.depends_ids:
            out["depends_on"] = self.depends_ids
        if self.unique_key:
            out["unique_key"] = self.unique_key
        out["ttl"] = str(self.ttl_ms) if self.ttl_ms else None
        out["attempts"] = {
            "made": made,
            "remaining": max_attempts - made if made > 0 else max_attempts,
            "max": max_attempts,
        }
        return {key: value for key, value in out.items() if value is not None}

    def on(self, event: str, listener: Any = None) -> Any:
        """Listen to this job's events (Kue's ``job.on``), e.g. ``"progress"`` ``(percent,
        data)``, ``"complete"`` ``(result)``, ``"failed"`` ``(message)``; see Queue.on_job."""
        return self.queue.on_job(self, event, listener)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.type} {self.state}>"


# --- job.wait(): the outcome of a finished job, from its hash or from its end event -------

NOT_FINISHED = object()


def finished_outcome(job: JobBase) -> Any:
    """The result of a completed job, JobFailed raised for one failed for good, else
    ``NOT_FINISHED`` (a failed job with attempts left is being retried: not finished)."""
    if job.state == "complete":
        return job.result
    if job.state == "failed" and job.attempts_made >= job.max_attempts:
        raise JobFailed(int(job._require_id()), _first_line(job.error), job.error)
    return NOT_FINISHED


def ended_outcome(job_id: int, event: str, args: tuple[Any, ...], job: JobBase | None) -> Any:
    """The outcome told by a complete / failed / remove event (``job``: the hash read after
    it, None when it is gone, as with removeOnComplete)."""
    if event == "complete":
        if job is not None and job.state == "complete":
            return job.result
        return args[0] if args else None
    if event == "failed":
        error = job.error if job is not None else None
        raise JobFailed(job_id, str(args[0]) if args else _first_line(error), error)
    raise JobNotFound(f'job "{job_id}" was removed before it finished')


def _first_line(error: str | None) -> str:
    return (error or "failed").split("\n", 1)[0]


# After a remove event, how long a waiter waits for the complete event that follows it when
# the job was removed on completion (the same script publishes both, back to back).
REMOVE_GRACE_S = 0.5


def final_event(ended: list[tuple[str, tuple[Any, ...]]]) -> tuple[str, tuple[Any, ...]]:
    """The event that decides: a complete or failed one if it came, else the remove."""
    for event, args in ended:
        if event != "remove":
            return event, args
    return ended[0]


def wait_timeout(job_id: int, timeout: float | None) -> TimeoutError:
    return TimeoutError(f"job {job_id} did not finish within {timeout} s")


class Job(JobBase):
    """A job bound to a sync ``Queue``. Every method that writes runs one Lua script."""

    queue: SyncQueue

    def save(self) -> Job:
        """Create the job (new) or re-save it (existing); atomic either way."""
        return self.queue._save(self)

    def update(self) -> Job:
        self._require_id()
        return self.queue._save(self)

    def remove(self) -> Job:
        self.queue._run(ops.remove(*self._located()))
        return self

    def cancel(self) -> Job:
        """End the job failed with error "Cancelled", never retried, from any process. An
        inactive or delayed job never runs; a running one loses its lease (its late result is
        discarded) and its handler sees ``ctx.cancelled`` set (threads) or its task cancelled
        (``async def``). Raises ``InvalidTransition`` for a job that already ended."""
        return self.queue.cancel(self._require_id(), into=self)

    def log(self, message: Any, *args: Any) -> Job:
        """Append a line formatted like Node's util.format (``%s``, ``%d``, ``%j``...)."""
        self.queue._run(ops.add_log(*self._located(), [format_log(message, *args)]))
        return self

    def logs(self) -> list[str]:
        return self.queue._run(ops.logs(*self._located()))

    def progress(self, completed: float, total: float, data: Any = None) -> Job:
        """Set progress to min(100, completed*100/total) and publish a progress event."""
        args = self.queue._progress_args(completed, total, data)
        keys, job_id = self._located()
        self.progress_percent = self.queue._run(ops.set_progress(keys, job_id, *args))
        self.progress_data = data
        return self

    def set_state(self, state: str, *, job_method: bool = False) -> Job:
        """Kue's ``job.state(state)``; ``job_method`` as in ``ops.set_state``."""
        plan = ops.set_state(*self._located(), state, job_method)
        self.queue._run(plan)
        self.state = state
        return self

    def set_priority(self, level: str | int) -> Job:
        """Change the priority in Redis now (re-scores the job atomically)."""
        self.priority(level)
        self.queue._run(ops.set_priority(*self._located(), self.priority_value))
        return self

    def refresh(self) -> Job:
        return self.queue.get_job(self._require_id(), into=self)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the job finishes: its result, ``JobFailed`` when it failed for good,
        ``JobNotFound`` when it was removed, ``TimeoutError`` after ``timeout`` seconds. Works
        from any process: it listens to the queue's events (one subscription per queue, no
        polling) and reads the job once after subscribing, so a job that finished before
        the call is answered at once."""
        job_id = self._require_id()
        ended: list[tuple[str, tuple[Any, ...]]] = []
        done, finished = threading.Event(), threading.Event()

        def notify(event: str, args: tuple[Any, ...]) -> None:
            ended.append((event, args))
            done.set()
            if event != "remove":
                finished.set()

        self.queue.events.watch_end(job_id, notify)
        try:
            self.queue._ensure_subscriber()
            current = self.queue.get_job(job_id)
            outcome = finished_outcome(current)
            if outcome is not NOT_FINISHED:
                return outcome
            if not done.wait(timeout):
                raise wait_timeout(job_id, timeout)
            finished.wait(REMOVE_GRACE_S)  # a remove may be followed by its complete
            event, args = final_event(list(ended))
            try:
                after = self.queue.get_job(job_id)
            except JobNotFound:
                after = None
            return ended_outcome(job_id, event, args, after)
        finally:
            self.queue.events.unwatch_end(job_id, notify)

    def inactive(self) -> Job:
        return self.set_state("inactive")

    def active(self) -> Job:
        return self.set_state("active")

    def complete(self) -> Job:
        return self.set_state("complete", job_method=True)

    def failed(self) -> Job:
        return self.set_state("failed", job_method=True)

    def delayed(self) -> Job:
        return self.set_state("delayed")



_OPTION_SETTERS = {
    "attempts": "attempts",
    "priority": "priority",
    "delay": "delay",
    "ttl": "ttl",
    "backoff": "backoff",
    "searchKeys": "search_keys",
    "shardKey": "shard_key",
    "shard_key": "shard_key",
    "search_keys": "search_keys",
    "removeOnComplete": "remove_on_complete",
    "remove_on_complete": "remove_on_complete",
    "removeOnFail": "remove_on_fail",
    "remove_on_fail": "remove_on_fail",
    "unique": "unique",
    "dependsOn": "depends_on",
    "depends_on": "depends_on",
}


MAX_UNIQUE_KEY_BYTES = 1024  # lua/create_jobs.lua's limit
MAX_DEPENDENCIES = 100
TRACE_FIELDS = frozenset({"traceparent", "tracestate"})  # W3C trace context (kueatomic.tracing)


def keep_policy(policy: dict[str, int]) -> str:
    """A retention policy ``{"age": ms, "count": n}`` as the stored "age,count" text."""
    unknown = set(policy) - {"age", "count"}
    values = {}
    for name in ("age", "count"):
        value = policy.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= MAX_EXACT_INT):
            raise InvalidArgument(f"retention {name} must be an integer >= 0, not {value!r}")
        values[name] = "" if value is None else str(value)
    if unknown or not (values["age"] or values["count"]):
        raise InvalidArgument(
            f'a retention policy is {{"age": ms, "count": n}} (either or both), not {policy!r}')
    return f"{values['age']},{values['count']}"
