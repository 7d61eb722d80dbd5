"""Turning the ``redis=`` option into clients: URLs, dicts, clients, ``client_factory`` and
``memory://``, kept as one ``Connection`` description that every extra client is made from."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import redis as redis_sync
import redis.asyncio as redis_async

from . import cluster, extras, pools, sentinel
from .errors import ConfigError

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_SCHEMES = ("redis", "rediss", "unix", "memory")
_DICT_KEYS = {"host", "port", "password", "db", "unix_socket_path", "username", "ssl",
              "ssl_certfile", "ssl_keyfile", "ssl_ca_certs", "ssl_cert_reqs", "ssl_check_hostname",
              "socket_timeout", "socket_connect_timeout", "max_connections", "client_name",
              "health_check_interval"}

_memory_servers: dict[str, Any] = {}
_memory_lock = threading.Lock()


def memory_server(name: str) -> Any:
    """One in-process fakeredis[lua] server per ``memory://<name>``, shared in the process."""
    import fakeredis

    with _memory_lock:
        if name not in _memory_servers:
            _memory_servers[name] = fakeredis.FakeServer()
        return _memory_servers[name]


def describe(option: Any) -> str:
    """Where a client points, for error messages (no password)."""
    if option is None:
        return DEFAULT_URL
    if cluster.is_cluster_url(option) or cluster.is_cluster_client(option):
        return cluster_seeds(option).describe()
    if sentinel.is_sentinel_url(option) or sentinel.is_sentinel_dict(option):
        return sentinel_target(option).describe()
    if isinstance(option, str):
        parsed = urlparse(option)
        host = parsed.hostname or ""
        port = f":{parsed.port}" if _safe_port(parsed) else ""
        return f"{parsed.scheme}://{host}{port}{parsed.path}"
    if isinstance(option, dict):
        if option.get("unix_socket_path"):
            return f"unix://{option['unix_socket_path']}"
        return f"redis://{option.get('host', '127.0.0.1')}:{option.get('port', 6379)}/{option.get('db', 0)}"
    return repr(option)


def _safe_port(parsed: Any) -> int | None:
    try:
        port = parsed.port
        return port if isinstance(port, int) else None
    except ValueError:
        return None


def cluster_seeds(option: Any) -> cluster.ClusterSeeds:
    """The seed nodes of a ``redis+cluster://`` URL or a RedisCluster client."""
    return cluster.parse_url(option) if isinstance(option, str) else cluster.seeds_of(option)


def sentinel_target(option: Any) -> sentinel.SentinelTarget:
    """The sentinels and service of a ``redis+sentinel://`` URL or a dict with
    ``sentinels``."""
    return sentinel.parse_url(option) if isinstance(option, str) else sentinel.from_dict(option)


def check_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme in cluster.SCHEMES:
        cluster.parse_url(url)
        return url
    if parsed.scheme in sentinel.SCHEMES:
        sentinel.parse_url(url)
        return url
    if parsed.scheme not in _SCHEMES:
        raise ConfigError(
            f"Redis URL {url!r} has scheme {parsed.scheme!r}; use redis://host:port/db, "
            "rediss://, unix:///path/to/socket, redis+cluster://host:port[,host:port...], "
            "redis+sentinel://host:port[,host:port...]/<service> or memory://"
        )
    if parsed.scheme in ("redis", "rediss"):
        if parsed.netloc and _safe_port(parsed) is None and parsed.netloc.rsplit("@", 1)[-1].count(":"):
            raise ConfigError(f"Redis URL {url!r} has a port that is not a number")
        db = parsed.path.lstrip("/")
        if db and not db.isdigit():
            raise ConfigError(f"Redis URL {url!r}: the database after '/' must be a number")
    return url


def _check_dict(option: dict[str, Any]) -> None:
    allowed = _DICT_KEYS | sentinel.DICT_KEYS if sentinel.is_sentinel_dict(option) else _DICT_KEYS
    unknown = set(option) - allowed
    if unknown:
        raise ConfigError(f"unknown Redis option(s) {sorted(unknown)}; use {sorted(_DICT_KEYS)}")


def waiting_client(module: Any, pool: Any) -> Any:
    """A ``module.Redis`` (redis or redis.asyncio) on a waiting pool (kueatomic/pools.py) with
    ``pool``'s connection class and settings; ``pool`` itself (never connected) is dropped."""
    waiting = module.BlockingConnectionPool(
        connection_class=pool.connection_class,
        **pools.waiting_kwargs({**pool.connection_kwargs,
                                "max_connections": getattr(pool, "max_connections", None)}))
    return module.Redis.from_pool(waiting)


