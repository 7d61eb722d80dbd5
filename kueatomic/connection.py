"""Turning the ``redis=`` option into a client: URLs, dicts, clients, and ``memory://``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import redis as redis_sync
import redis.asyncio as redis_async

from .errors import ConfigError

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_SCHEMES = ("redis", "rediss", "unix", "memory")
_DICT_KEYS = {"host", "port", "password", "db", "unix_socket_path", "username", "ssl"}

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


def check_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in _SCHEMES:
        raise ConfigError(
            f"Redis URL {url!r} has scheme {parsed.scheme!r}; use redis://host:port/db, "
            "rediss://, unix:///path/to/socket or memory://"
        )
    if parsed.scheme in ("redis", "rediss"):
        if parsed.netloc and _safe_port(parsed) is None and parsed.netloc.rsplit("@", 1)[-1].count(":"):
            raise ConfigError(f"Redis URL {url!r} has a port that is not a number")
        db = parsed.path.lstrip("/")
        if db and not db.isdigit():
            raise ConfigError(f"Redis URL {url!r}: the database after '/' must be a number")
    return url


def _from_dict(option: dict[str, Any], module: Any) -> Any:
    unknown = set(option) - _DICT_KEYS
    if unknown:
        raise ConfigError(
            f"unknown Redis option(s) {sorted(unknown)}; use {sorted(_DICT_KEYS)}"
        )
    return module.Redis(decode_responses=True, **option)


def _client(option: Any, factory: Callable[[], Any] | None, module: Any, fake: str) -> Any:
    if factory is not None:
        return factory()
    if isinstance(option, module.Redis):
        return option
    if option is None or isinstance(option, str):
        url = check_url(option or DEFAULT_URL)
        if url.startswith("memory://"):
            import fakeredis

            return getattr(fakeredis, fake)(server=memory_server(url), decode_responses=True)
        return module.Redis.from_url(url, decode_responses=True)
    if isinstance(option, dict):
        return _from_dict(option, module)
    raise ConfigError(
        f"redis= takes a URL, a dict of host/port/password/db/unix_socket_path or a "
        f"{module.__name__}.Redis client, not {type(option).__name__}"
    )


def sync_client(option: Any, factory: Callable[[], Any] | None = None) -> Any:
    """A ``redis.Redis`` (or fakeredis) for the ``redis=`` option."""
    return _client(option, factory, redis_sync, "FakeRedis")


def async_client(option: Any, factory: Callable[[], Any] | None = None) -> Any:
    """A ``redis.asyncio.Redis`` (or fakeredis) for the ``redis=`` option."""
    return _client(option, factory, redis_async, "FakeAsyncRedis")
