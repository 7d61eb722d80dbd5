"""Fixtures: every behaviour test runs on fakeredis[lua] and on a private redis-server.

``backend`` gives a Redis URL for a fresh, empty keyspace: ``memory://<unique>`` (fakeredis)
or the session's own redis-server (flushed between tests; it is ours, never 6379).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from kueatomic import Queue, aio

from .fault_proxy import FaultProxy
from .kue_node import KueNode, kue_node_modules
from .redis_cluster import RedisCluster, missing_binaries
from .redis_server import INSTALL_HINT, RedisServer, redis_server_binary, require_redis


def _skip_or_fail(reason: str) -> None:
    if require_redis():
        pytest.fail(f"{reason}; KUEATOMIC_REQUIRE_REDIS=1 is set, so this is an error. {INSTALL_HINT}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's private redis-server (skips, or fails under KUEATOMIC_REQUIRE_REDIS=1,
    when redis-server is not installed)."""
    if redis_server_binary() is None:
        _skip_or_fail("redis-server is not installed")
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def real_redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(redis_server.url)
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    client.flushall()  # our own private server only
    client.script_flush()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """The session's private 3-master Redis Cluster (started on first use)."""
    missing = missing_binaries()
    if missing:
        _skip_or_fail(missing)
    cluster = RedisCluster(masters=3).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: RedisCluster) -> str:
    """The session cluster's redis+cluster:// URL, every master flushed (ours, never 6379)."""
    redis_cluster.flushall(scripts=True)
    return redis_cluster.url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``backend`` runs each test on fakeredis and the real server; in a module that sets
    ``ON_CLUSTER = True`` also on the session's cluster (a test marked ``no_cluster`` not),
    unless the test parametrizes ``backend`` itself."""
    if "backend" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if "backend" in ([n.strip() for n in names.split(",")] if isinstance(names, str) else names):
            return
    params = ["fake", "real"]
    if getattr(metafunc.module, "ON_CLUSTER", False) and \
            metafunc.definition.get_closest_marker("no_cluster") is None:
        params.append("cluster")
    metafunc.parametrize("backend", params, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """A Redis URL for an empty keyspace on fakeredis[lua], the real redis-server or the
    session's Redis Cluster (``redis+cluster://``; queues there need a hash-tagged prefix,
    which ``make_queue`` / ``make_aqueue`` / ``queue_prefix`` give them)."""
    if request.param == "fake":
        return f"memory://test-{uuid.uuid4().hex}"
    if request.param == "cluster":
        return str(request.getfixturevalue("cluster_url"))
    return str(request.getfixturevalue("real_redis_url"))


def queue_prefix(backend: str, prefix: str = "q") -> str:
    """``prefix``, or ``{prefix}`` on a cluster, where a queue must live in one slot."""
    if backend.startswith("redis+cluster://") and "{" not in prefix:
        return f"{{{prefix}}}"
    return prefix


@pytest.fixture
def make_queue(backend: str) -> Iterator[Callable[..., Queue]]:
    made: list[Queue] = []

    def make(**options: Any) -> Queue:
        options.setdefault("redis", backend)
        if isinstance(options["redis"], str) and options.get("shards") is None:
            options["prefix"] = queue_prefix(options["redis"], options.get("prefix", "q"))
        queue = Queue(**options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()


@pytest.fixture
def queue(make_queue: Callable[..., Queue]) -> Queue:
    return make_queue()


@pytest.fixture
def make_aqueue(backend: str) -> Callable[..., aio.Queue]:
    def make(**options: Any) -> aio.Queue:
        options.setdefault("redis", backend)
        if isinstance(options["redis"], str) and options.get("shards") is None:
            options["prefix"] = queue_prefix(options["redis"], options.get("prefix", "q"))
        return aio.Queue(**options)

    return make


@pytest.fixture
def proxy(redis_server: RedisServer, real_redis_url: str) -> Iterator[FaultProxy]:
    """tests/fault_proxy.py in front of the session's redis-server (its port: ``.port``)."""
    with FaultProxy(redis_server.port) as started:
        yield started
        assert started.errors == []


@pytest.fixture(scope="session")
def kue_modules() -> Any:
    """Node Kue 0.11.6's installed node_modules (skips, or fails under
    KUEATOMIC_REQUIRE_REDIS=1, without node and npm)."""
    return kue_node_modules()


@pytest.fixture
def node(kue_modules: Any, redis_server: Any, real_redis_url: str,
         request: pytest.FixtureRequest) -> KueNode:
    """A Node Kue process on the session's redis-server, with the test module's PREFIX."""
    return KueNode(kue_modules, redis_server.port, request.module.PREFIX)