# Replies as str; bytes that are not UTF-8 (a field someone wrote by hand) read as U+FFFD
# rather than failing the call, as codec.to_text reads them on a client the user passed in.
_DECODING = {"decode_responses": True, "encoding_errors": "replace"}


def _client(option: Any, module: Any, fake: str, overrides: dict[str, Any]) -> Any:
    """A new client of ``module`` (redis or redis.asyncio) for a URL, a dict or None."""
    extra = {k: v for k, v in overrides.items() if v is not None}
    if option is None or isinstance(option, str):
        url = check_url(option or DEFAULT_URL)
        if url.startswith("memory://"):
            extras.require("embedded", "the embedded engine (memory://)")
            import fakeredis

            return getattr(fakeredis, fake)(server=memory_server(url), **_DECODING)
        client = waiting_client(module, module.ConnectionPool.from_url(url, **_DECODING))
        _default_kwargs(client, extra)
        return client
    _check_dict(option)
    # No retry (redis.Redis(host=...) would resend a timed-out command up to 10 times, and a
    # script call is not idempotent); from_url and the worker's own clients have none either.
    from redis.backoff import NoBackoff

    if module is redis_async:
        from redis.asyncio.retry import Retry
    else:
        from redis.retry import Retry  # type: ignore[assignment]
    made = module.Redis(**{**_DECODING, "retry": Retry(NoBackoff(), 0), **extra, **option})
    return waiting_client(module, made.connection_pool)


def sync_client(option: Any, factory: Callable[[], Any] | None = None) -> Any:
    """A ``redis.Redis`` (or fakeredis) for the ``redis=`` option."""
    return Connection(option, factory).client(SYNC, primary=True)


def async_client(option: Any, factory: Callable[[], Any] | None = None) -> Any:
    """A ``redis.asyncio.Redis`` (or fakeredis) for the ``redis=`` option."""
    return Connection(option, factory).client(ASYNC, primary=True)


# --- one connection description ----------------------------------------------------------

SYNC, ASYNC = "sync", "async"

# Connection settings that mean the same to redis.Redis and redis.asyncio.Redis, so a client
# of the other kind can be made from a client's pool (TLS settings start with "ssl_").
_PORTABLE_KWARGS = ("host", "port", "db", "username", "password", "path", "socket_timeout",
                    "socket_connect_timeout", "socket_keepalive", "socket_keepalive_options",
                    "decode_responses", "encoding", "encoding_errors", "client_name",
                    "health_check_interval", "credential_provider", "protocol")


def client_kind(client: Any) -> str | None:
    """SYNC or ASYNC for a redis-py (or fakeredis) client, None for anything else."""
    if isinstance(client, redis_async.Redis):
        return ASYNC
    if isinstance(client, redis_sync.Redis):
        return SYNC
    return None


def _module(kind: str) -> Any:
    return redis_async if kind == ASYNC else redis_sync


def _derive(client: Any, kind: str, overrides: dict[str, Any]) -> Any:
    """A new client of ``kind`` with the settings of ``client``'s pool: host, db, password,
    TLS files, timeouts and the pool size carry over."""
    pool = getattr(client, "connection_pool", None)
    kwargs = dict(getattr(pool, "connection_kwargs", None) or {})
    if "server" in kwargs:  # fakeredis: share its in-process server
        import fakeredis

        cls = fakeredis.FakeAsyncRedis if kind == ASYNC else fakeredis.FakeRedis
        return cls(server=kwargs["server"], decode_responses=kwargs.get("decode_responses", True))
    if not kwargs:
        raise ConfigError(
            f"cannot make a second client from {type(client).__name__} (it has no connection "
            "pool to copy settings from); pass redis= a URL or a dict, or a client_factory "
            "that returns a redis.Redis")
    if "host" not in kwargs and "path" not in kwargs:  # e.g. a Sentinel pool finds its master
        raise ConfigError(
            f"cannot make a client of the other kind from {type(pool).__name__}: it names no "
            "host (a Sentinel or cluster pool?), and guessing would mean 127.0.0.1:6379; give "
            "the queue a client_factory of the kind its handlers need")
    options = {k: kwargs[k] for k in _PORTABLE_KWARGS if k in kwargs}
    options.update({k: v for k, v in kwargs.items() if k.startswith("ssl_")})
    module = _module(kind)
    connection_name = getattr(getattr(pool, "connection_class", None), "__name__", "Connection")
    if "path" in options:
        connection_class = module.UnixDomainSocketConnection
    elif "SSL" in connection_name:
        connection_class = module.SSLConnection
    else:
        connection_class = module.Connection
    for key, value in overrides.items():
        if value is not None and options.get(key) is None:
            options[key] = value
    model = module.ConnectionPool(connection_class=connection_class,
                                  max_connections=getattr(pool, "max_connections", None),
                                  **options)
    return waiting_client(module, model)


