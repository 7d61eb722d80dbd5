"""<prefix>:meta records the data format; a newer one is refused by workers and the dashboard."""

from __future__ import annotations

import asyncio

import pytest

from kueatomic import IncompatibleFormat, Queue, aio
from kueatomic.states import DATA_FORMAT


def test_the_first_caller_records_the_format_and_a_newer_one_is_refused(queue: Queue) -> None:
    assert not queue.client.exists(queue.keys.meta)
    assert queue.check_format() == DATA_FORMAT
    assert queue.client.hget(queue.keys.meta, "format") == str(DATA_FORMAT)
    queue.client.hset(queue.keys.meta, "format", DATA_FORMAT + 1)  # written by a newer version
    with pytest.raises(IncompatibleFormat, match="newer than"):
        queue.check_format()
    assert queue.client.hget(queue.keys.meta, "format") == str(DATA_FORMAT + 1)  # untouched


def test_the_asyncio_queue_checks_the_same(backend: str) -> None:
    async def main() -> None:
        queue = aio.Queue("q", backend)
        try:
            assert await queue.check_format() == DATA_FORMAT
            await queue.client.hset(queue.keys.meta, "format", DATA_FORMAT + 1)
            with pytest.raises(IncompatibleFormat):
                await queue.check_format()
        finally:
            await queue.close()

    asyncio.run(main())
