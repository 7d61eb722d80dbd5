"""Events nobody can hear are not sent (lib/kue.lua, publish): past a call's first few events
a script asks once whether anyone listens. Every listener still hears every event: one on the
channel, one on any pattern, one on a replica, one on another Cluster node."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from kueatomic import Queue

from .conftest import redis_server_binary
from .redis_cluster import RedisCluster
from .redis_server import RedisServer

JOBS = 30  # one create_jobs call, one `enqueue` event per job


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A redis-server of this test's own: the publish counts are the whole server's."""
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    own = RedisServer().start()
    yield own
    own.cleanup()


def publishes(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_publish", {}).get("calls", 0))


def create_batch(url: str, prefix: str = "q") -> list[int]:
    queue = Queue(prefix, redis=url)
    try:
        jobs = queue.create_bulk([{"type": "email", "data": {"n": n}} for n in range(JOBS)])
        return [int(job.id) for job in jobs]
    finally:
        queue.close()


def heard_ids(pubsub: Any, want: int, timeout: float = 5.0) -> list[int]:
    """The ids of the `enqueue` events a subscription got (its confirmations skipped)."""
    ids: list[int] = []
    deadline = time.monotonic() + timeout
    while len(ids) < want and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] in ("message", "pmessage"):
            event = json.loads(message["data"])
            assert event["event"] == "enqueue"
            ids.append(int(event["id"]))
    return ids


def subscribed(client: redis.Redis, channel: str | None = None,
               pattern: str | None = None) -> Any:
    pubsub = client.pubsub()
    if channel:
        pubsub.subscribe(channel)
    if pattern:
        pubsub.psubscribe(pattern)
    assert pubsub.get_message(timeout=2)["type"] in ("subscribe", "psubscribe")
    return pubsub


def test_a_batch_nobody_hears_publishes_only_its_first_events(server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url)
    before = publishes(client)
    ids = create_batch(server.url)
    sent = publishes(client) - before
    assert len(ids) == JOBS and 0 < sent < JOBS  # the first few, unasked; then asked: nobody
    client.close()


def test_a_subscriber_on_the_channel_hears_every_event(server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url)
    pubsub = subscribed(client, channel="q:events")
    ids = create_batch(server.url)
    assert heard_ids(pubsub, JOBS) == ids
    pubsub.close()
    client.close()


def test_a_pattern_subscriber_makes_every_event_go_out(server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url)
    pubsub = subscribed(client, pattern="*:events")
    before = publishes(client)
    ids = create_batch(server.url)
    assert heard_ids(pubsub, JOBS) == ids
    assert publishes(client) - before == JOBS
    pubsub.close()
    client.close()


def test_a_subscriber_on_a_replica_hears_every_event(server: RedisServer) -> None:
    replica = RedisServer().start()
    try:
        replica_client = redis.Redis.from_url(replica.url)
        replica_client.replicaof("127.0.0.1", server.port)
        deadline = time.monotonic() + 10
        while replica_client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not connect"
            time.sleep(0.05)
        pubsub = subscribed(replica_client, channel="q:events")
        ids = create_batch(server.url)  # the master has no subscriber; its replica has one
        assert heard_ids(pubsub, JOBS) == ids
        pubsub.close()
        replica_client.close()
    finally:
        replica.cleanup()


def test_a_subscriber_on_another_cluster_node_hears_every_event(
        cluster_url: str, redis_cluster: RedisCluster) -> None:
    prefix = "{heard}"
    owner = redis_cluster.client().nodes_manager.get_node_from_slot(
        redis.cluster.key_slot(prefix.encode()))
    other = next(port for port in redis_cluster.master_ports() if port != owner.port)
    node = redis_cluster.node_client(other)
    pubsub = subscribed(node, channel=f"{prefix}:events")
    ids = create_batch(cluster_url, prefix)
    assert heard_ids(pubsub, JOBS) == ids
    pubsub.close()
    node.close()
