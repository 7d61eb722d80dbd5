"""The worker scripts' effects, called directly (no threads), on fakeredis and a real server:
claim order and fields, Kue's done()/failedAttempt() effects, lease checks, backoff delays,
promotion, recovery of expired leases and exceeded ttls."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from kueatomic import Queue, backoff_function
from kueatomic.keyspace import zid
from kueatomic.ops import Call, Read, single
from kueatomic.scripts import registry
from kueatomic.worker import calls

from .invariants import check_invariants

ON_CLUSTER = True  # the backend fixture also runs these tests on a Redis Cluster


def run(queue: Queue, call: Call | Read) -> Any:
    return queue._run(single(call))


def claim(queue: Queue, job_type: str, count: int = 10, lease_ms: int = 10000,
          worker: str = "kue:test:1:t:1") -> tuple[str, list[tuple[int, dict[str, str]]]]:
    token = calls.claim_token()
    reply = run(queue, calls.activate(queue.keys, job_type, count, worker, token, lease_ms))
    return token, calls.parse_claimed(reply, worker, token)


def hash_of(queue: Queue, job_id: int) -> dict[str, str]:
    return dict(queue.client.hgetall(queue.keys.job(job_id)))


def poll(fn: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


class Events:
    """Collects <prefix>:events messages through a subscriber of our own."""

    def __init__(self, queue: Queue) -> None:
        self.pubsub = queue.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(queue.keys.events)
        poll(lambda: self.pubsub.get_message(timeout=0.05) is None or True)

    def drain(self, wait: float = 0.3) -> list[dict[str, Any]]:
        out = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.05)
            if message and message["type"] == "message":
                out.append(json.loads(message["data"]))
        self.pubsub.close()
        return out


def test_calls_match_headers(queue: Queue) -> None:
    """Every worker call passes the KEYS and ARGV its script header lists."""
    keys = queue.keys
    built = [
        calls.activate(keys, "t", 1, "w", "tok", 1000),
        calls.complete(keys, [(1, "tok", 5, "")]),
        calls.fail(keys, [(1, "tok", "e", "s", "m", "")]),
        calls.renew(keys, 1000, [(1, "tok")]),
        calls.promote(keys, 10),
        calls.recover(keys, 10, 1, 3000, True),
        calls.reclaim(keys, "tok", 1000),
        calls.release(keys, [(1, "tok"), (2, "tok")]),
    ]
    for call in built:
        header = registry()[call.script].header
        for given, params in ((call.keys, header.keys), (call.args, header.argv)):
            fixed = [p for p in params if not p.variadic]
            assert len(given) >= len(fixed), call.script
            if not any(p.variadic for p in params):
                assert len(given) == len(fixed), call.script


def test_claims_by_priority_then_fifo_up_to_count(queue: Queue) -> None:
    low = queue.create("email", {"n": "low"}).priority("low").save()
    first = queue.create("email", {"n": "first"}).save()
    second = queue.create("email", {"n": "second"}).save()
    high = queue.create("email", {"n": "high"}).priority("high").save()
    queue.create("video", {"n": "other type"}).save()
    _, claimed = claim(queue, "email", count=3)
    assert [job_id for job_id, _ in claimed] == [high.id, first.id, second.id]
    _, rest = claim(queue, "email", count=3)
    assert [job_id for job_id, _ in rest] == [low.id]
    assert claim(queue, "email")[1] == []
    assert queue.inactive_count("video") == 1
    check_invariants(queue.client, queue.prefix)


def test_claim_writes_kue_fields_lease_and_start_event(queue: Queue) -> None:
    job = queue.create("email", {"to": "tj"}).ttl(5000).save()
    events = Events(queue)
    token, [(claimed_id, fields)] = claim(queue, "email", lease_ms=7000, worker="kue:h:1:email:1")
    assert claimed_id == job.id
    stored = hash_of(queue, job.id)
    assert fields == stored  # the reply is the hash after the claim
    assert stored["state"] == "active" and stored["workerId"] == "kue:h:1:email:1"
    assert stored["lease"] == token and stored["started_at"] == stored["updated_at"]
    started = int(stored["started_at"])
    client = queue.client
    assert client.zscore(queue.keys.leases, "01|1") == started + 7000
    assert client.zscore(queue.keys.state("active"), "01|1") == started + 5000  # ttl deadline
    assert client.zscore(queue.keys.type_state("email", "active"), "01|1") == 0
    assert client.llen(queue.keys.tokens("email")) == 0
    assert {"id": 1, "event": "start", "args": ["start", "email", None]} in events.drain()
    check_invariants(queue.client, queue.prefix)


def test_claim_drops_stale_members(queue: Queue) -> None:
    job = queue.create("email").save()
    queue.client.delete(queue.keys.job(job.id))  # a vanished hash (test-only write)
    assert claim(queue, "email")[1] == []
    assert queue.inactive_count() == 0 and queue.inactive_count("email") == 0


def test_complete_is_kues_done(queue: Queue) -> None:
    job = queue.create("email", {"to": "a"}).save()
    token, _ = claim(queue, "email")
    events = Events(queue)
    assert run(queue, calls.complete(queue.keys, [(job.id, token, 165, '{"sent":true}')])) == [1]
    stored = hash_of(queue, job.id)
    assert stored["state"] == "complete" and stored["progress"] == "100"
    assert stored["duration"] == "165" and stored["result"] == '{"sent":true}'
    assert stored["attempts"] == "1" and "lease" not in stored
    assert queue.client.zscore(queue.keys.leases, "01|1") is None
    assert queue.work_time() == 165
    assert queue.get_job(job.id).to_json()["attempts"] == {"made": 1, "remaining": 0, "max": 1}
    assert {"id": 1, "event": "complete", "args": ["complete", {"sent": True}, None]} in events.drain()
    check_invariants(queue.client, queue.prefix)


@pytest.mark.parametrize("result", ["", "null", "0", "false", '""'])
def test_falsy_results_are_not_stored(queue: Queue, result: str) -> None:
    job = queue.create("email").save()
    token, _ = claim(queue, "email")
    run(queue, calls.complete(queue.keys, [(job.id, token, 0, result)]))
    assert "result" not in hash_of(queue, job.id)
    assert queue.work_time() == 0  # the key exists once a job completed, as in Kue


def test_complete_with_remove_on_complete(queue: Queue) -> None:
    job = queue.create("email").remove_on_complete().save()
    job.log("a line")
    token, _ = claim(queue, "email")
    events = Events(queue)
    run(queue, calls.complete(queue.keys, [(job.id, token, 3, "")]))
    assert not queue.client.exists(queue.keys.job(job.id), queue.keys.log(job.id))
    assert queue.counts() == {s: 0 for s in queue.counts()}
    names = [e["event"] for e in events.drain()]
    assert names == ["remove", "complete"]
    assert queue.work_time() == 3


def test_a_wrong_token_changes_nothing(queue: Queue) -> None:
    job = queue.create("email").save()
    token, _ = claim(queue, "email")
    before = hash_of(queue, job.id)
    assert run(queue, calls.complete(queue.keys, [(job.id, "stolen:1", 1, "")])) == [0]
    assert run(queue, calls.fail(queue.keys, [(job.id, "stolen:1", "e", "s", "m", "")])) == [""]
    assert run(queue, calls.renew(queue.keys, 1000, [(job.id, "stolen:1")])) == [0]
    assert run(queue, calls.complete(queue.keys, [(999, token, 1, "")])) == [0]
    assert hash_of(queue, job.id) == before
    job.set_state("inactive")  # moved by hand: the lease is gone
    assert "lease" not in hash_of(queue, job.id)
    assert run(queue, calls.complete(queue.keys, [(job.id, token, 1, "")])) == [0]


def test_many_results_in_one_call(queue: Queue) -> None:
    jobs = queue.create_bulk([{"type": "email", "data": {"n": n}} for n in range(5)])
    token, claimed = claim(queue, "email")
    assert len(claimed) == 5
    reply = run(queue, calls.complete(queue.keys, [(j.id, token, 10, str(j.id)) for j in jobs]))
    assert reply == [1] * 5
    assert queue.complete_count() == 5 and queue.work_time() == 50
    check_invariants(queue.client, queue.prefix)


def fail_once(queue: Queue, job_id: int, message: str = "smtp down") -> str:
    token, claimed = claim(queue, "email")
    assert [i for i, _ in claimed] == [job_id]
    error = f"Error: {message}\n    at stack"
    [state] = run(queue, calls.fail(queue.keys, [(job_id, token, error, f"Error: {message}",
                                                  message, "")]))
    return str(state)


def test_failed_attempt_without_backoff_requeues_then_fails(queue: Queue) -> None:
    job = queue.create("email").attempts(2).save()
    events = Events(queue)
    assert fail_once(queue, job.id) == "inactive"
    stored = hash_of(queue, job.id)
    assert stored["attempts"] == "1" and stored["error"].startswith("Error: smtp down")
    assert stored["state"] == "inactive" and "failed_at" in stored and "lease" not in stored
    assert queue.client.llen(queue.keys.tokens("email")) == 1
    assert fail_once(queue, job.id) == "failed"
    assert queue.get_job(job.id).to_json()["attempts"] == {"made": 2, "remaining": 0, "max": 2}
    assert job.logs() == ["Error: smtp down", "Error: smtp down"]
    got = [(e["event"], e["args"][1:]) for e in events.drain() if e["event"] != "start"]
    assert got == [
        ("error", ["Error: smtp down\n    at stack"]), ("enqueue", ["email"]),
        ("failed attempt", ["smtp down", 1]),
        ("error", ["Error: smtp down\n    at stack"]), ("failed", ["smtp down", None]),
    ]
    check_invariants(queue.client, queue.prefix)


def delays_of(queue: Queue, job_id: int, failures: int) -> list[int]:
    """Fail a job repeatedly; promote_at - failed_at after each retry."""
    out = []
    for _ in range(failures):
        if fail_once(queue, job_id) != "delayed":
            break
        stored = hash_of(queue, job_id)
        out.append(int(stored["promote_at"]) - int(stored["failed_at"]))
        assert queue.client.zscore(queue.keys.state("delayed"), f"{len(str(job_id)):02d}|{job_id}") \
            == int(stored["promote_at"])
        queue.get_job(job_id).inactive()  # promote by hand
    return out


def test_fixed_backoff(queue: Queue) -> None:
    job = queue.create("email").attempts(3).backoff({"type": "fixed", "delay": 5000}).save()
    assert delays_of(queue, job.id, 3) == [5000, 5000]
    assert hash_of(queue, job.id)["state"] == "failed"


def test_exponential_backoff_as_measured_in_kue(queue: Queue) -> None:
    job = queue.create("email").attempts(3).backoff({"type": "exponential", "delay": 400}).save()
    assert delays_of(queue, job.id, 3) == [200, 600]
    capped = queue.create("email").attempts(4).backoff(
        {"type": "exponential", "delay": 400, "maxDelay": 700}).save()
    assert delays_of(queue, capped.id, 4) == [200, 500, 500]


def test_true_backoff_reuses_the_jobs_delay(queue: Queue) -> None:
    job = queue.create("email").attempts(2).backoff(True).delay(1).save()
    queue.get_job(job.id).inactive()
    assert delays_of(queue, job.id, 1) == [1]
    job.remove()
    plain = queue.create("email").attempts(2).backoff(True).save()
    before = int(hash_of(queue, plain.id)["promote_at"])
    assert fail_once(queue, plain.id) == "delayed"
    assert int(hash_of(queue, plain.id)["promote_at"]) == before  # due at once, as in Kue


@backoff_function
def linear_backoff(attempts: int, delay: int) -> int:
    return attempts * 1000 + delay


def test_function_backoff_delay_comes_from_the_worker(queue: Queue) -> None:
    job = queue.create("email").attempts(3).backoff(linear_backoff).save()
    token, [(job_id, fields)] = claim(queue, "email")
    delay, problem = calls.backoff_delay(fields)
    assert (delay, problem) == ("1000", None)
    run(queue, calls.fail(queue.keys, [(job_id, token, "e", "e", "e", delay)]))
    stored = hash_of(queue, job.id)
    assert int(stored["promote_at"]) - int(stored["failed_at"]) == 1000
    assert stored["backoff"] == json.dumps(
        {"type": "function", "name": f"{__name__}:linear_backoff"}, separators=(",", ":"))


def test_backoffs_the_worker_cannot_compute_are_reported() -> None:
    fields = {"backoff": '{"type":"function","name":"nowhere:fn"}', "max_attempts": "3"}
    delay, problem = calls.backoff_delay(fields)
    assert delay == "" and problem and "not registered" in problem
    node = {"backoff": "function (attempts, delay) { return attempts * 1000; }",
            "max_attempts": "3"}
    delay, problem = calls.backoff_delay(node)
    assert delay == "" and problem and "JavaScript source" in problem
    assert calls.backoff_delay({**node, "attempts": "2"}) == ("", None)  # no retry follows
    for plain in ("true", '{"type":"fixed","delay":5}'):
        assert calls.backoff_delay({"backoff": plain, "max_attempts": "3"}) == ("", None)


def test_renew_extends_the_lease(queue: Queue) -> None:
    job = queue.create("email").save()
    token, _ = claim(queue, "email", lease_ms=1000)
    first = queue.client.zscore(queue.keys.leases, "01|1")
    assert run(queue, calls.renew(queue.keys, 60000, [(job.id, token)])) == [1]
    assert queue.client.zscore(queue.keys.leases, "01|1") >= first + 59000


def test_promotion_moves_due_jobs_once_and_reports_the_next(queue: Queue) -> None:
    # 250 ms, not less: a pause of the test process (a garbage collection freeing earlier
    # tests' fakeredis Lua runtimes took 54 ms) must not make the job due before the first call.
    soon = queue.create("email", {"n": 1}).delay(250).save()
    later = queue.create("email", {"n": 2}).delay(60000).save()
    promoted, wait_ms = run(queue, calls.promote(queue.keys, 100))
    assert promoted == 0 and 0 <= wait_ms <= 250
    events = Events(queue)
    assert poll(lambda: run(queue, calls.promote(queue.keys, 100))[0] == 1)
    assert run(queue, calls.promote(queue.keys, 100))[0] == 0  # once only
    assert hash_of(queue, soon.id)["state"] == "inactive"
    assert hash_of(queue, later.id)["state"] == "delayed"
    assert 59000 <= run(queue, calls.promote(queue.keys, 100))[1] <= 60000
    assert queue.client.llen(queue.keys.tokens("email")) == 1
    got = [(e["event"], e["args"]) for e in events.drain()]
    assert got == [("promotion", ["promotion"]), ("enqueue", ["enqueue", "email"])]
    check_invariants(queue.client, queue.prefix)


def test_promotion_is_bounded(queue: Queue) -> None:
    queue.create_bulk([{"type": "email", "options": {"delay": 1}} for _ in range(5)])
    time.sleep(0.01)
    assert poll(lambda: run(queue, calls.promote(queue.keys, 2)) == [2, 0])
    assert run(queue, calls.promote(queue.keys, 2))[0] == 2
    assert run(queue, calls.promote(queue.keys, 2)) == [1, -1]


def stall(queue: Queue, job_type: str = "email", max_stalls: int = 1) -> list[int]:
    """Claim with a short lease, let it expire and recover; recover_jobs' reply."""
    token, claimed = claim(queue, job_type, lease_ms=20)
    assert claimed
    def recovered() -> list[int] | None:
        reply: list[int] = run(queue, calls.recover(queue.keys, 100, max_stalls, 3000, False))
        return reply if sum(reply[:2]) else None

    reply: list[int] = poll(recovered)
    assert reply, "the lease expired and recovery ran"
    assert run(queue, calls.complete(queue.keys, [(claimed[0][0], token, 1, "")])) == [0]
    return reply


