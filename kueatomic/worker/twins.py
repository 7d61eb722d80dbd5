"""A sync client for an asyncio queue and the other way round, pointing at the same Redis.

Needed where one kind of queue needs the other kind's I/O: ``async def`` handlers on a sync
``Queue`` run on an asyncio twin, sync handlers on an ``aio.Queue`` get a sync twin's jobs,
and the pub/sub subscriber is a thread with a sync client for both."""

from __future__ import annotations

from typing import Any

from ..connection import async_client, sync_client
from ..errors import ConfigError

_KWARGS = ("host", "port", "db", "username", "password", "socket_timeout",
           "socket_connect_timeout", "decode_responses")


def _from_client(client: Any, want_async: bool) -> Any:
    pool = getattr(client, "connection_pool", None)
    kwargs = dict(getattr(pool, "connection_kwargs", None) or {})
    if "server" in kwargs:  # fakeredis: share its in-process server
        import fakeredis

        cls = fakeredis.FakeAsyncRedis if want_async else fakeredis.FakeRedis
        return cls(server=kwargs["server"], decode_responses=kwargs.get("decode_responses", False))
    if not kwargs:
        raise ConfigError(
            "cannot derive a second client from the redis client this queue was given; pass a "
            "URL or a dict as redis= to use sync and async handlers on one queue")
    import redis
    import redis.asyncio

    options = {k: kwargs[k] for k in _KWARGS if k in kwargs}
    if "path" in kwargs:
        options = {"unix_socket_path": kwargs["path"], **options}
        options.pop("host", None)
        options.pop("port", None)
    connection_class = getattr(pool, "connection_class", None)
    if connection_class is not None and "SSL" in connection_class.__name__:
        options["ssl"] = True
    module = redis.asyncio if want_async else redis
    return module.Redis(**options)


def sync_client_like(queue: Any) -> Any:
    option = queue.redis_option
    if option is None or isinstance(option, (str, dict)):
        return sync_client(option)
    return _from_client(queue.client, want_async=False)


def async_client_like(queue: Any) -> Any:
    option = queue.redis_option
    if option is None or isinstance(option, (str, dict)):
        return async_client(option)
    return _from_client(queue.client, want_async=True)


def sync_twin(queue: Any) -> Any:
    """A sync ``Queue`` on the same Redis and prefix as ``queue``."""
    from ..queue import Queue

    return Queue(queue.prefix, sync_client_like(queue), disable_search=queue.disable_search,
                 max_payload_bytes=queue.max_payload_bytes)


def async_twin(queue: Any) -> Any:
    """An ``aio.Queue`` on the same Redis and prefix as ``queue``."""
    from ..aio import Queue

    return Queue(queue.prefix, async_client_like(queue), disable_search=queue.disable_search,
                 max_payload_bytes=queue.max_payload_bytes)
