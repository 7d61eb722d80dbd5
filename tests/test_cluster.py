"""Redis Cluster, one queue in one slot (kueatomic/cluster.py): URLs and clients, the hash-tag
rule, a client that starts at a node not owning the slot, and the CLIs."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis
import redis.asyncio

import kueatomic
from kueatomic import ConfigError, Queue, aio
from kueatomic.cli import main
from kueatomic.cluster import hash_tag, parse_url
from kueatomic.web import create_app

from .crowds import crowd_a_small_pool
from .redis_cluster import RedisCluster
from .web_helpers import client_for


def test_hash_tags_follow_the_cluster_spec() -> None:
    assert hash_tag("{q}") == "q" and hash_tag("a{b}c") == "b" and hash_tag("{q.3}:x") == "q.3"
    assert hash_tag("q") is None and hash_tag("{}q") is None and hash_tag("{q") is None


def test_cluster_urls() -> None:
    seeds = parse_url("rediss+cluster://u:p%40ss@h1:7000,h2:7001?socket_timeout=2.5")
    assert seeds.nodes == [("h1", 7000), ("h2", 7001)] and seeds.tls
    assert seeds.kwargs == {"username": "u", "password": "p@ss", "socket_timeout": 2.5}
    assert "p@ss" not in seeds.describe()
    for bad in ["redis+cluster://", "redis+cluster://h:x", "redis+cluster://h:1/3",
                "redis+cluster://h:1?bogus=1", "redis+cluster://h:1?socket_timeout=soon"]:
        with pytest.raises(ConfigError):
            Queue("{q}", redis=bad)


def test_a_prefix_without_a_hash_tag_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"use the prefix '\{q\}'"):
        Queue("q", redis="redis+cluster://127.0.0.1:7000")
    Queue("{q}", redis="redis+cluster://127.0.0.1:7000")  # no I/O until used


def only_non_owner(cluster: RedisCluster, prefix: str) -> str:
    """A cluster URL naming one node, one that does not own the prefix's slot."""
    owner = cluster.master_for_key(prefix)
    other = next(port for port in cluster.master_ports() if port != owner)
    return f"redis+cluster://127.0.0.1:{other}"


def test_a_client_that_starts_at_the_wrong_node_follows_moved(
        redis_cluster: RedisCluster, cluster_url: str) -> None:
    url = only_non_owner(redis_cluster, "{moved}")
    queue = Queue("{moved}", redis=url)
    job = queue.create("t", {"a": 1}).save()
    assert queue.get_job(job.id).data == {"a": 1}
    assert queue.client.hget(queue.keys.job(job.id), "type") == "t"  # a direct command too
    assert queue.connection.route.address[1] == redis_cluster.master_for_key("{moved}")
    with client_for(create_app(Queue("{moved}", redis=url))) as web:
        assert web.get("/stats").json()["inactiveCount"] == 1
        assert web.get(f"/job/{job.id}").json()["type"] == "t"
    queue.close()


def test_redis_cluster_clients_are_taken_as_redis(redis_cluster: RedisCluster,
                                                  cluster_url: str) -> None:
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.master_ports()[0])
    queue = Queue("{rc}", redis=client)
    assert queue.create("t").save().id == 1
    assert "redis+cluster://" in queue.connection.where
    client.close()
    queue.close()

    async def scenario() -> int:
        aclient = redis.asyncio.cluster.RedisCluster(
            host="127.0.0.1", port=redis_cluster.master_ports()[0])
        aqueue = aio.Queue("{rc}", redis=aclient)
        job = await aqueue.create("t").save()
        await aqueue.close()
        await aclient.aclose()
        return int(job.id)

    assert asyncio.run(scenario()) == 2


def test_the_clis_take_cluster_urls(redis_cluster: RedisCluster, cluster_url: str,
                                    capsys: Any) -> None:
    url = only_non_owner(redis_cluster, "{cli}")
    queue = Queue("{cli}", redis=url)
    queue.create("email").save()
    assert main(["stats", "-r", url, "-q", "{cli}"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["inactive"] == 1
    assert main(["stats", "-r", url]) == 2  # the default prefix q has no hash tag
    assert "hash tag" in capsys.readouterr().err
    queue.close()


def test_upkeep_runs_on_a_cluster(cluster_url: str) -> None:
    """The issue's symptom: promotion declared the unprefixed promotion:lock (another slot),
    so the upkeep pass failed with CROSSSLOT and nothing was promoted or recovered."""
    queue = Queue("{up}", redis=cluster_url)
    job = queue.create("t").delay(50).save()
    worker = kueatomic.Worker(queue, upkeep_interval_ms=50)
    done: list[int] = []
    worker.process("t", 1, lambda j: done.append(j.id))
    worker.start()
    try:
        for _ in range(100):
            if done:
                break
            time.sleep(0.05)
        assert done == [job.id] and worker.error is None
    finally:
        worker.shutdown(timeout=2000)
        queue.close()


def test_a_full_slot_pool_makes_callers_wait(cluster_url: str) -> None:
    crowd_a_small_pool(cluster_url, "{crowd}")


def test_a_wait_for_a_connection_that_times_out_keeps_the_route(cluster_url: str) -> None:
    """A full pool's wait running out is no node failure: RedisUnavailable, and the route still
    names the slot's master (a lost connection would move it to the next node)."""
    queue = Queue("{full}", redis=cluster_url + "?max_connections=1")
    queue.create("t").save()
    pool = queue.client.connection_pool
    address = queue.connection.route.address
    held = pool.get_connection()
    pool.timeout = 0.2
    with pytest.raises(kueatomic.RedisUnavailable):
        queue.inactive_count("t")
    assert queue.connection.route.address == address
    pool.release(held)
    pool.timeout = 20
    assert queue.inactive_count("t") == 1
    queue.close()


def test_a_connection_taken_before_the_route_moved_is_dropped_on_release(
        redis_cluster: RedisCluster, cluster_url: str) -> None:
    """Sync and asyncio: the route moves (a MOVED, a failover) while a connection is out;
    giving it back closes it instead of raising or pooling a connection to the old node."""
    queue = Queue("{moving}", redis=cluster_url)
    pool, route = queue.client.connection_pool, queue.connection.route
    other = next(port for port in redis_cluster.master_ports() if port != route.address[1])
    held = pool.get_connection()
    route.moved("127.0.0.1", other)
    fresh = pool.get_connection()  # re-points the pool
    pool.release(held)
    pool.release(fresh)
    assert held._sock is None and fresh.port == other
    queue.close()

    async def in_asyncio() -> None:
        aqueue = aio.Queue("{moving}", redis=cluster_url)
        apool, aroute = aqueue.client.connection_pool, aqueue.connection.route
        aother = next(port for port in redis_cluster.master_ports()
                      if port != aroute.address[1])
        aheld = await apool.get_connection()
        aroute.moved("127.0.0.1", aother)
        afresh = await apool.get_connection()
        await apool.release(aheld)
        await apool.release(afresh)
        assert not aheld.is_connected and afresh.port == aother
        await aqueue.close()

    asyncio.run(in_asyncio())
