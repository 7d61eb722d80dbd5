"""One logical queue over N shards: ``Queue("q", redis=<cluster>, shards=8)``.

Each shard is a complete Kue layout under its own hash-tagged prefix, ``{q.0}`` ..
``{q.7}``, so it lives in one cluster slot and its scripts run there unchanged. Shard
``i`` issues the job ids ``i + 1 + k * N`` (create_jobs' id step and offset), so an id
names its shard and ``get_job(id)`` goes straight to it; ids are unique over the queue.

The plans here have the signatures of the ``kueatomic.ops`` plans the queues call, with a
``ShardedKeys`` for the ``Keys``: they send one batch holding every shard's requests (the
routed drivers in ``kueatomic.routing`` split it by shard and send each part to its node)
and merge the replies into what one queue would answer: counts add up, ids and ranges
follow the same zset order (priority, then FIFO by id), types keep first-seen order.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from . import ops
from .cluster import hash_tag
from .codec import to_text
from .errors import ConfigError
from .keyspace import Keys, id_from_zid
from .ops import Call, Plan, Read, unwrap
from .states import DATA_FORMAT, STATES

MAX_SHARDS = 1024  # create_jobs' id step limit


def shard_prefixes(prefix: str, count: int) -> list[str]:
    """``{q.0}`` .. ``{q.<count-1>}`` for the logical prefix ``q`` (or ``{q}``)."""
    base = hash_tag(prefix) or prefix
    return [f"{{{base}.{index}}}" for index in range(count)]


def check_shard_count(count: Any) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SHARDS:
        raise ConfigError(f"shards must be an integer 1..{MAX_SHARDS}, not {count!r}")
    return count


class ShardedKeys:
    """The key names of every shard, and which shard a job or a new job goes to."""

    def __init__(self, prefix: str, count: int, *, cluster: bool = False) -> None:
        self.prefix = prefix
        self.count = check_shard_count(count)
        self.shards = [Keys(p, cluster=cluster, id_step=count, id_offset=i)
                       for i, p in enumerate(shard_prefixes(prefix, count))]
        self._next = itertools.count()
        self._lock = threading.Lock()

    def for_job(self, job_id: int | str) -> Keys:
        """The shard that issued ``job_id``."""
        return self.shards[(int(job_id) - 1) % self.count]

    def pick(self, shard_key: str | None = None) -> int:
        """The shard of a new job: by ``shard_key`` (the same key, the same shard, so related
        jobs keep their order), else round robin."""
        if shard_key is not None:
            return zlib.crc32(shard_key.encode("utf-8", "surrogatepass")) % self.count
        with self._lock:
            return next(self._next) % self.count

    @property
    def layouts(self) -> tuple[Keys, ...]:
        return tuple(self.shards)

    @property
    def events(self) -> list[str]:
        return [keys.events for keys in self.shards]


# --- reads, merged ------------------------------------------------------------------------

def card(keys: ShardedKeys, state: str, job_type: str | None = None) -> Plan[int]:
    replies = yield [Read(("ZCARD", k.zset(state, job_type))) for k in keys.shards]
    return sum(int(unwrap(r)) for r in replies)


def counts(keys: ShardedKeys, job_type: str | None = None) -> Plan[dict[str, int]]:
    replies = yield [Read(("ZCARD", k.zset(s, job_type))) for k in keys.shards for s in STATES]
    totals = dict.fromkeys(STATES, 0)
    for index, reply in enumerate(replies):
        totals[STATES[index % len(STATES)]] += int(unwrap(reply))
    return totals


def _scored(reply: Any) -> list[tuple[float, str]]:
    """A ZRANGE ... WITHSCORES reply as (score, member) pairs (flat or paired replies)."""
    items = list(unwrap(reply))
    if items and isinstance(items[0], (list, tuple)):
        return [(float(score), to_text(member)) for member, score in items]
    return [(float(items[i + 1]), to_text(items[i])) for i in range(0, len(items), 2)]


def _merged_members(keys: ShardedKeys, zsets: list[str], upto: int) -> Plan[list[str]]:
    """Members of the shards' zsets in the order one zset holding them all would have (by
    score, then member: Kue's members sort FIFO), the first ``upto + 1`` (all for -1)."""
    replies = yield [Read(("ZRANGE", zset, 0, upto, "WITHSCORES")) for zset in zsets]
    return [member for _, member in heapq.merge(*(_scored(r) for r in replies))]


def state_ids(keys: ShardedKeys, state: str, job_type: str | None = None) -> Plan[list[int]]:
    zsets = [k.zset(state, job_type) for k in keys.shards]
    return [id_from_zid(m) for m in (yield from _merged_members(keys, zsets, -1))]


def ranged(keys: ShardedKeys, state: str | None, job_type: str | None, start: Any, stop: Any,
           order: str) -> Plan[list[tuple[int, dict[str, str]]]]:
    """Kue's Job.range rule over the merged zset: slice in score order, sort by id."""
    first, last, order = ops.check_range(start, stop, order)
    zsets = [k.zset(state, job_type) for k in keys.shards]
    upto = last if first >= 0 and last >= 0 else -1
    members = yield from _merged_members(keys, zsets, upto)
    window = _redis_slice(members, first, last)
    ids = sorted((id_from_zid(m) for m in window), reverse=order == "desc")
    return (yield from get_hashes(keys, ids))