def test_recovery_requeues_expired_leases_then_a_stall_past_max_stalls_fails_the_attempt(
        queue: Queue) -> None:
    job = queue.create("email").save()
    assert stall(queue) == [1, 0, 0]
    stored = hash_of(queue, job.id)
    assert stored["stalls"] == "1" and "lease" not in stored and stored["state"] == "inactive"
    assert stall(queue) == [0, 1, 0]  # second stall with max_stalls=1: the (only) attempt fails
    stored = hash_of(queue, job.id)
    assert stored["state"] == "failed" and "stalls" not in stored
    assert stored["error"].startswith("Stalled:") and stored["attempts"] == "1"
    assert "2 times in this attempt" in stored["error"]
    assert job.logs()[0].startswith("Stalled: the lease expired")
    assert job.logs()[1].startswith("Stalled: the worker stopped renewing")
    check_invariants(queue.client, queue.prefix)


def test_stalls_are_counted_per_attempt(queue: Queue) -> None:
    """attempts=3, max_stalls=1, two stalls in every attempt: all three attempts are run."""
    job = queue.create("email").attempts(3).save()
    events = Events(queue)
    for attempt in (1, 2, 3):
        assert stall(queue) == [1, 0, 0]
        assert hash_of(queue, job.id)["stalls"] == "1"
        assert stall(queue) == [0, 1, 0]
        stored = hash_of(queue, job.id)
        assert stored["attempts"] == str(attempt) and "stalls" not in stored
        assert stored["state"] == ("failed" if attempt == 3 else "inactive")
    assert claim(queue, "email")[1] == []
    got = [(e["event"], e["args"][1:]) for e in events.drain() if e["event"] != "start"]
    assert [name for name, _ in got].count("stalled") == 6
    assert [args for name, args in got if name == "stalled"] == [[1], [2]] * 3
    assert [args[1] for name, args in got if name == "failed attempt"] == [1, 2]
    assert [name for name, _ in got].count("failed") == 1
    check_invariants(queue.client, queue.prefix)


