"""Kue's events: ``<prefix>:events`` pub/sub messages re-emitted on the queue and on jobs.

Every message is ``{"id": N, "event": E, "args": [E, ...]}`` (docs/redis-layout.md §4). As in Kue, the
queue emits ``"job " + E`` with ``(id, *args[1:])`` and a job this process listens to emits
``E`` with ``args[1:]``; a job stops being watched after ``complete``, ``failed`` or ``remove``.
Listeners get as many of those arguments as they accept (JavaScript ignores extras), so
``queue.on("job complete", lambda id, result: ...)`` works although Kue sends a trailing null.
The queue also emits ``"error"`` locally with an exception when a worker hits a problem
(whoever emits it has logged it too, so an "error" nobody listens to is not lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from .codec import to_text
from .driver import CONNECTION_ERRORS, connection_failed

Listener = Callable[..., Any]
_DONE_EVENTS = ("complete", "failed", "remove")
log = logging.getLogger("kueatomic.events")


def _max_args(fn: Listener) -> int | None:
    """How many positional arguments ``fn`` takes (None = any number)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    count = 0
    for param in params:
        if param.kind is param.VAR_POSITIONAL:
            return None
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def call_on(loop: Any, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` on ``loop``: now when called on it, else scheduled from this thread."""
    if loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fn(*args)
    else:
        loop.call_soon_threadsafe(fn, *args)


class _Bound:
    __slots__ = ("fn", "limit")

    def __init__(self, fn: Listener) -> None:
        self.fn = fn
        self.limit = _max_args(fn)

    def args_for(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return args if self.limit is None else args[: self.limit]


class _Watched:
    """One job object with listeners of its own."""

    __slots__ = ("job", "listeners")

    def __init__(self, job: Any) -> None:
        self.job = job
        self.listeners: dict[str, list[_Bound]] = {}


class EventHub:
    """Listeners of one queue. ``call`` runs a listener with its arguments: directly for the
    sync queue, scheduled on the event loop for the asyncio queue (see ``set_caller``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: dict[str, list[_Bound]] = {}
        self._jobs: dict[int, list[_Watched]] = {}
        self._unsaved: list[_Watched] = []
        self._call: Callable[[Listener, tuple[Any, ...]], None] = self._call_now
        # job.wait(): id -> callbacks told (event, args) of the job's end, on the thread that
        # reads the events (they only hand it over: set an Event, resolve a future).
        self._ends: dict[int, list[Callable[[str, tuple[Any, ...]], None]]] = {}

    # --- registration ---------------------------------------------------------------------
    def on(self, event: str, listener: Listener) -> None:
        with self._lock:
            self._queue.setdefault(event, []).append(_Bound(listener))

    def off(self, event: str, listener: Listener | None = None) -> None:
        with self._lock:
            if listener is None:
                self._queue.pop(event, None)
            else:
                self._queue[event] = [b for b in self._queue.get(event, []) if b.fn != listener]

    def on_job(self, job: Any, event: str, listener: Listener) -> None:
        with self._lock:
            watched = self._find(job)
            if watched is None:
                watched = _Watched(job)
                if job.id is None:
                    self._unsaved.append(watched)
                else:
                    self._jobs.setdefault(int(job.id), []).append(watched)
            watched.listeners.setdefault(event, []).append(_Bound(listener))

    def _find(self, job: Any) -> _Watched | None:
        pool = self._unsaved if job.id is None else self._jobs.get(int(job.id), [])
        for watched in pool:
            if watched.job is job:
                return watched
        return None

    def watch_end(self, job_id: int, notify: Callable[[str, tuple[Any, ...]], None]) -> None:
        """Call ``notify(event, args)`` once when job ``job_id`` completes, fails for good or
        is removed (``job.wait``)."""
        with self._lock:
            self._ends.setdefault(job_id, []).append(notify)

    def unwatch_end(self, job_id: int, notify: Callable[[str, tuple[Any, ...]], None]) -> None:
        with self._lock:
            waiting = self._ends.get(job_id, [])
            if notify in waiting:
                waiting.remove(notify)
            if not waiting:
                self._ends.pop(job_id, None)

    @property
    def wants_messages(self) -> bool:
        """Whether anything listens to pub/sub events (apart from "error")."""
        return bool(self._jobs or self._unsaved or self._ends
                    or any(e != "error" for e in self._queue))

    def listens_to(self, event: str) -> bool:
        return bool(self._queue.get(event))

    # --- emitting -------------------------------------------------------------------------
    def set_caller(self, call: Callable[[Listener, tuple[Any, ...]], None]) -> None:
        self._call = call

    def _call_now(self, fn: Listener, args: tuple[Any, ...]) -> None:
        fn(*args)

    def _run(self, bound: _Bound, args: tuple[Any, ...], event: str) -> None:
        try:
            self._call(bound.fn, bound.args_for(args))
        except Exception as exc:
            log.exception("a %r listener raised", event)
            if event != "error":
                self.emit("error", exc)

    def emit(self, event: str, *args: Any) -> None:
        """Emit a queue event to this process's listeners."""
        with self._lock:
            listeners = list(self._queue.get(event, ()))
        for bound in listeners:
            self._run(bound, args, event)

    def dispatch(self, raw: Any) -> None:
        """Handle one message from ``<prefix>:events``."""
        try:
            message = json.loads(to_text(raw))
            job_id = message["id"]
            event = message["event"]
            args = tuple(message.get("args") or (event,))[1:]
        except (ValueError, KeyError, TypeError):
            return  # not a Kue event message
        with self._lock:
            if self._unsaved:
                for watched in [w for w in self._unsaved if w.job.id is not None]:
                    self._unsaved.remove(watched)
                    self._jobs.setdefault(int(watched.job.id), []).append(watched)
            try:
                key = int(job_id)
            except (TypeError, ValueError):
                key = -1
            watchers = list(self._jobs.get(key, ()))
            if watchers and event in _DONE_EVENTS:
                del self._jobs[key]
            # A job removed on completion publishes remove, then complete (Kue's order): a
            # waiter is told of both, and stops listening at complete / failed.
            ends: list[Callable[[str, tuple[Any, ...]], None]] = []
            if event in ("complete", "failed"):
                ends = self._ends.pop(key, [])
            elif event == "remove":
                ends = list(self._ends.get(key, ()))
            listeners = list(self._queue.get("job " + event, ()))
        for notify in ends:
            notify(event, args)
        for watched in watchers:
            for bound in watched.listeners.get(event, ()):
                self._run(bound, args, event)
        for bound in listeners:
            self._run(bound, (job_id, *args), "job " + event)


class Subscriber:
    """A thread holding the SUBSCRIBE to ``<prefix>:events``; re-subscribes after Redis
    restarts or the connection drops, reporting the outage once as an "error" event."""

    def __init__(self, client: Any, channel: str | list[str], hub: EventHub, where: str,
                 owns_client: bool = False) -> None:
        self.client = client
        self.owns_client = owns_client
        # A sharded queue has a channel per shard; on a cluster PUBLISH reaches every node.
        self.channels = [channel] if isinstance(channel, str) else list(channel)
        self.channel = ", ".join(self.channels)
        self.hub = hub
        self.where = where
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kueatomic-events", daemon=True)

    def start(self, wait: float = 5.0) -> Subscriber:
        self._thread.start()
        self.ready.wait(wait)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2)
        if self.owns_client:
            with contextlib.suppress(redis.RedisError, *CONNECTION_ERRORS):
                self.client.close()

    def _run(self) -> None:
        pause = 0.05
        reported = False
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.client.pubsub()
                pubsub.subscribe(*self.channels)
                while not self._stop.is_set():  # wait for the server's confirmation
                    message = pubsub.get_message(timeout=0.2)
                    if message and message.get("type") == "subscribe":
                        break
                self.ready.set()
                if reported:
                    log.info("events from %s restored", self.channel)
                pause, reported = 0.05, False
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message and message.get("type") == "message":
                        self.hub.dispatch(message["data"])
            except Exception as exc:
                if not reported:
                    error = (connection_failed(self.client, self.where, exc)
                             if isinstance(exc, CONNECTION_ERRORS) else exc)
                    log.warning("events from %s stopped (%s); re-subscribing", self.channel,
                                error, exc_info=not isinstance(exc, CONNECTION_ERRORS))
                    self.hub.emit("error", error)
                    reported = True
                self._stop.wait(pause)
                pause = min(pause * 2, 1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(redis.RedisError, *CONNECTION_ERRORS):
                        pubsub.close()