def _redis_slice(items: list[Any], first: int, last: int) -> list[Any]:
    """ZRANGE's inclusive, negative-aware indexing on a list."""
    size = len(items)
    first = max(first + size, 0) if first < 0 else first
    last = last + size if last < 0 else min(last, size - 1)
    return items[first:last + 1] if first <= last else []


def get_hashes(keys: ShardedKeys, ids: Sequence[int]) -> Plan[list[tuple[int, dict[str, str]]]]:
    if not ids:
        return []
    replies = yield [Read(("HGETALL", keys.for_job(i).job(i))) for i in ids]
    out = []
    for job_id, raw in zip(ids, replies):
        fields = ops.decode_hash(unwrap(raw))
        if fields.get("type"):
            out.append((job_id, fields))
    return out


def types(keys: ShardedKeys) -> Plan[list[str]]:
    replies = yield [Read(("SMEMBERS", k.types)) for k in keys.shards]
    return list(dict.fromkeys(to_text(t) for r in replies for t in unwrap(r)))


def work_time(keys: ShardedKeys) -> Plan[int | None]:
    replies = yield [Read(("GET", k.work_time)) for k in keys.shards]
    values = [int(to_text(v)) for v in map(unwrap, replies) if v is not None]
    return sum(values) if values else None


def search(keys: ShardedKeys, query: str) -> Plan[list[str]]:
    """Every shard's matches, best first in turn (each shard ranks its own)."""
    replies = yield [Call("search_jobs", (k.search_scratch,), (k.prefix, query or ""))
                     for k in keys.shards]
    ranked = [[to_text(i) for i in unwrap(r)] for r in replies]
    return [i for group in itertools.zip_longest(*ranked) for i in group if i is not None]


# --- writes -------------------------------------------------------------------------------

def create(keys: ShardedKeys, encoded_jobs: Iterable[tuple[int, Sequence[Any]]],
           chunk: int = ops.CREATE_CHUNK) -> Plan[list[int]]:
    """Create jobs given as (shard, encoded block): each shard's jobs in calls of ``chunk``
    (atomic per call, as on one queue), every call in one batch; ids in argument order."""
    by_shard: dict[int, list[int]] = {}
    blocks: dict[int, list[Sequence[Any]]] = {}
    for position, (shard, block) in enumerate(encoded_jobs):
        by_shard.setdefault(shard, []).append(position)
        blocks.setdefault(shard, []).append(block)
    order = sorted(blocks)
    batch: list[ops.Request] = []
    for shard in order:
        batch.extend(ops.create_calls(keys.shards[shard], blocks[shard], chunk))
    replies = yield batch
    answers = iter(replies)
    ids: dict[int, int] = {}
    for shard in order:
        positions = iter(by_shard[shard])
        for _ in range(-(-len(blocks[shard]) // chunk)):  # this shard's calls, in order
            reply = next(answers)
            for job_id in unwrap(reply):
                ids[next(positions)] = int(job_id)
    return [ids[p] for p in range(len(ids))]


def check_format(keys: ShardedKeys) -> Plan[int]:
    """Record N in every shard's ``<prefix>:meta`` on first use and refuse another N; also
    the data-format check of ``ops.check_format``, per shard."""
    replies = yield [Call("open_queue", (k.meta,), (k.prefix, DATA_FORMAT, keys.count))
                     for k in keys.shards]
    stored_format = 0
    for k, reply in zip(keys.shards, replies):
        value = unwrap(reply)
        stored, shards = int(value[0]), int(value[1]) if len(value) > 1 else 0
        ops.refuse_newer_format(k, stored)
        if shards != keys.count:
            raise ConfigError(
                f"queue {keys.prefix!r} is sharded over {shards} slots ({k.meta} field shards), "
                f"not {keys.count}: open it with shards={shards}, or drain it and migrate "
                "(README, 'Changing the number of shards')")
        stored_format = max(stored_format, stored)
    return stored_format


def type_counts(keys: Keys | ShardedKeys) -> Plan[dict[str, dict[str, int]]]:
    """{type: {state: count}} of a queue (summed over the shards of a sharded one): its types,
    then every count in one pipelined round trip. The dashboard's type stats and the
    ``kueatomic_jobs`` metric both read it."""
    named = (yield from (types(keys) if isinstance(keys, ShardedKeys) else ops.types(keys)))
    job_types = sorted(named)
    if not job_types:
        return {}
    layouts = keys.layouts
    replies = yield [Read(("ZCARD", k.type_state(t, s)))
                     for t in job_types for s in STATES for k in layouts]
    counts = iter(int(unwrap(r)) for r in replies)
    return {t: {s: sum(next(counts) for _ in layouts) for s in STATES} for t in job_types}


def format_plan(keys: Keys | ShardedKeys) -> Plan[int]:
    """The data-format check (and, for a sharded queue, the shard-count check)."""
    return check_format(keys) if isinstance(keys, ShardedKeys) else ops.check_format(keys)
