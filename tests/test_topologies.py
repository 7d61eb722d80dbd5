"""The Redis Cluster and Sentinel test topologies themselves (tests/redis_cluster.py,
tests/redis_sentinel.py): they come up, route keys, survive a node kill, fail over, and leave
no process behind when they cannot start."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .conftest import _skip_or_fail
from .redis_cluster import HOST, SLOTS, RedisCluster, RedisProcess, missing_binaries, no_retry
from .redis_sentinel import SentinelSetup

pytestmark = pytest.mark.real_redis


@pytest.fixture(scope="module", autouse=True)
def _binaries() -> None:
    reason = missing_binaries()
    if reason is not None:
        _skip_or_fail(f"Redis Cluster and Sentinel tests need redis-server and redis-cli: "
                      f"{reason}")


@pytest.fixture(scope="module")
def cluster(_binaries: None) -> Iterator[RedisCluster]:
    with RedisCluster(masters=3) as started:
        yield started


@pytest.fixture(scope="module")
def sentinel(_binaries: None) -> Iterator[SentinelSetup]:
    with SentinelSetup(replicas=1, sentinels=3) as started:
        yield started


def keys_on_distinct_masters(cluster: RedisCluster, count: int) -> dict[int, str]:
    """One key per master: {master port: key}."""
    found: dict[int, str] = {}
    for n in itertools.count():
        key = f"key:{n}"
        found.setdefault(cluster.master_for_key(key), key)
        if len(found) == count:
            return found
    raise AssertionError("unreachable")


def unreachable(port: int) -> bool:
    with redis.Redis(host=HOST, port=port, socket_connect_timeout=0.5, retry=no_retry()) as client:
        try:
            client.ping()
        except redis.ConnectionError:
            return True
    return False


# -- cluster ---------------------------------------------------------------------------------


def test_cluster_comes_up_with_three_masters(cluster: RedisCluster) -> None:
    assert len(cluster.ports) == 3 and 6379 not in cluster.ports
    assert all(port < 55535 for port in cluster.ports)
    assert sorted(cluster.master_ports()) == sorted(cluster.ports)
    assert cluster.nodes == [(HOST, port) for port in cluster.ports]
    assert cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in cluster.ports)
    assert [(n.host, n.port) for n in cluster.startup_nodes] == cluster.nodes
    for port in cluster.ports:
        with cluster.node_client(port) as client:
            info = client.cluster("INFO")
            assert info["cluster_state"] == "ok"
            assert int(info["cluster_slots_assigned"]) == SLOTS


def test_client_writes_keys_in_different_slots(cluster: RedisCluster) -> None:
    cluster.flushall()
    keys = keys_on_distinct_masters(cluster, 3)
    client = cluster.client()
    try:
        for port, key in keys.items():
            client.set(key, f"on {port}")
        for port, key in keys.items():
            assert client.get(key) == f"on {port}"
            with cluster.node_client(port) as node:  # really stored on that master
                assert node.get(key) == f"on {port}"
    finally:
        client.close()


def test_hash_tagged_keys_share_a_node(cluster: RedisCluster) -> None:
    cluster.flushall()
    first, second = "{q:job:7}:data", "{q:job:7}:log"
    port = cluster.master_for_key(first)
    assert cluster.master_for_key(second) == port
    client = cluster.client()
    try:
        assert client.keyslot(first) == client.keyslot(second)
        client.mset({first: "a", second: "b"})  # one slot, so a single MSET is allowed
    finally:
        client.close()
    with cluster.node_client(port) as node:
        assert node.exists(first, second) == 2
    cluster.flushall()
    with cluster.node_client(port) as node:
        assert node.dbsize() == 0


def test_killed_node_is_unreachable_and_restart_restores_the_cluster(
        cluster: RedisCluster) -> None:
    victim = cluster.master_for_key("victim")
    others = [port for port in cluster.ports if port != victim]
    cluster.kill_node(victim)
    assert unreachable(victim)
    # the two surviving masters are a majority: they mark it failed, slots uncovered
    cluster.wait_for_cluster_state("fail", timeout=15, ports=others)

    cluster.restart_node(victim, timeout=20)
    for port in cluster.ports:
        with cluster.node_client(port) as client:
            assert client.cluster("INFO")["cluster_state"] == "ok"
    client = cluster.client()
    try:
        client.set("victim", "back")
        assert client.get("victim") == "back"
    finally:
        client.close()
    assert cluster.master_for_key("victim") == victim  # no replica, so it kept its slots


def test_single_master_cluster_holds_every_slot(_binaries: None) -> None:
    with RedisCluster(masters=1) as single:
        (port,) = single.ports
        assert single.url == f"redis+cluster://127.0.0.1:{port}"
        with single.node_client(port) as node:
            (only,) = node.execute_command("CLUSTER SLOTS")
            assert (only[0], only[1], only[2][1]) == (0, SLOTS - 1, port)
        client = single.client()
        try:
            for n in range(10):
                client.set(f"k{n}", n)
            assert [client.get(f"k{n}") for n in range(10)] == [str(n) for n in range(10)]
        finally:
            client.close()
        assert {single.master_for_key(f"k{n}") for n in range(10)} == {port}


def test_a_failed_start_stops_what_it_started(_binaries: None) -> None:
    started: list[RedisProcess] = []

    class SecondNodeBroken(RedisCluster):
        def _node_args(self, node: RedisProcess) -> list[str]:
            if node not in started:
                started.append(node)
            broken = len(started) > 1 and node is started[1]
            return super()._node_args(node) + (["--no-such-option", "x"] if broken else [])

    with pytest.raises(RuntimeError) as failure:
        SecondNodeBroken(masters=3).start()
    message = str(failure.value)
    assert "no-such-option" in message and "stderr.log" in message  # the log tail is there
    assert len(started) == 3
    for node in started:
        assert node.process is None and not Path(node.dir).exists()
        assert unreachable(node.port)


# -- sentinel --------------------------------------------------------------------------------


def test_sentinels_report_the_master(sentinel: SentinelSetup) -> None:
    master, (replica,) = sentinel.master_port, sentinel.replica_ports
    assert sentinel.master_address() == (HOST, master)
    assert sentinel.role(master) == "master" and sentinel.role(replica) == "slave"
    assert len(sentinel.sentinel_ports) == 3 and 6379 not in sentinel.sentinel_ports
    hosts = ",".join(f"127.0.0.1:{port}" for port in sentinel.sentinel_ports)
    assert sentinel.url == f"redis+sentinel://{hosts}/kueatomic"
    for port in sentinel.sentinel_ports:
        with sentinel.server_client(port) as client:
            state = client.sentinel_master("kueatomic")
            assert (state["num-slaves"], state["num-other-sentinels"]) == (1, 2)
    client = sentinel.client()
    try:
        client.set("through-sentinel", "yes")
        assert client.get("through-sentinel") == "yes"
    finally:
        client.close()


def test_failover_moves_the_master_to_the_replica(sentinel: SentinelSetup) -> None:
    old = sentinel.master_address()
    (replica,) = [port for port in sentinel.data_ports if port != old[1]]
    sentinel.failover()
    assert sentinel.wait_for_new_master(old, timeout=30) == (HOST, replica)
    assert sentinel.role(replica) == "master"
    # Sentinel demotes a live old master only after ~8-10 s (its INFO period for replicas)
    sentinel.wait_for_role(old[1], "slave", timeout=30)
    with sentinel.server_client(replica) as new_master:
        new_master.set("after-failover", "1")
        new_master.execute_command("WAIT", 1, 5000)
    with sentinel.server_client(old[1]) as demoted:
        assert demoted.get("after-failover") == "1"
