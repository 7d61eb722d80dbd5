"""Basic auth refuses wrong credentials on every route; markup in job data or the title stays
inert (the browser half of the XSS check is in test_web_browser.py)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import kueatomic.web
from kueatomic import ConfigError, Queue
from kueatomic.web import create_app

from .web_helpers import TestClient, client_for

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
