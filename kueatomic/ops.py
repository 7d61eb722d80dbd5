"""The sans-I/O core: every queue operation as a *plan*, written once.

A plan is a generator that yields a batch of requests (script calls or plain reads), receives
the batch's replies, and finally returns the operation's result. It never touches a socket,
so the sync driver (``kueatomic.driver``) and the asyncio driver (``kueatomic.aio``) run the
very same plans and differ only in how they send a batch.

Replies arrive in request order; a reply that is a ``KueError`` instance is the typed error
that request raised (``unwrap`` re-raises it), so bulk plans can report per-item errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from .codec import to_text
from .errors import IncompatibleFormat, InvalidRange, KueError
from .keyspace import Keys, id_from_zid
from .states import DATA_FORMAT, STATES, parse_state

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """One EVALSHA of a script from ``lua/`` (keys and args as the script header lists)."""

    script: str
    keys: tuple[Any, ...]
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Read:
    """One read-only Redis command, e.g. ``Read(("HGETALL", key))``."""

    command: tuple[Any, ...]


Request = Call | Read
# A batch is a list, or an iterator that builds its requests while the driver sends the
# earlier ones (bulk create: encoding the next chunk overlaps Redis running this one).
Batch = list[Request] | Iterator[Request]
Plan = Generator[Batch, list[Any], T]


def drive(plan: Plan[T], execute: Callable[[Batch], list[Any]]) -> T:
    """Run a plan: each batch it yields goes to ``execute``, whose replies it receives."""
    try:
        batch = next(plan)
        while True:
            batch = plan.send(execute(batch))
    except StopIteration as stop:
        return cast(T, stop.value)


async def drive_async(plan: Plan[T], execute: Callable[[Batch], Awaitable[list[Any]]]) -> T:
    """``drive`` with an awaited ``execute`` (the asyncio drivers)."""
    try:
        batch = next(plan)
        while True:
            batch = plan.send(await execute(batch))
    except StopIteration as stop:
        return cast(T, stop.value)


def unwrap(reply: Any) -> Any:
    if isinstance(reply, KueError):
        raise reply
    return reply


def single(request: Request) -> Plan[Any]:
    """A plan of one request whose reply is the result."""
    replies = yield [request]
    return unwrap(replies[0])


# --- reads --------------------------------------------------------------------------------

def decode_hash(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {to_text(k): to_text(v) for k, v in raw.items()}
    # RESP2 without a response callback gives a flat list.
    items = [to_text(v) for v in raw or []]
    return dict(zip(items[::2], items[1::2]))


def get_hash(keys: Keys, job_id: int) -> Plan[dict[str, str] | None]:
    replies = yield [Read(("HGETALL", keys.job(job_id)))]
    fields = decode_hash(unwrap(replies[0]))
    return fields if fields.get("type") else None


def get_hashes(keys: Keys, ids: Sequence[int]) -> Plan[list[tuple[int, dict[str, str]]]]:
    """Hashes of many jobs in one round trip; ids whose hash vanished are skipped."""
    if not ids:
        return []
    replies = yield [Read(("HGETALL", keys.job(i))) for i in ids]
    out = []
    for job_id, raw in zip(ids, replies):
        fields = decode_hash(unwrap(raw))
        if fields.get("type"):
            out.append((job_id, fields))
    return out


def logs(keys: Keys, job_id: int) -> Plan[list[str]]:
    replies = yield [Read(("LRANGE", keys.log(job_id), 0, -1))]
    return [to_text(line) for line in unwrap(replies[0])]


def count(key: str) -> Plan[int]:
    replies = yield [Read(("ZCARD", key))]
    return int(unwrap(replies[0]))


def counts(keys: Keys, job_type: str | None = None) -> Plan[dict[str, int]]:
    """ZCARD of every state's set, in one round trip."""
    names = [keys.type_state(job_type, s) if job_type else keys.state(s) for s in STATES]
    replies = yield [Read(("ZCARD", name)) for name in names]
    return {state: int(unwrap(r)) for state, r in zip(STATES, replies)}


def card(keys: Keys, state: str, job_type: str | None = None) -> Plan[int]:
    return (yield from count(keys.zset(state, job_type)))


def state_ids(keys: Keys, state: str, job_type: str | None = None) -> Plan[list[int]]:
    """Ids in a state (of a type), in zset order: priority, then FIFO."""
    return (yield from ids_in(keys.zset(state, job_type)))


def ranged(keys: Keys, state: str | None, job_type: str | None, start: Any, stop: Any,
           order: str) -> Plan[list[tuple[int, dict[str, str]]]]:
    """``ranged_hashes`` of every job (state None), a state's, or a type's in a state."""
    return (yield from ranged_hashes(keys, keys.zset(state, job_type), start, stop, order))


def ids_in(key: str, start: int = 0, stop: int = -1) -> Plan[list[int]]:
    replies = yield [Read(("ZRANGE", key, start, stop))]
    return [id_from_zid(member) for member in unwrap(replies[0])]


def check_range(start: Any, stop: Any, order: str) -> tuple[int, int, str]:
    try:
        first, last = int(start), int(stop)
    except (TypeError, ValueError):
        raise InvalidRange(f"range bounds must be integers, got {start!r}..{stop!r}") from None
    if order not in ("asc", "desc"):
        raise InvalidRange(f"order must be 'asc' or 'desc', not {order!r}")
    return first, last, order


