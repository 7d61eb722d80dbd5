"""Redis Cluster: a queue lives in one hash slot, so kueatomic talks to one master at a time.

The prefix carries a hash tag (``{q}``), so every key of the queue, per-job keys included,
is in the slot of that tag. Every client kueatomic makes for the queue is then a plain
``redis.Redis`` (or asyncio) whose pool points at the master that owns the slot: scripts
are streamed and pipelined exactly as on a single Redis, in one round trip per batch.

The pool follows the slot (``SlotRoute``): a MOVED reply names the new owner, and the
refused command, which did nothing, is sent there once more (driver.py); a connection
that fails moves the pool to the next node it knows, which answers MOVED with the owner
after a failover. ASK, TRYAGAIN and CLUSTERDOWN (a slot being migrated, or the cluster
without a master for it) are outages that callers retry like a dead Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import redis as redis_sync
import redis.asyncio as redis_async

from .errors import ConfigError
from .pools import waiting_kwargs
from .urls import parse_nodes_url

SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_PORT = 6379

# URL query options a cluster URL may carry, and how to read them.
_URL_OPTIONS: dict[str, Any] = {
    "socket_timeout": float, "socket_connect_timeout": float, "health_check_interval": int,
    "client_name": str, "ssl_cert_reqs": str, "ssl_ca_certs": str, "ssl_certfile": str,
    "ssl_keyfile": str, "ssl_check_hostname": lambda v: v.lower() in ("1", "true", "yes"),
    "max_connections": int,
}


def is_cluster_url(option: Any) -> bool:
    return isinstance(option, str) and urlparse(option).scheme in SCHEMES


def is_cluster_client(option: Any) -> bool:
    return isinstance(option, (redis_sync.RedisCluster, redis_async.RedisCluster))


def hash_tag(key: str) -> str | None:
    """The part of ``key`` Redis Cluster hashes, when it is not the whole key: the text
    between the first "{" and the first "}" after it, if not empty (the Cluster spec)."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1:end]


def require_hash_tag(prefix: str) -> None:
    """A queue on a cluster must keep all of its keys in one slot (its scripts touch many)."""
    if hash_tag(prefix) is None:
        raise ConfigError(
            f"prefix {prefix!r} has no hash tag, so its keys would spread over the cluster's "
            f"slots and no script could run; use the prefix '{{{prefix}}}' (Queue('{{{prefix}}}'"
            f", ...), or -q '{{{prefix}}}' on the command line) so every key of the queue lives "
            "in one slot")


@dataclass
class ClusterSeeds:
    """Where a cluster can be asked about its slots, and how to connect to its nodes."""

    nodes: list[tuple[str, int]]
    kwargs: dict[str, Any] = field(default_factory=dict)
    tls: bool = False

    def describe(self) -> str:
        scheme = "rediss+cluster" if self.tls else "redis+cluster"
        return f"{scheme}://" + ",".join(f"{host}:{port}" for host, port in self.nodes)


def parse_url(url: str) -> ClusterSeeds:
    """``redis+cluster://[user:password@]host:port[,host:port...][?option=value...]``."""
    if urlparse(url).scheme not in SCHEMES:
        raise ConfigError(f"{url!r} is not a redis+cluster:// or rediss+cluster:// URL")
    given = parse_nodes_url(url, "cluster", DEFAULT_PORT, _URL_OPTIONS)
    if not given.nodes:
        raise ConfigError(f"cluster URL {url!r} names no node; use redis+cluster://host:port")
    if given.path not in ([], ["0"]):
        raise ConfigError(f"cluster URL {url!r}: a cluster has only database 0")
    return ClusterSeeds(given.nodes, {**given.credentials, **given.options},
                        tls=given.scheme == "rediss+cluster")


# Settings of a cluster client's nodes that a node connection of ours takes over.
_NODE_KWARGS = ("username", "password", "socket_timeout", "socket_connect_timeout",
                "socket_keepalive", "socket_keepalive_options", "client_name",
                "health_check_interval", "credential_provider", "protocol")


def seeds_of(client: Any) -> ClusterSeeds:
    """The nodes and connection settings of a ``redis.cluster.RedisCluster`` (sync or
    asyncio) passed as ``redis=``."""
    manager = getattr(client, "nodes_manager", None)
    startup = getattr(manager, "startup_nodes", None) or getattr(client, "startup_nodes", None)
    nodes: list[tuple[str, int]] = []
    known = list(startup.values() if isinstance(startup, dict) else startup or [])
    for node in [*known, *_cached_nodes(manager)]:
        address = (str(node.host), int(node.port))
        if address not in nodes:
            nodes.append(address)
    if not nodes:
        raise ConfigError("the RedisCluster client names no node to connect to")
    settings = dict(getattr(manager, "connection_kwargs", None)
                    or getattr(client, "connection_kwargs", None) or {})
    kwargs = {k: settings[k] for k in _NODE_KWARGS if settings.get(k) is not None}
    kwargs.update({k: v for k, v in settings.items() if k.startswith("ssl_") and v is not None})
    connection_class = settings.get("connection_class")
    tls = bool(settings.get("ssl")) or "SSL" in getattr(connection_class, "__name__", "")
    return ClusterSeeds(nodes, kwargs, tls=tls)


def _cached_nodes(manager: Any) -> Iterable[Any]:
    cache = getattr(manager, "nodes_cache", None)
    return cache.values() if isinstance(cache, dict) else ()


