"""Basic auth refuses wrong credentials on every route; markup in job data or the title stays
inert (the browser half of the XSS check is in test_web_browser.py); the guard refuses
foreign Hosts and cross-site state changes on every route, changing nothing; every response
carries the security headers."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

import kueatomic.web
from kueatomic import ConfigError, Queue
from kueatomic.web import create_app
from kueatomic.web.api import STATE_CHANGING_GETS
from kueatomic.web.guard import UNSAFE_METHODS
from kueatomic.web.headers import DATA_POLICY, PAGE_POLICY

from .keydump import dump_keys
from .web_helpers import TestClient, app_with_a_bug, client_for

STATIC = Path(kueatomic.web.__file__).parent / "static"
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def guarded(queue: Queue) -> Iterator[TestClient]:
    with client_for(create_app(queue, auth="admin:s3:cret")) as client:
        yield client


@pytest.mark.parametrize("path", ["/", "/failed", "/stats", "/job/1", "/jobs/0..10",
                                  "/openapi.json", "/assets/app.js", "/nowhere"])
@pytest.mark.parametrize("headers", [
    {},
    basic("admin", "wrong"),
    basic("root", "s3:cret"),
    basic("admin", "s3:cre"),
    {"Authorization": "Basic !!!not-base64"},
    {"Authorization": "Bearer s3:cret"},
], ids=["none", "wrong-password", "wrong-user", "prefix", "garbage", "bearer"])
def test_basic_auth_refuses(guarded: TestClient, path: str, headers: dict[str, str]) -> None:
    response = guarded.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Basic realm="Kue"')
    assert response.json() == {"error": "authentication required"}


def test_basic_auth_refuses_writes(guarded: TestClient, queue: Queue) -> None:
    queue.create("email", {}).save()
    assert guarded.delete("/job/1", headers=basic("admin", "nope")).status_code == 401
    assert guarded.post("/job", json={"type": "a"}).status_code == 401
    assert queue.inactive_count() == 1


def test_basic_auth_lets_the_right_user_in(guarded: TestClient) -> None:
    right = basic("admin", "s3:cret")  # the password may contain ':'
    assert guarded.get("/stats", headers=right).status_code == 200
    assert guarded.get("/", headers=right).status_code == 200
    doc = guarded.get("/openapi.json", headers=right).json()
    assert doc["security"] == [{"basic": []}]


@pytest.mark.parametrize("auth", ["nocolon", ":password", "user:", ("", "x")])
def test_bad_auth_setting_is_a_config_error(queue: Queue, auth: object) -> None:
    with pytest.raises(ConfigError):
        create_app(queue, auth=auth)  # type: ignore[arg-type]


def test_markup_in_job_data_is_served_as_json_only(queue: Queue) -> None:
    queue.create("email", {"title": XSS, "body": XSS}).save().log(XSS)
    with client_for(create_app(queue)) as client:
        for path in ("/job/1", "/job/1/log", "/jobs/0..10", "/jobs/inactive/0..10"):
            response = client.get(path)
            assert response.headers["content-type"] == "application/json; charset=utf-8"
            assert XSS in str(response.json())
        page = client.get("/")
        assert "__xss" not in page.text  # the page never embeds job data


def test_title_is_escaped(queue: Queue) -> None:
    title = '</title><script>window.__xss=3</script>"><b>'
    with client_for(create_app(queue, title=title)) as client:
        page = client.get("/").text
    assert "<script>window.__xss" not in page and '"><b>' not in page
    assert "&lt;/title&gt;&lt;script&gt;" in page


def test_dashboard_script_has_no_html_sinks() -> None:
    """The page's code inserts text only (textContent), never markup."""
    code = (STATIC / "app.js").read_text()
    sinks = re.findall(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|"
                       r"new Function|setTimeout\(\s*[\"']", code)
    assert sinks == []
    html = (STATIC / "index.html").read_text()
    assert "<script>" not in html  # no inline script: the page's CSP allows 'self' only
    assert not re.search(r"<[^>]*\son\w+\s*=", html)  # no inline event handlers


# --- the guard: Host allow-list and the same-origin rule, on every route -------------------

ATTACKS = {
    "foreign-host": {"Host": "evil.example"},
    "foreign-host-port": {"Host": "evil.example:3000"},
    "origin": {"Origin": "https://evil.example"},
    "origin-null": {"Origin": "null"},
    "origin-other-port": {"Origin": "http://localhost:8080"},
    "origin-other-scheme": {"Origin": "https://localhost"},
    "cross-site": {"Sec-Fetch-Site": "cross-site"},
    "same-site": {"Sec-Fetch-Site": "same-site"},
}
# A value for each path parameter, chosen so a request that is let through changes something.
PARAMS = {"id": "1", "state": "inactive", "priority": "high", "start": "0", "stop": "10",
          "type": "email", "order": "asc", "name": "hourly"}
SAME_ORIGIN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}


