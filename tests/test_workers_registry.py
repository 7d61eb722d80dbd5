"""The workers registry and the activity series (kueatomic/presence.py, worker/heartbeat.py,
lua/register_worker.lua): entries of running workers (threads and asyncio), busy slots, exact
counts after a known workload, deregistration at a clean stop, a SIGKILLed worker process
leaving after its ttl, sharded queues, lost replies, bad script arguments, the CLI and the
web routes. On fakeredis, the session's redis-server and its Redis Cluster."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from kueatomic import InvalidArgument, Queue, Worker, aio
from kueatomic.cli import main
from kueatomic.errors import RedisUnavailable
from kueatomic.ops import single
from kueatomic.presence import COUNT_FIELDS, register_call
from kueatomic.scripts import registry
from kueatomic.worker.core import Observer
from kueatomic.worker.episodes import Episode
from kueatomic.worker.heartbeat import Heartbeat
from kueatomic.worker.settings import WorkerSettings

from .fault_proxy import FaultProxy, evalsha_of
from .test_worker_async import until
from .test_worker_sync import FAST, wait_for
from .web_helpers import client_for, make_app

ON_CLUSTER = True  # the backend fixture also runs these tests on a Redis Cluster

BEAT = {**FAST, "heartbeat_interval_ms": 50}  # entries live 150 ms without a heartbeat
ENTRY_KEYS = ["id", "host", "pid", "types", "slots", "busy", "started_at", "heartbeat_at"]
MINUTE_KEYS = ["minute", "completed", "failed", "wait_ms_avg", "run_ms_avg"]


def totals(series: list[dict[str, Any]]) -> tuple[int, int]:
    return sum(m["completed"] for m in series), sum(m["failed"] for m in series)


def check_entry(entry: dict[str, Any], worker: Any, types: list[str], slots: int) -> None:
    assert list(entry) == ENTRY_KEYS
    assert entry["id"] == worker.registry_id and entry["id"].startswith("kue:")
    assert entry["pid"] == os.getpid() and entry["host"]
    assert entry["types"] == types and entry["slots"] == slots
    assert all(isinstance(entry[k], int) for k in ("pid", "slots", "busy", "started_at",
                                                   "heartbeat_at"))
    assert 0 < entry["started_at"] <= entry["heartbeat_at"]
    assert abs(entry["heartbeat_at"] - time.time() * 1000) < 60000  # the Redis clock, ms


# --- a running worker ------------------------------------------------------------------------

def test_a_running_worker_is_listed_with_its_fields(queue: Queue) -> None:
    assert queue.workers() == []
    worker = Worker(queue, **BEAT)
    worker.process("video", 2, lambda job: None)
    worker.process("email", 3, lambda job: None)
    worker.start()
    try:
        (entry,) = wait_for(lambda: [e for e in queue.workers() if e["slots"] == 5],
                            what="the worker's entry")  # both registrations started
        check_entry(entry, worker, ["email", "video"], 5)
        assert entry["busy"] == 0
        first = entry["heartbeat_at"]
        later = wait_for(lambda: [e for e in queue.workers() if e["heartbeat_at"] > first],
                         what="a later heartbeat")
        assert later[0]["started_at"] == entry["started_at"]  # kept across heartbeats
    finally:
        worker.shutdown()
    assert queue.workers() == []  # a clean stop removes the entry at once
    assert queue.client.zcard(queue.keys.workers) == 0


async def test_an_asyncio_worker_is_listed_and_leaves_at_shutdown(
        make_aqueue: Callable[..., aio.Queue]) -> None:
    queue = make_aqueue()
    queue.configure_workers(**BEAT)
    release = asyncio.Event()

    async def handler(job: Any) -> str:
        await release.wait()
        return "ok"

    worker = aio.Worker(queue, **BEAT)
    worker.process("email", 4, handler)
    await worker.start()
    try:
        await queue.create("email", {}).save()
        found = await until(lambda: _busy(queue, 1), what="one busy slot")
        check_entry(found[0], worker, ["email"], 4)
        release.set()
        await until(lambda: _busy(queue, 0), what="the slot free again")
        assert (await queue.complete_count()) == 1
    finally:
        await worker.shutdown()
    assert await queue.workers() == []
    series = await queue.activity(5)
    assert totals(series) == (1, 0)
    await queue.close()


async def _busy(queue: aio.Queue, busy: int) -> list[dict[str, Any]]:
    found = await queue.workers()
    return found if found and found[0]["busy"] == busy else []


def test_busy_counts_the_running_handlers(queue: Queue) -> None:
    release = threading.Event()
    worker = Worker(queue, **BEAT)
    worker.process("email", 3, lambda job: release.wait(20))
    worker.start()
    try:
        queue.create_bulk([{"type": "email"} for _ in range(2)])
        (entry,) = wait_for(lambda: [e for e in queue.workers() if e["busy"] == 2],
                            what="two busy slots")
        assert entry["slots"] == 3
        release.set()
        wait_for(lambda: [e for e in queue.workers() if e["busy"] == 0], what="idle again")
    finally:
        release.set()
        worker.shutdown()


def test_two_workers_are_two_entries(queue: Queue) -> None:
    first, second = Worker(queue, **BEAT), Worker(queue, **BEAT)
    first.process("email", 1, lambda job: None)
    second.process("video", 2, lambda job: None)
    first.start()
    second.start()
    try:
        found = wait_for(lambda: len(queue.workers()) == 2 and queue.workers())
        assert {e["id"] for e in found} == {first.registry_id, second.registry_id}
        assert sorted(e["slots"] for e in found) == [1, 2]
    finally:
        first.shutdown()
    assert [e["id"] for e in queue.workers()] == [second.registry_id]
    second.shutdown()
    assert queue.workers() == []


def test_no_heartbeat_no_entry(queue: Queue) -> None:
    worker = Worker(queue, **{**BEAT, "heartbeat_interval_ms": 0})
    worker.process("email", 1, lambda job: None)
    worker.start()
    job = queue.create("email", {}).save()
    wait_for(lambda: queue.get_job(job.id).state == "complete")
    assert queue.workers() == []
    worker.shutdown()
    assert totals(queue.activity(5)) == (0, 0)


# --- the activity series ---------------------------------------------------------------------

def test_activity_counts_a_known_workload_exactly(queue: Queue) -> None:
    def handler(job: Any) -> int:
        time.sleep(0.002)
        if job.data["fail"]:
            raise ValueError("planned")
        return 1

    worker = Worker(queue, **BEAT)
    worker.process("email", 4, handler)
    worker.start()
    queue.create_bulk([{"type": "email", "data": {"fail": n < 5}, "options": {"attempts": 1}}
                       for n in range(35)])
    try:
        wait_for(lambda: queue.counts()["complete"] == 30 and queue.counts()["failed"] == 5,
                 what="the workload done")
        wait_for(lambda: totals(queue.activity(5)) == (30, 5), what="the counts sent")
    finally:
        worker.shutdown()
    series = queue.activity(5)  # the last heartbeat (ttl 0) added nothing more
    assert totals(series) == (30, 5)
    busy = [m for m in series if m["completed"] or m["failed"]]
    assert all(m["run_ms_avg"] is not None and m["run_ms_avg"] >= 1 for m in busy)
    assert all(m["wait_ms_avg"] is not None and m["wait_ms_avg"] >= 0 for m in busy)


def test_activity_is_zero_filled_oldest_first(queue: Queue) -> None:
    series = queue.activity(7)
    assert len(series) == 7 and all(list(m) == MINUTE_KEYS for m in series)
    minutes = [m["minute"] for m in series]
    assert minutes == sorted(minutes) and {b - a for a, b in itertools.pairwise(minutes)} == {60000}
    now = time.time() * 1000
    assert minutes[-1] <= now < minutes[-1] + 60000 + 1000 and minutes[-1] % 60000 == 0
    assert all(m["completed"] == m["failed"] == 0 and m["wait_ms_avg"] is None
               and m["run_ms_avg"] is None for m in series)
    assert len(queue.activity()) == 60 and len(queue.activity(1440)) == 1440
    for bad in (0, 1441, -1, "5", 2.0, True, None):
        with pytest.raises(InvalidArgument, match="1..1440"):
            queue.activity(bad)  # type: ignore[arg-type]


def test_counts_land_in_the_current_minute_and_expire_in_two_hours(queue: Queue) -> None:
    call = register_call(queue.keys, "kue:h:1:1", 15000, "h", 1, 2, 1, 0, "b:1",
                         [3, 1, 40, 4, 100, 4], ["email"])
    now, started, added = queue._run(single(call))
    assert added == 1 and started == now
    minute = now - now % 60000
    bucket = queue.keys.activity(minute)
    assert queue.client.hgetall(bucket) == {"completed": "3", "failed": "1", "wait_ms_sum": "40",
                                            "wait_count": "4", "run_ms_sum": "100",
                                            "run_count": "4"}
    assert 7_100_000 < queue.client.pttl(bucket) <= 7_200_000
    (entry,) = [m for m in queue.activity(2) if m["minute"] == minute]
    assert entry == {"minute": minute, "completed": 3, "failed": 1, "wait_ms_avg": 10.0,
                     "run_ms_avg": 25.0}


# --- lost replies and outages ----------------------------------------------------------------

def test_a_retried_batch_is_added_once(queue: Queue) -> None:
    """A heartbeat whose reply was lost is sent again with the same batch token: the counts
    are added once; a new token adds again. The same for a deregistration (ttl 0)."""
    call = register_call(queue.keys, "kue:h:1:1", 15000, "h", 1, 2, 0, 0, "b:1",
                         [2, 0, 0, 0, 0, 0], [])
    assert queue._run(single(call))[2] == 1
    assert queue._run(single(call))[2] == 0  # the retry: nothing added
    again = register_call(queue.keys, "kue:h:1:1", 15000, "h", 1, 2, 0, 0, "b:2",
                          [1, 0, 0, 0, 0, 0], [])
    bye = register_call(queue.keys, "kue:h:1:1", 0, "h", 1, 2, 0, 0, "b:3",
                        [0, 1, 0, 0, 0, 0], [])
    for request in (again, bye, bye):
        queue._run(single(request))
    assert totals(queue.activity(2)) == (3, 1)
    assert queue.workers() == [] and queue.client.zcard(queue.keys.workers) == 0
    stub = queue.keys.worker("kue:h:1:1")
    assert queue.client.hgetall(stub) == {"batch": "b:3"} and queue.client.pttl(stub) > 50000


class FakeCore:
    """What Heartbeat reads of a worker core."""

    def __init__(self, queue: Queue) -> None:
        self.keys = queue.keys
        self.regs: list[Any] = []
        self.inflight: dict[int, Any] = {}
        self.lock = threading.Lock()
        self.clock = time.monotonic


def test_the_heartbeat_keeps_its_batch_through_an_outage(queue: Queue) -> None:
    """Sans I/O: a failed or lost call keeps the batch (same token, same counts) for the next
    heartbeat; counts made meanwhile wait for the batch after it; a bug drops the batch."""
    beat = Heartbeat(1000, 3000, "kue:t:1:1")
    core = FakeCore(queue)
    record = type("R", (), {"fields": {"created_at": "100", "started_at": "130"}})()
    beat.started(record)  # type: ignore[arg-type]
    beat.finished(record, True, 7)  # type: ignore[arg-type]
    first = beat.beat(core, 0.0)
    assert first.batch.counts == [1, 0, 30, 1, 7, 1]
    queue._run(single(first.call))  # Redis ran it, but the reply is lost:
    assert beat.split([first.call], [RedisUnavailable("reply lost")])[1] is not None
    beat.finished(record, False, None)  # counted meanwhile
    assert not beat.due(0.5) and beat.due(1.0)
    second = beat.beat(core, 1.0)
    assert second.batch is first.batch and second.call.args[8] == first.call.args[8]
    assert beat.split([second.call], [queue._run(single(second.call))]) == ([], None)
    third = beat.beat(core, 2.0)
    assert third.batch.counts == [0, 1, 0, 0, 0, 0] and third.batch.token != first.batch.token
    beat.read(third, queue._run(single(third.call)))
    assert totals(queue.activity(2)) == (1, 1)
    fourth = beat.beat(core, 3.0)
    beat.read(fourth, InvalidArgument("refused"))
    assert beat.pending is None  # a bug: not sent again


def test_the_fan_out_keeps_the_users_observer(queue: Queue) -> None:
    seen: list[bool] = []

    class Mine(Observer):
        def finished(self, record: Any, ok: bool, duration_ms: int | None) -> None:
            seen.append(ok)

    worker = Worker(queue, observer=Mine(), **BEAT)
    worker.process("email", 1, lambda job: None)
    worker.start()
    queue.create_bulk([{"type": "email"} for _ in range(3)])
    wait_for(lambda: len(seen) == 3)
    worker.shutdown()
    assert seen == [True] * 3 and totals(queue.activity(5)) == (3, 0)


def test_heartbeat_settings_are_checked() -> None:
    assert WorkerSettings().heartbeat_interval_ms == 5000
    beat = Heartbeat.from_settings(WorkerSettings())
    assert beat is not None and beat.ttl_ms == 15000
    assert Heartbeat.from_settings(WorkerSettings(heartbeat_interval_ms=0)) is None
    for bad in ({"heartbeat_interval_ms": 100, "heartbeat_ttl_ms": 100},
                {"heartbeat_interval_ms": -1}, {"heartbeat_ttl_ms": 1.5},
                {"heartbeat_interval_ms": 30_000_000}):
        with pytest.raises(InvalidArgument, match="heartbeat"):
            WorkerSettings(**bad)  # type: ignore[arg-type]


# --- sharded queues ----------------------------------------------------------------------------

@pytest.mark.no_cluster  # a sharded queue is covered on the cluster by its own prefixes below
def test_a_sharded_queue_keeps_its_registry_in_shard_0(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue(prefix="sq", shards=3)
    worker = Worker(queue, **BEAT)
    worker.process("email", 2, lambda job: None)
    worker.start()
    queue.create_bulk([{"type": "email"} for _ in range(9)])  # over every shard
    try:
        wait_for(lambda: queue.counts()["complete"] == 9)
        (entry,) = wait_for(queue.workers)
        assert entry["slots"] == 2
        wait_for(lambda: totals(queue.activity(5)) == (9, 0))
        home = queue.keys.shards[0]
        assert queue.client.zcard(home.workers) == 1
        for other in queue.keys.shards[1:]:
            assert queue.client.exists(other.workers) == 0
            assert not queue.client.keys(f"{other.prefix}:activity:*")
    finally:
        worker.shutdown()
    assert queue.workers() == []


def test_a_sharded_queue_on_any_backend(backend: str) -> None:
    """On the cluster the shards' prefixes are hash-tagged, so the heartbeat's keys (shard
    0's) share one slot."""
    queue = Queue("shq", redis=backend, shards=2)
    try:
        worker = Worker(queue, **BEAT)
        worker.process("email", 1, lambda job: None)
        worker.start()
        queue.create("email", {}).save()
        wait_for(lambda: totals(queue.activity(2)) == (1, 0) and queue.workers())
        worker.shutdown()
        assert queue.workers() == []
    finally:
        queue.close()


# --- the script, called by hand ----------------------------------------------------------------

def snapshot(client: Any) -> dict[Any, Any]:
    return {key: client.dump(key) for key in sorted(client.keys("*"))}


GOOD = ["q", "kue:h:1:1", "15000", "h", "1", "2", "1", "0", "b:1", "1", "0", "5", "1", "3", "1",
        "email"]
BAD = [(0, ""), (0, "a:b"), (1, ""), (1, "jobs"), (1, "a b"), (1, "x" * 201), (2, "-1"),
       (2, "86400001"), (2, "1.5"), (3, ""), (3, "a\nb"), (3, "x" * 256), (3, b"\xff"),
       (4, "-1"), (4, "0x10"), (5, "inf"), (6, " 1"), (7, "-5"), (8, "nocounter"), (8, ""),
       (9, "-1"), (10, "1e3"), (11, "nan"), (12, "9007199254740993"), (13, ""), (14, "x"),
       (15, ""), (15, "a:b"), (15, b"\xc3\x28")]


@pytest.mark.no_cluster  # by hand: the KEYS need no routing
@pytest.mark.parametrize("position, value", BAD)
def test_bad_arguments_write_nothing(queue: Queue, position: int, value: Any) -> None:
    if queue.prefix != "q":
        pytest.skip("the arguments are for prefix q")
    client = queue.client
    sha = client.script_load(registry()["register_worker"].text)
    client.evalsha(sha, 2, "q:workers", "q:worker:kue:h:1:1", *GOOD)  # a live entry first
    before = snapshot(client)
    args = list(GOOD)
    args[position] = value
    worker_id = args[1] if isinstance(args[1], str) else "x"
    with pytest.raises(redis.ResponseError, match="KUE_BAD_ARGS"):
        client.evalsha(sha, 2, "q:workers", f"q:worker:{worker_id}", *args)
    assert snapshot(client) == before
    with pytest.raises(redis.ResponseError, match="KUE_BAD_ARGS"):  # KEYS of another queue
        client.evalsha(sha, 2, "q:workers", "other:worker:kue:h:1:1", *GOOD)
    with pytest.raises(redis.ResponseError, match="KUE_BAD_ARGS"):  # missing arguments
        client.evalsha(sha, 2, "q:workers", "q:worker:kue:h:1:1", *GOOD[:12])
    assert snapshot(client) == before


def test_expired_entries_are_trimmed_a_bounded_number_at_a_time(queue: Queue) -> None:
    client = queue.client
    stale = {f"kue:old:{n}:1": 1000 + n for n in range(150)}  # expired long ago
    client.zadd(queue.keys.workers, stale)
    call = register_call(queue.keys, "kue:h:1:1", 15000, "h", 1, 1, 0, 0, "b:1",
                         [0] * len(COUNT_FIELDS), [])
    queue._run(single(call))
    assert client.zcard(queue.keys.workers) == 150 - 100 + 1
    queue._run(single(call))
    assert client.zrange(queue.keys.workers, 0, -1) == ["kue:h:1:1"]
    assert [e["id"] for e in queue.workers()] == ["kue:h:1:1"]


def test_an_entry_without_its_hash_is_not_listed(queue: Queue) -> None:
    """Between its expiry and the next trim an id is still in <prefix>:workers: the listing
    goes by the hash (which Redis expired exactly on time)."""
    queue.client.zadd(queue.keys.workers, {"kue:gone:1:1": 2**52})
    assert queue.workers() == []


# --- the CLI -----------------------------------------------------------------------------------

def test_the_cli_prints_a_table_and_json(queue: Queue, backend: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    args = ["workers", "-r", backend, "-q", queue.prefix]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == "no live workers"
    worker = Worker(queue, **BEAT)
    worker.process("email", 3, lambda job: None)
    worker.start()
    try:
        wait_for(queue.workers)
        queue.create("email", {}).save()
        wait_for(lambda: totals(queue.activity(2)) == (1, 0))
        assert main(args) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["ID", "HOST", "PID", "TYPES", "BUSY", "STARTED", "HEARTBEAT"]
        assert lines[1].split()[0] == worker.registry_id and f" {os.getpid()} " in lines[1]
        assert " email " in lines[1] and "/3" in lines[1] and "ago" in lines[1]
        assert lines[2].startswith("1 workers, ") and lines[2].endswith("/3 slots busy")
        assert main([*args, "--json"]) == 0
        (entry,) = json.loads(capsys.readouterr().out)
        assert list(entry) == ENTRY_KEYS and entry["id"] == worker.registry_id
        assert main([*args, "--json", "--activity", "3"]) == 0
        both = json.loads(capsys.readouterr().out)
        assert [e["id"] for e in both["workers"]] == [worker.registry_id]
        assert len(both["activity"]) == 3 and totals(both["activity"]) == (1, 0)
        assert main([*args, "--activity", "2"]) == 0
        table = capsys.readouterr().out
        assert "MINUTE (UTC)" in table and "COMPLETED" in table
    finally:
        worker.shutdown()
    assert main([*args, "--activity", "0"]) == 0 and "no live" in capsys.readouterr().out
    assert main([*args, "--activity", "2000"]) == 2
    assert "1..1440" in capsys.readouterr().err


# --- the web routes ----------------------------------------------------------------------------

@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_the_routes(queue: Queue, backend: str, flavor: str) -> None:
    worker = Worker(queue, **BEAT)
    worker.process("email", 2, lambda job: None)
    worker.start()
    try:
        queue.create("email", {}).save()
        wait_for(lambda: queue.workers() and totals(queue.activity(2)) == (1, 0))
        with client_for(make_app(flavor, queue, backend)) as client:
            found = client.get("/workers")
            assert found.status_code == 200, found.text
            (entry,) = found.json()
            assert list(entry) == ENTRY_KEYS and entry["id"] == worker.registry_id
            assert entry["types"] == ["email"] and entry["slots"] == 2
            series = client.get("/stats/activity")
            assert series.status_code == 200 and len(series.json()) == 60
            assert totals(series.json()) == (1, 0)
            assert all(list(m) == MINUTE_KEYS for m in series.json())
            five = client.get("/stats/activity?minutes=5").json()
            assert len(five) == 5 and five[-1]["minute"] == series.json()[-1]["minute"]
            assert len(client.get("/stats/activity?minutes=1440").json()) == 1440
            for bad in ("0", "1441", "-1", "x", "", "1.5", "+5", "99999999"):
                refused = client.get(f"/stats/activity?minutes={bad}")
                assert refused.status_code == 400, (bad, refused.text)
                assert "1..1440" in refused.json()["error"]
    finally:
        worker.shutdown()
    with client_for(make_app(flavor, queue, backend)) as client:
        assert client.get("/workers").json() == []


# --- worker processes ----------------------------------------------------------------------

TASKS = textwrap.dedent('''
    import os, time
    from kueatomic import Queue

    queue = Queue(os.environ["QUEUE_PREFIX"], os.environ["REDIS_URL"])
    queue.configure_workers(lease_ms=900, upkeep_interval_ms=100, block_timeout_ms=200,
                            heartbeat_interval_ms=100, heartbeat_ttl_ms=1500)

    @queue.process("work", concurrency=2)
    def work(job):
        time.sleep(job.data.get("sleep", 0))
        return {"pid": os.getpid()}
''')


def start_worker(folder: Path, url: str, prefix: str) -> subprocess.Popen[str]:
    (folder / "tasks.py").write_text(TASKS)
    env = {**os.environ, "REDIS_URL": url, "QUEUE_PREFIX": prefix, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kueatomic.cli", "worker", "tasks:queue"],
                            cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "kueatomic worker" in line, line
    return proc


@pytest.mark.real_redis
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_worker_process_killed_leaves_after_its_ttl(tmp_path: Path, real_redis_url: str,
                                                      how: str) -> None:
    """SIGKILL: no clean-up at all, so the entry lives out its ttl (1.5 s) and then is gone;
    SIGTERM: the clean stop removes it at once."""
    queue = Queue("wpr", real_redis_url)
    proc = start_worker(tmp_path, real_redis_url, "wpr")
    try:
        (entry,) = wait_for(lambda: [e for e in queue.workers() if e["pid"] == proc.pid],
                            what="the process's entry")
        assert entry["types"] == ["work"] and entry["slots"] == 2
        job = queue.create("work", {"sleep": 0.01}).save()
        wait_for(lambda: queue.get_job(job.id).state == "complete")
        wait_for(lambda: totals(queue.activity(2)) == (1, 0), what="the count sent")
        if how == "SIGKILL":
            proc.kill()
            proc.wait(10)
            killed = time.monotonic()
            assert [e["pid"] for e in queue.workers()] == [proc.pid]  # until its ttl runs out
            wait_for(lambda: queue.workers() == [], timeout=5, what="the entry to expire")
            assert time.monotonic() - killed > 0.5
        else:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
            assert queue.workers() == []
        assert totals(queue.activity(2)) == (1, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        queue.close()


# --- faults on the way (tests/fault_proxy.py) --------------------------------------------------

@pytest.mark.real_redis
@pytest.mark.parametrize("fault", ["drop", "cut"])
def test_a_lost_heartbeat_reply_counts_once(fault: str, proxy: FaultProxy,
                                            real_redis_url: str) -> None:
    """The heartbeat carrying 20 completions has its reply lost after Redis ran it: the
    worker sends the same batch again and the script adds it once."""
    reader = Queue("lost", real_redis_url)  # straight to the server, never through the proxy
    queue = Queue("lost", proxy.url)
    worker = Worker(queue, **{**BEAT, "heartbeat_interval_ms": 1000, "reply_timeout_ms": 300})
    worker.process("email", 4, lambda job: None)
    try:
        worker.start()
        wait_for(reader.workers, what="the first heartbeat")  # the next one is a second away
        match = evalsha_of(registry()["register_worker"].sha)
        if fault == "drop":
            proxy.drop_reply(match, count=1)
        else:
            proxy.cut_mid_reply(match, count=1)
        queue.create_bulk([{"type": "email"} for _ in range(20)])
        wait_for(lambda: reader.counts()["complete"] == 20, what="the jobs done")
        wait_for(lambda: proxy.dropped + proxy.cut >= 1, what="the reply lost")
        wait_for(lambda: totals(reader.activity(3)) == (20, 0), what="the counts in")
        time.sleep(1.2)  # another heartbeat: nothing more
        assert totals(reader.activity(3)) == (20, 0)
    finally:
        worker.shutdown()
        queue.close()
    assert totals(reader.activity(3)) == (20, 0) and reader.workers() == []
    reader.close()


def test_no_farewell_while_housekeeping_fails(queue: Queue) -> None:
    """A stop while Redis is away does not wait for it: the entry expires with its ttl."""
    beat = Heartbeat(1000, 3000, "kue:t:1:1")
    core = FakeCore(queue)
    beat.read(beat.beat(core, 0.0), [1, 1, 1])
    failing = Episode("housekeeping", lambda *args: None)
    failing.failed(RedisUnavailable("away"), 1.0)
    core.episodes = {"housekeeping": failing}  # type: ignore[attr-defined]
    assert beat.farewell(core) is None
    core.episodes = {}  # type: ignore[attr-defined]
    bye = beat.farewell(core)
    assert bye is not None and bye.call.args[2] == 0  # ttl 0
    assert beat.farewell_read(bye, [1, 1, 1]) and beat.farewell(core) is None