class SlotRoute:
    """The master that owns one queue's slot, as last learned. Shared by every client made
    for the queue, so a redirect one of them meets re-points them all."""

    def __init__(self, seeds: ClusterSeeds) -> None:
        self.seeds = seeds
        self.known = list(seeds.nodes)
        self.address = self.known[0]
        self.version = 0
        self._lock = threading.Lock()

    def moved(self, host: str, port: int) -> None:
        """A MOVED reply: the slot is served by host:port now."""
        with self._lock:
            if (host, port) != self.address:
                self.address = (host, port)
                if self.address not in self.known:
                    self.known.append(self.address)
                self.version += 1

    def lost(self, address: tuple[str, int]) -> None:
        """A connection to ``address`` failed: ask the next node (its MOVED names the
        owner; after a failover, the promoted replica)."""
        with self._lock:
            if address != self.address:
                return  # another client moved on already
            index = self.known.index(address) if address in self.known else -1
            self.address = self.known[(index + 1) % len(self.known)]
            self.version += 1

    def describe(self) -> str:
        return self.seeds.describe()


EXHAUSTED = "No connection available."  # redis-py's BlockingConnectionPool, after its timeout


class _FollowsRoute:
    """Pool behaviour shared by the sync and asyncio pools: connect to the route's address,
    and drop the idle connections to the old one when the route moves. Both are waiting pools
    (kueatomic/pools.py): a full one makes its caller wait."""

    route: SlotRoute
    _route_version: int
    connection_kwargs: dict[str, Any]

    def __init__(self, route: SlotRoute, **kwargs: Any) -> None:
        self.route = route
        self._route_version = route.version
        host, port = route.address
        super().__init__(host=host, port=port, **kwargs)  # type: ignore[call-arg]  # the pool's

    def _stale(self) -> bool:
        return self._route_version != self.route.version

    def _repoint(self) -> list[Any]:
        """Point new connections at the route's address; returns the idle old ones."""
        self._route_version = self.route.version
        host, port = self.route.address
        self.connection_kwargs.update(host=host, port=port)
        if "orig_host_address" in self.connection_kwargs:  # redis-py's own re-pointing
            self.connection_kwargs["orig_host_address"] = host
        idle = self._idle()
        self.reset()  # type: ignore[attr-defined]  # in-use ones are dropped on release
        return idle

    def _idle(self) -> list[Any]:
        raise NotImplementedError

    def _current(self, connection: Any) -> bool:
        """Whether ``connection`` was made for the route's present address."""
        kwargs = self.connection_kwargs
        return (connection.host, connection.port) == (kwargs["host"], kwargs["port"])

    def _connection_failed(self, error: BaseException) -> None:
        # A wait for a free connection that timed out is no fault of the node.
        if str(error) != EXHAUSTED:
            self.route.lost((self.connection_kwargs["host"], self.connection_kwargs["port"]))


class SyncSlotPool(_FollowsRoute, redis_sync.BlockingConnectionPool):
    def _idle(self) -> list[Any]:
        return [connection for connection in list(self.pool.queue) if connection]

    def release(self, connection: Any) -> None:
        # reset() refilled the queue: one made before the route moved has no place in it.
        if not self._current(connection):
            connection.disconnect()
            return
        super().release(connection)  # type: ignore[no-untyped-call]

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._stale():
            for connection in self._repoint():
                connection.disconnect()
        try:
            return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except (redis_sync.ConnectionError, OSError) as error:
            self._connection_failed(error)
            raise


class AsyncSlotPool(_FollowsRoute, redis_async.BlockingConnectionPool):
    def _idle(self) -> list[Any]:
        return list(self._available_connections)

    async def release(self, connection: Any) -> None:
        # reset() emptied the in-use set: redis-py would raise KeyError for one made before
        # the route moved. Its place is free now, so a waiting caller is told.
        if not self._current(connection):
            await connection.disconnect()
            async with self._condition:
                self._condition.notify()
            return
        await super().release(connection)

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._stale():
            for connection in self._repoint():
                await connection.disconnect()
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except (redis_sync.ConnectionError, OSError) as error:
            self._connection_failed(error)
            raise


class SyncSlotClient(redis_sync.Redis):
    """A client of the slot's master that follows a MOVED reply to a command sent directly
    (``queue.client.hgetall(...)``); the drivers handle MOVED for scripts themselves."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except redis_sync.exceptions.MovedError as moved:
            _follow(self, moved)
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


class AsyncSlotClient(redis_async.Redis):
    """``SyncSlotClient`` for asyncio."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except redis_sync.exceptions.MovedError as moved:
            _follow(self, moved)
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def _follow(client: Any, moved: redis_sync.exceptions.MovedError) -> None:
    route = route_of(client)
    if route is None:
        raise moved
    route.moved(moved.host, moved.port)


def slot_client(route: SlotRoute, asynchronous: bool, overrides: dict[str, Any]) -> Any:
    """A client of the master that owns the route's slot (replies decoded as elsewhere)."""
    module = redis_async if asynchronous else redis_sync
    kwargs: dict[str, Any] = {"decode_responses": True, "encoding_errors": "replace",
                              **route.seeds.kwargs}
    for key, value in overrides.items():
        if value is not None and kwargs.get(key) is None:
            kwargs[key] = value
    if route.seeds.tls:
        kwargs["connection_class"] = module.SSLConnection
    if asynchronous:
        return AsyncSlotClient(connection_pool=AsyncSlotPool(route, **waiting_kwargs(kwargs)))
    return SyncSlotClient(connection_pool=SyncSlotPool(route, **waiting_kwargs(kwargs)))


def route_of(client: Any) -> SlotRoute | None:
    """The slot route a client follows, None for a client of one Redis."""
    route = getattr(getattr(client, "connection_pool", None), "route", None)
    return route if isinstance(route, SlotRoute) else None


def connection_lost(client: Any, error: BaseException) -> None:
    """A command on ``client`` lost its connection: a cluster client asks the next node."""
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, _FollowsRoute):
        pool._connection_failed(error)
