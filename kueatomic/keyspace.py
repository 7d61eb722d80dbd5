"""Every Redis key name kueatomic uses, in one place (docs/redis-layout.md §1).

The Lua scripts build the same names in ``lua/lib/kue.lua``; tests check the two agree.
"""

from __future__ import annotations

from .errors import InvalidArgument


def zid(job_id: int | str) -> str:
    """Kue's sorted-set member for a job: ``<2-digit length>|<id>`` so byte order is FIFO."""
    text = str(job_id)
    return f"{len(text):02d}|{text}"


def id_from_zid(member: str | bytes) -> int:
    text = member.decode() if isinstance(member, bytes) else member
    return int(text.split("|", 1)[1])


MAX_PREFIX_BYTES = 64
_PREFIX_REFUSED = frozenset(b" \t\n\v\f\r:\x7f") | frozenset(range(32))


def check_prefix(prefix: object) -> str:
    """A prefix is one key segment: 1..64 bytes, no ':' and no whitespace or control bytes.
    So no queue's keys are another's: "q" and "q:x" would share "q:x:jobs" (the wake-up list
    of q's type x, and q:x's zset of every job). lib/checks.lua applies the same rule."""
    if not isinstance(prefix, str) or not prefix:
        raise InvalidArgument(f"prefix must be a non-empty string, not {prefix!r}")
    raw = prefix.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_PREFIX_BYTES or _PREFIX_REFUSED.intersection(raw):
        raise InvalidArgument(
            f"prefix {prefix!r} must be 1..{MAX_PREFIX_BYTES} bytes without ':' or whitespace, "
            "so that no queue's keys overlap another's (use e.g. 'myapp-q' or '{myapp}')")
    return prefix


KUE_PROMOTION_LOCK = "promotion:lock"  # Node Kue's lock key: unprefixed (docs/redis-layout.md §1)


