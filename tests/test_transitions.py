"""The scripts enforce kueatomic/states.py's moves themselves (lua/README.md, "Transitions")."""

from __future__ import annotations

import pytest

from kueatomic import InvalidTransition, Queue
from kueatomic.keyspace import zid
from kueatomic.ops import MANUAL_LEASE_MS
from kueatomic.web import create_app

from .invariants import check_invariants
from .keydump import dump_keys
from .web_helpers import client_for


def test_a_manual_move_to_active_gives_a_lease_nobody_holds(queue: Queue) -> None:
    job = queue.create("email").save()
    job.active()
    fields = queue.client.hgetall(queue.keys.job(job.id))
    assert fields["state"] == "active" and fields["lease"].startswith("manual:")
    deadline = queue.client.zscore(queue.keys.leases, zid(job.id))
    assert deadline is not None and deadline >= int(fields["updated_at"]) + MANUAL_LEASE_MS
    check_invariants(queue.client, queue.prefix)


def test_active_to_active_by_hand_is_refused_and_writes_nothing(queue: Queue) -> None:
    job = queue.create("email").save()
    job.active()
    before = dump_keys(queue.client)
    with pytest.raises(InvalidTransition, match="cannot be moved to active"):
        queue.get_job(job.id).active()
    assert dump_keys(queue.client) == before
    for state in ("inactive", "complete", "failed", "delayed"):  # every other move is allowed
        queue.get_job(job.id).set_state(state)
        queue.get_job(job.id).set_state("active")


def test_the_route_refuses_active_to_active_with_409(queue: Queue) -> None:
    job = queue.create("email").save()
    job.active()
    with client_for(create_app(queue)) as http:
        response = http.put(f"/job/{job.id}/state/active")
    assert response.status_code == 409 and "cannot be moved" in response.json()["error"]


def test_priority_and_update_keep_an_active_jobs_ttl_deadline(queue: Queue) -> None:
    job = queue.create("email").ttl(60000).save()
    job.active()
    deadline = queue.client.zscore(queue.keys.state("active"), zid(job.id))
    assert deadline is not None and deadline > 100000
    loaded = queue.get_job(job.id)
    loaded.set_priority("high")
    loaded.update()
    assert queue.client.zscore(queue.keys.state("active"), zid(job.id)) == deadline
    assert queue.client.zscore(queue.keys.type_state("email", "active"), zid(job.id)) == -10


def test_a_hash_without_a_state_is_resaved_into_inactive_with_its_token(queue: Queue) -> None:
    job = queue.create("email").save()
    queue.client.hdel(queue.keys.job(job.id), "state")  # as a hand-written job might be
    queue.client.zrem(queue.keys.state("inactive"), zid(job.id))
    queue.client.zrem(queue.keys.type_state("email", "inactive"), zid(job.id))
    queue.client.delete(queue.keys.tokens("email"))
    queue.get_job(job.id).set_priority(3)
    assert queue.client.hget(queue.keys.job(job.id), "state") == "inactive"
    assert queue.client.llen(queue.keys.tokens("email")) == 1
    check_invariants(queue.client, queue.prefix)


def test_the_state_route_writes_only_the_state_as_kue_does(queue: Queue) -> None:
    """Kue's PUT /job/:id/state/:state is job.state(s): no progress 100, no failed_at. Those
    come from Job#complete() and Job#failed() only."""
    done, broken = queue.create("email").save(), queue.create("email").save()
    with client_for(create_app(queue)) as http:
        assert http.put(f"/job/{done.id}/state/complete").status_code == 200
        assert http.put(f"/job/{broken.id}/state/failed").status_code == 200
    assert "progress" not in queue.client.hgetall(queue.keys.job(done.id))
    assert "failed_at" not in queue.client.hgetall(queue.keys.job(broken.id))
    queue.get_job(done.id).complete()
    queue.get_job(broken.id).failed()
    assert queue.client.hget(queue.keys.job(done.id), "progress") == "100"
    assert queue.client.hget(queue.keys.job(broken.id), "failed_at")