def test_a_stall_past_max_stalls_is_retried_with_the_jobs_backoff(queue: Queue) -> None:
    job = queue.create("email").attempts(2).backoff({"type": "fixed", "delay": 60000}).save()
    stall(queue, max_stalls=0)
    stored = hash_of(queue, job.id)
    assert stored["state"] == "delayed" and stored["attempts"] == "1"
    assert int(stored["promote_at"]) - int(stored["failed_at"]) == 60000
    check_invariants(queue.client, queue.prefix)


def test_a_stall_then_a_handler_failure_in_every_attempt_uses_all_attempts(queue: Queue) -> None:
    job = queue.create("email").attempts(3).save()
    for expected in ("inactive", "inactive", "failed"):
        assert stall(queue) == [1, 0, 0]  # the first stall of this attempt: within max_stalls
        assert fail_once(queue, job.id) == expected
        assert "stalls" not in hash_of(queue, job.id)
    assert hash_of(queue, job.id)["attempts"] == "3"
    check_invariants(queue.client, queue.prefix)


def test_recovery_first_stall_goes_back_to_inactive(queue: Queue) -> None:
    job = queue.create("email").save()
    claim(queue, "email", lease_ms=20)
    assert poll(lambda: run(queue, calls.recover(queue.keys, 100, 1, 3000, False))[0] == 1)
    stored = hash_of(queue, job.id)
    assert stored["state"] == "inactive" and "attempts" not in stored
    assert queue.client.llen(queue.keys.tokens("email")) == 1
    assert claim(queue, "email")[1][0][0] == job.id


