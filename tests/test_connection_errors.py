"""A Redis that refuses the connection's setup gets a typed error that says what to fix, not
"unreachable" or a raw redis-py error: a database index the server lacks is a ConfigError
(with how many it has), a missing or wrong password an AuthenticationFailed (a ConfigError,
never a RedisUnavailable, which workers would retry forever). Sync and asyncio alike."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

import kueatomic
import kueatomic.aio
from kueatomic import AuthenticationFailed, ConfigError, Queue, RedisUnavailable
from kueatomic.cli import main
from kueatomic.connection import sync_client
from kueatomic.driver import SyncDriver
from tests.redis_server import RedisServer, redis_server_binary

pytestmark = pytest.mark.real_redis

PASSWORD = "s3cret-pw"


def sync_errors(url: str) -> list[BaseException]:
    """What a producer meets: a lone read (a count) and a script call (a create)."""
    errors: list[BaseException] = []
    for action in (lambda q: q.inactive_count(), lambda q: q.create("email", {}).save()):
        queue = Queue("errs", redis=url)
        try:
            with pytest.raises(kueatomic.KueError) as caught:
                action(queue)
            errors.append(caught.value)
        finally:
            queue.close()
    return errors


async def async_errors(url: str) -> list[BaseException]:
    errors: list[BaseException] = []
    for name in ("count", "create"):
        queue = kueatomic.aio.Queue("errs", redis=url)
        try:
            with pytest.raises(kueatomic.KueError) as caught:
                if name == "count":
                    await queue.inactive_count()
                else:
                    await queue.create("email", {}).save()
            errors.append(caught.value)
        finally:
            await queue.close()
    return errors


def check_db_error(exc: BaseException, url: str) -> None:
    assert type(exc) is ConfigError, repr(exc)
    assert "database 99 does not exist on this server (it has 16, 0 to 15)" in str(exc)
    assert url in str(exc)
    assert isinstance(exc.__cause__, redis.ResponseError)


def test_a_database_index_out_of_range_is_a_config_error(real_redis_url: str) -> None:
    url = real_redis_url.rsplit("/", 1)[0] + "/99"
    for exc in sync_errors(url):
        check_db_error(exc, url)


async def test_a_database_index_out_of_range_is_a_config_error_on_asyncio(
        real_redis_url: str) -> None:
    url = real_redis_url.rsplit("/", 1)[0] + "/99"
    for exc in await async_errors(url):
        check_db_error(exc, url)


@pytest.fixture(scope="module")
def secured() -> Iterator[RedisServer]:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(requirepass=PASSWORD).start()
    yield server
    server.cleanup()


def urls(server: RedisServer) -> dict[str, str]:
    base = f"127.0.0.1:{server.port}/0"
    return {"none": f"redis://{base}", "wrong": f"redis://:wrong-pw@{base}",
            "user": f"redis://nobody:{PASSWORD}@{base}"}


def check_auth_error(exc: BaseException, kind: str) -> None:
    assert isinstance(exc, AuthenticationFailed) and isinstance(exc, ConfigError), repr(exc)
    assert not isinstance(exc, RedisUnavailable)
    text = str(exc)
    assert text.startswith("authentication failed: Redis at redis://127.0.0.1:"), text
    assert "unreachable" not in text and "wrong-pw" not in text and PASSWORD not in text
    if kind == "none":
        assert "requires a password and none was given" in text
    else:
        assert "refused the password or user" in text
    assert isinstance(exc.__cause__, redis.AuthenticationError)


def test_a_missing_or_wrong_password_is_authentication_failed(secured: RedisServer) -> None:
    for kind, url in urls(secured).items():
        for exc in sync_errors(url):
            check_auth_error(exc, kind)
    right = Queue("errs", redis={"host": "127.0.0.1", "port": secured.port, "password": PASSWORD})
    try:
        assert right.inactive_count() == 0
    finally:
        right.close()


async def test_a_missing_or_wrong_password_is_authentication_failed_on_asyncio(
        secured: RedisServer) -> None:
    for kind, url in urls(secured).items():
        for exc in await async_errors(url):
            check_auth_error(exc, kind)


def test_loading_the_scripts_says_authentication_failed_too(secured: RedisServer) -> None:
    url = urls(secured)["wrong"]
    client: Any = sync_client(url)
    try:
        with pytest.raises(AuthenticationFailed):
            SyncDriver(client, url).load_all()
    finally:
        client.close()


def test_the_cli_reports_it_by_name(secured: RedisServer, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["stats", "-r", urls(secured)["wrong"]]) == 2
    err = capsys.readouterr().err
    assert "kueatomic stats: AuthenticationFailed: authentication failed:" in err, err


def test_exported() -> None:
    assert "AuthenticationFailed" in kueatomic.__all__
    assert issubclass(AuthenticationFailed, ConfigError)
