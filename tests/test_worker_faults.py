"""Workers through faults on a real redis-server: a lost claim reply (dropped, or the
connection cut halfway through it), a lost completion reply, the same for the asyncio
worker, Redis out of memory and read-only (a replica) in the middle of a drain, and a
network black hole. Every scenario checks the same things afterwards: each job's handler
ran exactly once, each job was published ``complete`` exactly once (counted on the real
server's ``<prefix>:events``, not through the proxy), no lease was lost, and the worker
still runs a job created after the fault.

The faulty network is ``tests/fault_proxy.py`` between the worker and Redis; the checks
read Redis directly. Scripts are loaded into Redis before a reply is dropped, so the rule
fires on the script's real reply, not on the NOSCRIPT answer to its first EVALSHA — except
in ``test_*lost_claim_reply_after_noscript``, which drops the reply to the claim the driver
sends again after NOSCRIPT (its ``dict`` cases fail: see their docstring).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis

from kueatomic import LeaseLost, Queue, aio, scripts
from kueatomic.errors import RedisRefused, RedisUnavailable, is_outage

from .fault_proxy import FaultProxy, evalsha_of
from .test_worker_sync import wait_for as wait_until

pytestmark = pytest.mark.real_redis

PREFIX = "wf"
# reply_timeout_ms 500: a lost reply is noticed quickly; lease_ms 15 s: anything that ran
# within a few seconds was not waiting for a lease to run out.
FAULTY = {"reply_timeout_ms": 500, "lease_ms": 15000, "upkeep_interval_ms": 100,
          "block_timeout_ms": 200}


# --- helpers ------------------------------------------------------------------------------

async def await_until(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


class Redis:
    """Reads of the queue's keys straight from the real server (never through the proxy)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)

    def count(self, *states: str) -> int:
        return sum(int(self.client.zcard(f"{PREFIX}:jobs:{state}")) for state in states)

    def done(self) -> int:
        return self.count("complete", "failed")

    def state(self, job_id: int) -> str | None:
        return self.client.hget(f"{PREFIX}:job:{job_id}", "state")  # type: ignore[no-any-return]

    def stalled(self, ids: list[int]) -> dict[int, Any]:
        """Jobs with a ``stalls`` field or a log line about a stall."""
        found = {}
        for job_id in ids:
            stalls = self.client.hget(f"{PREFIX}:job:{job_id}", "stalls")
            logs = [line for line in self.client.lrange(f"{PREFIX}:job:{job_id}:log", 0, -1)
                    if "stall" in line.lower()]
            if stalls is not None or logs:
                found[job_id] = (stalls, logs)
        return found

    def load_scripts(self) -> None:
        for script in scripts.registry().values():
            self.client.script_load(script.text)

    def close(self) -> None:
        self.client.close()


