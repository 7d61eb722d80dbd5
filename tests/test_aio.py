"""The asyncio client runs the same plans as the sync one: same results, same keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kueatomic import InvalidPriority, JobNotFound, Queue, RedisUnavailable, aio

from .keydump import dump_keys


async def test_async_api_mirrors_sync(make_aqueue: Callable[..., aio.Queue]) -> None:
    queue = make_aqueue(disable_search=False)
    job = await (queue.create("email", {"title": "welcome email for tj", "to": "tj@learnboost.com"})
                 .priority("high").attempts(3).search_keys(["title"]).save())
    assert job.id == 1 and job.state == "inactive"
    await job.log("hello %s", "world")
    await job.progress(1, 4, {"step": 1})
    assert await job.logs() == ["hello world"]
    loaded = await queue.get_job(1)
    assert loaded.progress_percent == 25 and loaded.progress_data == {"step": 1}
    assert await queue.search("welcome") == ["1"]
    await job.set_priority("low")
    await job.active()
    assert await queue.active_count("email") == 1
    await job.complete()
    assert await queue.complete() == [1]
    assert [j.id for j in await queue.range_by_state("complete", 0, -1)] == [1]
    assert [j.id for j in await queue.range_by_type("email", "complete", 0, -1, "desc")] == [1]
    assert [j.id for j in await queue.range(0, -1)] == [1]
    assert await queue.types() == ["email"]
    assert await queue.work_time() is None
    results = await queue.create_bulk([{"type": "email"}, {"data": {}}])
    assert results[0].id == 2 and "type" in str(results[1])
    assert (await queue.counts()) == {"inactive": 1, "active": 0, "complete": 1, "failed": 0, "delayed": 0}
    await job.remove()
    with pytest.raises(JobNotFound):
        await queue.get_job(1)
    with pytest.raises(InvalidPriority):
        queue.create("email").priority("asap")
    await queue.close()


async def test_async_bulk_is_streamed_in_chunks(
    make_aqueue: Callable[..., aio.Queue], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = make_aqueue()
    await queue.create("t").save()
    await queue.client.script_flush()
    loads: list[str] = []
    real_load = queue.client.script_load

    async def counting_load(text: str) -> Any:
        loads.append(text)
        return await real_load(text)

    monkeypatch.setattr(queue.client, "script_load", counting_load)
    specs: list[Any] = [{"type": "t", "data": {"n": n}} for n in range(250)]
    specs[150] = {"data": {}}
    results = await queue.create_bulk(specs)
    assert len(loads) == 1  # three refused calls, one SCRIPT LOAD
    assert [r.id for r in results if isinstance(r, aio.Job)] == list(range(2, 251))
    assert "type" in str(results[150])
    assert await queue.inactive_count("t") == 250 and await queue.client.llen("q:t:jobs") == 250
    await queue.close()


async def test_async_and_sync_write_the_same_keys(backend: str) -> None:
    sync_queue = Queue(prefix="s", redis=backend)
    async_queue = aio.Queue(prefix="a", redis=backend)

    def build(queue: Any) -> Any:
        return queue.create("t", {"x": [1, 2]}).priority(5).attempts(2).delay(0).ttl(1000)

    build(sync_queue).save().log("line")
    job = await build(async_queue).save()
    await job.log("line")

    def shape(prefix: str) -> dict[str, Any]:
        out = {}
        for key, entry in dump_keys(sync_queue.client, f"{prefix}:*").items():
            value = entry["value"]
            if entry["type"] == "hash":
                value = {k: v for k, v in value.items() if not k.endswith("_at")}
            out[key.split(":", 1)[1]] = (entry["type"], value)
        return out

    assert shape("s") == shape("a")
    sync_queue.close()
    await async_queue.close()


async def test_async_unreachable_redis() -> None:
    from .redis_server import free_port

    queue = aio.Queue(redis=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RedisUnavailable):
        await queue.create("t").save()