def test_ttl_exceeded_is_a_failed_attempt(queue: Queue) -> None:
    job = queue.create("email").ttl(30).attempts(2).save()
    claim(queue, "email", lease_ms=60000)
    events = Events(queue)
    assert poll(lambda: run(queue, calls.recover(queue.keys, 100, 1, 3000, False))[2] == 1)
    stored = hash_of(queue, job.id)
    assert stored["state"] == "inactive" and stored["error"] == "TTL exceeded"
    assert stored["attempts"] == "1" and job.logs() == ["TTL exceeded"]
    names = [e["event"] for e in events.drain()]
    assert names == ["ttl exceeded", "error", "enqueue", "failed attempt", "ttl exceeded ack"]


def test_progress_pushes_the_ttl_deadline(queue: Queue) -> None:
    job = queue.create("email").ttl(300).save()
    claim(queue, "email")
    key, member = queue.keys.state("active"), "01|1"
    first = queue.client.zscore(key, member)

    def redis_ms() -> int:
        seconds, micros = queue.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    assert poll(lambda: redis_ms() > first - 300 + 5)
    job.progress(1, 2)
    assert queue.client.zscore(key, member) > first


def test_a_node_kue_job_past_ttl_gets_a_grace_period(queue: Queue) -> None:
    job = queue.create("email").ttl(20).save()
    queue.get_job(job.id).active()
    # Claimed without a lease, as a Node Kue worker does (a manual move gives one).
    queue.client.hdel(queue.keys.job(job.id), "lease")
    queue.client.zrem(queue.keys.leases, zid(job.id))
    time.sleep(0.05)
    assert run(queue, calls.recover(queue.keys, 100, 1, 60000, False)) == [0, 0, 0]
    assert run(queue, calls.recover(queue.keys, 100, 1, 0, False)) == [0, 0, 1]
    assert hash_of(queue, job.id)["state"] == "failed"


