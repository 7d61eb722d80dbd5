"""A worker's heartbeat in the workers registry, and its activity counts, sans I/O.

``Heartbeat`` is an ``Observer`` of the worker core (beside the user's, through
``core.Observers``): it counts completed and failed attempts, waits and run times as they
happen. Every ``heartbeat_interval_ms`` the housekeeping pass sends one
``register_worker`` call (kueatomic/presence.py) with the worker's entry (host, pid, types,
slots, busy) and the counts since the previous heartbeat; at a clean stop a last call with
ttl 0 removes the entry (``loops.farewell``).

Counts are sent in batches, each with a token of its own, and a batch is kept until a reply
says Redis has it. A call that failed (an outage) or whose reply was lost sends the same
batch, token and counts again next time; the script adds a batch whose token the entry
already holds only once, so a lost reply neither loses counts nor counts them twice. The
entry remembers the token for its ttl (60 s after a deregistration): a batch first sent
more than a ttl before its retry (an outage longer than the ttl that also lost the first
reply) may be counted twice. A call refused as a bug drops its batch (it would be refused
again).
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Sequence
from typing import Any

from .. import presence
from ..errors import is_outage
from ..ops import Call
from . import calls
from .core import Observer
from .registration import RUNNING, InFlight

_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_ids = threading.Lock()
_count = [0]


def worker_entry_id() -> str:
    """``kue:<host>:<pid>:<n>``: Kue's workerId of the process (``kue:<host>:<pid>:<type>:<n>``
    on each job it runs) without the type, and n counting the workers this process made."""
    with _ids:
        _count[0] += 1
        n = _count[0]
    host = _HOST_UNSAFE.sub("-", socket.gethostname())[:120] or "host"
    return f"kue:{host}:{os.getpid()}:{n}"


def host_name() -> str:
    name = socket.gethostname().encode("utf-8", "replace")[:255].decode("utf-8", "ignore")
    return "".join(c for c in name if c.isprintable()) or "unknown"


def wait_ms(fields: dict[str, str]) -> int | None:
    """started_at - max(created_at, promote_at), all written by Redis' clock (ms); None when
    a field is missing or odd (a job Node Kue wrote, say). kueatomic.metrics' wait too."""
    try:
        started = int(fields["started_at"])
        since = int(fields["created_at"])
        promote = fields.get("promote_at")
        if promote:
            since = max(since, int(float(promote)))
    except (KeyError, ValueError):
        return None
    return max(0, started - since)


MAX_TYPES = 1000  # what register_worker.lua takes, each type at most 512 bytes of UTF-8


def listable(job_type: str) -> bool:
    """A type the script lists (any other would make every heartbeat a refused call)."""
    try:
        return len(job_type.encode("utf-8")) <= 512
    except UnicodeEncodeError:
        return False


class Batch:
    """Counts on their way: kept, with their token, until Redis answered for them."""

    __slots__ = ("counts", "token")

    def __init__(self, token: str, counts: list[int]) -> None:
        self.token, self.counts = token, counts


class Beat:
    """One register_worker call and the batch it carries."""

    __slots__ = ("batch", "call")

    def __init__(self, call: Call, batch: Batch) -> None:
        self.call, self.batch = call, batch


