"""One connection description: every extra client (the worker's, the other kind, the events
subscriber's) is made from the queue's ``redis=`` / ``client_factory`` with its TLS, credential
and pool settings, and never falls back to 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis
import redis.asyncio

from kueatomic import Connection, Queue, aio
from kueatomic.connection import ASYNC, SYNC

from .test_worker_sync import FAST, wait_for


def kwargs_of(client: Any) -> dict[str, Any]:
    return dict(client.connection_pool.connection_kwargs)


def test_a_client_of_the_other_kind_keeps_tls_credentials_and_pool_size() -> None:
    given = redis.Redis.from_url("rediss://user:secret@cache.example:6390/3", max_connections=7,
                                 ssl_cert_reqs="none", ssl_ca_certs="/etc/ca.pem")
    made = Connection(given).client(ASYNC, socket_timeout=2.0)
    assert isinstance(made, redis.asyncio.Redis)
    kwargs = kwargs_of(made)
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example", 6390, 3)
    assert (kwargs["username"], kwargs["password"]) == ("user", "secret")
    assert kwargs["ssl_ca_certs"] == "/etc/ca.pem" and kwargs["ssl_cert_reqs"] == "none"
    assert kwargs["socket_timeout"] == 2.0
    assert made.connection_pool.max_connections == 7
    assert "SSL" in made.connection_pool.connection_class.__name__


def test_a_socket_timeout_the_user_set_is_kept() -> None:
    made = Connection("redis://h:1/0?socket_timeout=0.5").client(SYNC, socket_timeout=5.0)
    assert kwargs_of(made)["socket_timeout"] == 0.5
    assert Connection("redis://h:1/0").client(SYNC, primary=True) \
        .connection_pool.connection_kwargs.get("socket_timeout") is None


def test_a_client_factory_makes_every_client_of_both_kinds() -> None:
    made: list[str] = []

    def factory() -> Any:
        made.append("sync")
        return redis.Redis(host="sentinel-master.example", port=7000, password="pw")

    connection = Connection(None, factory)
    other = connection.client(ASYNC)
    assert kwargs_of(other)["host"] == "sentinel-master.example" and kwargs_of(other)["port"] == 7000
    assert kwargs_of(other)["password"] == "pw"
    assert kwargs_of(connection.client(SYNC))["port"] == 7000
    assert made == ["sync", "sync"]


def test_the_default_url_only_when_nothing_was_given() -> None:
    assert Connection().where == "redis://127.0.0.1:6379/0"
    assert kwargs_of(Connection().client(ASYNC))["port"] == 6379


def test_async_handlers_and_events_of_a_factory_queue_use_its_redis(real_redis_url: str) -> None:
    queue = Queue("conn", client_factory=lambda: redis.Redis.from_url(real_redis_url,
                                                                      decode_responses=True))
    queue.configure_workers(**FAST)
    seen: list[Any] = []
    queue.on("job complete", lambda job_id, result: seen.append(result))

    async def work(job: Any) -> str:
        await job.log("on the twin")
        return "async"

    job = queue.create("t").save()
    queue.process("t", work)
    wait_for(lambda: queue.get_job(job.id).state == "complete")
    assert queue.get_job(job.id).logs() == ["on the twin"]
    wait_for(lambda: seen == ["async"], what="the complete event")
    queue.close()


async def test_sync_handlers_and_events_of_an_asyncio_factory_queue(real_redis_url: str) -> None:
    queue = aio.Queue("conn-aio", client_factory=lambda: redis.asyncio.Redis.from_url(
        real_redis_url, decode_responses=True))
    queue.configure_workers(**FAST)
    seen: list[Any] = []
    queue.on("job complete", lambda job_id, result: seen.append(result))

    def work(job: Any) -> str:
        job.log("on the sync twin")
        return "sync"

    job = await queue.create("t").save()
    queue.process("t", work)
    deadline = time.monotonic() + 10
    while seen != ["sync"] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert seen == ["sync"] and await (await queue.get_job(job.id)).logs() == ["on the sync twin"]
    await queue.close()


def test_a_pool_that_names_no_host_is_refused_not_guessed() -> None:
    import pytest
    from redis.sentinel import Sentinel, SentinelConnectionPool

    from kueatomic import ConfigError

    sentinel = Sentinel([("127.0.0.1", 1)])
    client = redis.Redis(connection_pool=SentinelConnectionPool("mymaster", sentinel))
    with pytest.raises(ConfigError, match="127.0.0.1:6379"):
        Connection(client).client(ASYNC)


def test_clients_kueatomic_makes_wait_for_a_connection_of_a_full_pool() -> None:
    """URL, dict and derived clients: a blocking pool of the asked size (or POOL_SIZE)."""
    from kueatomic.pools import POOL_SIZE, POOL_WAIT_S

    made = [
        Connection("redis://127.0.0.1:1/0?max_connections=7").client(SYNC, primary=True),
        Connection({"host": "127.0.0.1", "port": 1, "max_connections": 7}).client(ASYNC),
        Connection(redis.Redis(host="127.0.0.1", port=1, max_connections=7)).client(ASYNC),
    ]
    for client in made:
        pool = client.connection_pool
        assert "Blocking" in type(pool).__name__ and pool.max_connections == 7
        assert pool.timeout == POOL_WAIT_S
    default = Connection("redis://127.0.0.1:1/0").client(SYNC).connection_pool
    assert default.max_connections == POOL_SIZE


@pytest.mark.parametrize("url", ["redis+cluster://127.0.0.1:1", "redis+sentinel://127.0.0.1:1/svc"])
def test_cluster_and_sentinel_clients_wait_for_a_connection_too(url: str) -> None:
    """Built without connecting: the slot's and the service's pools wait when full."""
    from kueatomic.pools import POOL_SIZE, POOL_WAIT_S

    for asynchronous, blocking in ((SYNC, redis.BlockingConnectionPool),
                                   (ASYNC, redis.asyncio.BlockingConnectionPool)):
        sized = Connection(url + "?max_connections=7").client(asynchronous).connection_pool
        assert isinstance(sized, blocking) and sized.max_connections == 7
        assert sized.timeout == POOL_WAIT_S
        default = Connection(url).client(asynchronous).connection_pool
        assert default.max_connections == POOL_SIZE
