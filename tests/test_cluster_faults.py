"""A Redis Cluster losing the master of a queue's slot while a producer and a worker run:
the replica is promoted, the clients follow it (connection errors, then MOVED), the old
master comes back as its replica, and with ``wait_replicas=1`` no acknowledged job is lost
and every job completes."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import kueatomic
from kueatomic import KueError, Queue

from .conftest import _skip_or_fail
from .redis_cluster import RedisCluster, missing_binaries

PREFIX = "{cf}"


@pytest.fixture(scope="module")
def replicated_cluster() -> Iterator[RedisCluster]:
    missing = missing_binaries()
    if missing:
        _skip_or_fail(missing)
    cluster = RedisCluster(masters=3, replicas=1).start()
    yield cluster
    cluster.stop()


def test_a_killed_master_loses_no_acknowledged_job(replicated_cluster: RedisCluster) -> None:
    cluster = replicated_cluster
    queue = Queue(PREFIX, redis=cluster.url, wait_replicas=1, wait_timeout_ms=1000)
    acknowledged: list[int] = []
    raised: list[str] = []
    runs: list[int] = []
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set() and len(acknowledged) < 1500:
            try:
                jobs = queue.create_bulk([{"type": "t", "data": {}} for _ in range(10)])
                acknowledged.extend(j.id for j in jobs if not isinstance(j, KueError))
            except KueError as exc:  # an outage, or not acknowledged by a replica
                raised.append(type(exc).__name__)
                time.sleep(0.1)

    def handler(job: Any) -> None:
        runs.append(job.id)

    worker = kueatomic.Worker(queue, lease_ms=2000, upkeep_interval_ms=200)
    worker.process("t", 8, handler)
    worker.start()
    producer = threading.Thread(target=produce)
    producer.start()
    try:
        deadline = time.monotonic() + 30
        while len(acknowledged) < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = cluster.master_for_key(PREFIX)
        cluster.kill_node(victim)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the replica takes over (cluster-node-timeout)
            with contextlib.suppress(Exception):  # the cluster is down meanwhile
                if cluster.master_for_key(PREFIX) != victim:
                    break
            time.sleep(0.2)
        # The promoted replica has no replica of its own until the old master comes back
        # as one: until then wait_replicas=1 acknowledges nothing (NotReplicated).
        cluster.restart_node(victim)
        producer.join(90)
        assert not producer.is_alive(), "the producer never got going again"
        assert raised, "killing the master went unnoticed"
        fresh = Queue(PREFIX, redis=cluster.url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            counts = fresh.counts()
            if counts["inactive"] + counts["active"] + counts["delayed"] == 0:
                break
            time.sleep(0.2)
        lost = [i for i in acknowledged
                if fresh.client.hget(fresh.keys.job(i), "state") != "complete"]
        print(f"\nkilled master {victim}: {len(acknowledged)} acknowledged, {len(raised)} "
              f"creates raised ({sorted(set(raised))}), {len(lost)} acknowledged not complete,"
              f" {len(runs)} handler runs for {len(set(runs))} jobs")
        assert not lost, f"{len(lost)} acknowledged jobs lost or stuck: {lost[:10]}"
        assert len(set(acknowledged)) == len(acknowledged), "an acknowledged id was reused"
        assert cluster.master_for_key(PREFIX) != victim
        fresh.close()
    finally:
        stop.set()
        producer.join(10)
        worker.shutdown(timeout=2000)
        queue.close()
