"""Repeatable jobs (``queue.repeat``), sans I/O: the spec, its ticks, and the plans.

A repeat is a spec stored in ``<prefix>:repeats`` (name -> JSON) and its next tick in
``<prefix>:repeats:next`` (name scored by ms), plus the last tick that got a job in
``<prefix>:repeats:last``. Only the scripts write them (lua/add_repeat.lua,
lua/fire_repeat.lua, lua/remove_repeat.lua). Python computes the ticks: ``cronsim`` for a
cron schedule (in its time zone, by ``zoneinfo``), arithmetic for ``every`` (multiples of it
since the epoch, so every process computes the same ones). Each worker's upkeep runs a
``Scheduler``: it reads the soonest ticks (lua/scan_repeats.lua) and calls fire_repeat for
the due ones, whose compare-and-set on the recorded tick makes exactly one job per tick
however many schedulers race. Ticks missed while no scheduler ran (a restart) get their jobs
when they are at most ``catch_up_ms`` old; older ones are skipped. A sharded queue keeps its
repeats, and creates their jobs, in shard 0.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import backoff as _backoff
from .codec import MAX_MS, dumps, encodable, loads_or_raw, to_text
from .errors import InvalidArgument, KueError
from .extras import require
from .job import JobBase
from .keyspace import Keys
from .ops import Call, Plan, Read, Request, decode_hash, unwrap

log = logging.getLogger("kueatomic.repeats")

MIN_EVERY_MS = 1000  # ticks closer than this are a busy loop, not a schedule
MIN_CATCH_UP_MS = 1000  # a scheduler looks every upkeep interval (1 s by default)
DEFAULT_CATCH_UP_MS = 3_600_000  # after a restart, ticks of the last hour still get their job
MAX_NAME_BYTES = 1000
FIRE_LIMIT = 100  # jobs per fire_repeat call (more missed ticks: the next pass goes on)
SCAN_LIMIT = 100  # repeats a scheduler reads per pass, soonest tick first
SAVE_TRIES = 10
# The job options a repeat takes (JobBase.apply_options' names). Not search keys (repeat jobs
# are not indexed) nor a shard key (a sharded queue's repeats live in shard 0).
OPTIONS = frozenset({"priority", "attempts", "backoff", "ttl", "delay", "removeOnComplete",
                     "remove_on_complete"})


def repeat_keys(keys: Any) -> Keys:
    """The layout repeats live in: the queue's, or shard 0's of a sharded queue."""
    return keys if isinstance(keys, Keys) else keys.shards[0]


class _Limits:
    """What ``JobBase`` asks of a queue when it encodes data (no queue here)."""

    disable_search = True

    def __init__(self, max_payload_bytes: int | None) -> None:
        self.max_payload_bytes = max_payload_bytes


def _job(spec: dict[str, Any], max_payload_bytes: int | None = None) -> JobBase:
    """The spec's job, its options applied (and so checked) as ``create()`` would."""
    options = spec.get("options") or {}
    if not isinstance(options, dict):
        raise InvalidArgument(f"options must be an object of job options, not {options!r}")
    refused = sorted(set(options) - OPTIONS)
    if refused:
        raise InvalidArgument(f"repeat options {refused} are not taken; use "
                              f"{', '.join(sorted(OPTIONS))}")
    job = JobBase(_Limits(max_payload_bytes), spec["type"], spec.get("data"))
    job.apply_options(options)
    return job


def job_args(spec: dict[str, Any]) -> list[Any]:
    """fire_repeat's ARGV 8..15: the job every tick creates."""
    job = _job(spec)
    return [job.type, job.data_json(), job.priority_value, job.max_attempts, job.delay_ms,
            job.ttl_ms, _backoff.encode(job.backoff_spec),
            "true" if job.remove_on_complete_flag else ""]