class Heartbeat(Observer):
    """The registry entry and the activity counts of one worker core."""

    def __init__(self, interval_ms: int, ttl_ms: int, worker_id: str | None = None) -> None:
        self.interval = interval_ms / 1000
        self.ttl_ms = ttl_ms
        self.id = worker_id or worker_entry_id()
        self.host = host_name()
        self.pid = os.getpid()
        self.started_at = 0  # the Redis clock's, from the first reply
        self.next_at = 0.0  # the core's clock: at once
        self.pending: Batch | None = None
        self.sent = False  # a call went out: there may be an entry to remove at the end
        self.done = False  # deregistered
        self.on_way: Beat | None = None  # the beat a housekeeping pass carries
        # The counts, without a lock on the jobs' path: each thread that counts (slot threads,
        # the event loop) adds to a tally of its own, which only it writes; a heartbeat sums
        # the tallies and sends what grew since the last batch.
        self._local = threading.local()
        self._tallies: list[list[int]] = []
        self._lock = threading.Lock()  # guards _tallies (a new thread's tally joins it)
        self._taken = [0] * len(presence.COUNT_FIELDS)

    @classmethod
    def from_settings(cls, settings: Any, worker_id: str | None = None) -> Heartbeat | None:
        interval = settings.heartbeat_interval_ms
        if not interval:
            return None
        return cls(interval, settings.heartbeat_ttl_ms or 3 * interval, worker_id)

    # --- Observer: the counts -------------------------------------------------------------
    def _tally(self) -> list[int]:
        try:
            return self._local.tally  # type: ignore[no-any-return]
        except AttributeError:
            tally = self._local.tally = [0] * len(presence.COUNT_FIELDS)
            with self._lock:
                self._tallies.append(tally)
            return tally

    def started(self, record: InFlight) -> None:
        wait = wait_ms(record.fields)
        if wait is not None:
            tally = self._tally()
            tally[2] += wait
            tally[3] += 1

    def finished(self, record: InFlight, ok: bool, duration_ms: int | None) -> None:
        tally = self._tally()
        tally[0 if ok else 1] += 1
        if duration_ms is not None:
            tally[4] += max(0, duration_ms)
            tally[5] += 1

    def _totals(self) -> list[int]:
        with self._lock:
            tallies = list(self._tallies)
        if not tallies:
            return [0] * len(self._taken)
        return [sum(column) for column in zip(*tallies)]

    def _take(self) -> Batch:
        """What was counted since the last batch (the tallies only grow)."""
        totals = self._totals()
        counts = [now - before for now, before in zip(totals, self._taken)]
        self._taken = totals
        return Batch(calls.claim_token(), counts)

    def _counting(self) -> bool:
        return self._totals() != self._taken

    # --- the calls ------------------------------------------------------------------------
    def due(self, now: float) -> bool:
        return not self.done and now >= self.next_at

    def beat(self, core: Any, now: float, ttl_ms: int | None = None) -> Beat:
        """The call to send now (under the core's lock: it reads the registrations and the
        in-flight jobs); the next one is due an interval later, whatever its fate."""
        self.next_at = now + self.interval
        if self.pending is None:
            self.pending = self._take()
        batch = self.pending
        regs = [r for r in core.regs if not r.closed]
        busy = sum(1 for r in core.inflight.values() if r.stage == RUNNING)
        types = [t for t in sorted({r.job_type for r in regs}) if listable(t)][:MAX_TYPES]
        call = presence.register_call(
            core.keys, self.id, self.ttl_ms if ttl_ms is None else ttl_ms, self.host, self.pid,
            sum(r.concurrency for r in regs), busy, self.started_at, batch.token, batch.counts,
            types)
        self.sent = True
        self.on_way = Beat(call, batch)
        return self.on_way

    def split(self, requests: Sequence[Any], replies: Sequence[Any]
              ) -> tuple[Sequence[Any], BaseException | None]:
        """A housekeeping pass's replies without the heartbeat's (the last one, when it
        carried one), and the heartbeat's error to back off from, if any."""
        beat = self.on_way
        if beat is None or not requests or requests[-1] is not beat.call:
            return replies, None
        self.on_way = None
        return replies[:-1], self.read(beat, replies[-1])

    def read(self, beat: Beat, reply: Any) -> BaseException | None:
        """The call's reply (or the error it raised, returned for the caller to report and
        back off from): the batch is in, or kept for the next call through an outage."""
        if isinstance(reply, BaseException):
            self.failed(beat, reply)
            return reply
        try:
            _now, started, _added = (int(v) for v in reply)
        except (TypeError, ValueError) as exc:
            self.failed(beat, exc)
            return exc
        self.started_at = started
        if self.pending is beat.batch:
            self.pending = None
        return None

    def failed(self, beat: Beat, exc: BaseException) -> None:
        if not is_outage(exc) and self.pending is beat.batch:
            self.pending = None  # refused as a bug: it would be refused again

    def farewell(self, core: Any) -> Beat | None:
        """The deregistration call of a clean stop, or None: nothing was ever registered, it
        is done, or housekeeping is failing (a stop must not wait for Redis to come back)."""
        if self.done or not self.sent:
            return None
        episode = getattr(core, "episodes", {}).get("housekeeping")
        if episode is not None and episode.since is not None:
            return None  # housekeeping is failing (Redis away): the entry expires with its ttl
        with core.lock:
            return self.beat(core, core.clock(), ttl_ms=0)

    def farewell_read(self, beat: Beat, reply: Any) -> bool:
        """True when the deregistration is done (counts left over: another call)."""
        self.on_way = None
        error = self.read(beat, reply)
        if error is None:
            self.done = self.pending is None and not self._counting()
        elif not is_outage(error):
            self.done = True
        return self.done
