"""One logical queue over N shards (kueatomic/shards.py): on fakeredis, where every shard is
on one server, and on the session's 3-master Redis Cluster, where the shards are in their
own slots on different nodes."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import kueatomic
from kueatomic import ConfigError, Queue, aio, ops
from kueatomic.shards import shard_prefixes
from kueatomic.web import create_app

from .invariants import check_invariants
from .web_helpers import client_for

SHARDS = 4


@pytest.fixture(params=["fake", "cluster"])
def shard_url(request: pytest.FixtureRequest) -> str:
    if request.param == "fake":
        return f"memory://shards-{time.monotonic_ns()}"
    return str(request.getfixturevalue("cluster_url"))


@pytest.fixture
def make_sharded(shard_url: str) -> Iterator[Callable[..., Queue]]:
    made: list[Queue] = []

    def make(prefix: str = "sq", shards: int = SHARDS, **options: Any) -> Queue:
        queue = Queue(prefix, redis=shard_url, shards=shards, **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()


def specs(count: int) -> list[dict[str, Any]]:
    priorities = ["low", "normal", "high", "critical", "medium"]
    return [{"type": "email" if i % 3 else "video", "data": {"n": i},
             "options": {"priority": priorities[i % 5]}} for i in range(count)]


def test_shards_have_hash_tagged_names() -> None:
    assert shard_prefixes("q", 3) == ["{q.0}", "{q.1}", "{q.2}"]
    assert shard_prefixes("{q}", 2) == ["{q.0}", "{q.1}"]
    with pytest.raises(ConfigError):
        Queue("q", redis="memory://bad-shards", shards=0)


def test_jobs_spread_over_the_shards_and_ids_name_their_shard(
        make_sharded: Callable[..., Queue]) -> None:
    queue = make_sharded()
    jobs = queue.create_bulk(specs(40))
    assert [job.id for job in jobs] == list(range(1, 41))  # round robin: ids as one queue's
    for keys in queue.keys.shards:
        assert queue.driver.run(ops.count(keys.all_jobs)) == 10
    single = queue.create("email", {"one": True}).save()
    assert queue.get_job(single.id).data == {"one": True}
    for job in jobs[::7]:
        loaded = queue.get_job(job.id)
        assert loaded.data == job.data and loaded.state == "inactive"
    with pytest.raises(kueatomic.JobNotFound):
        queue.get_job(10_000)


def test_a_shard_key_keeps_related_jobs_in_one_shard_in_order(
        make_sharded: Callable[..., Queue]) -> None:
    queue = make_sharded()
    first = [queue.create("t", {"n": i}).shard_key("customer-42").save() for i in range(6)]
    shard = {(job.id - 1) % SHARDS for job in first}
    assert len(shard) == 1
    assert queue.inactive("t") == [job.id for job in first]  # FIFO within the shard
    bulk = queue.create_bulk([queue.create("t", {"n": i}).shard_key("customer-42")
                              for i in range(4)])
    assert {(job.id - 1) % SHARDS for job in bulk} == shard


def test_merged_reads_equal_a_single_queues(make_sharded: Callable[..., Queue],
                                            shard_url: str) -> None:
    sharded = make_sharded()
    single = Queue("{one}", redis=shard_url)
    try:
        for queue in (sharded, single):
            jobs = queue.create_bulk(specs(30))
            queue.create("video", {"later": True}).delay(60_000).save()
            jobs[3].complete()
            jobs[4].failed()
            jobs[5].set_priority(-20)
            jobs[6].log("hello")
        assert sharded.counts() == single.counts()
        assert sharded.counts("email") == single.counts("email")
        assert sharded.card("inactive", "video") == single.card("inactive", "video")
        for state in kueatomic.STATES:
            assert sharded.state(state) == single.state(state), state
        for start, stop, order in [(0, 9, "asc"), (5, 20, "desc"), (0, -1, "asc"),
                                   (-5, -1, "asc"), (25, 40, "asc")]:
            assert [j.id for j in sharded.range(start, stop, order)] == \
                [j.id for j in single.range(start, stop, order)], (start, stop, order)
            assert [j.id for j in sharded.range_by_state("inactive", start, stop, order)] == \
                [j.id for j in single.range_by_state("inactive", start, stop, order)]
            assert [j.id for j in sharded.range_by_type("email", "inactive", start, stop)] == \
                [j.id for j in single.range_by_type("email", "inactive", start, stop)]
        assert sorted(sharded.types()) == sorted(single.types())
        assert sharded.job_logs(7) == single.job_logs(7)
        sharded.get_job(1).remove()
        single.get_job(1).remove()
        assert sharded.counts() == single.counts()
        for keys in sharded.keys.shards:
            check_invariants(sharded.driver.drivers[keys.prefix].client, keys.prefix)
    finally:
        single.close()


def test_opening_with_another_shard_count_is_refused(make_sharded: Callable[..., Queue]) -> None:
    make_sharded().create("t").save()
    with pytest.raises(ConfigError, match="sharded over 4"):
        make_sharded(shards=3).create("t").save()
    assert make_sharded().create("t").save().id == 5  # shard 0 again, its second id


def test_one_worker_drains_every_shard_and_none_starves(
        make_sharded: Callable[..., Queue]) -> None:
    """A hot shard with 300 jobs and a few jobs on each other shard: every job runs once,
    and the small shards are done long before the hot one."""
    queue = make_sharded()
    queue.create_bulk([queue.create("t", {"i": i}).shard_key("hot") for i in range(300)])
    queue.create_bulk([{"type": "t", "data": {"i": i}} for i in range(12)])
    queue.create("t", {"delayed": True}).delay(200).save()
    runs: list[tuple[int, float]] = []
    lock = threading.Lock()
    started = time.monotonic()

    def handler(job: Any) -> None:
        with lock:
            runs.append((job.id, time.monotonic() - started))
        time.sleep(0.01)  # the hot shard takes about 300 * 10 ms / 4 slots

    worker = kueatomic.Worker(queue, upkeep_interval_ms=100)
    worker.process("t", 4, handler)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(runs) < 313 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.shutdown(timeout=5000)
    ids = [job_id for job_id, _ in runs]
    assert len(ids) == 313 and len(set(ids)) == 313, "every job runs exactly once"
    assert queue.complete_count() == 313 and queue.counts()["inactive"] == 0
    finished: dict[int, float] = collections.defaultdict(float)
    for job_id, at in runs:
        finished[(job_id - 1) % SHARDS] = max(finished[(job_id - 1) % SHARDS], at)
    hot = max(finished, key=lambda shard: sum(1 for i in ids if (i - 1) % SHARDS == shard))
    for shard, at in finished.items():
        if shard != hot:
            assert at < finished[hot] / 2, (shard, finished)


def test_the_web_api_answers_for_the_logical_queue(make_sharded: Callable[..., Queue]) -> None:
    queue = make_sharded()
    queue.create_bulk(specs(12))
    with client_for(create_app(queue)) as client:
        stats = client.get("/stats").json()
        assert stats["inactiveCount"] == 12
        listed = client.get("/jobs/inactive/0..20/asc").json()
        assert sorted(int(job["id"]) for job in listed) == list(range(1, 13))
        assert client.get("/job/7").json()["data"] == {"n": 6}
        assert client.get("/jobs/email/inactive/stats").json() == {"count": 8}
        created = client.post("/job", json={"type": "email", "data": {"x": 1}}).json()
        assert queue.get_job(created["id"]).data == {"x": 1}
        assert client.delete("/job/7").json()["message"]
        assert client.get("/job/7").status_code == 404


def test_the_asyncio_queue_and_worker_shard_too(shard_url: str) -> None:
    async def scenario() -> list[int]:
        queue = aio.Queue("aq", redis=shard_url, shards=3)
        await queue.create_bulk([{"type": "t", "data": {"i": i}} for i in range(30)])
        done: list[int] = []

        async def handler(job: Any) -> None:
            done.append(job.id)

        worker = aio.Worker(queue, upkeep_interval_ms=100)
        worker.process("t", 5, handler)
        await worker.start()
        for _ in range(200):
            if len(done) >= 30:
                break
            await asyncio.sleep(0.05)
        await worker.shutdown(timeout=5000)
        assert (await queue.counts())["complete"] == 30
        await queue.close()
        return done

    assert sorted(asyncio.run(scenario())) == list(range(1, 31))
