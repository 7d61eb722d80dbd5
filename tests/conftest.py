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


@pytest.fixture(params=["fake", "real"])
def backend(request: pytest.FixtureRequest) -> str:
    """A Redis URL for an empty keyspace on fakeredis[lua] or on the real redis-server."""
    if request.param == "fake":
        return f"memory://test-{uuid.uuid4().hex}"
    return str(request.getfixturevalue("real_redis_url"))


@pytest.fixture
def make_queue(backend: str) -> Iterator[Callable[..., Queue]]:
    made: list[Queue] = []

    def make(**options: Any) -> Queue:
        options.setdefault("redis", backend)
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