def _int_ms(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_MS:
        raise InvalidArgument(f"{what} must be an integer number of ms in {low}..{MAX_MS}, "
                              f"not {value!r}")
    return value


def zone(tz: Any) -> ZoneInfo:
    if not isinstance(tz, str) or not tz:
        raise InvalidArgument(f"tz must be an IANA time zone name such as 'UTC', not {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidArgument(f"unknown time zone {tz!r} (an IANA name such as "
                              "'Europe/Paris'; install tzdata where the system has none)") from None


def default_name(job_type: str, every: int | None, cron: str | None, tz: str) -> str:
    return f"{job_type}:every:{every}" if cron is None else f"{job_type}:cron:{cron}:{tz}"


def build_spec(job_type: Any, *, every: Any = None, cron: Any = None, tz: Any = "UTC",
               data: Any = None, name: Any = None, options: Any = None,
               catch_up_ms: Any = DEFAULT_CATCH_UP_MS,
               max_payload_bytes: int | None = None) -> dict[str, Any]:
    """A checked spec (without created_at): every argument of ``queue.repeat``, or
    ``InvalidArgument`` (``NotSerializable`` / ``PayloadTooLarge`` for data) before anything
    is written."""
    if (every is None) == (cron is None):
        raise InvalidArgument("give exactly one of every (ms) or cron (a cron expression)")
    zone(tz)
    if every is not None:
        every = _int_ms(every, "every", MIN_EVERY_MS)
    else:
        if not isinstance(cron, str) or not cron.strip():
            raise InvalidArgument(f"cron must be a cron expression, not {cron!r}")
        cron = " ".join(cron.split())
    if name is None:
        name = default_name(str(job_type), every, cron, tz)
    if (not isinstance(name, str) or not name or encodable(name) != name
            or len(name.encode("utf-8")) > MAX_NAME_BYTES):
        raise InvalidArgument(f"name must be Unicode text of 1..{MAX_NAME_BYTES} bytes, "
                              f"not {name!r}")
    if options is not None and not isinstance(options, dict):
        raise InvalidArgument(f"options must be an object of job options, not {options!r}")
    spec: dict[str, Any] = {
        "name": name, "type": job_type, "every": every, "cron": cron, "tz": tz,
        "data": {} if data is None else data, "options": dict(options or {}),
        "catch_up_ms": _int_ms(catch_up_ms, "catch_up_ms", MIN_CATCH_UP_MS),
    }
    job = _job(spec, max_payload_bytes)  # the type and options, checked
    job.data_json()  # the data: JSON, within the queue's payload limit
    dumps(spec, "repeat spec")
    if next_tick(spec, int(time.time() * 1000)) is None:
        raise InvalidArgument(f"cron {cron!r} has no tick in the next 50 years")
    return spec


# --- ticks --------------------------------------------------------------------------------

def next_tick(spec: dict[str, Any], after_ms: int) -> int | None:
    """The first tick later than ``after_ms``; None when a cron schedule has no more."""
    every = spec.get("every")
    if every:
        return (after_ms // int(every) + 1) * int(every)
    start = _dt.datetime.fromtimestamp(after_ms / 1000, zone(spec["tz"]))
    require("cron", "a cron schedule (queue.repeat(cron=...))")
    from cronsim import CronSim, CronSimError  # the cron extra: a worker needs only redis-py

    try:
        # cronsim answers the first time strictly after ``start`` (cron ticks are whole
        # seconds): its microseconds are dropped, then it steps one second at least.
        at = next(CronSim(spec["cron"], start))
    except CronSimError as exc:
        raise InvalidArgument(f"bad cron expression {spec['cron']!r}: {exc}") from None
    except StopIteration:
        return None
    return int(at.timestamp() * 1000)


def due_ticks(spec: dict[str, Any], tick: int, now_ms: int,
              limit: int = FIRE_LIMIT) -> tuple[list[int], int | None]:
    """(the ticks from the recorded ``tick`` to ``now_ms`` that get a job, the tick to record
    next). Ticks older than ``catch_up_ms`` are skipped; at most ``limit`` fire per call (the
    next tick is then still due and the next call goes on)."""
    window = now_ms - int(spec.get("catch_up_ms") or DEFAULT_CATCH_UP_MS)
    at: int | None = tick
    if tick < window:  # missed for too long: skip to the first tick inside the window
        at = next_tick(spec, window - 1)
    fired: list[int] = []
    while at is not None and at <= now_ms and len(fired) < limit:
        fired.append(at)
        at = next_tick(spec, at)
    return fired, at


# --- calls and plans ----------------------------------------------------------------------

def scan_call(keys: Keys, limit: int = SCAN_LIMIT) -> Call:
    return Call("scan_repeats", (keys.repeats, keys.repeats_next), (keys.prefix, limit))


def fire_call(keys: Keys, name: str, spec_text: str, spec: dict[str, Any], tick: int,
              now_ms: int) -> Call:
    fired, following = due_ticks(spec, tick, now_ms)
    return Call("fire_repeat", (keys.repeats, keys.repeats_next, keys.repeats_last, keys.ids,
                                keys.types, keys.all_jobs),
                (keys.prefix, name, spec_text, tick, "" if following is None else following,
                 keys.id_step, keys.id_offset, *job_args(spec), len(fired), *fired))


class Entry:
    """One repeat as a scan read it."""

    __slots__ = ("name", "spec", "text", "tick")

    def __init__(self, name: str, tick: int, text: str, spec: dict[str, Any]) -> None:
        self.name, self.tick, self.text, self.spec = name, tick, text, spec


def read_scan(reply: Any, unreadable: set[str] | None = None) -> tuple[int, list[Entry]]:
    """(the server's now, the repeats read); a spec this version cannot read is left out
    (and logged once per text in ``unreadable``)."""
    items = [to_text(v) for v in unwrap(reply)]
    entries = []
    for i in range(1, len(items) - 2, 3):
        name, tick, text = items[i], int(float(items[i + 1])), items[i + 2]
        if unreadable is not None and text in unreadable:
            continue
        try:
            spec = loads_or_raw(text)
            if not isinstance(spec, dict):
                raise InvalidArgument("not a JSON object")
            job_args(spec)
            next_tick(spec, tick)
        except (KueError, KeyError, TypeError, ValueError) as exc:
            if unreadable is not None and text not in unreadable:
                unreadable.add(text)
                log.warning("repeat %r: its spec cannot be read, so it is not fired: %s",
                            name, exc)
            continue
        entries.append(Entry(name, tick, text, spec))
    return int(items[0]), entries


def read_fire(reply: Any) -> tuple[int, list[int] | None]:
    """(the server's now, the new job ids) or (now, None) when the call wrote nothing."""
    values = [int(v) for v in unwrap(reply)]
    return values[1], (values[2:] if values[0] == 1 else None)


def fire_due(keys: Any) -> Plan[list[int]]:
    """Fire every due repeat once (what one scheduler pass does): the new job ids."""
    keys = repeat_keys(keys)
    now, entries = read_scan((yield [scan_call(keys)])[0])
    calls = [fire_call(keys, e.name, e.text, e.spec, e.tick, now) for e in entries
             if e.tick <= now]
    if not calls:
        return []
    ids: list[int] = []
    for reply in (yield list(calls)):
        ids.extend(read_fire(reply)[1] or ())
    return ids


def same_schedule(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("every", "cron", "tz"))


def save(keys: Any, spec: dict[str, Any]) -> Plan[dict[str, Any]]:
    """Add or replace a repeat (compare-and-set on the spec read, retried when another
    process saved it meanwhile). The same schedule re-added keeps its recorded next tick, so
    ticks missed while no scheduler ran are still caught up; another one starts afresh."""
    keys = repeat_keys(keys)
    name = spec["name"]
    for _ in range(SAVE_TRIES):
        replies = yield [scan_call(keys, 0), Read(("HGET", keys.repeats, name)),
                         Read(("ZSCORE", keys.repeats_next, name)),
                         Read(("HGET", keys.repeats_last, name))]
        now = int(unwrap(replies[0])[0])
        old_text, old_tick = to_text(unwrap(replies[1])), unwrap(replies[2])
        old = loads_or_raw(old_text) if old_text else None
        old = old if isinstance(old, dict) else None
        keep = old is not None and old_tick is not None and same_schedule(old, spec)
        created = old.get("created_at") if old else None
        stored = {**spec, "created_at": created if isinstance(created, int) else now}
        text = dumps(stored, "repeat spec")
        first = next_tick(spec, now)
        if first is None:
            raise InvalidArgument(f"cron {spec['cron']!r} has no tick in the next 50 years")
        call = Call("add_repeat", (keys.repeats, keys.repeats_next),
                    (keys.prefix, name, old_text or "", text, first, "keep" if keep else ""))
        if unwrap((yield [call])[0]) == 1:
            tick = int(float(old_tick)) if keep else first
            last = unwrap(replies[3])
            return described(stored, tick, int(to_text(last)) if last is not None else None)
    raise KueError(f"repeat {name!r}: other processes kept saving it; try again")


def described(spec: dict[str, Any], next_at: int | None, last_at: int | None) -> dict[str, Any]:
    """A repeat as ``queue.repeats()`` lists it."""
    keys = ("name", "type", "every", "cron", "tz", "data", "options", "catch_up_ms")
    return {**{k: spec.get(k) for k in keys}, "next_at": next_at, "last_at": last_at,
            "created_at": spec.get("created_at")}


def listing(keys: Any) -> Plan[list[dict[str, Any]]]:
    """Every repeat, by name (one round trip)."""
    keys = repeat_keys(keys)
    replies = yield [Read(("HGETALL", keys.repeats)),
                     Read(("ZRANGE", keys.repeats_next, 0, -1, "WITHSCORES")),
                     Read(("HGETALL", keys.repeats_last))]
    specs, last = decode_hash(unwrap(replies[0])), decode_hash(unwrap(replies[2]))
    ticks = dict(_pairs(unwrap(replies[1])))
    out = []
    for name in sorted(specs):
        spec = loads_or_raw(specs[name])
        if not isinstance(spec, dict):
            spec = {"name": name}
        out.append(described({**spec, "name": name}, ticks.get(name),
                             int(last[name]) if name in last else None))
    return out


def _pairs(reply: Any) -> Iterator[tuple[str, int]]:
    """A ZRANGE ... WITHSCORES reply (flat or paired) as (member, score) pairs."""
    items = list(reply)
    if items and isinstance(items[0], (list, tuple)):
        for member, score in items:
            yield to_text(member), int(float(score))
        return
    for i in range(0, len(items), 2):
        yield to_text(items[i]), int(float(items[i + 1]))


def remove(keys: Any, name: str) -> Plan[bool]:
    keys = repeat_keys(keys)
    call = Call("remove_repeat", (keys.repeats, keys.repeats_next, keys.repeats_last),
                (keys.prefix, name))
    return bool(unwrap((yield [call])[0]))


# --- the scheduler a worker's upkeep runs --------------------------------------------------

class Scheduler:
    """Fires due repeats from a worker's upkeep, sans I/O. Each pass sends fire_repeat for
    the repeats the last scan found due, then a new scan (in the same round trip);
    ``wait_s`` says when the soonest known tick comes. Server time is estimated from the
    scan's clock and ``clock`` (seconds), lagging the server by the reply's trip, so a tick
    is never fired early."""

    def __init__(self, keys: Any, clock: Any) -> None:
        self.keys = repeat_keys(keys)
        self.clock = clock
        self.entries: list[Entry] = []
        self.offset_ms: float | None = None  # server ms - clock ms
        self.unreadable: set[str] = set()  # spec texts that cannot be fired
        self.sent: list[Entry] = []  # the entries of the fire calls of the pass in flight
        self.fired = 0  # jobs this scheduler created

    def server_now(self) -> int | None:
        return None if self.offset_ms is None else int(self.clock() * 1000 + self.offset_ms)

    def requests(self) -> list[Request]:
        now = self.server_now()
        self.sent = [] if now is None else [e for e in self.entries if e.tick <= now]
        out: list[Request] = [fire_call(self.keys, e.name, e.text, e.spec, e.tick, now)
                              for e in self.sent if now is not None]
        out.append(scan_call(self.keys))
        return out

    def read(self, replies: Sequence[Any]) -> BaseException | None:
        """The pass's replies (fires, then the scan); the first error, if any."""
        failure: BaseException | None = None
        for entry, reply in zip(self.sent, replies[:-1]):
            try:
                _, ids = read_fire(reply)
            except InvalidArgument as exc:  # a spec the script refuses: never fired again
                self.unreadable.add(entry.text)
                log.warning("repeat %r: fire_repeat refuses its spec, so it is not fired: %s",
                            entry.name, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - reported by the upkeep (an outage...)
                failure = failure or exc
                continue
            if ids:
                self.fired += len(ids)
                log.debug("repeat jobs created: %s", ids)
        try:
            now, self.entries = read_scan(replies[-1], self.unreadable)
        except Exception as exc:  # noqa: BLE001
            return failure or exc
        self.offset_ms = now - self.clock() * 1000
        return failure

    def wait_s(self) -> float | None:
        """Seconds until the soonest tick the last scan saw (0: due now), None if none."""
        now = self.server_now()
        if now is None or not self.entries:
            return None
        return max(0.0, (min(e.tick for e in self.entries) - now) / 1000)
