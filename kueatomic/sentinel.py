"""Redis Sentinel: a master that Sentinel manages, found again after every failover.

``redis+sentinel://[user:password@]host:port[,host:port...]/<service>[/db][?options]``
(``rediss+sentinel://`` for TLS to the master), or ``redis={"sentinels": [(host, port),
...], "service": "mymaster", ...}``. Clients come from redis-py's Sentinel support: each
new connection asks the sentinels where the master is, and a connection to a master that
was demoted answers READONLY, which redis-py turns into a lost connection, so the call is
retried (by the worker) or raised as ``RedisUnavailable`` (by a producer) and the next
connection goes to the new master. ``Queue(wait_replicas=...)`` (driver.py) makes a write
count as done only once replicas acknowledged it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

import redis.asyncio.sentinel as sentinel_async
import redis.sentinel as sentinel_sync
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import pools
from .errors import ConfigError
from .urls import parse_nodes_url

SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_PORT = 26379

# Options a Sentinel URL's query may carry: the master connection's, and the sentinels' own
# credentials (sentinel_username / sentinel_password).
_URL_OPTIONS: dict[str, Any] = {
    "socket_timeout": float, "socket_connect_timeout": float, "health_check_interval": int,
    "client_name": str, "ssl_cert_reqs": str, "ssl_ca_certs": str, "ssl_certfile": str,
    "ssl_keyfile": str, "max_connections": int, "sentinel_username": str,
    "sentinel_password": str,
}
# Keys of the dict form beyond the ones of a single Redis.
DICT_KEYS = frozenset({"sentinels", "service", "sentinel_username", "sentinel_password"})


def is_sentinel_url(option: Any) -> bool:
    return isinstance(option, str) and urlparse(option).scheme in SCHEMES


def is_sentinel_dict(option: Any) -> bool:
    return isinstance(option, dict) and "sentinels" in option


@dataclass
class SentinelTarget:
    """The sentinels to ask, the service they watch, and how to connect to its master."""

    sentinels: list[tuple[str, int]]
    service: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    sentinel_kwargs: dict[str, Any] = field(default_factory=dict)
    tls: bool = False

    def describe(self) -> str:
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        db = self.kwargs.get("db", 0)
        nodes = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"{scheme}://{nodes}/{self.service}" + (f"/{db}" if db else "")


def parse_url(url: str) -> SentinelTarget:
    if urlparse(url).scheme not in SCHEMES:
        raise ConfigError(f"{url!r} is not a redis+sentinel:// URL")
    given = parse_nodes_url(url, "Sentinel", DEFAULT_PORT, _URL_OPTIONS)
    kwargs: dict[str, Any] = dict(given.credentials)
    sentinels, parts = given.nodes, given.path
    if not sentinels or not parts or len(parts) > 2:
        raise ConfigError(f"Sentinel URL {url!r} must look like "
                          "redis+sentinel://host:port[,host:port...]/<service>[/db]")
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ConfigError(f"Sentinel URL {url!r}: the database after the service must be a number")
        kwargs["db"] = int(parts[1])
    sentinel_kwargs: dict[str, Any] = {}
    for name, value in given.options.items():
        if name.startswith("sentinel_"):
            sentinel_kwargs[name.removeprefix("sentinel_")] = value
        else:
            kwargs[name] = value
    return SentinelTarget(sentinels, unquote(parts[0]), kwargs, sentinel_kwargs,
                          tls=given.scheme == "rediss+sentinel")


def from_dict(option: dict[str, Any]) -> SentinelTarget:
    """``{"sentinels": [(host, port), ...], "service": name, ...}`` plus the single-Redis
    options (password, db, ssl, timeouts) for the master."""
    try:
        sentinels = [(str(host), int(port)) for host, port in option["sentinels"]]
    except (TypeError, ValueError):
        raise ConfigError("redis= 'sentinels' must be a list of (host, port) pairs") from None
    service = option.get("service")
    if not sentinels or not isinstance(service, str) or not service:
        raise ConfigError("redis= with 'sentinels' also needs 'service', the name the "
                          "sentinels monitor")
    kwargs = {k: v for k, v in option.items() if k not in DICT_KEYS and v is not None}
    tls = bool(kwargs.pop("ssl", False))
    sentinel_kwargs = {k.removeprefix("sentinel_"): option[k]
                       for k in ("sentinel_username", "sentinel_password") if option.get(k)}
    return SentinelTarget(sentinels, service, kwargs, sentinel_kwargs, tls=tls)


def master_client(target: SentinelTarget, asynchronous: bool, overrides: dict[str, Any]) -> Any:
    """A client of the service's master (replies decoded as kueatomic's other clients)."""
    kwargs: dict[str, Any] = {"decode_responses": True, "encoding_errors": "replace",
                              **target.kwargs}
    for key, value in overrides.items():
        if value is not None and kwargs.get(key) is None:
            kwargs[key] = value
    if target.tls:
        kwargs["ssl"] = True
    sentinel_kwargs = {"socket_timeout": kwargs.get("socket_timeout") or 1.0,
                       "socket_connect_timeout": kwargs.get("socket_connect_timeout") or 1.0,
                       **target.sentinel_kwargs}
    # No retry: redis-py would resend a command whose reply was lost, and a script call is
    # not idempotent (the worker retries what is safe to retry itself). Nor for the
    # sentinels: redis-py's default (10 retries with backoff) spends ~3 s on each sentinel
    # that refuses connections before it asks the next one, at every new connection.
    if asynchronous:
        from redis.asyncio.retry import Retry as AsyncRetry
        kwargs["retry"] = AsyncRetry(NoBackoff(), 0)
        sentinel_kwargs["retry"] = AsyncRetry(NoBackoff(), 0)
        watcher: Any = sentinel_async.Sentinel(  # type: ignore[no-untyped-call]
            target.sentinels, sentinel_kwargs=sentinel_kwargs)
    else:
        kwargs["retry"] = Retry(NoBackoff(), 0)
        sentinel_kwargs["retry"] = Retry(NoBackoff(), 0)
        watcher = sentinel_sync.Sentinel(  # type: ignore[no-untyped-call]
            target.sentinels, sentinel_kwargs=sentinel_kwargs)
    pool_class = pools.AsyncSentinelPool if asynchronous else pools.SyncSentinelPool
    return watcher.master_for(target.service, connection_pool_class=pool_class,
                              **pools.waiting_kwargs(kwargs))