class Connection:
    """Where a queue's Redis is, described once: the ``redis=`` option (URL, dict, client or
    None for the default URL) and ``client_factory``. Every client kueatomic makes — the
    queue's own, a worker's, the other kind for an ``async def`` handler on a sync queue, the
    events subscriber's — comes from here, so TLS, credentials and pool settings are never
    lost and nothing falls back to 127.0.0.1:6379 unless that is what was asked for."""

    option: Any
    factory: Callable[[], Any] | None

    def __init__(self, option: Any = None, client_factory: Callable[[], Any] | None = None) -> None:
        if isinstance(option, Connection):
            self.__dict__.update(option.__dict__)  # the same Redis, and the same slot route
            return
        if client_factory is None:
            if isinstance(option, str):
                check_url(option)
            elif isinstance(option, dict):
                _check_dict(option)
            elif (option is not None and client_kind(option) is None
                    and not cluster.is_cluster_client(option)):
                raise ConfigError(
                    "redis= takes a URL, a dict of host/port/password/db/unix_socket_path/ssl "
                    "options, a redis.Redis / redis.asyncio.Redis client or a "
                    f"redis.cluster.RedisCluster, not {type(option).__name__}")
        self.option = option
        self.factory = client_factory
        self.where = describe(option)
        # On a cluster every client follows the master of the queue's slot (cluster.py);
        # one route per description, so a redirect one client meets re-points the rest.
        self.route: cluster.SlotRoute | None = None
        if client_factory is None and (cluster.is_cluster_url(option)
                                       or cluster.is_cluster_client(option)):
            self.route = cluster.SlotRoute(cluster_seeds(option))
        # Behind Sentinel every client asks the sentinels for the master (sentinel.py).
        self.sentinel: sentinel.SentinelTarget | None = None
        if client_factory is None and (sentinel.is_sentinel_url(option)
                                       or sentinel.is_sentinel_dict(option)):
            self.sentinel = sentinel_target(option)

    def client(self, kind: str, *, primary: bool = False, socket_timeout: float | None = None) -> Any:
        """A client of ``kind`` (SYNC or ASYNC). ``primary`` is the queue's own client: a
        client passed as ``redis=`` is used as it is. Otherwise the client is new, with
        ``socket_timeout`` (seconds) where the description sets none."""
        overrides = {"socket_timeout": socket_timeout}
        if self.route is not None:
            return cluster.slot_client(self.route, kind == ASYNC, {} if primary else overrides)
        if self.sentinel is not None:
            return sentinel.master_client(self.sentinel, kind == ASYNC,
                                          {} if primary else overrides)
        if self.factory is not None:
            made = self.factory()
            if client_kind(made) == kind:
                if not primary:
                    _default_kwargs(made, overrides)
                return made
            return _derive(made, kind, overrides)
        option = self.option
        if client_kind(option) is not None:
            if primary and client_kind(option) == kind:
                return option
            return _derive(option, kind, overrides)
        return _client(option, _module(kind), "FakeAsyncRedis" if kind == ASYNC else "FakeRedis",
                       {} if primary else overrides)

    def with_new_route(self) -> Connection:
        """This description for another slot (a shard of a sharded queue): on a cluster
        its clients follow their own slot's master; elsewhere it is this one."""
        if self.route is None:
            return self
        other = Connection(self)
        other.route = cluster.SlotRoute(self.route.seeds)
        return other

    def sync_client(self, **options: Any) -> Any:
        return self.client(SYNC, **options)

    def async_client(self, **options: Any) -> Any:
        return self.client(ASYNC, **options)

    def __repr__(self) -> str:
        return f"<Connection {self.where}{' via client_factory' if self.factory else ''}>"


def _default_kwargs(client: Any, overrides: dict[str, Any]) -> None:
    """Give new connections of a factory-made client the settings it lacks (its pool is
    ours: the factory made it for this caller)."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if isinstance(kwargs, dict):
        for key, value in overrides.items():
            if value is not None and kwargs.get(key) is None:
                kwargs[key] = value
