"""How the drivers put requests on the wire (kueatomic/driver.py): script calls stream on one
pooled connection, packed by hiredis's C packer when it is installed, and anything hiredis
refuses goes through redis-py's own packer, which encodes or refuses it as before."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio

from kueatomic import aio, driver
from kueatomic.driver import direct, packed
from kueatomic.ops import Call, Read


def test_batches_of_script_calls_go_straight_to_a_connection() -> None:
    create = Call("create_jobs", ("k",), ("q", 1))
    assert direct([create]) and direct([create, create])
    assert not direct([Read(("HGETALL", "q:job:1"))])
    assert not direct([create, Read(("HGETALL", "q:job:1"))])  # reads keep redis-py's callbacks
    assert direct([Read(("SMEMBERS", "q:job:types"))])


def wire(packing: bytes | list[bytes]) -> bytes:
    """hiredis packs into bytes, redis-py into a list of chunks."""
    return packing if isinstance(packing, bytes) else b"".join(packing)


@pytest.mark.parametrize("hiredis_installed", [True, False])
@pytest.mark.parametrize("module", [redis, redis.asyncio])
def test_packed_commands_are_the_bytes_redis_py_would_send(
        module: object, hiredis_installed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if hiredis_installed:
        pytest.importorskip("hiredis")
    else:
        monkeypatch.setattr(driver, "_hiredis_pack", None)
    connection = module.Connection(encoding_errors="replace")  # type: ignore[attr-defined]
    command = ("EVALSHA", "ab12", 2, "q:ids", "q:job:types", "é", b"\x00\xff", 1.5, -7)
    assert wire(packed(connection, command)) == wire(connection.pack_command(*command))


def test_what_hiredis_refuses_takes_the_connections_own_packer() -> None:
    """The asyncio connections (the ones ``packed`` serves): a lone surrogate is encoded as
    the client encodes it ("replace"), a bool refused with redis-py's own DataError."""
    connection = redis.asyncio.Connection(encoding_errors="replace")
    assert wire(packed(connection, ("SET", "k", "a\udc80"))) == b"*3\r\n$3\r\nSET\r\n" \
        b"$1\r\nk\r\n$2\r\na?\r\n"
    with pytest.raises(redis.DataError):
        packed(connection, ("SET", "k", True))


def test_coalesced_asyncio_saves_beyond_one_call_each_get_their_job(real_redis_url: str) -> None:
    """400 tasks at once: their creates ride in batches of more than one create_jobs call
    (100 jobs each), streamed on one connection; every caller gets its own id."""
    async def main() -> tuple[list[int], int]:
        queue = aio.Queue(redis=real_redis_url)
        jobs = await asyncio.gather(*(queue.create("t", {"n": n}).save() for n in range(400)))
        loaded = await asyncio.gather(*(queue.get_job(job.id) for job in jobs))
        assert [job.data["n"] for job in loaded] == list(range(400))
        count = await queue.inactive_count("t")
        await queue.close()
        return [job.id for job in jobs], count

    ids, count = asyncio.run(main())
    assert len(set(ids)) == 400 and count == 400
