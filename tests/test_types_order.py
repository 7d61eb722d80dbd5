"""``queue.types()`` and ``GET /job/types`` list the types in the order Redis's SMEMBERS gives
(as Kue does), not in the order of a Python set (redis-py's reply callback makes one)."""

from __future__ import annotations

from typing import Any

import pytest

from kueatomic import Queue, aio

from .web_helpers import client_for, make_app

TYPES = [f"type{n}" for n in range(40)]


def smembers_as_sent(client: Any, key: str) -> list[str]:
    """SMEMBERS read off a connection, without redis-py's reply callback."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_command("SMEMBERS", key)
        reply = conn.read_response()
    finally:
        pool.release(conn)
    return [m.decode() if isinstance(m, bytes) else m for m in reply]


@pytest.fixture
def typed(queue: Queue) -> tuple[Queue, list[str]]:
    queue.create_bulk([{"type": t} for t in TYPES])
    order = smembers_as_sent(queue.client, queue.keys.types)
    assert sorted(order) == sorted(TYPES)
    return queue, order


def test_types_keeps_the_order_redis_gives(typed: tuple[Queue, list[str]]) -> None:
    queue, order = typed
    assert queue.types() == order


async def test_async_types_keeps_the_order_redis_gives(
        typed: tuple[Queue, list[str]], make_aqueue: Any) -> None:
    queue, order = typed
    aqueue: aio.Queue = make_aqueue(prefix=queue.prefix)
    try:
        assert await aqueue.types() == order
    finally:
        await aqueue.close()


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_api_types_keeps_the_order_redis_gives(typed: tuple[Queue, list[str]], flavor: str,
                                               backend: str) -> None:
    queue, order = typed
    with client_for(make_app(flavor, queue, backend)) as client:
        assert client.get("/job/types").json() == order


def test_the_order_is_redis_own_on_a_real_server(real_redis_url: str) -> None:
    """Forty names are a hash table in Redis 7.0 (a listpack, in insertion order, in 7.2+):
    a Python set of them practically never iterates in the order Redis sends."""
    queue = Queue(redis=real_redis_url)
    try:
        queue.create_bulk([{"type": t} for t in TYPES])
        assert queue.types() == smembers_as_sent(queue.client, queue.keys.types)
    finally:
        queue.close()
