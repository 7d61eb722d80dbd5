"""Random interleavings of worker transitions (claim, complete, fail with and without backoff,
renew, expire and recover, promote) with hand-made moves and removals keep the keyspace
consistent (tests/invariants.py) on fakeredis[lua] and on real Redis, and a stale lease
token never writes."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kueatomic import InvalidTransition, JobNotFound, Queue
from kueatomic.ops import single
from kueatomic.worker import calls

from .invariants import check_invariants
from .test_properties import fresh_queue_factory  # noqa: F401  (fixture)

job_types = st.sampled_from(["email", "video"])
backoffs = st.sampled_from([None, True, {"type": "fixed", "delay": 1},
                            {"type": "exponential", "delay": 2}])
picks = st.integers(0, 30)

operations = st.one_of(
    st.tuples(st.just("create"), job_types, st.integers(1, 3), backoffs, st.sampled_from([0, 0, 1]),
              st.sampled_from([0, 0, 1])),
    st.tuples(st.just("claim"), job_types, st.integers(0, 4), st.sampled_from([10000, 1])),
    st.tuples(st.just("complete"), picks, st.booleans()),
    st.tuples(st.just("fail"), picks, st.booleans()),
    st.tuples(st.just("renew"), picks),
    st.tuples(st.just("recover"), st.integers(0, 2)),
    st.tuples(st.just("promote"),),
    st.tuples(st.just("state"), picks, st.sampled_from(["inactive", "active", "complete", "failed",
                                                         "delayed"])),
    st.tuples(st.just("remove"), picks),
    st.tuples(st.just("progress"), picks),
)


def run(queue: Queue, call: Any) -> Any:
    return queue._run(single(call))


class Model:
    """What the test worker believes it holds: job id -> claim token."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.created: list[int] = []
        self.held: dict[int, str] = {}

    def pick_held(self, n: int) -> tuple[int, str] | None:
        if not self.held:
            return None
        job_id = sorted(self.held)[n % len(self.held)]
        return job_id, self.held[job_id]

    def apply(self, op: tuple[Any, ...]) -> None:
        q, kind = self.queue, op[0]
        if kind == "create":
            _, jtype, attempts, backoff, delay, ttl = op
            job = q.create(jtype, {"n": len(self.created)}).attempts(attempts).backoff(backoff)
            if delay:
                job.delay(delay)
            if ttl:
                job.ttl(ttl)
            self.created.append(int(job.save().id))  # type: ignore[arg-type]
        elif kind == "claim":
            _, jtype, count, lease_ms = op
            token = calls.claim_token()
            reply = run(q, calls.activate(q.keys, jtype, count, "kue:prop:1:t:1", token, lease_ms))
            for job_id, fields in calls.parse_claimed(reply, "kue:prop:1:t:1", token):
                assert fields["state"] == "active" and fields["type"] == jtype
                self.held[job_id] = token
            if lease_ms == 1:
                time.sleep(0.002)  # let these leases expire
        elif kind in ("complete", "fail", "renew"):
            pick = self.pick_held(op[1])
            if pick is None:
                return
            job_id, token = pick
            stale = len(op) > 2 and op[2]  # present a wrong token: must change nothing
            use = "not:1" if stale else token  # well-formed, as a wrong token would be
            before = q.client.hgetall(q.keys.job(job_id))
            if kind == "complete":
                [status] = run(q, calls.complete(q.keys, [(job_id, use, 1, '{"ok":1}')]))
            elif kind == "fail":
                [status] = run(q, calls.fail(q.keys, [(job_id, use, "E: x", "E: x", "x", "")]))
            else:
                [status] = run(q, calls.renew(q.keys, 10000, [(job_id, use)]))
            holds = before.get("lease") == token and before.get("state") == "active"
            if stale or not holds:
                assert status in (0, ""), (kind, job_id)
                if kind != "renew":
                    assert q.client.hgetall(q.keys.job(job_id)) == before
            else:
                assert status not in (0, ""), (kind, job_id)
            if kind != "renew" and not stale:
                self.held.pop(job_id, None)
        elif kind == "recover":
            run(q, calls.recover(q.keys, 100, op[1], 0, True))
        elif kind == "promote":
            run(q, calls.promote(q.keys, 100))
        elif self.created:
            job_id = self.created[op[1] % len(self.created)]
            job = q.create("x")
            job.id = job_id
            try:
                if kind == "state":
                    job.set_state(op[2])
                elif kind == "remove":
                    job.remove()
                elif kind == "progress":
                    job.progress(1, 2)
            except JobNotFound:
                pass
            except InvalidTransition:  # active -> active by hand: refused, nothing written
                assert kind == "state" and op[2] == "active"
                assert q.client.hget(q.keys.job(job_id), "state") == "active"


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, min_size=1, max_size=30))
def test_worker_transitions_keep_invariants(fresh_queue_factory: Any,  # noqa: F811
                                            ops: list[tuple[Any, ...]]) -> None:
    queue = fresh_queue_factory()
    model = Model(queue)
    try:
        for op in ops:
            model.apply(op)
            check_invariants(queue.client)
    finally:
        queue.close()
