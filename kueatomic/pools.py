"""Connection pools that make a caller wait: the one rule for every client kueatomic builds.

A full pool makes its caller wait for a connection another caller releases, up to
POOL_WAIT_S (then redis-py's ConnectionError, which the drivers report as RedisUnavailable),
never fails the call at once: redis-py's default pools raise "Too many connections", which
200 asyncio tasks on one Queue met for half their saves. Clients of one Redis (connection.py),
of a Cluster slot's master (cluster.py) and of a Sentinel service's master (sentinel.py) all
get such a pool, of ``max_connections`` (URL query or dict) or POOL_SIZE connections.
"""

from __future__ import annotations

from typing import Any

import redis as redis_sync
import redis.asyncio as redis_async
import redis.asyncio.sentinel as sentinel_async
import redis.sentinel as sentinel_sync

POOL_SIZE = 100
POOL_WAIT_S = 20.0


def pool_size(asked: Any) -> int:
    """The size a waiting pool gets for ``max_connections=asked`` (None: POOL_SIZE)."""
    if not isinstance(asked, int) or asked <= 0 or asked >= 2**31:  # redis-py 5's "unbounded"
        return POOL_SIZE
    return asked


def waiting_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for a redis-py BlockingConnectionPool: its size and wait set by this rule."""
    return {**kwargs, "max_connections": pool_size(kwargs.get("max_connections")),
            "timeout": POOL_WAIT_S}


class SyncSentinelPool(sentinel_sync.SentinelConnectionPool,
                       redis_sync.BlockingConnectionPool):
    """redis-py's Sentinel pool (connections to the master the sentinels name, dropped when
    it changes) that waits when full, as BlockingConnectionPool does."""


class AsyncSentinelPool(sentinel_async.SentinelConnectionPool,
                        redis_async.BlockingConnectionPool):
    """``SyncSentinelPool`` for asyncio."""