def route_cases(app: Any) -> list[tuple[str, str, Route]]:
    """(method, concrete path, route) for every method of every route of the app; a route
    with a parameter PARAMS has no value for fails here, so no new route goes unchecked."""
    cases = []
    for route in app.routes:
        if isinstance(route, Mount):
            continue  # the static files: GET only, covered by the header tests
        assert isinstance(route, Route), route
        missing = set(route.param_convertors) - set(PARAMS)
        assert not missing, f"give {route.path}'s {missing} a value in PARAMS"
        path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PARAMS[m.group(1)], route.path)
        cases.extend((method, path, route) for method in sorted(route.methods or ()))
    assert len(cases) > 20
    return cases


def send(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    body = {"type": "evil"} if method in ("POST", "PUT", "DELETE", "PATCH") else None
    return client.request(method, path, headers=headers,
                          **({"json": body} if body is not None else {}))


def seeded(make_queue: Any, prefix: str) -> Queue:
    """Jobs in every kind of state, so each route's request has something to change."""
    queue: Queue = make_queue(prefix=prefix)
    queue.create("email", {"n": 1}).save().set_state("complete")
    queue.create("email", {"n": 2}).save().set_state("failed")
    queue.create("video", {"n": 3}).save()
    queue.repeat("report", every=3_600_000, name="hourly")
    return queue


def keyspace(queue: Queue) -> dict[str, Any]:
    return dump_keys(queue.client, f"{queue.prefix}:*")


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_cross_site_and_rebinding_requests_change_nothing(make_queue: Any, attack: str) -> None:
    queue = seeded(make_queue, f"atk{uuid.uuid4().hex[:8]}")
    app = create_app(queue)
    headers = ATTACKS[attack]
    with client_for(app) as client:
        for method, path, route in route_cases(app):
            before = keyspace(queue)
            response = send(client, method, path, headers)
            assert keyspace(queue) == before, (method, path)
            if "Host" in headers:
                assert response.status_code == 400, (method, path)
                assert method == "HEAD" or "is not allowed" in response.json()["error"]
            elif method in UNSAFE_METHODS or route in STATE_CHANGING_GETS:
                assert response.status_code == 403, (method, path)
                assert method == "HEAD" or "cross-site request" in response.json()["error"]
            else:
                assert response.status_code < 500


def test_every_route_that_changes_state_is_guarded(make_queue: Any) -> None:
    """Each route is tried from the dashboard's own origin on fresh jobs: every one that
    changed the keyspace must be one the guard holds to the same-origin rule."""
    app = create_app(seeded(make_queue, "probe"))
    changed = []
    for n, (method, path, route) in enumerate(route_cases(app)):
        queue = seeded(make_queue, f"try{n}")
        with client_for(create_app(queue)) as client:
            before = keyspace(queue)
            assert send(client, method, path, SAME_ORIGIN).status_code < 500, (method, path)
            if keyspace(queue) != before:
                changed.append((method, route.path))
                assert method in UNSAFE_METHODS or route in STATE_CHANGING_GETS, (method, path)
    assert ("GET", "/inactive/{id}") in changed and ("DELETE", "/job/{id}") in changed


@pytest.mark.parametrize("host", ["localhost", "localhost:3000", "127.0.0.1:1", "[::1]:3000",
                                  "LOCALHOST.", "[::1]"])
def test_loopback_hosts_are_allowed(queue: Queue, host: str) -> None:
    with client_for(create_app(queue)) as client:
        assert client.get("/stats", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "127.0.0.1.nip.io",
                                  "[::2]", "localhost:x", "", "a b", "[::1", "::1"])
def test_other_hosts_are_refused(queue: Queue, host: str) -> None:
    with client_for(create_app(queue)) as client:
        response = client.get("/", headers={"Host": host})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert "--allow-host" in response.json()["error"]


def test_allowed_hosts_add_names(queue: Queue) -> None:
    app = create_app(queue, allowed_hosts=["kue.example.com", "10.0.0.5", "::5", "*.ops.example"])
    with client_for(app) as client:
        for host in ("kue.example.com", "KUE.example.com:8443", "10.0.0.5:3000", "[::5]:80",
                     "a.ops.example", "localhost:3000"):
            assert client.get("/stats", headers={"Host": host}).status_code == 200, host
        for host in ("example.com", "ops.example", "10.0.0.6"):
            assert client.get("/stats", headers={"Host": host}).status_code == 400, host
        # Same-origin writes under an added name go through.
        response = client.put("/job/1/priority/high", headers={
            "Host": "kue.example.com", "Origin": "http://kue.example.com"})
        assert response.status_code == 404  # past the guard: there is no job 1
    with client_for(create_app(queue, allowed_hosts=["*"])) as anything:
        assert anything.get("/stats", headers={"Host": "whatever.example"}).status_code == 200


@pytest.mark.parametrize("entry", ["", "http://x.example/", "a b", "x.example/path"])
def test_bad_allowed_host_is_a_config_error(queue: Queue, entry: str) -> None:
    with pytest.raises(ConfigError):
        create_app(queue, allowed_hosts=[entry])


