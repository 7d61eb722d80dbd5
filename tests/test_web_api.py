"""Every JSON route, success and error, on both backends (fakeredis, redis-server) and both
app flavours (sync Queue in a thread pool; the app's own asyncio Queue from a URL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.routing import Mount

from kueatomic import Queue
from kueatomic.web import create_app

from .web_helpers import TestClient, app_with_a_bug, client_for, make_app

ON_CLUSTER = True  # the backend fixture also runs these tests on a Redis Cluster

JSON_TYPE = "application/json; charset=utf-8"


@pytest.fixture(params=["sync", "async"])
def flavor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(flavor: str, queue: Queue, backend: str) -> Iterator[TestClient]:
    with client_for(make_app(flavor, queue, backend)) as test_client:
        yield test_client


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON_TYPE
    return response.json()


def error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON_TYPE
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    return str(body["error"])


def ids(jobs: list[dict[str, Any]]) -> list[int]:
    return [job["id"] for job in jobs]


def add(queue: Queue, job_type: str = "email", priority: int | str = 0, state: str | None = None,
        **data: Any) -> int:
    job = queue.create(job_type, data or {"n": 1}).priority(priority).save()
    if state:
        job.set_state(state)
    assert job.id is not None
    return job.id


# --- GET /stats, /stats/types, /job/types ----------------------------------------------------

def test_stats_empty_and_counted(client: TestClient, queue: Queue) -> None:
    assert client.get("/stats").text == (
        '{"inactiveCount":0,"completeCount":0,"activeCount":0,"failedCount":0,'
        '"delayedCount":0,"workTime":null}')
    add(queue)
    add(queue)
    add(queue, state="active")
    add(queue, "video", state="failed")
    add(queue, state="complete")
    add(queue, state="delayed")
    assert ok(client.get("/stats")) == {"inactiveCount": 2, "completeCount": 1, "activeCount": 1,
                                        "failedCount": 1, "delayedCount": 1, "workTime": None}


def test_type_stats_and_types(client: TestClient, queue: Queue) -> None:
    assert ok(client.get("/stats/types")) == {}
    assert ok(client.get("/job/types")) == []
    add(queue, "email")
    add(queue, "video", state="failed")
    assert ok(client.get("/stats/types")) == {
        "email": {"inactive": 1, "active": 0, "complete": 0, "failed": 0, "delayed": 0},
        "video": {"inactive": 0, "active": 0, "complete": 0, "failed": 1, "delayed": 0},
    }
    assert sorted(ok(client.get("/job/types"))) == ["email", "video"]


# --- ranges ----------------------------------------------------------------------------------

@pytest.fixture
def ranked(queue: Queue) -> list[int]:
    """Five jobs whose score order (3, 5, 1, 4, 2 by priority) differs from id order."""
    priorities = {1: 0, 2: 10, 3: -15, 4: 5, 5: -10}
    for job_id in range(1, 6):
        assert add(queue, "email" if job_id % 2 else "video", priorities[job_id]) == job_id
    return [3, 5, 1, 4, 2]


def test_job_range_slices_by_score_then_sorts_by_id(client: TestClient, ranked: list[int]) -> None:
    assert ids(ok(client.get("/jobs/0..2"))) == [1, 3, 5]  # slice 3,5,1 sorted by id
    assert ids(ok(client.get("/jobs/0..2/asc"))) == [1, 3, 5]
    assert ids(ok(client.get("/jobs/0..2/desc"))) == [5, 3, 1]
    assert ids(ok(client.get("/jobs/-2..-1"))) == [2, 4]
    assert ids(ok(client.get("/jobs/0..-1"))) == [1, 2, 3, 4, 5]
    assert ok(client.get("/jobs/100..200")) == []
    assert all(isinstance(job["id"], int) for job in ok(client.get("/jobs/0..-1")))


@pytest.mark.parametrize("path", [
    "/jobs/a..b", "/jobs/0..x", "/jobs/0..1/sideways", "/jobs/1.5..2",
    "/jobs/0..99999999999999999999999", "/jobs/video/inactive/a..b",
    "/jobs/inactive/0..z", "/jobs/inactive/0..1/up",
])
def test_bad_range_is_400(client: TestClient, path: str) -> None:
    error(client.get(path), 400)


def test_no_range_is_json_404(client: TestClient) -> None:
    assert error(client.get("/jobs/0"), 404) == "Cannot GET /jobs/0"
    assert error(client.get("/nowhere"), 404) == "Cannot GET /nowhere"


def test_state_range(client: TestClient, queue: Queue, ranked: list[int]) -> None:
    assert ids(ok(client.get("/jobs/inactive/0..1"))) == [3, 5]
    assert ids(ok(client.get("/jobs/inactive/0..-1/desc"))) == [5, 4, 3, 2, 1]
    queue.get_job(4).set_state("failed")
    assert [(j["id"], j["state"]) for j in ok(client.get("/jobs/failed/0..10"))] == [(4, "failed")]
    assert ok(client.get("/jobs/complete/0..10")) == []


def test_unknown_state_is_refused_not_created(client: TestClient, queue: Queue) -> None:
    job_id = add(queue)
    assert "unknown state" in error(client.get("/jobs/bogus/0..10"), 400)
    assert "unknown state" in error(client.get("/jobs/email/bogus/0..10"), 400)
    assert "unknown state" in error(client.get("/jobs/email/bogus/stats"), 400)
    assert "unknown state" in error(client.put(f"/job/{job_id}/state/bogus"), 400)
    assert not queue.client.keys(f"{queue.prefix}:jobs:*bogus*")
    assert queue.get_job(job_id).state == "inactive"


def test_type_range_and_stats(client: TestClient, ranked: list[int]) -> None:
    assert ids(ok(client.get("/jobs/email/inactive/0..-1"))) == [1, 3, 5]
    assert ids(ok(client.get("/jobs/email/inactive/0..0"))) == [3]
    assert ids(ok(client.get("/jobs/video/inactive/0..10/desc"))) == [4, 2]
    assert ok(client.get("/jobs/nosuchtype/inactive/0..10")) == []
    assert ok(client.get("/jobs/email/inactive/stats")) == {"count": 3}
    assert ok(client.get("/jobs/email/failed/stats")) == {"count": 0}
    assert ok(client.get("/jobs/nosuchtype/inactive/stats")) == {"count": 0}


# --- one job ---------------------------------------------------------------------------------

def test_get_job_has_string_id(client: TestClient, queue: Queue) -> None:
    job_id = add(queue, title="hello")
    body = ok(client.get(f"/job/{job_id}"))
    assert body["id"] == str(job_id)
    assert body["data"] == {"title": "hello"}
    assert body["state"] == "inactive"


def test_a_job_node_kue_typed_with_a_colon_is_served(client: TestClient, queue: Queue) -> None:
    job_id = add(queue, title="hello")
    queue.client.hset(f"{queue.prefix}:job:{job_id}", "type", "node:made")  # Kue accepts any type name
    assert ok(client.get(f"/job/{job_id}"))["type"] == "node:made"
    assert [job["type"] for job in ok(client.get("/jobs/0..-1"))] == ["node:made"]


@pytest.mark.parametrize("text", ["999", "abc", "0", "-1", "99999999999999999999999"])
def test_unknown_job_is_404(client: TestClient, text: str) -> None:
    assert error(client.get(f"/job/{text}"), 404) == f'job "{text}" doesnt exist'
    assert error(client.get(f"/job/{text}/log"), 404) == f'job "{text}" doesnt exist'
    error(client.put(f"/job/{text}/state/complete"), 404)
    error(client.put(f"/job/{text}/priority/high"), 404)
    error(client.delete(f"/job/{text}"), 404)
    error(client.get(f"/inactive/{text}"), 404)


def test_job_log(client: TestClient, queue: Queue) -> None:
    job = queue.create("email", {}).save()
    assert ok(client.get(f"/job/{job.id}/log")) == []
    job.log("hello %s", "world")
    job.log("second line")
    assert ok(client.get(f"/job/{job.id}/log")) == ["hello world", "second line"]


# --- writes ----------------------------------------------------------------------------------

def test_put_state(client: TestClient, queue: Queue) -> None:
    job_id = add(queue)
    assert ok(client.put(f"/job/{job_id}/state/complete")) == {"message": "updated state"}
    assert queue.get_job(job_id).state == "complete"
    assert queue.complete_count() == 1 and queue.inactive_count() == 0


@pytest.mark.parametrize("given, stored", [("7", 7), ("-3", -3), ("high", -10), ("low", 10)])
def test_put_priority(client: TestClient, queue: Queue, given: str, stored: int) -> None:
    job_id = add(queue)
    assert ok(client.put(f"/job/{job_id}/priority/{given}")) == {"message": "updated priority"}
    assert queue.get_job(job_id).priority_value == stored
    assert queue.client.zscore(f"{queue.prefix}:jobs:email:inactive", f"01|{job_id}") == stored


@pytest.mark.parametrize("given", ["abc", "1.5", "urgent", "9999999999999999999"])
def test_put_bad_priority_is_400(client: TestClient, queue: Queue, given: str) -> None:
    job_id = add(queue, priority=5)
    assert "invalid priority" in error(client.put(f"/job/{job_id}/priority/{given}"), 400)
    assert queue.get_job(job_id).priority_value == 5


def test_delete(client: TestClient, queue: Queue) -> None:
    job = queue.create("email", {}).save()
    job.log("a line")
    assert ok(client.delete(f"/job/{job.id}")) == {"message": f"job {job.id} removed"}
    assert not queue.client.exists(f"{queue.prefix}:job:{job.id}", f"{queue.prefix}:job:{job.id}:log")
    assert queue.inactive_count() == 0
    error(client.delete(f"/job/{job.id}"), 404)


def test_inactive_restarts(client: TestClient, queue: Queue) -> None:
    job_id = add(queue, state="failed")
    assert ok(client.get(f"/inactive/{job_id}")) == {"message": f"job {job_id} inactive"}
    assert queue.get_job(job_id).state == "inactive"
    assert queue.failed_count() == 0 and queue.inactive_count() == 1


# --- POST /job -------------------------------------------------------------------------------

def test_post_one_job_with_options(client: TestClient, queue: Queue) -> None:
    body = {"type": "email", "data": {"to": "a@x"},
            "options": {"attempts": "5", "priority": "high", "delay": 60000, "ttl": 30000,
                        "backoff": {"delay": 1000, "type": "fixed"}, "removeOnComplete": True}}
    assert ok(client.post("/job", json=body)) == {"message": "job created", "id": 1}
    fields = queue.client.hgetall(f"{queue.prefix}:job:1")
    assert {k: fields[k] for k in ("max_attempts", "priority", "delay", "ttl", "state",
                                   "removeOnComplete")} == {
        "max_attempts": "5", "priority": "-10", "delay": "60000", "ttl": "30000",
        "state": "delayed", "removeOnComplete": "true"}
    assert json.loads(fields["backoff"]) == {"delay": 1000, "type": "fixed"}
    assert json.loads(fields["data"]) == {"to": "a@x"}


def test_post_without_data_stores_empty_object(client: TestClient, queue: Queue) -> None:
    assert ok(client.post("/job", json={"type": "video"}))["id"] == 1
    assert queue.client.hget(f"{queue.prefix}:job:1", "data") == "{}"


def test_post_bulk_in_order_with_errors(client: TestClient, queue: Queue) -> None:
    response = client.post("/job", json=[{"type": "email", "data": {"n": 1}}, {"data": {"n": 2}},
                                         {"type": "video", "data": {"n": 3}}])
    assert ok(response, 400) == [{"message": "job created", "id": 1},
                                 {"error": "Must provide job type"},
                                 {"message": "job created", "id": 2}]
    assert queue.inactive_count() == 2
    assert ok(client.post("/job", json=[{"type": "a"}, {"type": "b"}])) == [
        {"message": "job created", "id": 3}, {"message": "job created", "id": 4}]


def test_post_bulk_status_is_first_errors(client: TestClient, queue: Queue) -> None:
    small = create_app(Queue(queue.prefix, redis=queue.connection, max_payload_bytes=50))
    with client_for(small) as limited:
        response = limited.post("/job", json=[{"type": "a", "data": "x" * 100}, {"data": 1}])
    body = ok(response, 413)
    assert "limit" in body[0]["error"] and body[1] == {"error": "Must provide job type"}


@pytest.mark.parametrize("payload", [{}, [], None])
def test_post_empty_is_204(client: TestClient, payload: Any) -> None:
    content = b"" if payload is None else json.dumps(payload).encode()
    response = client.post("/job", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 204 and response.content == b""


@pytest.mark.parametrize("body, words", [
    ({"data": {}}, "Must provide job type"),
    ({"type": ""}, "Must provide job type"),
    ({"type": "a", "options": {"priority": "urgent"}}, "priority"),
    ({"type": "a", "options": {"attempts": 0}}, "attempts"),
    ({"type": "a", "options": {"delay": -5}}, "delay"),
    ({"type": "a", "options": {"frobnicate": 1}}, "unknown job option"),
    ({"type": "a:b"}, "job type"),
    ([1], "must be an object"),
    (5, "must be an object"),
])
def test_post_bad_job_is_400(client: TestClient, queue: Queue, body: Any, words: str) -> None:
    response = client.post("/job", json=body)
    assert response.status_code == 400, response.text
    text = json.dumps(response.json())
    assert words in text
    assert queue.inactive_count() == 0


def test_post_malformed_json_is_json_400(client: TestClient) -> None:
    response = client.post("/job", content=b'{"type": "a",', headers={"content-type": "application/json"})
    assert "malformed JSON" in error(response, 400)


def test_post_needs_json_content_type(client: TestClient, queue: Queue) -> None:
    response = client.post("/job", content=b'{"type":"a"}', headers={"content-type": "text/plain"})
    assert "application/json" in error(response, 415)
    assert queue.inactive_count() == 0


def test_post_oversized_body_is_413(flavor: str, queue: Queue, backend: str) -> None:
    with client_for(make_app(flavor, queue, backend, max_body_bytes=1000)) as small:
        big = json.dumps({"type": "a", "data": "x" * 2000}).encode()
        assert "larger than 1000" in error(
            small.post("/job", content=big, headers={"content-type": "application/json"}), 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            yield big[:600]
            yield big[600:]

        error(small.post("/job", content=chunks(), headers={"content-type": "application/json"}), 413)
        assert ok(small.post("/job", json={"type": "a"}))["id"] == 1
    assert queue.inactive_count() == 1


def test_post_data_over_queue_limit_is_413(queue: Queue) -> None:
    small = Queue(queue.prefix, redis=queue.connection, max_payload_bytes=100)
    with client_for(create_app(small)) as limited:
        assert "limit" in error(limited.post("/job", json={"type": "a", "data": "x" * 200}), 413)
    small.close()


# --- search ----------------------------------------------------------------------------------

def test_search_disabled_says_so(client: TestClient) -> None:
    assert "search is disabled" in error(client.get("/job/search?q=tj"), 409)


def test_search_enabled(flavor: str, make_queue: Any, backend: str) -> None:
    queue = make_queue(disable_search=False)
    queue.create("email", {"title": "welcome email for tj", "to": "tj@learnboost.com"}).save()
    queue.create("email", {"title": "welcome email"}).save()
    with client_for(make_app(flavor, queue, backend)) as searching:
        assert ok(searching.get("/job/search?q=tj")) == ["1"]
        assert sorted(ok(searching.get("/job/search?q=email"))) == ["1", "2"]
        assert ok(searching.get("/job/search?q=welcome%20tj")) == ["1"]
        assert ok(searching.get("/job/search?q=nothing")) == []
        assert ok(searching.get("/job/search?q=")) == []
        assert ok(searching.get("/job/search")) == []
        assert ok(searching.get("/job/search?q=for")) == []


# --- the rest of the app ---------------------------------------------------------------------

def test_wrong_method_is_json_405(client: TestClient) -> None:
    response = client.post("/stats")
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}


def test_openapi_document(client: TestClient) -> None:
    doc = ok(client.get("/openapi.json"))
    assert doc["openapi"].startswith("3.")
    assert {"/stats", "/job", "/job/{id}", "/jobs/{from}..{to}/{order}",
            "/inactive/{id}"} <= set(doc["paths"])


@pytest.mark.parametrize("path, state", [("/", "active"), ("/active", "active"),
                                         ("/inactive", "inactive"), ("/failed", "failed"),
                                         ("/complete", "complete"), ("/delayed", "delayed")])
def test_dashboard_pages(client: TestClient, path: str, state: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert f'data-state="{state}"' in response.text
    assert '<base href="/">' in response.text
    assert client.get("/assets/app.js").headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert client.get("/assets/app.css").status_code == 200


def test_redis_down_is_503(flavor: str) -> None:
    url = "redis://127.0.0.1:1/0"
    app = create_app(Queue(redis=url)) if flavor == "sync" else create_app(url)
    with client_for(app) as down:
        assert "unreachable" in error(down.get("/stats"), 503)
        assert "unreachable" in error(down.post("/job", json={"type": "a"}), 503)


def test_queue_options_only_with_url(queue: Queue) -> None:
    from kueatomic import ConfigError

    with pytest.raises(ConfigError):
        create_app(queue, prefix="other")


class _Stamp(BaseHTTPMiddleware):
    async def dispatch(self, request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-outer"] = "yes"
        return response


def test_mounted_inside_another_app_with_its_middleware(flavor: str, queue: Queue, backend: str) -> None:
    outer = Starlette(routes=[Mount("/admin/kue", app=make_app(flavor, queue, backend, title="Jobs"))],
                      middleware=[Middleware(_Stamp)])
    add(queue)
    with client_for(outer) as mounted:
        stats = mounted.get("/admin/kue/stats")
        assert stats.json()["inactiveCount"] == 1 and stats.headers["x-outer"] == "yes"
        page = mounted.get("/admin/kue/")
        assert '<base href="/admin/kue/">' in page.text and "<title>Jobs</title>" in page.text
        assert mounted.get("/admin/kue/assets/app.js").status_code == 200
        assert mounted.put("/admin/kue/job/1/state/failed").json() == {"message": "updated state"}
        assert mounted.get("/admin/kue/jobs/failed/0..0").json()[0]["id"] == 1
        redirect = mounted.get("/admin/kue", follow_redirects=False)
        assert redirect.status_code in (307, 308) and redirect.headers["location"].endswith("/admin/kue/")


@pytest.mark.no_cluster  # the app's default prefix q has no hash tag
def test_mounted_app_from_a_url_closes_its_queue_through_the_outer_lifespan(backend: str) -> None:
    """Starlette skips a mounted app's lifespan; the README's recipe hands it to the outer app."""
    kue = create_app(backend)
    closed: list[bool] = []
    real_close = kue.state.queue.close

    async def spy() -> None:
        closed.append(True)
        await real_close()

    kue.state.queue.close = spy
    outer = Starlette(routes=[Mount("/kue", app=kue)], lifespan=kue.router.lifespan_context)
    with client_for(outer) as mounted:
        assert mounted.get("/kue/stats").status_code == 200
        assert closed == []
    assert closed == [True]


def test_sync_queue_runs_off_the_event_loop(queue: Queue) -> None:
    """A sync Queue's Redis calls run in the thread pool, never on the event loop's thread."""
    seen: list[bool] = []
    real_run = queue.driver.run

    def spy(plan: Any) -> Any:
        try:
            asyncio.get_running_loop()
            seen.append(True)
        except RuntimeError:
            seen.append(False)
        return real_run(plan)

    queue.driver.run = spy  # type: ignore[method-assign]
    with client_for(create_app(queue)) as sync_client:
        assert sync_client.get("/stats").status_code == 200
        assert sync_client.post("/job", json={"type": "a"}).status_code == 200
    assert seen and not any(seen)


def test_api_writes_only_through_scripts(flavor: str, redis_server: Any) -> None:
    """Engine rule 1 for the web app: MONITOR on our own redis-server sees only script calls
    and reads while every route runs."""
    import redis

    from .monitor import sent_commands
    from .test_no_direct_writes import ALLOWED_SENT

    url = redis_server.url
    redis.Redis.from_url(url).flushall()  # our private server
    with sent_commands(url) as sent:
        queue = Queue(redis=url)
        app = create_app(queue) if flavor == "sync" else create_app(url)
        with client_for(app) as client:
            assert client.post("/job", json=[{"type": "email"}, {"type": "video"}]).status_code == 200
            for path in ("/stats", "/stats/types", "/job/types", "/jobs/0..-1/desc",
                         "/jobs/inactive/0..9", "/jobs/email/inactive/0..9",
                         "/jobs/email/inactive/stats", "/job/1", "/job/1/log", "/inactive/1"):
                assert client.get(path).status_code == 200, path
            assert client.put("/job/1/state/failed").status_code == 200
            assert client.put("/job/1/priority/high").status_code == 200
            assert client.delete("/job/2").status_code == 200
        queue.close()
    assert "evalsha" in sent
    assert set(sent) <= ALLOWED_SENT, sorted(set(sent) - ALLOWED_SENT)


def test_a_bug_still_answers_json_500(queue: Queue) -> None:
    with client_for(app_with_a_bug(queue), raise_server_exceptions=False) as client:
        response = client.get("/stats")
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error"}
