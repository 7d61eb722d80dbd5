"""Random sequences of engine operations keep the keyspace consistent (tests/invariants.py),
on fakeredis[lua] and on real Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kueatomic import InvalidTransition, JobNotFound, Queue

from .invariants import check_invariants

priorities = st.one_of(st.sampled_from(["low", "normal", "medium", "high", "critical"]),
                       st.integers(-20, 20))
job_types = st.sampled_from(["email", "video"])
texts = st.sampled_from(["welcome email for tj", "running dogs", "the email", "Hello World 42"])
picks = st.integers(0, 30)

operations = st.one_of(
    st.tuples(st.just("create"), job_types, priorities, st.sampled_from([0, 0, 50_000]), texts),
    st.tuples(st.just("bulk"), st.lists(st.tuples(job_types, priorities), min_size=1, max_size=4)),
    st.tuples(st.just("state"), picks, st.sampled_from(["inactive", "active", "complete", "failed", "delayed"])),
    st.tuples(st.just("priority"), picks, priorities),
    st.tuples(st.just("remove"), picks),
    st.tuples(st.just("progress"), picks, st.integers(0, 10), st.integers(1, 10)),
    st.tuples(st.just("log"), picks),
    st.tuples(st.just("update"), picks, priorities, texts),
)


def apply(queue: Queue, created: list[int], op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "create":
        _, jtype, priority, delay, text = op
        job = queue.create(jtype, {"title": text}).priority(priority).delay(delay)
        created.append(job.save().id)  # type: ignore[arg-type]
        return
    if kind == "bulk":
        results = queue.create_bulk([{"type": t, "options": {"priority": p}} for t, p in op[1]])
        created.extend(r.id for r in results)  # type: ignore[union-attr]
        return
    if not created:
        return
    job_id = created[op[1] % len(created)]
    try:
        job = queue.create("x")
        job.id = job_id
        if kind == "state":
            job.set_state(op[2])
        elif kind == "priority":
            job.set_priority(op[2])
        elif kind == "remove":
            job.remove()
        elif kind == "progress":
            job.progress(op[2], op[3], {"n": op[2]})
        elif kind == "log":
            job.log("line %d", op[1])
        elif kind == "update":
            loaded = queue.get_job(job_id)
            loaded.data = {"title": op[3]}
            loaded.priority(op[2]).update()
    except JobNotFound:
        pass  # the job was removed earlier in the sequence
    except InvalidTransition:  # active -> active by hand: refused, nothing written
        assert kind == "state" and op[2] == "active"
        assert queue.client.hget(queue.keys.job(job_id), "state") == "active"


@pytest.fixture(params=["fake", "real"])
def fresh_queue_factory(request: pytest.FixtureRequest) -> Any:
    if request.param == "fake":
        return lambda: Queue(redis=f"memory://prop-{uuid.uuid4().hex}", disable_search=False)
    url = request.getfixturevalue("redis_server").url

    def make() -> Queue:
        redis.Redis.from_url(url).flushall()  # our private server
        return Queue(redis=url, disable_search=False)

    return make


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, min_size=1, max_size=25))
def test_random_operations_keep_invariants(fresh_queue_factory: Any, ops: list[tuple[Any, ...]]) -> None:
    queue = fresh_queue_factory()
    created: list[int] = []
    try:
        for op in ops:
            apply(queue, created, op)
            check_invariants(queue.client)
    finally:
        queue.close()