def ranged_hashes(
    keys: Keys, zset: str, start: Any, stop: Any, order: str
) -> Plan[list[tuple[int, dict[str, str]]]]:
    """Kue's Job.range rule (docs/redis-layout.md §3): slice the zset in score order, then sort that
    slice by numeric id; 'desc' reverses it."""
    first, last, order = check_range(start, stop, order)
    ids = yield from ids_in(zset, first, last)
    ids.sort(reverse=order == "desc")
    return (yield from get_hashes(keys, ids))


def types(keys: Keys) -> Plan[list[str]]:
    replies = yield [Read(("SMEMBERS", keys.types))]
    return [to_text(t) for t in unwrap(replies[0])]


def work_time(keys: Keys) -> Plan[int | None]:
    replies = yield [Read(("GET", keys.work_time))]
    value = unwrap(replies[0])
    return None if value is None else int(to_text(value))


# --- writes: each one script call ---------------------------------------------------------

def job_call(keys: Keys, script: str, job_id: int | str, *args: Any) -> Call:
    return Call(script, (keys.job(job_id),), (keys.prefix, str(job_id), *args))


def check_format(keys: Keys) -> Plan[int]:
    """Record this version's data format in ``<prefix>:meta`` (first caller wins) and refuse
    a queue whose stored format is newer than this version reads."""
    reply = yield from single(Call("open_queue", (keys.meta,), (keys.prefix, DATA_FORMAT)))
    stored = int(reply[0])
    refuse_newer_format(keys, stored)
    return stored


def refuse_newer_format(keys: Keys, stored: int) -> None:
    if stored > DATA_FORMAT:
        raise IncompatibleFormat(
            f"queue {keys.prefix!r} holds data format {stored} ({keys.meta}), newer than the "
            f"{DATA_FORMAT} this kueatomic reads: upgrade kueatomic on this host")


# How long a job moved to active by hand is left alone before recovery returns it (nobody
# holds its lease, so nobody renews it).
MANUAL_LEASE_MS = 300_000


def set_state(
    keys: Keys, job_id: int | str, state: str, job_method: bool = False
) -> Plan[str | None]:
    """Kue's ``job.state(s)`` and its route; ``job_method`` is Kue's ``Job#complete()`` /
    ``failed()``, which also write progress 100 / failed_at."""
    call = Call("set_job_state", (keys.job(job_id), keys.leases),
                (keys.prefix, str(job_id), parse_state(state), "job" if job_method else "",
                 MANUAL_LEASE_MS))
    previous = yield from single(call)
    return to_text(previous) if previous else None


def set_priority(keys: Keys, job_id: int | str, priority: int) -> Plan[int]:
    return int((yield from single(job_call(keys, "set_job_priority", job_id, priority))))


def remove(keys: Keys, job_id: int | str) -> Plan[str]:
    call = Call("remove_job", (keys.job(job_id), *keys.end_keys),
                (keys.prefix, str(job_id)))
    return str(to_text((yield from single(call))))


def add_log(keys: Keys, job_id: int | str, lines: Iterable[str]) -> Plan[int]:
    call = Call("add_job_log", (keys.job(job_id), keys.log(job_id)), tuple(lines))
    return int((yield from single(call)))


def set_progress(
    keys: Keys, job_id: int | str, completed: float, total: float, data_json: str
) -> Plan[int]:
    call = job_call(keys, "set_job_progress", job_id, completed, total, data_json)
    return int((yield from single(call)))


def search(keys: Keys, query: str) -> Plan[list[str]]:
    call = Call("search_jobs", (keys.search_scratch,), (keys.prefix, query or ""))
    return [to_text(i) for i in (yield from single(call))]


CREATE_CHUNK = 100  # jobs per create_jobs call: small enough to overlap, large enough to amortize


def create(
    keys: Keys, encoded_jobs: Iterable[Sequence[Any]], chunk: int = CREATE_CHUNK
) -> Plan[list[int]]:
    """Create jobs from their encoded argument lists, ``chunk`` jobs per script call, all
    calls in one round trip. Each call is atomic on its own. A list of jobs is sent as one
    batch; any other iterable (a generator that validates and encodes as it goes) becomes a
    lazy batch, so the driver sends each call as soon as its chunk is encoded."""
    calls: Batch = create_calls(keys, encoded_jobs, chunk)
    if isinstance(encoded_jobs, Sequence):
        calls = list(calls)
    replies = yield calls
    ids: list[int] = []
    for reply in replies:
        ids.extend(int(i) for i in unwrap(reply))
    return ids


def create_calls(keys: Keys, encoded_jobs: Iterable[Sequence[Any]], chunk: int) -> Iterator[Call]:
    script_keys = (keys.ids, keys.types, keys.all_jobs, *keys.end_keys)
    args: list[Any] = []
    count = 0
    for encoded in encoded_jobs:
        args.extend(encoded)
        count += 1
        if count == chunk:
            yield Call("create_jobs", script_keys,
                       (keys.prefix, count, keys.id_step, keys.id_offset, *args))
            args, count = [], 0
    if count:
        yield Call("create_jobs", script_keys,
                   (keys.prefix, count, keys.id_step, keys.id_offset, *args))