class Events:
    """Every message on ``<prefix>:events`` of the real server, from before the jobs run."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(f"{PREFIX}:events")
        deadline = time.monotonic() + 5
        while True:  # subscribed for sure before anything is published
            message = self.pubsub.get_message(timeout=0.5)
            if message and message["type"] == "subscribe":
                break
            assert time.monotonic() < deadline, "no subscribe confirmation"
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True, name="test-events")
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                message = self.pubsub.get_message(timeout=0.1)
            except (redis.ConnectionError, ValueError, OSError):
                return
            if message and message["type"] == "message":
                self.messages.append(json.loads(message["data"]))

    def per_id(self, event: str) -> Counter[int]:
        return Counter(int(m["id"]) for m in list(self.messages) if m.get("event") == event)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.pubsub.close()
        self.client.close()


class Runs:
    """A sync handler that counts its calls per job id (optionally failing some jobs)."""

    def __init__(self, sleep: float = 0.01, fail: Callable[[Any], bool] | None = None) -> None:
        self.sleep = sleep
        self.fail = fail
        self.lock = threading.Lock()
        self.calls: Counter[int] = Counter()
        self.first: dict[int, float] = {}

    def note(self, job: Any) -> None:
        with self.lock:
            self.calls[job.id] += 1
            self.first.setdefault(job.id, time.monotonic())

    def __call__(self, job: Any) -> Any:
        self.note(job)
        time.sleep(self.sleep)
        if self.fail is not None and self.fail(job):
            raise RuntimeError(f"job {job.id} fails on purpose")
        return {"n": job.data.get("n")}


class AsyncRuns(Runs):
    def handler(self) -> Callable[[Any], Awaitable[Any]]:
        async def handle(job: Any) -> Any:
            self.note(job)
            await asyncio.sleep(self.sleep)
            return {"n": job.data.get("n")}
        return handle


def assert_ran_once(runs: Runs, ids: list[int]) -> None:
    twice = {job_id: n for job_id, n in runs.calls.items() if n != 1}
    assert not twice, f"handlers ran more than once: {twice}"
    missing = sorted(set(ids) - set(runs.calls))
    assert not missing, f"handlers never ran for {missing}"
    assert set(runs.calls) == set(ids)


def assert_published_once(events: Events, ids: list[int], event: str = "complete") -> None:
    wait_until(lambda: set(events.per_id(event)) >= set(ids), 5, f"a {event} event per job")
    time.sleep(0.3)  # a duplicate would be published right behind the first
    counts = events.per_id(event)
    dup = {job_id: n for job_id, n in counts.items() if n != 1}
    assert not dup, f"{event} published more than once: {dup}"
    assert set(counts) == set(ids)


def assert_no_lost_leases(errors: list[BaseException]) -> None:
    lost = [e for e in errors if isinstance(e, LeaseLost)]
    assert not lost, f"leases were lost: {lost}"
    bugs = [e for e in errors if not is_outage(e)]
    assert not bugs, f"errors other than the outage: {bugs!r}"


def inject(proxy: FaultProxy, script: str, fault: str) -> None:
    match = evalsha_of(scripts.get(script).sha)
    if fault == "drop":
        proxy.drop_reply(match, count=1)
    else:
        proxy.cut_mid_reply(match, count=1)


def spy(proxy: FaultProxy, script: str) -> list[float]:
    """Times at which replies to ``script`` passed the proxy (a rule that never fires)."""
    seen: list[float] = []
    match = evalsha_of(scripts.get(script).sha)

    def watch(command: list[bytes]) -> bool:
        if match(command):
            seen.append(time.monotonic())
        return False

    proxy.drop_reply(watch)
    return seen


def recovered_by_reclaim(caplog: pytest.LogCaptureFixture) -> int:
    """How many jobs the worker says it got back with reclaim_jobs (lost claim replies)."""
    found = [re.search(r"recovered (\d+) jobs of a claim whose reply was lost", r.getMessage())
             for r in caplog.records]
    return sum(int(m.group(1)) for m in found if m)


def fired(proxy: FaultProxy, fault: str) -> bool:
    return proxy.dropped >= 1 if fault == "drop" else proxy.cut >= 1


@pytest.fixture
def db(real_redis_url: str) -> Iterator[Redis]:
    reader = Redis(real_redis_url)
    reader.load_scripts()
    yield reader
    reader.close()


@pytest.fixture
def events(real_redis_url: str) -> Iterator[Events]:
    listener = Events(real_redis_url)
    yield listener
    listener.close()


def specs(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"type": "t", "data": {"n": n}} for n in range(start, start + count)]


def run_late_job_sync(queue: Queue, db: Redis, runs: Runs) -> int:
    """The worker still works after the fault: a job created now completes."""
    late = queue.create("t", {"n": -1}).save()
    wait_until(lambda: db.state(late.id) == "complete", 10, "the job created after the fault")
    return late.id


# --- 1 and 2: lost replies, threaded worker ----------------------------------------------

@pytest.mark.parametrize("fault", ["drop", "cut"])
def test_lost_claim_reply_reclaims_at_once(fault: str, proxy: FaultProxy, db: Redis,
                                           events: Events,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kueatomic.worker")
    queue = Queue(PREFIX, proxy.url)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.configure_workers(**FAULTY)
    runs = Runs()
    reclaims = spy(proxy, "reclaim_jobs")
    try:
        ids = [job.id for job in queue.create_bulk(specs(20))]
        inject(proxy, "activate_jobs", fault)
        start = time.monotonic()
        queue.process("t", 5, runs)
        wait_until(lambda: db.count("complete") == 20, 10, "all 20 jobs complete")
        took = time.monotonic() - start
        assert fired(proxy, fault), "the claim reply was not lost: the fault never fired"
        # The lost claim's jobs came back through reclaim_jobs, not by waiting out the
        # 15 s lease (recovery would also have left a stall on them).
        assert took < 5, f"the jobs took {took:.1f} s: the lost claim waited for its lease"
        assert max(runs.first.values()) - start < 5
        assert reclaims, "reclaim_jobs was never called"
        assert recovered_by_reclaim(caplog) > 0
        assert_ran_once(runs, ids)
        assert db.stalled(ids) == {}
        assert any(isinstance(e, RedisUnavailable) for e in errors)
        late = run_late_job_sync(queue, db, runs)
        assert_ran_once(runs, [*ids, late])
        assert_published_once(events, [*ids, late])
        assert events.per_id("stalled") == Counter()
        assert_no_lost_leases(errors)
    finally:
        queue.shutdown(5000)
        queue.close()


@pytest.mark.parametrize("fault", ["drop", "cut"])
def test_lost_complete_reply_completes_once(fault: str, proxy: FaultProxy, db: Redis,
                                            events: Events) -> None:
    queue = Queue(PREFIX, proxy.url)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.configure_workers(**FAULTY)
    runs = Runs()
    try:
        ids = [job.id for job in queue.create_bulk(specs(20))]
        inject(proxy, "complete_jobs", fault)
        queue.process("t", 5, runs)
        wait_until(lambda: db.count("complete") == 20, 10, "all 20 jobs complete")
        assert fired(proxy, fault), "the completion reply was not lost: the fault never fired"
        assert_ran_once(runs, ids)
        assert db.count("active", "inactive", "failed") == 0
        assert db.stalled(ids) == {}
        late = run_late_job_sync(queue, db, runs)
        assert_ran_once(runs, [*ids, late])
        assert_published_once(events, [*ids, late])
        assert_no_lost_leases(errors)
    finally:
        queue.shutdown(5000)
        queue.close()


# --- 3: the same for the asyncio worker --------------------------------------------------

async def _async_scenario(script: str, fault: str, proxy: FaultProxy, db: Redis,
                          events: Events, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kueatomic.worker")
    queue = aio.Queue(PREFIX, proxy.url)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.configure_workers(**FAULTY)
    runs = AsyncRuns()
    try:
        ids = [job.id for job in await queue.create_bulk(specs(20))]
        inject(proxy, script, fault)
        start = time.monotonic()
        queue.process("t", 5, runs.handler())
        await await_until(lambda: db.count("complete") == 20, 10, "all 20 jobs complete")
        took = time.monotonic() - start
        assert fired(proxy, fault), f"the {script} reply was not lost: the fault never fired"
        if script == "activate_jobs":
            assert took < 5, f"the jobs took {took:.1f} s: the lost claim waited for its lease"
            assert recovered_by_reclaim(caplog) > 0
        assert_ran_once(runs, ids)
        assert db.stalled(ids) == {}
        late = await queue.create("t", {"n": -1}).save()
        await await_until(lambda: db.state(late.id) == "complete", 10, "the late job")
        assert_ran_once(runs, [*ids, late.id])
        await asyncio.to_thread(assert_published_once, events, [*ids, late.id])
        assert events.per_id("stalled") == Counter()
        assert_no_lost_leases(errors)
    finally:
        await queue.shutdown(5000)
        await queue.close()


@pytest.mark.parametrize("fault", ["drop", "cut"])
async def test_async_lost_claim_reply_reclaims_at_once(
        fault: str, proxy: FaultProxy, db: Redis, events: Events,
        caplog: pytest.LogCaptureFixture) -> None:
    await _async_scenario("activate_jobs", fault, proxy, db, events, caplog)


@pytest.mark.parametrize("fault", ["drop", "cut"])
async def test_async_lost_complete_reply_completes_once(
        fault: str, proxy: FaultProxy, db: Redis, events: Events,
        caplog: pytest.LogCaptureFixture) -> None:
    await _async_scenario("complete_jobs", fault, proxy, db, events, caplog)


# --- 4 and 5: Redis refusing writes in the middle of a drain ------------------------------

def _drain_through_refusal(real_redis_url: str, db: Redis, events: Events,
                           refuse: Callable[[redis.Redis], None],
                           restore: Callable[[redis.Redis], None], reasons: tuple[str, ...],
                           frozen: tuple[str, ...], idle_type: bool = False) -> None:
    """300 jobs (every 10th fails, attempts 1), refused writes after ~50 are done, 1.5 s of
    outage during which the ``frozen`` state counts do not move, then every job done once."""
    admin = redis.Redis.from_url(real_redis_url, decode_responses=True)
    queue = Queue(PREFIX, real_redis_url)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.configure_workers(upkeep_interval_ms=100)  # lease_ms: the default 15 s
    runs = Runs(sleep=0.005, fail=lambda job: job.data.get("n", 1) % 10 == 0)
    idle = Runs(sleep=0)
    try:
        jobs = queue.create_bulk(specs(300))
        ids = [job.id for job in jobs]
        failing = [job.id for job in jobs if job.data["n"] % 10 == 0]
        if idle_type:  # a claimer blocked on an empty wake-up list when the role changes
            queue.process("idle", 1, idle)
        queue.process("t", 3, runs)
        wait_until(lambda: db.done() >= 50, 10, "50 jobs done")
        if idle_type:
            wait_until(lambda: blocked(admin), 5, "the idle claimer blocked on BLPOP")
        try:
            refuse(admin)
            time.sleep(0.3)  # calls sent before the refusal may still land
            before = {state: db.count(state) for state in frozen}
            time.sleep(1.2)
            during = {state: db.count(state) for state in frozen}
            assert during == before, f"jobs moved while Redis refused writes: {before} -> {during}"
            assert db.count("inactive", "active", "complete", "failed") == 300  # data kept
        finally:
            restore(admin)
        wait_until(lambda: db.done() == 300, 15, "all 300 jobs done after the outage")
        assert db.count("complete") == 270 and db.count("failed") == 30
        assert sorted(runs.calls) == sorted(ids)
        assert_ran_once(runs, ids)
        assert db.stalled(ids) == {}
        seen = {e.reason for e in errors if isinstance(e, RedisRefused)}
        assert set(reasons) <= seen, f"no RedisRefused{reasons} error events: {errors!r}"
        late = run_late_job_sync(queue, db, runs)
        assert_published_once(events, [i for i in ids if i not in failing] + [late])
        assert_published_once(events, failing, "failed")
        if idle_type:
            woken = queue.create("idle").save()
            wait_until(lambda: db.state(woken.id) == "complete", 10, "an idle-type job")
            assert idle.calls == Counter({woken.id: 1})
        assert_no_lost_leases(errors)
    finally:
        queue.shutdown(5000)
        queue.close()
        admin.close()


def blocked(admin: redis.Redis) -> bool:
    """Whether some client waits in a BLPOP right now."""
    return any(c.get("cmd") == "blpop" and "b" in c.get("flags", "")
               for c in admin.client_list())


def test_out_of_memory_mid_drain(real_redis_url: str, db: Redis, events: Events,
                                 caplog: pytest.LogCaptureFixture) -> None:
    admin = redis.Redis.from_url(real_redis_url, decode_responses=True)
    saved = admin.config_get("maxmemory*")
    admin.close()

    def refuse(client: redis.Redis) -> None:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)

    def restore(client: redis.Redis) -> None:
        client.config_set("maxmemory", saved["maxmemory"])
        client.config_set("maxmemory-policy", saved["maxmemory-policy"])

    # Under OOM Redis refuses a script only at its first write, and only if that write is
    # a deny-oom command (HSET, ZADD...; checked on Redis 7.0): fail_jobs, renew_leases,
    # reclaim_jobs, create_jobs and (when they have work) promotion and recovery are
    # refused, but activate_jobs (first write ZPOPMIN), complete_jobs (HDEL) and
    # release_jobs run whole. So claims and completions go on through this outage and
    # failures are what stop moving: they are kept and written once Redis has memory.
    caplog.set_level(logging.INFO, logger="kueatomic.worker")
    _drain_through_refusal(real_redis_url, db, events, refuse, restore, ("OOM",), ("failed",))
    # the refused failures were kept, retried and written after the outage
    assert any(r.getMessage().startswith("flush loop: Redis unavailable") for r in caplog.records)


def test_read_only_replica_mid_drain(real_redis_url: str, db: Redis, events: Events) -> None:
    # A "master" that refuses connections: the port is bound, never listened on, so Redis
    # keeps its dataset (it only replaces it after a sync it can never start).
    nowhere = socket.socket()
    nowhere.bind(("127.0.0.1", 0))
    port = nowhere.getsockname()[1]

    def refuse(client: redis.Redis) -> None:
        client.execute_command("REPLICAOF", "127.0.0.1", str(port))
        wait_until(lambda: client.info("replication")["role"] == "slave", 5, "replica role")

    def restore(client: redis.Redis) -> None:
        client.execute_command("REPLICAOF", "NO", "ONE")

    try:
        # UNBLOCKED: the idle claimer's BLPOP, ended by the role change
        _drain_through_refusal(real_redis_url, db, events, refuse, restore,
                               ("READONLY", "UNBLOCKED"),
                               ("complete", "failed", "active", "inactive"), idle_type=True)
    finally:
        nowhere.close()


# --- 6: a black hole ----------------------------------------------------------------------

def test_black_hole_mid_drain(proxy: FaultProxy, db: Redis, events: Events) -> None:
    queue = Queue(PREFIX, proxy.url)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    # A shorter lease than FAULTY's, so that a claim Redis only read after the partition
    # healed (after the worker gave up on it: covered by its lease, by design) comes back
    # within the test's time; renewals every 3 s still outlast the 2 s partition.
    queue.configure_workers(**{**FAULTY, "lease_ms": 9000})
    runs = Runs(sleep=0.02)
    try:
        ids = [job.id for job in queue.create_bulk(specs(150))]
        queue.process("t", 5, runs)
        wait_until(lambda: db.count("complete") >= 30, 10, "30 jobs complete")
        proxy.black_hole(True)
        try:
            time.sleep(2)
        finally:
            proxy.black_hole(False)
        assert db.count("complete") < 150, "the drain was over before the partition"
        wait_until(lambda: db.count("complete") == 150, 15, "all 150 jobs complete")
        assert_ran_once(runs, ids)
        assert any(isinstance(e, RedisUnavailable) for e in errors)
        late = run_late_job_sync(queue, db, runs)
        assert_ran_once(runs, [*ids, late])
        assert_published_once(events, [*ids, late])
        assert_no_lost_leases(errors)
    finally:
        queue.shutdown(5000)
        queue.close()


# --- more lost replies: a failure, and the reclaim itself ---------------------------------

@pytest.mark.parametrize("fault", ["drop", "cut"])
def test_lost_fail_reply_fails_once(fault: str, proxy: FaultProxy, db: Redis,
                                    events: Events) -> None:
    """A failure's reply lost, in flushes that mix completions and failures (one pipeline):
    every failed attempt is recorded once, retried attempts run again exactly once."""
    queue = Queue(PREFIX, proxy.url)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.configure_workers(**FAULTY)
    first_try: set[int] = set()
    lock = threading.Lock()

    def flaky(job: Any) -> Any:
        runs.note(job)
        time.sleep(0.01)
        n = job.data["n"]
        with lock:
            again = job.id in first_try
            first_try.add(job.id)
        if n % 4 == 0:
            raise RuntimeError("fails for good")
        if n % 4 == 1 and not again:
            raise RuntimeError("fails once, then works")
        return n

    runs = Runs()
    try:
        jobs = queue.create_bulk([{"type": "t", "data": {"n": n},
                                   "options": {"attempts": 2 if n % 4 == 1 else 1}}
                                  for n in range(20)])
        ids = [job.id for job in jobs]
        failing = [job.id for job in jobs if job.data["n"] % 4 == 0]
        retried = [job.id for job in jobs if job.data["n"] % 4 == 1]
        inject(proxy, "fail_jobs", fault)
        queue.process("t", 5, flaky)
        wait_until(lambda: db.done() == 20, 10, "all 20 jobs done")
        assert fired(proxy, fault)
        assert db.count("failed") == len(failing) and db.count("complete") == 15
        assert runs.calls == Counter({i: 2 if i in retried else 1 for i in ids})
        late = run_late_job_sync(queue, db, runs)
        assert_published_once(events, [i for i in ids if i not in failing] + [late])
        assert_published_once(events, failing, "failed")
        assert_published_once(events, retried, "failed attempt")
        assert db.stalled(ids) == {}
        assert_no_lost_leases(errors)
    finally:
        queue.shutdown(5000)
        queue.close()


def test_lost_claim_and_reclaim_replies(proxy: FaultProxy, db: Redis, events: Events) -> None:
    """The claim's reply is lost, then the reclaim's: the next reclaim gets the jobs."""
    queue = Queue(PREFIX, proxy.url)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.configure_workers(**FAULTY)
    runs = Runs()
    try:
        ids = [job.id for job in queue.create_bulk(specs(20))]
        inject(proxy, "activate_jobs", "drop")
        inject(proxy, "reclaim_jobs", "drop")
        start = time.monotonic()
        queue.process("t", 5, runs)
        wait_until(lambda: db.count("complete") == 20, 10, "all 20 jobs complete")
        assert proxy.dropped == 2
        assert time.monotonic() - start < 5, "the lost claim waited for its lease"
        assert_ran_once(runs, ids)
        assert db.stalled(ids) == {}
        late = run_late_job_sync(queue, db, runs)
        assert_published_once(events, [*ids, late])
        assert_no_lost_leases(errors)
    finally:
        queue.shutdown(5000)
        queue.close()


async def test_async_black_hole_mid_drain(proxy: FaultProxy, db: Redis, events: Events) -> None:
    queue = aio.Queue(PREFIX, proxy.url)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.configure_workers(**{**FAULTY, "lease_ms": 9000})  # as the threaded test
    runs = AsyncRuns(sleep=0.02)
    try:
        ids = [job.id for job in await queue.create_bulk(specs(150))]
        queue.process("t", 5, runs.handler())
        await await_until(lambda: db.count("complete") >= 30, 10, "30 jobs complete")
        proxy.black_hole(True)
        try:
            await asyncio.sleep(2)
        finally:
            proxy.black_hole(False)
        assert db.count("complete") < 150, "the drain was over before the partition"
        await await_until(lambda: db.count("complete") == 150, 15, "all 150 jobs complete")
        assert_ran_once(runs, ids)
        assert any(isinstance(e, RedisUnavailable) for e in errors)
        late = await queue.create("t", {"n": -1}).save()
        await await_until(lambda: db.state(late.id) == "complete", 10, "the late job")
        assert_ran_once(runs, [*ids, late.id])
        await asyncio.to_thread(assert_published_once, events, [*ids, late.id])
        assert_no_lost_leases(errors)
    finally:
        await queue.shutdown(5000)
        await queue.close()


def test_lost_complete_reply_of_remove_on_complete_jobs(proxy: FaultProxy, db: Redis,
                                                        events: Events) -> None:
    """A lost completion of removeOnComplete jobs: the retry finds no hash, only the claim
    record, and answers "already done" (no LeaseLost, no second complete/remove event)."""
    queue = Queue(PREFIX, proxy.url)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.configure_workers(**FAULTY)
    runs = Runs()
    try:
        jobs = queue.create_bulk([{"type": "t", "data": {"n": n},
                                   "options": {"removeOnComplete": True}} for n in range(20)])
        ids = [job.id for job in jobs]
        inject(proxy, "complete_jobs", "drop")
        queue.process("t", 5, runs)
        wait_until(lambda: set(events.per_id("remove")) >= set(ids), 10, "20 jobs removed")
        assert proxy.dropped == 1
        assert db.count("inactive", "active", "complete", "failed") == 0
        assert_ran_once(runs, ids)
        assert_published_once(events, ids)
        assert_published_once(events, ids, "remove")
        late = run_late_job_sync(queue, db, runs)
        assert_ran_once(runs, [*ids, late])
        assert_no_lost_leases(errors)
    finally:
        queue.shutdown(5000)
        queue.close()


# --- a lost claim reply right after NOSCRIPT ----------------------------------------------

def _nth_reply(script: str, n: int) -> Callable[[list[bytes]], bool]:
    """Matches the ``n``-th reply to ``script`` (counting from 1)."""
    match, seen = evalsha_of(scripts.get(script).sha), [0]

    def nth(command: list[bytes]) -> bool:
        if not match(command):
            return False
        seen[0] += 1
        return seen[0] == n

    return nth


@pytest.mark.parametrize("option", ["url", "dict"])
def test_lost_claim_reply_after_noscript(option: str, proxy: FaultProxy, db: Redis,
                                         events: Events) -> None:
    """A worker's first claim on a Redis without its scripts (fresh, restarted, or after
    SCRIPT FLUSH) is answered NOSCRIPT; the driver loads the script and sends the claim
    again. When the reply to that second send is lost, the lost claim must be reclaimed
    at once, as any lost claim is.

    With ``redis=`` given as a dict, this fails: the worker's connections keep redis-py 8's
    default ``Retry`` (10 retries on timeouts), and the NOSCRIPT fallback
    (``SyncDriver._settle`` -> ``_one`` -> ``client.execute_command``) goes through it, so
    redis-py silently runs activate_jobs a second time under the same token. The worker
    only hears of the second run; the first run's jobs sit active under a lease nobody
    works on until it expires (15 s here), and come back with a stall."""
    url_or_dict: Any = proxy.url if option == "url" else {"host": "127.0.0.1",
                                                          "port": proxy.port}
    queue = Queue(PREFIX, url_or_dict)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.configure_workers(**FAULTY)
    runs = Runs()
    try:
        ids = [job.id for job in queue.create_bulk(specs(20))]
        db.client.script_flush()  # create_jobs was loaded just now; activate_jobs never was
        proxy.drop_reply(_nth_reply("activate_jobs", 2))  # 1: NOSCRIPT, 2: the claim's
        start = time.monotonic()
        queue.process("t", 5, runs)
        wait_until(lambda: db.count("complete") == 20 or time.monotonic() - start > 6, 8,
                   "all 20 complete, or 6 s")
        assert proxy.dropped == 1
        stalled = db.stalled(ids)
        assert db.count("complete") == 20 and not stalled, (
            f"after {time.monotonic() - start:.1f} s {db.count('complete')} of 20 complete, "
            f"{db.count('active')} active with nobody working on them, stalled {stalled}: "
            "the lost claim was run again by redis-py's retry instead of being reclaimed")
        assert_ran_once(runs, ids)
        late = run_late_job_sync(queue, db, runs)
        assert_published_once(events, [*ids, late])
        assert_no_lost_leases(errors)
    finally:
        queue.shutdown(5000)
        queue.close()


@pytest.mark.parametrize("option", ["url", "dict"])
async def test_async_lost_claim_reply_after_noscript(option: str, proxy: FaultProxy, db: Redis,
                                                     events: Events) -> None:
    """As the threaded test: ``AsyncDriver._settle`` -> ``_one`` has the same retry."""
    url_or_dict: Any = proxy.url if option == "url" else {"host": "127.0.0.1",
                                                          "port": proxy.port}
    queue = aio.Queue(PREFIX, url_or_dict)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.configure_workers(**FAULTY)
    runs = AsyncRuns()
    try:
        ids = [job.id for job in await queue.create_bulk(specs(20))]
        db.client.script_flush()
        proxy.drop_reply(_nth_reply("activate_jobs", 2))  # 1: NOSCRIPT, 2: the claim's
        start = time.monotonic()
        queue.process("t", 5, runs.handler())
        await await_until(lambda: db.count("complete") == 20 or time.monotonic() - start > 6,
                          8, "all 20 complete, or 6 s")
        assert proxy.dropped == 1
        stalled = db.stalled(ids)
        assert db.count("complete") == 20 and not stalled, (
            f"after {time.monotonic() - start:.1f} s {db.count('complete')} of 20 complete, "
            f"{db.count('active')} active with nobody working on them, stalled {stalled}: "
            "the lost claim was run again by redis-py's retry instead of being reclaimed")
        assert_ran_once(runs, ids)
        late = await queue.create("t", {"n": -1}).save()
        await await_until(lambda: db.state(late.id) == "complete", 10, "the late job")
        await asyncio.to_thread(assert_published_once, events, [*ids, late.id])
        assert_no_lost_leases(errors)
    finally:
        await queue.shutdown(5000)
        await queue.close()