def test_rebalance_restores_wake_up_tokens(queue: Queue) -> None:
    queue.create_bulk([{"type": "email"} for _ in range(3)])
    queue.client.delete(queue.keys.tokens("email"))  # drifted, as Node Kue's can
    run(queue, calls.recover(queue.keys, 100, 1, 3000, False))
    assert queue.client.llen(queue.keys.tokens("email")) == 0
    run(queue, calls.recover(queue.keys, 100, 1, 3000, True))
    assert queue.client.llen(queue.keys.tokens("email")) == 3


def test_result_and_failure_encoding() -> None:
    assert calls.encode_result(None) == ""
    assert calls.encode_result({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    from kueatomic import NotSerializable

    with pytest.raises(NotSerializable, match="JSON-serialisable"):
        calls.encode_result({"when": object()})
    with pytest.raises(NotSerializable, match="not valid Unicode .got str"):
        calls.encode_result("lone \ud800")
    try:
        raise ValueError("smtp down\nsecond line")
    except ValueError as exc:
        error, summary, message = calls.describe_failure(exc)
    assert summary == "ValueError: smtp down" and message == "smtp down\nsecond line"
    assert error.startswith("ValueError: smtp down\n") and "Traceback" in error
    assert calls.plain_failure("Shutdown") == ("Shutdown", "Shutdown", "Shutdown")


@pytest.mark.no_cluster  # Node Kue (and its unprefixed lock) cannot share a cluster
def test_promotion_waits_while_node_kue_holds_its_lock(queue: Queue) -> None:
    job = queue.create("email").delay(1).save()
    queue.client.set("promotion:lock", "node", px=5000)  # as Kue's warlock does (test-only)
    try:
        time.sleep(0.01)
        assert run(queue, calls.promote(queue.keys, 100)) == [0, 100]
        assert hash_of(queue, job.id)["state"] == "delayed"
    finally:
        queue.client.delete("promotion:lock")
    assert run(queue, calls.promote(queue.keys, 100))[0] == 1


def test_racing_promoters_promote_each_job_once(queue: Queue) -> None:
    """Many processes run upkeep without a lock: each delayed job is promoted exactly once."""
    import threading

    queue.create_bulk([{"type": "email", "options": {"delay": 1}} for _ in range(300)])
    time.sleep(0.01)
    events = Events(queue)
    totals: list[int] = []

    def promoter() -> None:
        other = Queue(queue.prefix, queue.connection)
        done = 0
        for _ in range(50):
            done += run(other, calls.promote(other.keys, 7))[0]
        other.close()
        totals.append(done)

    threads = [threading.Thread(target=promoter) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(totals) == 300 and queue.inactive_count() == 300
    promotions = [e for e in events.drain() if e["event"] == "promotion"]
    assert len(promotions) == 300 and len({e["id"] for e in promotions}) == 300
    assert queue.client.llen(queue.keys.tokens("email")) == 300
    check_invariants(queue.client, queue.prefix)


# --- claim records: lost replies, retried outcomes, reclaim, release ----------------------

def record_of(queue: Queue, token: str) -> str | None:
    """The claim record: the claimed ids joined by "," (None when there is none)."""
    value = queue.client.get(queue.keys.claim(token))
    return None if value is None else str(value)


def completed_under(queue: Queue, token: str) -> set[str]:
    return set(queue.client.smembers(queue.keys.claim(token) + ":complete"))


def failed_under(queue: Queue, token: str) -> dict[str, str]:
    return dict(queue.client.hgetall(queue.keys.claim(token) + ":failed"))


def pttl_after(queue: Queue, record: str) -> int:
    """The record's PTTL read second, plus the ms that may have passed since the first read."""
    return int(queue.client.pttl(record)) + 50


def claim_keys(queue: Queue, token: str) -> list[str]:
    record = queue.keys.claim(token)
    return [record, record + ":complete", record + ":failed"]


def expire_lease(queue: Queue, job_id: int) -> None:
    """The lease ran out, without waiting for it (and without shortening the claim record)."""
    queue.client.zadd(queue.keys.leases, {f"{len(str(job_id)):02d}|{job_id}": 0})  # test-only


def test_claim_record_is_written_and_expires(queue: Queue) -> None:
    jobs = queue.create_bulk([{"type": "email"} for _ in range(3)])
    token, claimed = claim(queue, "email", lease_ms=5000)
    assert len(claimed) == 3
    assert queue.client.type(queue.keys.claim(token)) == "string"
    assert record_of(queue, token) == ",".join(str(j.id) for j in jobs)  # in claim order
    assert 5000 < queue.client.pttl(queue.keys.claim(token)) <= 10000
    assert not queue.client.exists(*claim_keys(queue, token)[1:])  # no outcome yet
    empty, nothing = claim(queue, "email")
    assert nothing == [] and not queue.client.exists(*claim_keys(queue, empty))
    queue.create("email").save()
    short, claimed = claim(queue, "email", lease_ms=20)
    assert claimed and queue.client.pttl(queue.keys.claim(short)) <= 40  # -2 once expired
    assert poll(lambda: not queue.client.exists(queue.keys.claim(short)))


def test_renew_extends_the_claim_record_and_its_outcomes(queue: Queue) -> None:
    retried = {"type": "email", "options": {"attempts": 2}}
    done, failed, job = queue.create_bulk([retried, retried, retried])
    token, _ = claim(queue, "email", lease_ms=1000)
    assert run(queue, calls.complete(queue.keys, [(done.id, token, 1, "")])) == [1]
    assert run(queue, calls.fail(queue.keys, [(failed.id, token, "e", "s", "m", "")])) == \
        ["inactive"]
    for key in claim_keys(queue, token):
        assert 0 < queue.client.pttl(key) <= 2000, key
    assert run(queue, calls.renew(queue.keys, 60000, [(job.id, token), (999, token)])) == [1, 0]
    for key in claim_keys(queue, token):
        assert 60000 < queue.client.pttl(key) <= 120000, key
    assert run(queue, calls.renew(queue.keys, 1000, [(job.id, "unknown:1")])) == [0]
    # no record (and no outcome key) made by renewal
    assert not queue.client.exists(*claim_keys(queue, "unknown"))


def test_a_retried_completion_is_answered_2_and_done_once(queue: Queue) -> None:
    first, second = queue.create_bulk([{"type": "email"}, {"type": "email"}])
    token, _ = claim(queue, "email")
    events = Events(queue)
    assert run(queue, calls.complete(queue.keys, [(first.id, token, 7, '"ok"')])) == [1]
    assert record_of(queue, token) == f"{first.id},{second.id}"  # never rewritten
    assert completed_under(queue, token) == {str(first.id)}
    record, complete_key, _ = claim_keys(queue, token)
    assert 0 < queue.client.pttl(complete_key) <= pttl_after(queue, record)  # expires with it
    stored = hash_of(queue, first.id)
    # The reply was lost: the worker sends the same batch again, now with the other job.
    reply = run(queue, calls.complete(queue.keys, [(first.id, token, 7, '"ok"'),
                                                   (second.id, token, 5, "")]))
    assert reply == [2, 1]
    assert hash_of(queue, first.id) == stored
    assert run(queue, calls.complete(queue.keys, [(second.id, token, 5, "")])) == [2]
    assert run(queue, calls.complete(queue.keys, [(second.id, "other:1", 5, "")])) == [0]
    completes = [e["id"] for e in events.drain() if e["event"] == "complete"]
    assert completes == [first.id, second.id]
    assert queue.work_time() == 12 and hash_of(queue, first.id)["attempts"] == "1"
    check_invariants(queue.client, queue.prefix)


def test_outcomes_of_several_claims_in_one_call(queue: Queue, backend: str) -> None:
    jobs = queue.create_bulk([{"type": "email", "options": {"attempts": 2}} for _ in range(8)])
    ids = [j.id for j in jobs]
    first, _ = claim(queue, "email", count=4)
    second, _ = claim(queue, "email", count=4)
    done = [(ids[0], first, 1, ""), (ids[4], second, 1, ""), (ids[1], first, 1, ""),
            (ids[5], second, 1, "")]
    assert run(queue, calls.complete(queue.keys, done)) == [1, 1, 1, 1]
    assert run(queue, calls.complete(queue.keys, done)) == [2, 2, 2, 2]  # the retry
    assert completed_under(queue, first) == {str(ids[0]), str(ids[1])}
    assert completed_under(queue, second) == {str(ids[4]), str(ids[5])}
    failed = [(ids[6], second, "e", "s", "m", ""), (ids[2], first, "e", "s", "m", "")]
    assert run(queue, calls.fail(queue.keys, failed)) == ["inactive", "inactive"]
    assert run(queue, calls.fail(queue.keys, failed)) == ["inactive", "inactive"]
    assert failed_under(queue, first) == {str(ids[2]): "inactive"}
    assert failed_under(queue, second) == {str(ids[6]): "inactive"}
    if not backend.startswith("memory://"):  # the cost argument of lua/README.md
        record = queue.keys.claim(first)
        assert queue.client.object("encoding", record + ":complete") == "intset"
        assert queue.client.object("encoding", record + ":failed") in ("listpack", "ziplist")
    check_invariants(queue.client, queue.prefix)


def test_the_same_job_twice_in_one_completion_is_completed_once(queue: Queue) -> None:
    job = queue.create("email").save()
    token, _ = claim(queue, "email")
    events = Events(queue)
    reply = run(queue, calls.complete(queue.keys, [(job.id, token, 4, ""), (job.id, "other:1", 4, ""),
                                                   (job.id, token, 4, "")]))
    assert reply == [1, 0, 2]
    assert queue.work_time() == 4 and completed_under(queue, token) == {str(job.id)}
    assert [e["event"] for e in events.drain()] == ["complete"]
    check_invariants(queue.client, queue.prefix)


def test_a_retried_completion_of_a_remove_on_complete_job(queue: Queue) -> None:
    job = queue.create("email").remove_on_complete().save()
    token, _ = claim(queue, "email")
    events = Events(queue)
    assert run(queue, calls.complete(queue.keys, [(job.id, token, 3, "")])) == [1]
    assert not queue.client.exists(queue.keys.job(job.id))
    assert run(queue, calls.complete(queue.keys, [(job.id, token, 3, "")])) == [2]
    assert [e["event"] for e in events.drain()] == ["remove", "complete"]
    assert queue.work_time() == 3
    check_invariants(queue.client, queue.prefix)


def test_a_completion_by_an_old_token_after_recovery_is_lost(queue: Queue) -> None:
    job = queue.create("email").attempts(2).save()
    old, _ = claim(queue, "email")
    expire_lease(queue, job.id)
    assert run(queue, calls.recover(queue.keys, 100, 1, 3000, False)) == [1, 0, 0]
    assert record_of(queue, old) == str(job.id)
    assert run(queue, calls.complete(queue.keys, [(job.id, old, 1, "")])) == [0]
    assert run(queue, calls.fail(queue.keys, [(job.id, old, "e", "s", "m", "")])) == [""]
    new, _ = claim(queue, "email")
    assert run(queue, calls.complete(queue.keys, [(job.id, old, 1, "")])) == [0]
    assert run(queue, calls.complete(queue.keys, [(job.id, new, 1, "")])) == [1]
    assert run(queue, calls.complete(queue.keys, [(job.id, old, 1, "")])) == [0]
    assert record_of(queue, old) == str(job.id)
    assert completed_under(queue, old) == set() and failed_under(queue, old) == {}
    assert completed_under(queue, new) == {str(job.id)}
    check_invariants(queue.client, queue.prefix)


def test_an_outcome_without_a_claim_record_creates_none(queue: Queue) -> None:
    retried = {"type": "email", "options": {"attempts": 2}}
    job, other = queue.create_bulk([retried, retried])
    token, _ = claim(queue, "email", lease_ms=20)
    # The record expired (2 * lease) before recovery ran: the lease still holds.
    assert poll(lambda: not queue.client.exists(queue.keys.claim(token)))
    assert run(queue, calls.complete(queue.keys, [(job.id, token, 1, "")])) == [1]
    item = (other.id, token, "e", "s", "m", "")
    assert run(queue, calls.fail(queue.keys, [item])) == ["inactive"]
    assert not queue.client.exists(*claim_keys(queue, token))
    assert run(queue, calls.complete(queue.keys, [(job.id, token, 1, "")])) == [0]
    assert run(queue, calls.fail(queue.keys, [item])) == [""]


def test_a_retried_failure_returns_the_same_state_once(queue: Queue) -> None:
    job = queue.create("email").attempts(2).save()
    token, _ = claim(queue, "email")
    events = Events(queue)
    item = (job.id, token, "Error: x\n  at y", "Error: x", "x", "")
    assert run(queue, calls.fail(queue.keys, [item])) == ["inactive"]
    assert failed_under(queue, token) == {str(job.id): "inactive"}
    assert record_of(queue, token) == str(job.id) and completed_under(queue, token) == set()
    record, _, failed_key = claim_keys(queue, token)
    assert 0 < queue.client.pttl(failed_key) <= pttl_after(queue, record)  # expires with it
    stored = hash_of(queue, job.id)
    assert run(queue, calls.fail(queue.keys, [item])) == ["inactive"]
    assert run(queue, calls.fail(queue.keys, [item, item])) == ["inactive", "inactive"]
    assert hash_of(queue, job.id) == stored and job.logs() == ["Error: x"]
    assert run(queue, calls.complete(queue.keys, [(job.id, token, 1, "")])) == [0]
    # Claimed again by another worker: a retry under the old token still leaves it alone.
    second, _ = claim(queue, "email")
    assert run(queue, calls.fail(queue.keys, [item])) == ["inactive"]
    assert hash_of(queue, job.id)["lease"] == second
    final = (job.id, second, "Error: z", "Error: z", "z", "")
    assert run(queue, calls.fail(queue.keys, [final])) == ["failed"]
    assert run(queue, calls.fail(queue.keys, [final])) == ["failed"]
    assert failed_under(queue, token) == {str(job.id): "inactive"}
    assert failed_under(queue, second) == {str(job.id): "failed"}
    got = [e["event"] for e in events.drain() if e["event"] != "start"]
    assert got == ["error", "enqueue", "failed attempt", "error", "failed"]
    assert hash_of(queue, job.id)["attempts"] == "2"
    check_invariants(queue.client, queue.prefix)


def test_the_same_job_twice_in_one_failure_is_failed_once(queue: Queue) -> None:
    job = queue.create("email").attempts(3).save()
    token, _ = claim(queue, "email")
    item = (job.id, token, "e", "s", "m", "")
    assert run(queue, calls.fail(queue.keys, [item, item])) == ["inactive", "inactive"]
    assert hash_of(queue, job.id)["attempts"] == "1" and job.logs() == ["s"]
    check_invariants(queue.client, queue.prefix)


def reclaimed(queue: Queue, token: str, lease_ms: int = 60000,
              worker: str = "kue:test:1:t:1") -> tuple[Any, list[tuple[int, dict[str, str]]]]:
    reply = run(queue, calls.reclaim(queue.keys, token, lease_ms))
    return reply, calls.parse_claimed(reply, worker, token)


def test_reclaim_returns_the_claims_running_jobs_with_renewed_leases(queue: Queue) -> None:
    jobs = queue.create_bulk([{"type": "email", "data": {"n": n}} for n in range(6)])
    ids = [j.id for j in jobs]
    token, claimed = claim(queue, "email", lease_ms=5000)
    assert [i for i, _ in claimed] == ids
    other = queue.create("email").save()
    other_token, _ = claim(queue, "email")
    assert run(queue, calls.complete(queue.keys, [(ids[0], token, 1, "")])) == [1]
    assert run(queue, calls.fail(queue.keys, [(ids[1], token, "e", "s", "m", "")])) == ["failed"]
    assert run(queue, calls.release(queue.keys, [(ids[2], token)])) == [1]
    expire_lease(queue, ids[3])
    assert run(queue, calls.recover(queue.keys, 100, 5, 3000, False)) == [1, 0, 0]
    queue.get_job(ids[4]).complete()  # moved by hand
    assert hash_of(queue, ids[3])["state"] == "inactive"
    before = hash_of(queue, ids[5])
    reply, got = reclaimed(queue, token, lease_ms=60000)
    now = int(reply[0])
    assert [i for i, _ in got] == [ids[5]]
    fields = got[0][1]
    assert fields["lease"] == token and fields["state"] == "active"
    assert {k: v for k, v in fields.items() if k not in ("started_at", "updated_at")} == \
        {k: v for k, v in before.items() if k not in ("started_at", "updated_at")}
    assert hash_of(queue, ids[5]) == before  # nothing but the lease deadline is written
    assert queue.client.zscore(queue.keys.leases, f"{len(str(ids[5])):02d}|{ids[5]}") == \
        now + 60000
    for key in claim_keys(queue, token):  # the record and its outcomes: 2 x lease_ms more
        assert 60000 < queue.client.pttl(key) <= 120000, key
    assert [i for i, _ in reclaimed(queue, other_token)[1]] == [other.id]
    assert run(queue, calls.complete(queue.keys, [(ids[5], token, 1, "")])) == [1]
    assert reclaimed(queue, token)[1] == []
    check_invariants(queue.client, queue.prefix)


def test_reclaim_reads_like_a_claim(queue: Queue) -> None:
    job = queue.create("email", {"to": "tj"}).priority("high").save()
    token = calls.claim_token()
    activate_reply = run(queue, calls.activate(queue.keys, "email", 5, "kue:h:1:email:1", token,
                                               5000))
    [(claimed_id, claimed_fields)] = calls.parse_claimed(activate_reply, "kue:h:1:email:1", token)
    reply, [(reclaimed_id, fields)] = reclaimed(queue, token, worker="kue:h:1:email:1")
    assert reclaimed_id == claimed_id == job.id
    assert int(reply[0]) >= int(activate_reply[0])
    for name in ("started_at", "updated_at"):  # parse_claimed sets both to the reply's now
        assert fields.pop(name) == str(int(reply[0]))
        assert claimed_fields.pop(name) == str(int(activate_reply[0]))
    assert fields == claimed_fields


def test_reclaim_for_an_unknown_token_writes_nothing(queue: Queue) -> None:
    queue.create("email").save()
    claim(queue, "email")
    before = dict(queue.client.zrange(queue.keys.leases, 0, -1, withscores=True))
    reply, got = reclaimed(queue, "never:1")
    assert len(reply) == 1 and int(reply[0]) > 0 and got == []
    assert not queue.client.exists(queue.keys.claim("never:1"))
    assert dict(queue.client.zrange(queue.keys.leases, 0, -1, withscores=True)) == before
    from kueatomic import InvalidArgument

    with pytest.raises(InvalidArgument):
        run(queue, calls.reclaim(queue.keys, "t", 0))


RELEASED = ("Released at shutdown: the worker stopped before the job finished; back to "
            "inactive, no attempt used")


def test_release_gives_jobs_back_without_using_an_attempt(queue: Queue) -> None:
    job = queue.create("email").attempts(3).save()
    mate = queue.create("video").save()
    stall(queue)  # one stall first: release leaves the count as it is
    token, _ = claim(queue, "email")
    video_token, _ = claim(queue, "video")
    before = hash_of(queue, job.id)
    events = Events(queue)
    assert run(queue, calls.release(queue.keys, [(job.id, "wrong:1"), (mate.id, token)])) == [0, 0]
    assert hash_of(queue, job.id) == before
    reply = run(queue, calls.release(queue.keys, [(job.id, token), (mate.id, video_token),
                                                  (job.id, token)]))
    assert reply == [1, 1, 1]
    stored = hash_of(queue, job.id)
    assert stored["state"] == "inactive" and "lease" not in stored
    assert stored.get("attempts") == before.get("attempts") and stored["stalls"] == "1"
    assert "error" not in stored and "failed_at" not in stored
    assert queue.client.zscore(queue.keys.leases, "01|1") is None
    assert job.logs()[-1] == RELEASED and job.logs().count(RELEASED) == 1
    # Nothing noted: the released job no longer holds the token, which is what the checks read.
    assert record_of(queue, token) == str(job.id)
    assert not queue.client.exists(*claim_keys(queue, token)[1:])
    assert queue.client.llen(queue.keys.tokens("email")) == 1
    assert queue.client.llen(queue.keys.tokens("video")) == 1
    got = [(e["id"], e["event"], e["args"]) for e in events.drain()]
    assert got == [(job.id, "enqueue", ["enqueue", "email"]),
                   (mate.id, "enqueue", ["enqueue", "video"])]
    assert run(queue, calls.release(queue.keys, [(job.id, token)])) == [0]
    assert run(queue, calls.complete(queue.keys, [(job.id, token, 1, "")])) == [0]
    assert reclaimed(queue, token)[1] == []
    check_invariants(queue.client, queue.prefix)
    again, claimed = claim(queue, "email")
    assert [i for i, _ in claimed] == [job.id]
    assert run(queue, calls.complete(queue.keys, [(job.id, again, 1, "")])) == [1]
    assert hash_of(queue, job.id)["attempts"] == "1"


def test_blocking_stays_below_the_socket_timeout() -> None:
    import redis as redis_py

    from kueatomic.worker.base import block_ms

    assert block_ms(redis_py.Redis(socket_timeout=0.5), 1000) == 300
    assert block_ms(redis_py.Redis(), 1000) == 1000
    assert block_ms(object(), 1000) == 1000
