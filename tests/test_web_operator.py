"""The operator routes (bulk retry and clean, pausing a type, cancel, repeatable jobs), success
and typed errors, on both backends and both app flavours; every effect checked through the
Python API, which reads Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from kueatomic import JobNotFound, Queue

from .web_helpers import TestClient, client_for, make_app

JSON_TYPE = "application/json; charset=utf-8"


@pytest.fixture(params=["sync", "async"])
def flavor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(flavor: str, queue: Queue, backend: str) -> Iterator[TestClient]:
    with client_for(make_app(flavor, queue, backend)) as test_client:
        yield test_client


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JSON_TYPE
    return response.json()


def error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and body["error"]
    return str(body["error"])


def failed(queue: Queue, job_type: str, count: int) -> list[int]:
    return [queue.create(job_type, {"n": n}).save().set_state("failed").id for n in range(count)]


def test_retry_failed_of_a_type_then_all(client: TestClient, queue: Queue) -> None:
    emails, videos = failed(queue, "email", 3), failed(queue, "video", 2)
    assert ok(client.post("/jobs/failed/retry", json={"type": "email", "limit": 2})) == {"retried": 2}
    assert sorted(queue.get_job(i).state for i in emails) == ["failed", "inactive", "inactive"]
    assert ok(client.post("/jobs/failed/retry", json={"type": "email"})) == {"retried": 1}
    assert all(queue.get_job(i).state == "failed" for i in videos)
    # No body at all: every type.
    assert ok(client.post("/jobs/failed/retry")) == {"retried": 2}
    assert queue.failed_count() == 0 and queue.inactive_count() == 5
    assert ok(client.post("/jobs/failed/retry", json={})) == {"retried": 0}


@pytest.mark.parametrize("body", [{"limit": 0}, {"limit": "5"}, {"limit": None}, {"type": 3},
                                  {"type": ""}, {"typo": "email"}, [1, 2]])
def test_retry_failed_refuses_bad_bodies(client: TestClient, queue: Queue, body: Any) -> None:
    failed(queue, "email", 1)
    error(client.post("/jobs/failed/retry", json=body), 400)
    assert queue.failed_count() == 1


def test_retry_needs_a_json_body(client: TestClient, queue: Queue) -> None:
    failed(queue, "email", 1)
    error(client.post("/jobs/failed/retry", content=b"type=email",
                      headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    error(client.post("/jobs/failed/retry", json={}, headers={"Origin": "http://evil.example"}),
          403)
    assert queue.failed_count() == 1


def test_clean_by_state_age_type_and_limit(client: TestClient, queue: Queue) -> None:
    done = [queue.create("email" if n < 3 else "video", {}).save().set_state("complete").id
            for n in range(5)]
    failed(queue, "email", 1)
    # Nothing is a day old yet.
    assert ok(client.post("/jobs/clean", json={"state": "complete",
                                               "older_than_ms": 86_400_000})) == {"removed": 0}
    time.sleep(0.02)
    assert ok(client.post("/jobs/clean", json={"state": "complete", "older_than_ms": 10,
                                               "type": "email", "limit": 2})) == {"removed": 2}
    assert ok(client.post("/jobs/clean", json={"state": "complete"})) == {"removed": 3}
    for job_id in done:
        with pytest.raises(JobNotFound):
            queue.get_job(job_id)
    assert queue.failed_count() == 1


@pytest.mark.parametrize("body", [{}, {"state": "active"}, {"state": "nope"},
                                  {"state": "complete", "older_than_ms": -1},
                                  {"state": "complete", "older_than_ms": 2**60},
                                  {"state": "complete", "limit": 0},
                                  {"state": "complete", "extra": 1}])
def test_clean_refuses_bad_bodies(client: TestClient, queue: Queue, body: Any) -> None:
    queue.create("email", {}).save().set_state("complete")
    error(client.post("/jobs/clean", json=body), 400)
    assert queue.complete_count() == 1


def test_pause_and_resume_a_type(client: TestClient, queue: Queue) -> None:
    assert ok(client.get("/types/paused")) == []
    assert ok(client.post("/types/email/pause")) == {"type": "email", "paused": True}
    assert ok(client.post("/types/video/pause")) == {"type": "video", "paused": True}
    assert ok(client.get("/types/paused")) == ["email", "video"]
    assert queue.paused_types() == ["email", "video"]
    assert ok(client.post("/types/email/resume")) == {"type": "email", "paused": False}
    assert queue.paused_types() == ["video"]
    error(client.post("/types/a:b/pause"), 400)
    assert client.get("/types/email/pause").status_code == 405
    assert queue.paused_types() == ["video"]


def test_cancel_a_waiting_job(client: TestClient, queue: Queue) -> None:
    job_id = queue.create("email", {}).save().id
    delayed_id = queue.create("email", {}).delay(60_000).save().id
    assert ok(client.post(f"/job/{job_id}/cancel")) == {"message": f"job {job_id} cancelled",
                                                       "state": "failed"}
    assert ok(client.post(f"/job/{delayed_id}/cancel"))["state"] == "failed"
    job = queue.get_job(job_id)
    assert job.state == "failed" and "Cancelled" in (job.error or "")
    # An ended job cannot be cancelled again; an unknown one is not found.
    error(client.post(f"/job/{job_id}/cancel"), 409)
    error(client.post("/job/999999/cancel"), 404)
    error(client.post("/job/abc/cancel"), 404)


def test_cancel_an_ended_job_is_a_conflict(client: TestClient, queue: Queue) -> None:
    done_id = queue.create("email", {}).save().set_state("complete").id
    error(client.post(f"/job/{done_id}/cancel"), 409)
    assert queue.get_job(done_id).state == "complete"


def test_repeats_add_list_remove(client: TestClient, queue: Queue) -> None:
    assert ok(client.get("/repeats")) == []
    every = ok(client.post("/repeats", json={"name": "tick", "type": "report", "every": 60_000,
                                             "data": {"kind": "hourly"},
                                             "options": {"priority": -10}}))
    assert every["name"] == "tick" and every["every"] == 60_000 and every["type"] == "report"
    assert every["next_at"] % 60_000 == 0 and every["next_at"] > time.time() * 1000 - 1000
    cron = ok(client.post("/repeats", json={"type": "digest", "cron": "*/5 * * * *",
                                            "tz": "Europe/Paris"}))
    listed = ok(client.get("/repeats"))
    assert [r["name"] for r in listed] == sorted([cron["name"], "tick"])
    assert [r["name"] for r in queue.repeats()] == [r["name"] for r in listed]
    # A default name holds "/" (from the cron expression): still removable by path.
    assert "/" in cron["name"]
    ok(client.delete("/repeats/" + cron["name"]))
    ok(client.delete("/repeats/tick"))
    assert queue.repeats() == []
    error(client.delete("/repeats/tick"), 404)


@pytest.mark.parametrize("body", [{"type": "report"}, {"every": 60_000},
                                  {"type": "report", "every": 60_000, "cron": "* * * * *"},
                                  {"type": "report", "every": 10},
                                  {"type": "report", "cron": "not a cron"},
                                  {"type": "report", "cron": "* * * * *", "tz": "Mars/Olympus"},
                                  {"type": "report", "every": 60_000, "options": {"ttl": "x"}},
                                  {"type": "report", "every": 60_000, "colour": "red"},
                                  "report"])
def test_repeats_refuse_bad_specs(client: TestClient, queue: Queue, body: Any) -> None:
    error(client.post("/repeats", json=body), 400)
    assert queue.repeats() == []


def test_job_card_lists_dependencies_both_ways(client: TestClient, queue: Queue) -> None:
    parent = queue.create("build", {}).save().id
    child = queue.create("deploy", {}).depends_on([parent]).save().id
    assert ok(client.get(f"/job/{child}"))["depends_on"] == [parent]
    assert ok(client.get(f"/job/{parent}"))["dependents"] == [child]