class Keys:
    """Key names of one queue. A prefix like ``{q}`` keeps a queue in one cluster slot;
    ``cluster`` says the queue is on a Redis Cluster, where Node Kue does not run. A shard of
    a sharded queue (kueatomic/shards.py) issues the ids ``id_offset + 1 + k * id_step``."""

    __slots__ = ("cluster", "id_offset", "id_step", "prefix")

    def __init__(self, prefix: str, *, cluster: bool = False, id_step: int = 1,
                 id_offset: int = 0) -> None:
        self.prefix = check_prefix(prefix)
        self.cluster = cluster
        self.id_step = id_step
        self.id_offset = id_offset

    @property
    def kue_locks(self) -> tuple[str, ...]:
        """Node Kue's promotion lock, which the promotion script respects; none on a
        cluster (the key would be in another slot, and Kue cannot share the queue there)."""
        return () if self.cluster else (KUE_PROMOTION_LOCK,)

    @property
    def ids(self) -> str:
        return f"{self.prefix}:ids"

    @property
    def types(self) -> str:
        return f"{self.prefix}:job:types"

    @property
    def all_jobs(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def work_time(self) -> str:
        return f"{self.prefix}:stats:work-time"

    @property
    def events(self) -> str:
        """The pub/sub channel (not a stored key)."""
        return f"{self.prefix}:events"

    @property
    def cancels(self) -> str:
        """kueatomic's pub/sub channel (not a stored key) telling workers of cancelled jobs."""
        return f"{self.prefix}:cancels"

    @property
    def meta(self) -> str:
        """kueatomic's facts about the queue (hash; field ``format``, the data format)."""
        return f"{self.prefix}:meta"

    @property
    def leases(self) -> str:
        """kueatomic's addition: zset of claimed jobs scored by lease deadline (ms)."""
        return f"{self.prefix}:leases"

    @property
    def repeats(self) -> str:
        """kueatomic's addition: hash, repeatable job name -> its spec (JSON)."""
        return f"{self.prefix}:repeats"

    @property
    def repeats_next(self) -> str:
        """kueatomic's addition: zset, repeatable job name -> its next tick (ms)."""
        return f"{self.prefix}:repeats:next"

    @property
    def repeats_last(self) -> str:
        """kueatomic's addition: hash, repeatable job name -> the last tick that got a job."""
        return f"{self.prefix}:repeats:last"

    @property
    def unique(self) -> str:
        """kueatomic's addition: hash of unique keys -> the id of the job holding each."""
        return f"{self.prefix}:unique"

    @property
    def paused(self) -> str:
        """kueatomic's addition: set of the types paused for every worker."""
        return f"{self.prefix}:paused"

    def retained(self, state: str) -> str:
        """kueatomic's addition: zset of the ``state`` (complete, failed) jobs that carry a
        retention policy, scored by when they ended (lua/lib/lifecycle.lua)."""
        return f"{self.prefix}:retained:{state}"

    @property
    def end_keys(self) -> tuple[str, str, str]:
        """The keys every script that ends a job takes (lua/lib/lifecycle.lua)."""
        return (self.unique, self.retained("complete"), self.retained("failed"))

    def waiting(self, job_id: int | str) -> str:
        """kueatomic's addition: the parents a job still waits for (set of ids)."""
        return f"{self.prefix}:job:{job_id}:waiting"

    def dependents(self, job_id: int | str) -> str:
        """kueatomic's addition: the jobs waiting for this one (set of ids)."""
        return f"{self.prefix}:job:{job_id}:dependents"

    @property
    def search_scratch(self) -> str:
        return f"{self.prefix}:searchtmpkey"

    def job(self, job_id: int | str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def log(self, job_id: int | str) -> str:
        return f"{self.prefix}:job:{job_id}:log"

    def state(self, state: str) -> str:
        return f"{self.prefix}:jobs:{state}"

    def zset(self, state: str | None, job_type: str | None = None) -> str:
        """The sorted set of every job (state None), of a state, or of a type in a state."""
        if state is None:
            return self.all_jobs
        return self.type_state(job_type, state) if job_type else self.state(state)

    def for_job(self, job_id: int | str) -> Keys:
        """The keys a job lives under: this queue's (a sharded queue picks the shard)."""
        return self

    @property
    def layouts(self) -> tuple[Keys, ...]:
        """Every Kue layout of the queue: this one (a sharded queue has one per shard)."""
        return (self,)

    def type_state(self, job_type: str, state: str) -> str:
        return f"{self.prefix}:jobs:{job_type}:{state}"

    def tokens(self, job_type: str) -> str:
        """Kue's wake-up list for a type; kueatomic keeps one token per inactive job."""
        return f"{self.prefix}:{job_type}:jobs"

    def claim(self, token: str) -> str:
        """kueatomic's addition: one claim's record, a string of the claimed ids joined by ",".

        Outcomes under the claim live beside it, expiring with it: ``<record>:complete`` (a set
        of the ids completed) and ``<record>:failed`` (a hash id -> the state a failed attempt
        ended in); see lua/README.md, "Claim records".
        """
        return f"{self.prefix}:claim:{token}"

    def search_word(self, code: str) -> str:
        return f"{self.prefix}:search:word:{code}"

    def search_object(self, job_id: int | str) -> str:
        return f"{self.prefix}:search:object:{job_id}"

    # The workers registry and the activity series (kueatomic/presence.py): on a sharded
    # queue only shard 0's are used.
    @property
    def workers(self) -> str:
        """kueatomic's addition: zset of worker ids scored by when their entry expires (ms)."""
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        """kueatomic's addition: a worker's registry entry (hash, expiring with its ttl)."""
        return f"{self.prefix}:worker:{worker_id}"

    def activity(self, minute: int | str) -> str:
        """kueatomic's addition: the counts of the minute starting at ``minute`` (ms; hash)."""
        return f"{self.prefix}:activity:{minute}"