def test_same_origin_and_non_browser_requests_go_through(queue: Queue) -> None:
    job_id = queue.create("email").save().set_state("failed").id
    with client_for(create_app(queue)) as client:
        for headers in ({}, SAME_ORIGIN, {"Sec-Fetch-Site": "none"},
                        {"Origin": "http://localhost:80"}, {"Sec-Fetch-Site": "same-origin"}):
            assert client.get(f"/inactive/{job_id}", headers=headers).status_code == 200
            assert client.put(f"/job/{job_id}/state/failed", headers=headers).status_code == 200
        https = client.put(f"/job/{job_id}/priority/1", headers={
            "Host": "localhost:8443", "Origin": "https://localhost:8443"})
        assert https.status_code == 403  # the request came over http: another origin
    assert queue.get_job(job_id).state == "failed"


def test_the_guard_works_under_a_mount(queue: Queue) -> None:
    job_id = queue.create("email").save().set_state("complete").id
    outer = Starlette(routes=[Mount("/kue", app=create_app(queue))])
    with client_for(outer) as client:
        assert client.get(f"/kue/inactive/{job_id}",
                          headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert client.head(f"/kue/inactive/{job_id}",
                           headers={"Origin": "https://evil.example"}).status_code == 403
        assert client.get("/kue/stats", headers={"Host": "evil.example"}).status_code == 400
        assert queue.get_job(job_id).state == "complete"
        assert client.get(f"/kue/inactive/{job_id}", headers=SAME_ORIGIN).status_code == 200
    assert queue.get_job(job_id).state == "inactive"


@pytest.mark.parametrize("method, path", [("PUT", "/job/1/priority/high"),
                                          ("PUT", "/job/1/state/failed"),
                                          ("DELETE", "/job/1"), ("POST", "/job"),
                                          ("PATCH", "/job/1")])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_bodies_of_every_unsafe_method_must_be_json(queue: Queue, method: str, path: str,
                                                    content_type: str | None) -> None:
    queue.create("email").save()
    before = keyspace(queue)
    headers = {} if content_type is None else {"Content-Type": content_type}
    with client_for(create_app(queue)) as client:
        response = client.request(method, path, content=b'{"type":"x"}', headers=headers)
        assert response.status_code == 415, response.text
        assert "application/json" in response.json()["error"]
        assert keyspace(queue) == before
        # A JSON body, or none, is fine.
        if method == "PUT":
            assert client.request(method, path, json={}).status_code == 200
            assert client.request(method, path).status_code == 200


# --- security headers on every response ----------------------------------------------------

def assert_secured(response: Any, what: object) -> None:
    headers = response.headers
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("x-frame-options") == "DENY", what
    assert headers.get("referrer-policy") == "no-referrer", what
    assert headers.get("cross-origin-resource-policy") == "same-origin", what
    policy = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, what
    html = headers.get("content-type", "").startswith("text/html")
    assert policy == (PAGE_POLICY if html else DATA_POLICY), what


def test_security_headers_on_every_route(make_queue: Any) -> None:
    queue = seeded(make_queue, "hdr")
    app = create_app(queue)
    statuses = set()
    with client_for(app) as client:
        for method, path, _ in route_cases(app):
            for headers in ({}, SAME_ORIGIN, ATTACKS["origin"], ATTACKS["foreign-host"]):
                response = send(client, method, path, headers)
                statuses.add(response.status_code)
                assert_secured(response, (method, path, headers))
        for path in ("/", "/failed", "/assets/app.js", "/assets/app.css", "/assets/favicon.svg",
                     "/assets/index.html", "/assets/missing.js", "/nowhere", "/job/abc",
                     "/jobs/a..b", "/openapi.json"):
            response = client.get(path)
            statuses.add(response.status_code)
            assert_secured(response, path)
        for response in (client.post("/job", content=b"{", headers={"Content-Type":
                                                                   "application/json"}),
                         client.post("/job", content=b"x", headers={"Content-Type": "text/plain"}),
                         client.post("/job", json={}), client.delete("/stats"),
                         client.options("/job/1")):
            statuses.add(response.status_code)
            assert_secured(response, response.request.url)
        assert client.get("/").headers["content-type"].startswith("text/html")
    assert {200, 204, 400, 403, 404, 405, 415} <= statuses


def test_security_headers_on_401_413_and_500(queue: Queue) -> None:
    with client_for(create_app(queue, auth="admin:s3:cret")) as guarded:
        assert_secured(guarded.get("/"), "401 page")
        assert_secured(guarded.get("/stats"), "401 json")
    with client_for(create_app(queue, max_body_bytes=10)) as small:
        response = small.post("/job", json={"type": "email", "data": "x" * 100})
        assert response.status_code == 413
        assert_secured(response, "413")
    with client_for(app_with_a_bug(queue), raise_server_exceptions=False) as client:
        response = client.get("/stats")
        assert response.status_code == 500
        assert_secured(response, "500")
